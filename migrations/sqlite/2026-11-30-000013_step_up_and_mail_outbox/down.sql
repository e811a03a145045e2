DROP INDEX mail_outbox_due;
DROP TABLE mail_outbox;
ALTER TABLE mail_tokens DROP COLUMN old_email;
ALTER TABLE sessions DROP COLUMN second_factor_at;
