-- Accepted attachment types per region (issue 17). A region without a row accepts the
-- default, PDF only: a photo is the easiest way to carry a patient record in, so photos
-- are opt-in. `media_types` is a JSON array of media types, each one of the service's
-- `ATTACHMENT_TYPES`.
CREATE TABLE region_attachment_types (
    region_id TEXT PRIMARY KEY NOT NULL REFERENCES organisations (id),
    media_types TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_by TEXT REFERENCES users (id),
    updated_at TIMESTAMP NOT NULL
);
