ALTER TABLE audit_log DROP COLUMN data_erased_at;
ALTER TABLE audit_log DROP COLUMN data_digest;
ALTER TABLE audit_log DROP COLUMN hash_version;
