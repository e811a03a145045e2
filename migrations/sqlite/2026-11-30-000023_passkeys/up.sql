-- Passkeys (WebAuthn, issue 15): several per user, each a second factor at login and a
-- passwordless sign-in. `credential` is webauthn-rs's `Passkey` as JSON (credential id,
-- public key, counter): public data, so not sealed like the TOTP secrets. `sign_count`
-- repeats the counter so a cloned authenticator can be seen in SQL and the audit.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    -- base64url, as the authenticator sends it in `rawId`: one account per credential.
    credential_id TEXT NOT NULL UNIQUE,
    credential TEXT NOT NULL,
    sign_count BIGINT NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    -- Revoked passkeys stay for the audit trail; they never sign in again.
    revoked_at TIMESTAMP
);
CREATE INDEX passkeys_user_id ON passkeys(user_id);

-- A WebAuthn ceremony's server-side state (the challenge, what may answer it), shared by
-- every API node through the database. Single use: the answer deletes the row in one
-- conditional statement. Short-lived: `expires_at`.
CREATE TABLE passkey_ceremonies (
    id TEXT PRIMARY KEY NOT NULL,
    -- register, second_factor, sign_in
    purpose TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    -- For a second factor: the sign-in challenge (mfa_challenges.id) it answers.
    challenge_id TEXT,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX passkey_ceremonies_expires_at ON passkey_ceremonies(expires_at);
