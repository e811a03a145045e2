-- Issue 12, items 8, 13 and 15.

-- What became of an idempotent request beyond its stored response:
--   NULL        reserved, nothing committed yet (a retry may take it over once stale)
--   'committed' reserved in the transaction of the request's write: its effect is
--               committed, so a retry never runs it again
--   'secret'    done; the answer carried a secret and was deliberately not stored
ALTER TABLE idempotency_keys ADD COLUMN outcome TEXT;

-- Answers stored before this change that carried a secret (recovery codes, client and
-- webhook secrets, TOTP secrets, tokens) are forgotten; their keys stay, as done.
UPDATE idempotency_keys
SET outcome = 'secret', status_code = NULL, content_type = NULL, etag = NULL,
    response_body = NULL
WHERE response_body LIKE '%"recovery_codes":%'
   OR response_body LIKE '%"client_secret":%'
   OR response_body LIKE '%"secret":%'
   OR response_body LIKE '%"access_token":%'
   OR response_body LIKE '%"refresh_token":%'
   OR response_body LIKE '%"mfa_token":%';

-- Master keys that sealed secrets, each with a value sealed under it, so that a server
-- started with the wrong key refuses to start instead of failing at every login.
CREATE TABLE sealing_keys (
    id TEXT PRIMARY KEY NOT NULL,
    check_value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
