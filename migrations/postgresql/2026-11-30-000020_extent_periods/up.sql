-- Employment extent as a history (issue 14): a move from 100 % to 75 % in March does not
-- rewrite January. Each row holds from `valid_from` until the next row of the same
-- enrolment; the first row starts on the enrolment's start date. `enrolments.extent_percent`
-- stays as the extent recorded last (the API reads today's from this table).
CREATE TABLE extent_periods (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    valid_from TEXT NOT NULL,
    extent_percent INTEGER NOT NULL,
    created_by TEXT REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    UNIQUE (enrolment_id, valid_from)
);
-- Every existing enrolment had one extent from its start.
INSERT INTO extent_periods (id, enrolment_id, valid_from, extent_percent, created_by, created_at)
SELECT id, id, start_date, extent_percent, NULL, created_at FROM enrolments;
