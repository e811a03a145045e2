-- Sign-in with a region's e-ID broker over OpenID Connect (issue 15).

-- One sign-in or link attempt between its start and the provider's answer: single use
-- (`used_at` is set by one conditional UPDATE), short-lived. The `state` the browser
-- carries is stored only as its SHA-256, so a reader of the database cannot answer for
-- someone's attempt. The PKCE verifier is kept as is: it is worth nothing without the
-- authorization code, which only the person's browser receives, and the row lives
-- minutes.
CREATE TABLE oidc_flows (
    state_hash TEXT PRIMARY KEY NOT NULL,
    -- sign_in or link
    purpose TEXT NOT NULL,
    -- For a link: whose account, and the session that stepped up to start it.
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT,
    issuer TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX oidc_flows_expires_at ON oidc_flows(expires_at);

-- An account's link to an e-ID: by the provider's (issuer, subject), never by e-mail.
-- One account per e-ID, and one e-ID per account and provider.
CREATE TABLE oidc_links (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    UNIQUE (issuer, subject),
    UNIQUE (user_id, issuer)
);
