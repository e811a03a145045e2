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
