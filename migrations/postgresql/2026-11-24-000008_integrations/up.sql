-- Integrations with learning platforms (issue 6): API clients with the OAuth 2.0
-- client-credentials grant, xAPI ingestion, webhooks with a durable outbox.

CREATE TABLE api_clients (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    -- Space-separated OAuth scopes the client may ask for.
    scopes TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    secret_rotated_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    created_by TEXT REFERENCES users(id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX api_clients_org ON api_clients(organisation_id);

CREATE TABLE api_client_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES api_clients(id),
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX api_client_tokens_client ON api_client_tokens(client_id);

CREATE TABLE xapi_activity_mappings (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    activity_iri TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    -- JSON array of delmål codes.
    delmal TEXT NOT NULL,
    created_by TEXT REFERENCES users(id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (organisation_id, activity_iri)
);

CREATE TABLE xapi_account_links (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    home_page TEXT NOT NULL,
    name TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_by TEXT REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    UNIQUE (organisation_id, home_page, name)
);

CREATE TABLE xapi_statements (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES api_clients(id),
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    content_hash TEXT NOT NULL,
    statement TEXT NOT NULL,
    -- `created` or `unmatched`.
    status TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    verb TEXT NOT NULL,
    activity_iri TEXT NOT NULL,
    learner TEXT NOT NULL,
    user_id TEXT REFERENCES users(id),
    enrolment_id TEXT REFERENCES enrolments(id),
    activity_id TEXT REFERENCES activities(id),
    received_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    version INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX xapi_statements_org_status ON xapi_statements(organisation_id, status);

CREATE TABLE webhook_subscriptions (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    url TEXT NOT NULL,
    -- JSON array of event names; "*" for all.
    events TEXT NOT NULL,
    description TEXT NOT NULL,
    -- HMAC key; needed in clear to sign. Shown to the subscriber once.
    secret TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_by TEXT REFERENCES users(id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX webhook_subscriptions_org ON webhook_subscriptions(organisation_id);

-- The outbox: written in the same transaction as the change it announces.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions(id),
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    -- `pending`, `delivered` or `failed` (gave up).
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    locked_until TIMESTAMP,
    lease TEXT,
    last_status_code INTEGER,
    last_error TEXT,
    give_up_at TIMESTAMP NOT NULL,
    replay_of TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries(subscription_id, created_at);

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id),
    attempt INTEGER NOT NULL,
    at TIMESTAMP NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);
