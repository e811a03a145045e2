-- The trainee's voice (issue 14, item 12). Same SQL on both backends.
-- `placement_evaluations`: the trainee's evaluation of a placement, one per placement
-- (the primary key, so a second or concurrent submission is a conflict). It names the
-- unit evaluated and the term it was submitted in: directors read the answers only
-- aggregated per unit and closed term, never per person. The trainee is reachable
-- through the placement (for their own copy, export and erasure) and never stored here.
-- `group_reviews`: a group review of one trainee (BT/AT/ST-kollegium) and its outcome.
CREATE TABLE placement_evaluations (
    placement_id TEXT PRIMARY KEY NOT NULL REFERENCES placements (id),
    enrolment_id TEXT NOT NULL REFERENCES enrolments (id),
    unit_id TEXT NOT NULL REFERENCES organisations (id),
    term TEXT NOT NULL,
    answers TEXT NOT NULL,
    comment TEXT,
    submitted_at TIMESTAMP NOT NULL
);
CREATE INDEX placement_evaluations_unit_term ON placement_evaluations (unit_id, term);
CREATE INDEX placement_evaluations_enrolment ON placement_evaluations (enrolment_id);

CREATE TABLE group_reviews (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments (id),
    held_on TEXT NOT NULL,
    outcome TEXT NOT NULL,
    summary TEXT NOT NULL,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX group_reviews_enrolment ON group_reviews (enrolment_id, held_on);
