-- Formative assessments (Mini-CEX, DOPS, CbD, sit-in, multi-source feedback).
-- A signed row never changes; a correction is a new row that supersedes it.
CREATE TABLE assessments (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    instrument TEXT NOT NULL,
    status TEXT NOT NULL,
    assessor_id TEXT REFERENCES users(id),
    placement_id TEXT REFERENCES placements(id),
    performed_on TEXT NOT NULL,
    context TEXT NOT NULL,
    ratings TEXT NOT NULL,
    entrustment INTEGER,
    feedback_strengths TEXT NOT NULL,
    feedback_next_steps TEXT NOT NULL,
    trainee_reflection TEXT NOT NULL,
    decline_reason TEXT,
    supersedes_id TEXT REFERENCES assessments(id),
    superseded_by TEXT,
    created_by TEXT NOT NULL REFERENCES users(id),
    requested_at TIMESTAMP,
    signed_at TIMESTAMP,
    signed_by TEXT REFERENCES users(id),
    signature_method TEXT,
    content_hash TEXT,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX assessments_enrolment ON assessments(enrolment_id, performed_on);
CREATE INDEX assessments_assessor ON assessments(assessor_id, status);

-- Assessors without an account sign through a single-use link bound to their address
-- and to one assessment.
ALTER TABLE assessments ADD COLUMN assessor_email TEXT;
ALTER TABLE assessments ADD COLUMN signed_by_email TEXT;

CREATE TABLE signing_links (
    token_hash TEXT PRIMARY KEY NOT NULL,
    assessment_id TEXT NOT NULL REFERENCES assessments(id),
    email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX signing_links_assessment ON signing_links(assessment_id);
