-- A regulation version (e.g. BT under HSLF-FS 2021:8, version 1) and its delmål.
-- Versions are immutable once trainees use them; a changed regulation is a new version.
CREATE TABLE regulations (
    id TEXT PRIMARY KEY NOT NULL,
    code TEXT NOT NULL,
    version INTEGER NOT NULL,
    name_sv TEXT NOT NULL,
    name_en TEXT,
    statute TEXT NOT NULL,
    in_force TEXT,
    rules TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (code, version)
);

CREATE TABLE delmal (
    id TEXT PRIMARY KEY NOT NULL,
    regulation_id TEXT NOT NULL REFERENCES regulations(id),
    code TEXT NOT NULL,
    group_code TEXT,
    -- '' for delmål common to all specialties.
    specialty TEXT NOT NULL DEFAULT '',
    title_sv TEXT NOT NULL,
    title_en TEXT,
    description TEXT,
    position INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (regulation_id, specialty, code)
);
CREATE INDEX delmal_regulation ON delmal(regulation_id, position);

-- A region's way of running a programme; every edit is a new immutable version.
CREATE TABLE programme_templates (
    id TEXT PRIMARY KEY NOT NULL,
    template_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    regulation_id TEXT NOT NULL REFERENCES regulations(id),
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    created_by TEXT REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    UNIQUE (template_id, version)
);
CREATE INDEX programme_templates_org ON programme_templates(organisation_id);

-- A trainee's training plan on one template version.
CREATE TABLE enrolments (
    id TEXT PRIMARY KEY NOT NULL,
    trainee_id TEXT NOT NULL REFERENCES users(id),
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    template_id TEXT NOT NULL,
    template_version INTEGER NOT NULL,
    track TEXT NOT NULL,
    start_date TEXT NOT NULL,
    planned_end TEXT NOT NULL,
    extent_percent INTEGER NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX enrolments_trainee ON enrolments(trainee_id);
CREATE INDEX enrolments_org ON enrolments(organisation_id);

CREATE TABLE placements (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    placement_type TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    unit_id TEXT REFERENCES organisations(id),
    version INTEGER NOT NULL,
    removed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX placements_enrolment ON placements(enrolment_id);

CREATE TABLE leave_periods (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    kind TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    percent INTEGER NOT NULL,
    removed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX leave_periods_enrolment ON leave_periods(enrolment_id);

-- Who supervises or follows a trainee, and when. Access rights follow these rows, so
-- they are never deleted: ending an assignment sets valid_to.
CREATE TABLE assignments (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    placement_id TEXT REFERENCES placements(id),
    valid_from TEXT NOT NULL,
    valid_to TEXT,
    created_by TEXT REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX assignments_enrolment ON assignments(enrolment_id);
CREATE INDEX assignments_user ON assignments(user_id);

-- Clinical service before licence credited towards the programme (at most six months).
CREATE TABLE credited_service (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    description TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    credited_days INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    delmal TEXT NOT NULL,
    created_by TEXT REFERENCES users(id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX credited_service_enrolment ON credited_service(enrolment_id);

-- Individual study plan: goals the trainee and supervisors agree on.
CREATE TABLE study_plan_goals (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    placement_id TEXT REFERENCES placements(id),
    goal TEXT NOT NULL,
    delmal TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    updated_by TEXT REFERENCES users(id)
);
CREATE INDEX study_plan_goals_enrolment ON study_plan_goals(enrolment_id);
