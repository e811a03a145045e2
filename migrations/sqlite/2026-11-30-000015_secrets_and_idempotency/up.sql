-- Issue 12, items 8, 13 and 15.

-- What became of an idempotent request beyond its stored response:
--   NULL        reserved, nothing committed yet (a retry may take it over once stale)
--   'committed' reserved in the transaction of the request's write: its effect is
--               committed, so a retry never runs it again
--   'secret'    done; the answer carried a secret and was deliberately not stored
ALTER TABLE idempotency_keys ADD COLUMN outcome TEXT;

-- Master keys that sealed secrets, each with a value sealed under it, so that a server
-- started with the wrong key refuses to start instead of failing at every login.
CREATE TABLE sealing_keys (
    id TEXT PRIMARY KEY NOT NULL,
    check_value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
