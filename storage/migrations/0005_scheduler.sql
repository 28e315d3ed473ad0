-- Scheduled messages (SPEC §5): what to post where and when, and one row per delivery slot.
--
-- PostgreSQL is the scheduler's source of truth: every replica's tick turns due schedules into
-- `scheduled_runs` rows (UNIQUE (schedule_id, slot) makes that idempotent), and every replica's
-- worker claims runs with FOR UPDATE SKIP LOCKED and a lease taken from the database clock.

CREATE TABLE scheduled_messages (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform    text NOT NULL CHECK (platform IN ('slack', 'teams', 'web')),
    channel     text NOT NULL CHECK (channel <> ''),
    thread      text,
    kind        text NOT NULL CHECK (kind IN ('text', 'prompt', 'digest')),
    -- text: {"text": …}; prompt: {"prompt": …}; digest: {"scope": "department"|"channel",
    -- "name": …}
    payload     jsonb NOT NULL,
    run_at      timestamptz,
    cron        text,
    timezone    text NOT NULL DEFAULT 'UTC',
    -- 'deleted' keeps the row (and its runs, which the delivery_failures metric counts).
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'paused', 'completed', 'failed', 'deleted')),
    -- The next slot the tick will materialise; NULL once a one-off's slot is materialised.
    next_run_at timestamptz,
    last_error  text,
    -- Email of the person the schedule acts as (prompts are answered with their access), or
    -- the admin actor that created it.
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((run_at IS NULL) <> (cron IS NULL))
);
CREATE INDEX scheduled_messages_due ON scheduled_messages (next_run_at) WHERE status = 'active';
CREATE INDEX scheduled_messages_by_tenant ON scheduled_messages (tenant_id, id);

CREATE TABLE scheduled_runs (
    id                  bigserial PRIMARY KEY,
    tenant_id           bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    schedule_id         bigint NOT NULL REFERENCES scheduled_messages (id) ON DELETE CASCADE,
    slot                timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'claimed', 'sent', 'failed')),
    -- Claims so far; the claim that takes attempt n must present n when it finishes (a fencing
    -- token), so a replica whose lease expired cannot overwrite the one that took over.
    attempts            integer NOT NULL DEFAULT 0,
    -- `run-now` runs: sent even while the schedule is paused, never complete a one-off.
    manual              boolean NOT NULL DEFAULT false,
    -- Not claimable before this instant: now for a new run, the backoff for a retry, and the
    -- lease's end for a claimed run (so one index range finds both due and abandoned runs).
    available_at        timestamptz NOT NULL DEFAULT now(),
    claimed_by          text,
    lease_until         timestamptz,
    -- The message as first built (prompt answers, digests), so a retry posts the same text.
    content             jsonb,
    platform_message_id text,
    error               text,
    sent_at             timestamptz,
    failed_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (schedule_id, slot)
);
CREATE INDEX scheduled_runs_open ON scheduled_runs (available_at, id)
    WHERE status IN ('pending', 'claimed');
-- The `delivery_failures` alert metric counts failed runs per tenant over a window.
CREATE INDEX scheduled_runs_failures ON scheduled_runs (tenant_id, failed_at)
    WHERE status = 'failed';
CREATE INDEX scheduled_runs_by_schedule ON scheduled_runs (schedule_id, slot DESC);

-- Nightly episodes: at most one episode memory per chat session, whatever replicas do.
CREATE UNIQUE INDEX memories_one_episode_per_session
    ON memories (tenant_id, (source_ref ->> 'session_id'))
    WHERE source_type = 'episode';
