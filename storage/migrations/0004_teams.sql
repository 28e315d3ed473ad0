-- Microsoft Teams: where deskmate may post on its own initiative, and what it already posted.

-- Every Teams conversation the bot has seen (personal chat, group chat, channel), with the
-- Agents SDK's ConversationReference as JSON, so the scheduler and alerts can post proactively
-- from any replica, also after a restart. A channel is stored under its channel id (the part
-- before ';messageid='); its threads are addressed from there.
CREATE TABLE teams_conversations (
    id                bigserial PRIMARY KEY,
    tenant_id         bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    conversation_id   text NOT NULL,
    -- Teams' conversationType: 'personal', 'groupChat' or 'channel' (kept open for new kinds).
    conversation_type text NOT NULL,
    aad_tenant_id     text NOT NULL DEFAULT '',
    team_id           text,
    service_url       text NOT NULL,
    reference         jsonb NOT NULL,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, conversation_id)
);
-- "Any conversation of this Azure AD tenant": how a channel never seen is reached (service URL).
CREATE INDEX teams_conversations_recent ON teams_conversations (tenant_id, last_seen_at DESC);

-- What a proactive post with an idempotency key became: a retried delivery (scheduler run,
-- alert notification) finds the message it already posted instead of posting twice.
CREATE TABLE teams_deliveries (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    idempotency_key text NOT NULL,
    conversation_id text NOT NULL,
    message_id      text NOT NULL,
    thread          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idempotency_key)
);
