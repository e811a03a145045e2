-- Supervision sessions (handledarsamtal) and handover talks (överlämningssamtal): talks
-- with participants who each confirm the record.
CREATE TABLE talks (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    kind TEXT NOT NULL,
    held_on TEXT NOT NULL,
    placement_id TEXT REFERENCES placements(id),
    next_placement_id TEXT REFERENCES placements(id),
    topics TEXT NOT NULL,
    notes TEXT NOT NULL,
    agreed_actions TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX talks_enrolment ON talks(enrolment_id, held_on);

CREATE TABLE talk_participants (
    talk_id TEXT NOT NULL REFERENCES talks(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    confirmed_at TIMESTAMP,
    confirmed_hash TEXT,
    confirmation_method TEXT,
    PRIMARY KEY (talk_id, user_id)
);
CREATE INDEX talk_participants_user ON talk_participants(user_id);

-- Summary assessment of a placement (sammantagen bedömning), by its supervisor.
CREATE TABLE summary_assessments (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    placement_id TEXT NOT NULL REFERENCES placements(id),
    author_id TEXT NOT NULL REFERENCES users(id),
    judgements TEXT NOT NULL,
    overall TEXT NOT NULL,
    status TEXT NOT NULL,
    supersedes_id TEXT REFERENCES summary_assessments(id),
    superseded_by TEXT,
    signed_at TIMESTAMP,
    signature_method TEXT,
    content_hash TEXT,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX summary_assessments_enrolment ON summary_assessments(enrolment_id);
