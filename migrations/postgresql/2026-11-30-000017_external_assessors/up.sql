-- Assessors without an account, vetted once per person and organisation (the
-- organisation of the trainee's enrolment) before the first signing link goes out.
CREATE TABLE external_assessors (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    workplace TEXT NOT NULL,
    -- pending, approved or declined
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL REFERENCES users(id),
    -- The enrolment of the first request: its main supervisor may decide.
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    decided_by TEXT REFERENCES users(id),
    decided_at TIMESTAMP,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (organisation_id, email)
);
CREATE INDEX external_assessors_status ON external_assessors(organisation_id, status);

-- Who vetted the address a link was sent to, for the dossier.
ALTER TABLE signing_links ADD COLUMN vetted_by TEXT REFERENCES users(id);
