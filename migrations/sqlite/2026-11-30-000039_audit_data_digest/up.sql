-- Audit entries of version 2 hash a digest of their data instead of the data, so the
-- data of an entry naming an erased or deleted record can be emptied (set to the JSON
-- `null`, with `data_erased_at`) while the chain still verifies. Version 1 entries
-- (all before this migration) keep hashing their data. See docs/privacy.md.
ALTER TABLE audit_log ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN data_digest TEXT;
ALTER TABLE audit_log ADD COLUMN data_erased_at TIMESTAMP;
