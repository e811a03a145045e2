-- When this session last proved a second factor (login, or a step-up). Sensitive
-- account changes accept a factor given in the last five minutes instead of asking
-- again; NULL (remembered-device sessions, sessions from before this column) means
-- the next sensitive change asks for one.
ALTER TABLE sessions ADD COLUMN second_factor_at TIMESTAMP;

-- For an undo link sent on an e-mail change: the address to restore.
ALTER TABLE mail_tokens ADD COLUMN old_email TEXT;

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
