-- One random key per record whose free text the audit log records only as keyed digests
-- (HMAC-SHA-256, `src/audit/text.rs`). The key is deleted when the record is erased or
-- its enrolment's retention period ends, and with it any way to test a guessed text
-- against the digests left in the chain. See docs/privacy.md.
CREATE TABLE audit_text_keys (
    record_id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT,
    key_hex TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_text_keys_enrolment ON audit_text_keys (enrolment_id);
