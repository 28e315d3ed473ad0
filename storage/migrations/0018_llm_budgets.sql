-- Monthly LLM budgets (issue 13): a limit in tokens and/or US dollars per tenant, and per person.
-- The spending is checked before every answer, so it is kept as a monthly aggregate that every
-- `llm_call_metrics` row adds to, instead of summing a month of calls each time.

-- The defaults of the service's settings (LLM_MONTHLY_BUDGET_*, LLM_USER_MONTHLY_BUDGET_*),
-- written by the service (bot/budgets.py): alert rules measure budgets in SQL and must see them.
CREATE TABLE llm_budget_defaults (
    only_one      boolean PRIMARY KEY DEFAULT true CHECK (only_one),
    tenant_usd    numeric(14, 2) CHECK (tenant_usd > 0),
    tenant_tokens bigint CHECK (tenant_tokens > 0),
    user_usd      numeric(14, 2) CHECK (user_usd > 0),
    user_tokens   bigint CHECK (user_tokens > 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- An organisation's own budget (user_id NULL) or one person's, set with `deskmate budget set`.
-- It replaces the default of its scope entirely: a limit left NULL is no limit of that kind.
CREATE TABLE llm_budgets (
    id             bigserial PRIMARY KEY,
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id        bigint REFERENCES users (id) ON DELETE CASCADE,
    monthly_usd    numeric(14, 2) CHECK (monthly_usd > 0),
    monthly_tokens bigint CHECK (monthly_tokens > 0),
    updated_by     text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX llm_budgets_scope ON llm_budgets (tenant_id, (coalesce(user_id, 0)));

-- What a month cost: user_id 0 is the whole organisation (every call), any other id the calls
-- made to answer that person (those with a query_log row). Months are calendar months in UTC.
CREATE TABLE llm_monthly_spend (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    month     date NOT NULL,
    user_id   bigint NOT NULL DEFAULT 0,
    tokens    bigint NOT NULL DEFAULT 0,
    cost_usd  numeric(16, 6) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, month, user_id)
);

CREATE FUNCTION llm_spend_month(at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('month', at AT TIME ZONE 'UTC')::date
$$;

-- An AFTER trigger: the answer path writes its query_log row in the same statement as the call
-- (storage/turns.py), and only after that statement is the asker's row visible to look up.
CREATE FUNCTION llm_spend_add() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    asker bigint;
    spent bigint := NEW.input_tokens + NEW.output_tokens + NEW.cache_read_tokens
                    + NEW.cache_write_tokens;
BEGIN
    IF NEW.query_id IS NOT NULL THEN
        SELECT q.user_id INTO asker FROM query_log q WHERE q.id = NEW.query_id;
    END IF;
    INSERT INTO llm_monthly_spend AS s (tenant_id, month, user_id, tokens, cost_usd)
    SELECT NEW.tenant_id, llm_spend_month(NEW.created_at), scope, spent, NEW.cost_usd
    FROM unnest(ARRAY[0, asker]) AS scope
    WHERE scope IS NOT NULL
    ON CONFLICT (tenant_id, month, user_id) DO UPDATE
    SET tokens = s.tokens + excluded.tokens, cost_usd = s.cost_usd + excluded.cost_usd;
    RETURN NULL;
END
$$;

CREATE TRIGGER llm_spend_add AFTER INSERT ON llm_call_metrics
    FOR EACH ROW EXECUTE FUNCTION llm_spend_add();

INSERT INTO llm_monthly_spend (tenant_id, month, user_id, tokens, cost_usd)
SELECT c.tenant_id, llm_spend_month(c.created_at), scope.user_id,
       sum(c.input_tokens + c.output_tokens + c.cache_read_tokens + c.cache_write_tokens),
       sum(c.cost_usd)
FROM llm_call_metrics c
LEFT JOIN query_log q ON q.id = c.query_id
CROSS JOIN LATERAL (VALUES (0::bigint), (q.user_id)) AS scope (user_id)
WHERE scope.user_id IS NOT NULL
GROUP BY 1, 2, 3;

-- Which limits a budget has: the override of its scope when there is one (NULL: no limit of
-- that kind), else the default of its kind. The view and the function below both apply it.
--
-- The view: every budget that spent anything in a month, and the share of it used (the larger
-- of its two limits; NULL without any). Joins only, no function: the alert sandbox reads it
-- through a view of its own, with the owner's rights on the tables behind.
CREATE VIEW llm_budget_usage AS
    SELECT s.tenant_id, s.month, s.user_id, s.tokens, s.cost_usd, l.limit_tokens, l.limit_usd,
           greatest(s.tokens::float8 / l.limit_tokens,
                    (s.cost_usd / l.limit_usd)::float8) AS used_ratio
    FROM llm_monthly_spend s
    LEFT JOIN llm_budgets b ON b.tenant_id = s.tenant_id AND coalesce(b.user_id, 0) = s.user_id
    LEFT JOIN llm_budget_defaults d ON true
    CROSS JOIN LATERAL (
        SELECT CASE WHEN b.id IS NOT NULL THEN b.monthly_tokens
                    WHEN s.user_id = 0 THEN d.tenant_tokens ELSE d.user_tokens END,
               CASE WHEN b.id IS NOT NULL THEN b.monthly_usd
                    WHEN s.user_id = 0 THEN d.tenant_usd ELSE d.user_usd END
    ) AS l (limit_tokens, limit_usd);

-- For the answer path and the console: the organisation's budget (user_id 0) and either one
-- person's (p_user) or every person's who spent anything in the month, spent or not.
CREATE FUNCTION llm_budget_spending(p_tenant bigint, p_month date, p_user bigint DEFAULT NULL)
RETURNS TABLE (user_id bigint, tokens bigint, cost_usd numeric, limit_tokens bigint,
               limit_usd numeric)
LANGUAGE sql STABLE AS $$
    WITH scopes AS (
        SELECT 0::bigint AS user_id
        UNION
        SELECT p_user WHERE p_user IS NOT NULL
        UNION
        SELECT s.user_id FROM llm_monthly_spend s
        WHERE p_user IS NULL AND s.tenant_id = p_tenant AND s.month = p_month
    )
    SELECT sc.user_id, coalesce(s.tokens, 0), coalesce(s.cost_usd, 0),
           CASE WHEN b.id IS NOT NULL THEN b.monthly_tokens
                WHEN sc.user_id = 0 THEN d.tenant_tokens ELSE d.user_tokens END,
           CASE WHEN b.id IS NOT NULL THEN b.monthly_usd
                WHEN sc.user_id = 0 THEN d.tenant_usd ELSE d.user_usd END
    FROM scopes sc
    LEFT JOIN llm_monthly_spend s
           ON s.tenant_id = p_tenant AND s.month = p_month AND s.user_id = sc.user_id
    LEFT JOIN llm_budgets b ON b.tenant_id = p_tenant AND coalesce(b.user_id, 0) = sc.user_id
    LEFT JOIN llm_budget_defaults d ON true
$$;

-- Custom alert rules may read the budgets too (storage/alert_sql.py lists the view).
CREATE VIEW alert_views.llm_budget_usage WITH (security_barrier) AS
    SELECT tenant_id, month, user_id, tokens, cost_usd, limit_tokens, limit_usd, used_ratio
    FROM public.llm_budget_usage
    WHERE tenant_id = (SELECT id FROM alert_views.tenant);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deskmate_alert_sql') THEN
        GRANT SELECT ON alert_views.llm_budget_usage TO deskmate_alert_sql;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot grant deskmate_alert_sql the view llm_budget_usage';
END
$$;

ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_metric_type_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_metric_type_check CHECK (metric_type IN (
    'llm_error_rate', 'llm_latency_p95_ms', 'response_time_p95_ms', 'llm_cost_usd',
    'query_volume', 'no_answer_rate', 'negative_feedback_rate', 'delivery_failures',
    'llm_budget_used_ratio', 'custom_sql'));
