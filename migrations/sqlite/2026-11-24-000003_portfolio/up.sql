-- Append-only audit log. Each entry carries the hash of the previous one, so a changed
-- or removed row breaks the chain (`eportfolio audit verify`).
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    actor_id TEXT,
    client TEXT,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    enrolment_id TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_entity ON audit_log(entity, entity_id);

-- Learning activities (lärandeaktiviteter) a trainee logs.
CREATE TABLE activities (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT,
    placement_id TEXT REFERENCES placements(id),
    checklist_item_id TEXT,
    template_version INTEGER NOT NULL,
    reflection TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX activities_enrolment ON activities(enrolment_id, start_date);

-- Which delmål a record serves; one row per link so lists filter by delmål on an index.
CREATE TABLE record_delmal (
    record_id TEXT NOT NULL,
    code TEXT NOT NULL,
    enrolment_id TEXT NOT NULL,
    PRIMARY KEY (record_id, code)
);
CREATE INDEX record_delmal_code ON record_delmal(enrolment_id, code);

-- Uploaded documents and photos; the bytes live in the blob store under storage_key.
CREATE TABLE attachments (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    record_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    uploaded_by TEXT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX attachments_record ON attachments(record_id);
