-- Domain events (issue 13): what a change published, written in the change's own
-- transaction; subscribers (webhooks) act on it in that transaction. Kept for the
-- webhook retry window, then deleted by housekeeping.
CREATE TABLE domain_events (
    id TEXT PRIMARY KEY NOT NULL,
    -- activity.created, assessment.signed, final_assessment.decided, xapi.statement_unmatched
    kind TEXT NOT NULL,
    organisation_id TEXT,
    enrolment_id TEXT,
    -- The payload as JSON.
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX domain_events_created_at ON domain_events(created_at);
