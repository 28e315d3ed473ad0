-- The local web chat's channel timelines (SPEC §8): what people, deskmate and the scheduler
-- posted into web channels, so a page opened later shows a channel's recent posts. Direct
-- messages need no table of their own: the daily sessions already hold them.
CREATE TABLE webchat_posts (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel         text NOT NULL CHECK (channel ~ '^#[a-z0-9][a-z0-9_-]*$'),
    -- 'user': a person typed it; 'bot': deskmate's answer or a scheduled message / alert.
    author_kind     text NOT NULL CHECK (author_kind IN ('user', 'bot')),
    user_id         bigint REFERENCES users (id) ON DELETE SET NULL,
    content         text NOT NULL,
    -- How to show it: title, fields, sources, actions, the answer's message id for 👍/👎, and
    -- the post it replies to.
    payload         jsonb NOT NULL DEFAULT '{}',
    -- The sender's idempotency key: a retried delivery finds the post it already made.
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, channel, idempotency_key)
);
CREATE INDEX webchat_posts_recent ON webchat_posts (tenant_id, channel, id DESC);
