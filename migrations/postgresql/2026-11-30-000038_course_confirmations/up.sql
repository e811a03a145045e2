-- The kursledare (course leader) of a course activity confirms it by link (issue 14
-- item 8): "the trainee took part in the course and met its kompetenskrav". The forms
-- name the kursledare as the signer of the course variant of the training-activity
-- certificate (HSLF-FS 2021:8 bilagor 8-11, SOSFS 2015:8 bilagor 3-7; see
-- catalog/certificates.json).
--
-- One request per course activity (the activity's id is the key). The kursledare has no
-- account: they are vetted as external assessors are (external_assessors, per person and
-- organisation). `status`: awaiting_vetting (named, not vetted yet: no link is out),
-- awaiting_confirmation (a link is out), confirmed (immutable), returned (the vetting
-- declined the person: the trainee names someone else, which replaces the row).
-- `content_hash`: SHA-256 over exactly what was confirmed.
CREATE TABLE course_confirmations (
    activity_id TEXT PRIMARY KEY NOT NULL REFERENCES activities (id),
    enrolment_id TEXT NOT NULL REFERENCES enrolments (id),
    kursledare_email TEXT NOT NULL,
    kursledare_name TEXT NOT NULL,
    kursledare_workplace TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL REFERENCES users (id),
    requested_at TIMESTAMP NOT NULL,
    vetted_by TEXT REFERENCES users (id),
    confirmed_at TIMESTAMP,
    content_hash TEXT,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX course_confirmations_enrolment ON course_confirmations (enrolment_id);
CREATE INDEX course_confirmations_email ON course_confirmations (kursledare_email);

-- Single-use links bound to one address and one course request; only the SHA-256 of the
-- token is stored. A table of their own: an assessment's signing link is no
-- confirmation link, nor the other way round.
CREATE TABLE course_confirmation_links (
    token_hash TEXT PRIMARY KEY NOT NULL,
    activity_id TEXT NOT NULL REFERENCES course_confirmations (activity_id),
    email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX course_confirmation_links_activity ON course_confirmation_links (activity_id);
