-- Schema v1: tenants, the directory, daily chat sessions, memories, department documents,
-- event dedupe, and the service's own measurements.
--
-- {{EMBEDDING_DIMENSION}} is replaced by the runner with the EMBEDDING_DIMENSION setting the
-- database is created with; deskmate_meta remembers it so a later start with another size is
-- refused instead of failing on the first insert.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE deskmate_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO deskmate_meta (key, value) VALUES ('embedding_dimension', '{{EMBEDDING_DIMENSION}}');

-- One organisation using deskmate. Every row below belongs to exactly one.
CREATE TABLE tenants (
    id         bigserial PRIMARY KEY,
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]*$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (slug, name) VALUES ('default', 'Default organisation');

CREATE TABLE users (
    id                bigserial PRIMARY KEY,
    tenant_id         bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email             text NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name      text NOT NULL,
    timezone          text NOT NULL DEFAULT 'UTC',
    department_access text[] NOT NULL DEFAULT '{}',
    dept_head_for     text[] NOT NULL DEFAULT '{}',
    is_super_user     boolean NOT NULL DEFAULT false,
    is_active         boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email)
);

-- A Slack user (team id + user id), a Teams user (AAD tenant + object id) or a web chat user,
-- mapped to the one directory user.
CREATE TABLE platform_identities (
    id               bigserial PRIMARY KEY,
    tenant_id        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform         text NOT NULL CHECK (platform IN ('slack', 'teams', 'web')),
    workspace_id     text NOT NULL DEFAULT '',
    platform_user_id text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, platform, workspace_id, platform_user_id)
);
CREATE INDEX platform_identities_user ON platform_identities (user_id);

-- A channel cleared for a department's documents: answers there may quote them.
CREATE TABLE channel_clearances (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform   text NOT NULL CHECK (platform IN ('slack', 'teams', 'web')),
    channel_id text NOT NULL,
    department text NOT NULL,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, platform, channel_id, department)
);

-- The same user in the same conversation on the same local day continues one session.
CREATE TABLE chat_sessions (
    id               bigserial PRIMARY KEY,
    tenant_id        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform         text NOT NULL,
    conversation_key text NOT NULL,
    scope_date       date NOT NULL,
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'ended', 'summarised')),
    started_at       timestamptz NOT NULL DEFAULT now(),
    last_message_at  timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz,
    metadata         jsonb NOT NULL DEFAULT '{}',
    UNIQUE (tenant_id, user_id, platform, conversation_key, scope_date)
);
CREATE INDEX chat_sessions_by_date ON chat_sessions (tenant_id, scope_date);

CREATE TABLE session_messages (
    id                  bigserial PRIMARY KEY,
    tenant_id           bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    session_id          bigint NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    role                text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content             text NOT NULL,
    sequence_number     integer NOT NULL CHECK (sequence_number > 0),
    metadata            jsonb NOT NULL DEFAULT '{}',
    platform_message_id text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, sequence_number)
);

CREATE TABLE memories (
    id            bigserial PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content       text NOT NULL,
    embedding     vector({{EMBEDDING_DIMENSION}}) NOT NULL,
    tags          text[] NOT NULL DEFAULT '{}',
    entities      jsonb NOT NULL DEFAULT '[]',
    importance    real NOT NULL DEFAULT 0.5 CHECK (importance BETWEEN 0 AND 1),
    source_type   text NOT NULL DEFAULT 'explicit'
                  CHECK (source_type IN ('explicit', 'extracted', 'episode', 'imported')),
    source_ref    jsonb NOT NULL DEFAULT '{}',
    is_active     boolean NOT NULL DEFAULT true,
    access_count  integer NOT NULL DEFAULT 0,
    last_accessed timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX memories_by_user ON memories (tenant_id, user_id) WHERE is_active;
CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops);

CREATE TABLE documents (
    id                bigserial PRIMARY KEY,
    tenant_id         bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    department        text NOT NULL,
    department_access text[] NOT NULL DEFAULT '{}',
    source_path       text NOT NULL,
    title             text NOT NULL,
    content_hash      text,
    mime_type         text,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
    error             text,
    is_active         boolean NOT NULL DEFAULT true,
    created_by        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, department, source_path)
);

