-- Back to globally unique statement ids (fails if two organisations share one).
CREATE TABLE xapi_statements_old (
    id TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES api_clients(id),
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    content_hash TEXT NOT NULL,
    statement TEXT NOT NULL,
    -- `created`, `unmatched` or `dismissed`.
    status TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    verb TEXT NOT NULL,
    activity_iri TEXT NOT NULL,
    learner TEXT NOT NULL,
    user_id TEXT REFERENCES users(id),
    enrolment_id TEXT REFERENCES enrolments(id),
    activity_id TEXT REFERENCES activities(id),
    received_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    version INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (id)
);
INSERT INTO xapi_statements_old (id, client_id, organisation_id, content_hash, statement, status, reason, detail, verb, activity_iri, learner, user_id, enrolment_id, activity_id, received_at, resolved_at, version, updated_at)
    SELECT id, client_id, organisation_id, content_hash, statement, status, reason, detail, verb, activity_iri, learner, user_id, enrolment_id, activity_id, received_at, resolved_at, version, updated_at FROM xapi_statements;
DROP TABLE xapi_statements;
ALTER TABLE xapi_statements_old RENAME TO xapi_statements;
CREATE INDEX xapi_statements_org_status ON xapi_statements(organisation_id, status);
