-- Final assessment (slutbedömning): the external assessor with the main supervisor, or a
-- clinical competence committee, judge every delmål and decide; every signer signs the
-- same content hash. A decided final assessment is never changed.
CREATE TABLE final_assessments (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id),
    mode TEXT NOT NULL,
    decision TEXT,
    judgements TEXT NOT NULL,
    missing TEXT NOT NULL,
    rationale TEXT NOT NULL,
    status TEXT NOT NULL,
    content_hash TEXT,
    created_by TEXT NOT NULL REFERENCES users(id),
    decided_at TIMESTAMP,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX final_assessments_enrolment ON final_assessments(enrolment_id, created_at);

CREATE TABLE final_assessment_signers (
    final_assessment_id TEXT NOT NULL REFERENCES final_assessments(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    signed_at TIMESTAMP,
    signed_hash TEXT,
    signature_method TEXT,
    PRIMARY KEY (final_assessment_id, user_id)
);
CREATE INDEX final_assessment_signers_user ON final_assessment_signers(user_id);

-- The service's signing keys (dossiers). Retired keys stay, so old dossiers verify.
CREATE TABLE service_keys (
    id TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP
);