-- department and department_access are copied from the document so the access rule can be
-- checked on the chunk row itself, inside the retrieval query.
CREATE TABLE document_chunks (
    id                bigserial PRIMARY KEY,
    tenant_id         bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    document_id       bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    department        text NOT NULL,
    department_access text[] NOT NULL DEFAULT '{}',
    section_title     text,
    chunk_index       integer NOT NULL,
    content           text NOT NULL,
    token_count       integer NOT NULL,
    embedding         vector({{EMBEDDING_DIMENSION}}) NOT NULL,
    search_vector     tsvector GENERATED ALWAYS AS (
                          to_tsvector('english', coalesce(section_title, '') || ' ' || content)
                      ) STORED,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, chunk_index)
);
CREATE INDEX document_chunks_search ON document_chunks USING gin (search_vector);
CREATE INDEX document_chunks_embedding ON document_chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX document_chunks_department ON document_chunks (tenant_id, department);

-- Platform deliveries seen, so a retried event is answered once.
CREATE TABLE processed_events (
    platform    text NOT NULL,
    event_id    text NOT NULL,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    status      text NOT NULL DEFAULT 'processing' CHECK (status IN ('processing', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 1,
    received_at timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, event_id)
);

CREATE TABLE query_log (
    id               bigserial PRIMARY KEY,
    tenant_id        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id          bigint REFERENCES users (id) ON DELETE SET NULL,
    session_id       bigint REFERENCES chat_sessions (id) ON DELETE SET NULL,
    platform         text NOT NULL,
    channel_id       text,
    in_channel       boolean NOT NULL DEFAULT false,
    query_text       text NOT NULL,
    answer_status    text NOT NULL
                     CHECK (answer_status IN ('answered', 'offline', 'no_context', 'error', 'command')),
    grounded         boolean NOT NULL DEFAULT false,
    chunk_ids        bigint[] NOT NULL DEFAULT '{}',
    memory_ids       bigint[] NOT NULL DEFAULT '{}',
    response_time_ms integer,
    reference_id     text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_log_by_time ON query_log (tenant_id, created_at);

CREATE TABLE llm_call_metrics (
    id                     bigserial PRIMARY KEY,
    tenant_id              bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    query_id               bigint REFERENCES query_log (id) ON DELETE SET NULL,
    purpose                text NOT NULL,
    model                  text NOT NULL,
    status                 text NOT NULL CHECK (status IN ('ok', 'error')),
    error_type             text,
    attempts               integer NOT NULL DEFAULT 1,
    input_tokens           integer NOT NULL DEFAULT 0,
    output_tokens          integer NOT NULL DEFAULT 0,
    cache_read_tokens      integer NOT NULL DEFAULT 0,
    cache_write_tokens     integer NOT NULL DEFAULT 0,
    latency_ms             integer,
    time_to_first_token_ms integer,
    cost_usd               numeric(12, 6) NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_call_metrics_by_time ON llm_call_metrics (tenant_id, created_at);

CREATE TABLE rag_metrics (
    id                bigserial PRIMARY KEY,
    tenant_id         bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    query_id          bigint REFERENCES query_log (id) ON DELETE CASCADE,
    embed_ms          real,
    memory_search_ms  real,
    chunk_search_ms   real,
    memories_found    integer NOT NULL DEFAULT 0,
    chunks_found      integer NOT NULL DEFAULT 0,
    top_memory_score  real,
    top_chunk_score   real,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rag_metrics_by_time ON rag_metrics (tenant_id, created_at);

-- Background work (scheduler ticks, digests, nightly episodes). tenant_id is NULL for a job
-- that works across every tenant.
CREATE TABLE job_runs (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint REFERENCES tenants (id) ON DELETE CASCADE,
    job         text NOT NULL,
    replica     text,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    error       text,
    details     jsonb NOT NULL DEFAULT '{}',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX job_runs_by_job ON job_runs (job, started_at);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text,
    before      jsonb,
    after       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_by_time ON audit_log (tenant_id, created_at);
