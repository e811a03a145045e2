DROP TABLE sealing_keys;
ALTER TABLE idempotency_keys DROP COLUMN outcome;
