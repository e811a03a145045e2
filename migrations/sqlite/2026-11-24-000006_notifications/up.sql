-- Users choose immediate mails or one daily digest for portfolio notifications
-- (sign-in codes and links are always sent at once).
ALTER TABLE users ADD COLUMN notification_mode TEXT NOT NULL DEFAULT 'immediate';
ALTER TABLE users ADD COLUMN last_digest_at TIMESTAMP;

CREATE TABLE notification_queue (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX notification_queue_pending ON notification_queue(user_id, sent_at);

-- A region's own version of an assessment form; the shipped catalogue is the default.
CREATE TABLE assessment_forms (
    id TEXT PRIMARY KEY NOT NULL,
    instrument TEXT NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    definition TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_by TEXT REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    UNIQUE (instrument, organisation_id, version)
);
