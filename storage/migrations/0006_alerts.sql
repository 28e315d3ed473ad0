-- Alert rules over the service's own metrics (SPEC §6): rules, one instance per firing episode,
-- and one evaluation row per rule and interval.

CREATE TABLE alert_rules (
    id                          bigserial PRIMARY KEY,
    tenant_id                   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                        text NOT NULL CHECK (name <> ''),
    description                 text,
    metric_type                 text NOT NULL CHECK (metric_type IN (
                                    'llm_error_rate', 'llm_latency_p95_ms', 'response_time_p95_ms',
                                    'llm_cost_usd', 'query_volume', 'no_answer_rate',
                                    'negative_feedback_rate', 'delivery_failures', 'custom_sql')),
    condition                   text NOT NULL CHECK (condition IN ('gt', 'gte', 'lt', 'lte', 'eq', 'ne')),
    threshold                   double precision NOT NULL,
    window_minutes              integer NOT NULL DEFAULT 15 CHECK (window_minutes > 0),
    evaluation_interval_seconds integer NOT NULL DEFAULT 60 CHECK (evaluation_interval_seconds >= 10),
    for_minutes                 integer NOT NULL DEFAULT 0 CHECK (for_minutes >= 0),
    custom_sql                  text,
    severity                    text NOT NULL DEFAULT 'warning'
                                CHECK (severity IN ('info', 'warning', 'critical')),
    notification_channels       jsonb NOT NULL DEFAULT '[]',
    cooldown_minutes            integer NOT NULL DEFAULT 60 CHECK (cooldown_minutes > 0),
    enabled                     boolean NOT NULL DEFAULT true,
    -- Where the rule stands between evaluations: ok → pending → firing (→ ok when resolved).
    state                       text NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'pending', 'firing')),
    pending_since               timestamptz,
    next_evaluation_at          timestamptz NOT NULL DEFAULT now(),
    last_evaluated_at           timestamptz,
    last_value                  double precision,
    last_triggered_at           timestamptz,
    -- An evaluation error is reported once per episode of errors, not at every interval.
    last_error                  text,
    error_reported_at           timestamptz,
    created_by                  text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    CHECK ((metric_type = 'custom_sql') = (custom_sql IS NOT NULL))
);
CREATE INDEX alert_rules_due ON alert_rules (next_evaluation_at) WHERE enabled;

CREATE TABLE alert_instances (
    id                 bigserial PRIMARY KEY,
    tenant_id          bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rule_id            bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    state              text NOT NULL DEFAULT 'firing' CHECK (state IN ('firing', 'resolved')),
    started_at         timestamptz NOT NULL,
    resolved_at        timestamptz,
    metric_value       double precision,
    threshold          double precision NOT NULL,
    message            text NOT NULL,
    context            jsonb NOT NULL DEFAULT '{}',
    -- [{"target": "slack:C1", "message_id": "…", "thread": "…", "kind": "firing", "at": "…"}]
    notifications_sent jsonb NOT NULL DEFAULT '[]',
    last_notified_at   timestamptz,
    acknowledged_by    text,
    acknowledged_at    timestamptz
);
-- One open episode per rule, whatever replicas do.
CREATE UNIQUE INDEX alert_instances_one_open ON alert_instances (rule_id) WHERE state = 'firing';
CREATE INDEX alert_instances_by_time ON alert_instances (tenant_id, started_at);

-- Every evaluation, keyed by the interval it belongs to: the proof that each rule is evaluated
-- once per interval across replicas, and the history `alerts history` shows.
CREATE TABLE alert_evaluations (
    id           bigserial PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rule_id      bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    slot         timestamptz NOT NULL,
    evaluated_at timestamptz NOT NULL,
    value        double precision,
    outcome      text NOT NULL CHECK (outcome IN ('ok', 'pending', 'firing', 'resolved', 'no_data', 'error')),
    error        text,
    replica      text,
    UNIQUE (rule_id, slot)
);

-- custom_sql rules run as this role: it can read the service's measurements of its own tenant
-- and nothing else, and the transaction is READ ONLY with a statement timeout as well.
DO $$
BEGIN
    CREATE ROLE deskmate_alert_reader NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot create role deskmate_alert_reader: custom_sql alert rules are disabled';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deskmate_alert_reader') THEN
        EXECUTE format('GRANT deskmate_alert_reader TO %I', current_user);
        GRANT USAGE ON SCHEMA public TO deskmate_alert_reader;
        GRANT SELECT ON query_log, llm_call_metrics, rag_metrics, answer_feedback, scheduled_runs
            TO deskmate_alert_reader;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot grant deskmate_alert_reader: custom_sql alert rules are disabled';
END
$$;

ALTER TABLE query_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_call_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE rag_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE answer_feedback ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduled_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON query_log FOR SELECT
    USING (tenant_id = nullif(current_setting('deskmate.tenant_id', true), '')::bigint);
CREATE POLICY own_tenant ON llm_call_metrics FOR SELECT
    USING (tenant_id = nullif(current_setting('deskmate.tenant_id', true), '')::bigint);
CREATE POLICY own_tenant ON rag_metrics FOR SELECT
    USING (tenant_id = nullif(current_setting('deskmate.tenant_id', true), '')::bigint);
CREATE POLICY own_tenant ON answer_feedback FOR SELECT
    USING (tenant_id = nullif(current_setting('deskmate.tenant_id', true), '')::bigint);
CREATE POLICY own_tenant ON scheduled_runs FOR SELECT
    USING (tenant_id = nullif(current_setting('deskmate.tenant_id', true), '')::bigint);
