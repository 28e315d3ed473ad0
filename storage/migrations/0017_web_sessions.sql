-- Signed-in people of the web surface (SPEC §9): off loopback the web chat and the admin console
-- act as the person who signed in with Slack or Microsoft Entra ID (OpenID Connect).

-- One row per browser that is signed in. The cookie holds a random id; only its SHA-256 is kept
-- here, so a copy of this table lets nobody in. Deleting the row signs the browser out.
CREATE TABLE web_sessions (
    id_hash     bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Which provider vouched for the person: 'slack' or 'entra'.
    provider    text NOT NULL,
    -- Every state-changing request of this session must carry it (X-CSRF-Token): a page of
    -- another site can make the browser send the cookie, never read this token.
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX web_sessions_of_user ON web_sessions (tenant_id, user_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- A sign-in on its way through the provider: what the callback must find again (state, nonce,
-- the PKCE verifier). Keyed by the hash of a cookie set on the browser that started it, so a
-- callback link made for another browser signs nobody in; taken (deleted) on first use.
CREATE TABLE web_signin_attempts (
    browser_hash  bytea PRIMARY KEY CHECK (octet_length(browser_hash) = 32),
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider      text NOT NULL,
    state         text NOT NULL,
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    -- Where to go once signed in (a path of this site).
    next_path     text NOT NULL DEFAULT '/',
    expires_at    timestamptz NOT NULL
);
CREATE INDEX web_signin_attempts_expiry ON web_signin_attempts (expires_at);
