-- When this session last proved a second factor (login, or a step-up). Sensitive
-- account changes accept a factor given in the last five minutes instead of asking
-- again; NULL (remembered-device sessions, sessions from before this column) means
-- the next sensitive change asks for one.
ALTER TABLE sessions ADD COLUMN second_factor_at TIMESTAMP;

-- Single-use tokens of step-up: the link in a change notice that undoes the change
-- (7 days), and e-mailed step-up codes. Stored hashed; taken by one conditional UPDATE.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('undo_email_change', 'undo_password_change',
        'undo_second_factor_change', 'step_up_code')),
    user_id TEXT NOT NULL REFERENCES users(id),
    -- For an e-mail change: the address the undo link restores.
    old_email TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX account_tokens_user ON account_tokens(user_id);

-- Outgoing mail, written in the transaction of the change it announces and sent by a
-- worker with retries, so no request waits for SMTP and no mail is lost on a restart.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    -- `pending`, `sent` or `failed` (gave up).
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    lease TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX mail_outbox_due ON mail_outbox(status, next_attempt_at);
