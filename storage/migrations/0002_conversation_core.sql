-- The conversation core: gap-free message numbering, answer feedback, and row-level security
-- as the second wall around documents and memories.

-- Appending a message bumps this counter in the same statement, so concurrent appends to one
-- session serialise on the session row and sequence numbers stay unique and gap-free.
ALTER TABLE chat_sessions ADD COLUMN message_count integer NOT NULL DEFAULT 0;

CREATE INDEX session_messages_by_session ON session_messages (session_id, sequence_number);
CREATE INDEX memories_by_user_recent ON memories (tenant_id, user_id, updated_at DESC);

-- 👍 / 👎 on an answer (the assistant message), one vote per user and message.
CREATE TABLE answer_feedback (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    message_id  bigint NOT NULL REFERENCES session_messages (id) ON DELETE CASCADE,
    user_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    rating      smallint NOT NULL CHECK (rating IN (-1, 1)),
    comment     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, user_id)
);
CREATE INDEX answer_feedback_by_time ON answer_feedback (tenant_id, created_at);

-- Retrieval runs as deskmate_reader (SET LOCAL ROLE) with the reader's rights in settings:
--   deskmate.tenant_id, deskmate.user_id, deskmate.super_user ('on'/'off'),
--   deskmate.user_departments, deskmate.in_channel ('on'/'off') and
--   deskmate.channel_departments (comma-separated). An unset setting admits nothing.
-- Roles are cluster-wide and creating one needs CREATEROLE: without it the migration carries on
-- and retrieval relies on its own SQL filter alone (logged at start-up).
DO $$
BEGIN
    CREATE ROLE deskmate_reader NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot create role deskmate_reader: row-level security is not enforced';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deskmate_reader') THEN
        EXECUTE format('GRANT deskmate_reader TO %I', current_user);
        GRANT USAGE ON SCHEMA public TO deskmate_reader;
        GRANT SELECT ON document_chunks, documents, memories, users, channel_clearances
            TO deskmate_reader;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot grant deskmate_reader: row-level security is not enforced';
END
$$;

CREATE FUNCTION deskmate_setting_list(name text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_to_array(nullif(current_setting(name, true), ''), ','), '{}')
$$;

ALTER TABLE document_chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY chunks_readable ON document_chunks FOR SELECT USING (
    tenant_id = nullif(current_setting('deskmate.tenant_id', true), '')::bigint
    AND (
        current_setting('deskmate.super_user', true) = 'on'
        OR department = ANY (deskmate_setting_list('deskmate.user_departments'))
        OR department_access && deskmate_setting_list('deskmate.user_departments')
    )
    AND (
        current_setting('deskmate.in_channel', true) = 'off'
        OR (
            current_setting('deskmate.in_channel', true) = 'on'
            AND (
                department = ANY (deskmate_setting_list('deskmate.channel_departments'))
                OR department_access && deskmate_setting_list('deskmate.channel_departments')
            )
        )
    )
);

ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
CREATE POLICY memories_of_reader ON memories FOR SELECT USING (
    tenant_id = nullif(current_setting('deskmate.tenant_id', true), '')::bigint
    AND user_id = nullif(current_setting('deskmate.user_id', true), '')::bigint
);
