-- Transfer of a portfolio between services (issue 17, docs/transfer.md). The same SQL on
-- both backends.

-- Services whose transfer bundles a region accepts: their name and address as the
-- administrator recorded them, and the Ed25519 keys they publish at /dossier-keys
-- (JSON array of {"key_id", "public_key"} with the raw key in base64). A bundle is
-- trusted when its key is one of these, for the region of the receiving template or a
-- region above it.
CREATE TABLE trusted_services (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    public_keys TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX trusted_services_organisation ON trusted_services (organisation_id);

-- One row per imported bundle. The digest (SHA-256 of the bundle's canonical content)
-- is unique: a second import of the same bundle, also one sent at the same moment on
-- another node, fails on this index (409).
CREATE TABLE transfer_imports (
    id TEXT PRIMARY KEY NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    bundle_id TEXT NOT NULL,
    trusted_service_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    sending_service_id TEXT NOT NULL,
    sending_base_url TEXT NOT NULL,
    key_id TEXT NOT NULL,
    source_enrolment_id TEXT NOT NULL,
    -- No foreign key: the row is written first, before the enrolment, so that a second
    -- import of the same bundle waits on the unique digest as early as possible.
    enrolment_id TEXT NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at TIMESTAMP NOT NULL,
    unmapped_delmal TEXT NOT NULL
);

-- Provenance of every imported record: `id` is the record's id here (a row of its own
-- table when kept_as = 'record', else the content below is all there is), with who
-- signed it on the sending service, in which role and when. Imported records are
-- read-only.
CREATE TABLE transferred_records (
    id TEXT PRIMARY KEY NOT NULL,
    import_id TEXT NOT NULL REFERENCES transfer_imports(id),
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    record_type TEXT NOT NULL,
    original_id TEXT NOT NULL,
    kept_as TEXT NOT NULL,
    title TEXT NOT NULL,
    record_date TEXT,
    signed_by_name TEXT,
    signed_by_role TEXT,
    signed_at TIMESTAMP,
    delmal TEXT NOT NULL,
    unmapped_delmal TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX transferred_records_enrolment ON transferred_records (enrolment_id);
