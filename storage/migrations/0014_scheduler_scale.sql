-- The scheduler across many replicas: per-channel pacing held in the database, a claim row for
-- once-a-day maintenance, and the indexes retention deletes by.

-- When each channel may next receive a post. Slack allows about one message per second per
-- channel: a run is claimed only when its channel is open, and the claim moves the channel's
-- next allowed moment forward in the same statement (storage/schedules.py), so N replicas
-- together keep the platform's pace instead of N times it.
CREATE TABLE channel_pacing (
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform        text NOT NULL,
    channel         text NOT NULL,
    next_allowed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, platform, channel)
);

-- Work that one replica does per slot (the daily retention): the first replica to insert the
-- (job, slot) row does it, the others find the row taken.
CREATE TABLE job_claims (
    job        text NOT NULL,
    slot       timestamptz NOT NULL,
    claimed_by text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, slot)
);

-- Retention (storage/retention.py) finds old rows by these, a batch at a time. The measurement
-- tables are found through their (tenant_id, created_at) indexes.
CREATE INDEX scheduled_runs_finished ON scheduled_runs (slot) WHERE status IN ('sent', 'failed');
CREATE INDEX alert_evaluations_by_slot ON alert_evaluations (slot);
CREATE INDEX processed_events_by_time ON processed_events (received_at);
CREATE INDEX job_runs_by_time ON job_runs (started_at);
CREATE INDEX teams_deliveries_by_time ON teams_deliveries (created_at);
-- Deleting a query_log row sets or cascades the query_id of its measurements: without these,
-- each deleted row would scan the whole of llm_call_metrics and rag_metrics.
CREATE INDEX llm_call_metrics_by_query ON llm_call_metrics (query_id) WHERE query_id IS NOT NULL;
CREATE INDEX rag_metrics_by_query ON rag_metrics (query_id) WHERE query_id IS NOT NULL;
