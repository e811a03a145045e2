DROP INDEX mail_outbox_due;
DROP TABLE mail_outbox;
DROP INDEX account_tokens_user;
DROP TABLE account_tokens;
ALTER TABLE sessions DROP COLUMN second_factor_at;
