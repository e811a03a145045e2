DROP TABLE assessment_forms;
DROP TABLE notification_queue;
ALTER TABLE users DROP COLUMN last_digest_at;
ALTER TABLE users DROP COLUMN notification_mode;
