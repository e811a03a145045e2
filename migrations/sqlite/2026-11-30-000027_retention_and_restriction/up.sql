-- Retention (gallring), restriction and erasure (issue 17). The same SQL on both
-- backends.

-- How long a region keeps a completed or withdrawn enrolment's records after the
-- enrolment closed, in months. No row: retention is off (nothing is ever deleted), the
-- default; the period is the region's decision, not this service's.
CREATE TABLE retention_policies (
    organisation_id TEXT PRIMARY KEY NOT NULL REFERENCES organisations(id),
    keep_months INTEGER NOT NULL,
    version INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- One row per region and Swedish day the retention job ran for it: what it deleted
-- (counts only). The unique pair makes the job daily and lets two nodes' housekeeping
-- race without both deleting.
CREATE TABLE retention_runs (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL,
    run_on TEXT NOT NULL,
    ran_at TIMESTAMP NOT NULL,
    keep_months INTEGER NOT NULL,
    enrolments INTEGER NOT NULL,
    counts TEXT NOT NULL,
    UNIQUE (organisation_id, run_on)
);

-- Restriction of processing (GDPR Art. 18): an account or an enrolment made read-only
-- and hidden from lists until an administrator lifts it. At most one restriction in
-- force per subject (the partial index): a request sent twice has one effect.
CREATE TABLE restrictions (
    id TEXT PRIMARY KEY NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    organisation_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    restricted_by TEXT NOT NULL,
    restricted_at TIMESTAMP NOT NULL,
    lifted_by TEXT,
    lifted_at TIMESTAMP
);
CREATE UNIQUE INDEX restrictions_in_force ON restrictions (subject_kind, subject_id)
    WHERE lifted_at IS NULL;
