-- Slack workspaces installed through the OAuth flow (multi-workspace mode), one tenant each,
-- and the short-lived OAuth `state` values that protect the flow from forged callbacks.

CREATE TABLE slack_installations (
    id                    bigserial PRIMARY KEY,
    tenant_id             bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    enterprise_id         text NOT NULL DEFAULT '',
    team_id               text NOT NULL DEFAULT '',
    installer_user_id     text,
    is_enterprise_install boolean NOT NULL DEFAULT false,
    bot_user_id           text,
    -- Everything Slack returned, as slack_sdk's Installation serialises it (tokens included):
    -- protect this table like a secret store.
    installation          jsonb NOT NULL,
    installed_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise_id, team_id)
);

-- Issued before a workspace has a tenant: not an organisation's row.
CREATE TABLE slack_oauth_states (
    state      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
