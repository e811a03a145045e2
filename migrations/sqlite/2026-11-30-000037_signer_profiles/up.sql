-- What the forms print about the people who sign (issue 14 item 8).
--
-- A person with an account: specialty, tjänsteställe (workplace) and the date of their
-- handledarutbildning (supervisor training), kept on the account and edited by the
-- person or an administrator or director of studies over them. One row per user at
-- most; a user without a row has stated nothing.
CREATE TABLE signer_profiles (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id),
    specialty TEXT,
    workplace TEXT,
    supervisor_training_on TEXT,
    version INTEGER NOT NULL,
    updated_by TEXT NOT NULL REFERENCES users (id),
    updated_at TIMESTAMP NOT NULL
);

-- A person without an account, on their vetting record: specialist status (1 with the
-- specialty, 0 "ej specialist", NULL not stated) and training in assessment methods
-- (1 with a date or description, 0, NULL not stated). Entered by the trainee who named
-- the person, confirmed by whoever approves the vetting (`qualifications_confirmed_by`,
-- a user id; no REFERENCES, which SQLite could not drop again in down.sql).
ALTER TABLE external_assessors ADD COLUMN specialist INTEGER;
ALTER TABLE external_assessors ADD COLUMN specialty TEXT;
ALTER TABLE external_assessors ADD COLUMN assessment_training INTEGER;
ALTER TABLE external_assessors ADD COLUMN assessment_training_detail TEXT;
ALTER TABLE external_assessors ADD COLUMN qualifications_confirmed_by TEXT;
