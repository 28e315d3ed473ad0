-- The sandbox custom_sql alert rules run in (SPEC §6). Before, a rule ran on a pooled connection
-- after SET LOCAL ROLE and a tenant setting, both of which the query itself could undo
-- (set_config('role', …), set_config('deskmate.tenant_id', …)). Now:
--
--   * the query logs in as deskmate_alert_sql, a role that is a member of nothing and may read
--     nothing but the views of schema alert_views: who it runs as is fixed at login, and no
--     statement can change it (SET ROLE needs a membership it does not have);
--   * the views fix the tenant themselves, from a ticket row the evaluator writes over its own
--     trusted connection, keyed by the sandbox session's backend pid and start time. The reader
--     cannot write tickets, see them, or change its pid, so no setting it sets makes the views
--     show another tenant; a session without a ticket sees no rows at all;
--   * the views are owned by the migrating user and are security barriers: the tables behind
--     them are read with the owner's rights, and the query's own conditions are applied only
--     after the tenant filter, so they cannot leak other tenants' rows through errors.
--
-- storage/alert_sql.py parses each query first (one SELECT, these views, allow-listed functions);
-- storage/alert_metrics.py opens one connection per evaluation and closes it afterwards.

-- The old role read the tables themselves, scoped by a setting the query could change.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deskmate_alert_reader') THEN
        REVOKE ALL ON query_log, llm_call_metrics, rag_metrics, answer_feedback, scheduled_runs
            FROM deskmate_alert_reader;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot revoke the grants of deskmate_alert_reader';
END
$$;

-- Private to the service: the reader's password and the tickets.
CREATE SCHEMA alert_sandbox;
REVOKE ALL ON SCHEMA alert_sandbox FROM PUBLIC;

CREATE TABLE alert_sandbox.reader (
    only_one boolean PRIMARY KEY DEFAULT true CHECK (only_one),
    role     name NOT NULL,
    password text NOT NULL
);

-- One row per running evaluation; unlogged, as a ticket outlives no server restart.
CREATE UNLOGGED TABLE alert_sandbox.tickets (
    pid           integer PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    issued_at     timestamptz NOT NULL DEFAULT now()
);

-- The reader's password, new each time: a database that finds its stored one refused (another
-- database of the same server set the role's password since) calls this again.
CREATE FUNCTION alert_sandbox.new_reader_password() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    secret text := encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text,
                                            'UTF8')), 'hex');
BEGIN
    EXECUTE format('ALTER ROLE deskmate_alert_sql PASSWORD %L', secret);
    INSERT INTO alert_sandbox.reader (role, password) VALUES ('deskmate_alert_sql', secret)
    ON CONFLICT (only_one) DO UPDATE SET role = excluded.role, password = excluded.password;
    RETURN secret;
END
$$;
REVOKE ALL ON FUNCTION alert_sandbox.new_reader_password() FROM PUBLIC;

-- What a rule can read: measurements of its own tenant, never what people wrote.
CREATE SCHEMA alert_views;
REVOKE ALL ON SCHEMA alert_views FROM PUBLIC;

CREATE VIEW alert_views.tenant WITH (security_barrier) AS
    SELECT t.tenant_id AS id
    FROM alert_sandbox.tickets t
    WHERE t.pid = pg_catalog.pg_backend_pid()
      AND t.backend_start = (SELECT a.backend_start
                             FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a);

CREATE VIEW alert_views.query_log WITH (security_barrier) AS
    SELECT id, tenant_id, platform, in_channel, answer_status, grounded, response_time_ms,
           created_at
    FROM public.query_log
    WHERE tenant_id = (SELECT id FROM alert_views.tenant);

CREATE VIEW alert_views.llm_call_metrics WITH (security_barrier) AS
    SELECT id, tenant_id, query_id, purpose, model, status, error_type, attempts, input_tokens,
           output_tokens, cache_read_tokens, cache_write_tokens, latency_ms,
           time_to_first_token_ms, cost_usd, created_at
    FROM public.llm_call_metrics
    WHERE tenant_id = (SELECT id FROM alert_views.tenant);

CREATE VIEW alert_views.rag_metrics WITH (security_barrier) AS
    SELECT id, tenant_id, query_id, embed_ms, memory_search_ms, chunk_search_ms, memories_found,
           chunks_found, top_memory_score, top_chunk_score, created_at
    FROM public.rag_metrics
    WHERE tenant_id = (SELECT id FROM alert_views.tenant);

CREATE VIEW alert_views.answer_feedback WITH (security_barrier) AS
    SELECT id, tenant_id, rating, created_at
    FROM public.answer_feedback
    WHERE tenant_id = (SELECT id FROM alert_views.tenant);

CREATE VIEW alert_views.scheduled_runs WITH (security_barrier) AS
    SELECT id, tenant_id, schedule_id, slot, status, attempts, manual, sent_at, failed_at,
           created_at
    FROM public.scheduled_runs
    WHERE tenant_id = (SELECT id FROM alert_views.tenant);

-- The login role. A server whose deskmate user may not create roles runs without custom_sql
-- rules (no password is stored, and the rule is refused with that reason when it is saved).
DO $$
BEGIN
    CREATE ROLE deskmate_alert_sql LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
        NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 32;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot create role deskmate_alert_sql: custom_sql alert rules are disabled';
END
$$;

DO $$
DECLARE
    existing pg_roles;
    granted regrole;
BEGIN
    SELECT * INTO existing FROM pg_roles WHERE rolname = 'deskmate_alert_sql';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF existing.rolsuper OR existing.rolreplication OR existing.rolbypassrls THEN
        RAISE WARNING 'deskmate_alert_sql can do more than read: custom_sql alert rules are disabled';
        RETURN;
    END IF;
    -- A role of that name made by someone else gets its rights taken back to none (only what
    -- is wrong is altered: a non-superuser may not even name the attributes it lacks).
    IF existing.rolcreatedb OR existing.rolcreaterole OR NOT existing.rolcanlogin THEN
        ALTER ROLE deskmate_alert_sql LOGIN NOCREATEDB NOCREATEROLE;
    END IF;
    FOR granted IN
        SELECT m.roleid::regrole FROM pg_auth_members m
        WHERE m.member = 'deskmate_alert_sql'::regrole
    LOOP
        EXECUTE format('REVOKE %s FROM deskmate_alert_sql', granted);
    END LOOP;
    -- Defaults for any session of the role; the evaluator sets them again at login.
    ALTER ROLE deskmate_alert_sql SET search_path = alert_views;
    ALTER ROLE deskmate_alert_sql SET default_transaction_read_only = on;
    ALTER ROLE deskmate_alert_sql SET statement_timeout = '5s';
    ALTER ROLE deskmate_alert_sql SET idle_in_transaction_session_timeout = '10s';
    GRANT USAGE ON SCHEMA alert_views TO deskmate_alert_sql;
    GRANT SELECT ON ALL TABLES IN SCHEMA alert_views TO deskmate_alert_sql;
    PERFORM alert_sandbox.new_reader_password();
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot set up deskmate_alert_sql: custom_sql alert rules are disabled';
END
$$;

-- Only a superuser may cap the role's temporary files; elsewhere the work_mem cap and the
-- statement timeout bound what a query can spill.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deskmate_alert_sql') THEN
        ALTER ROLE deskmate_alert_sql SET temp_file_limit = '64MB';
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN NULL;
END
$$;
