-- The xAPI Statements resource (issue 16): a statement voided by a later voiding
-- statement is kept (GET ?voidedStatementId= returns it) and marked with the voiding
-- statement's id and when it arrived. Activities made from statements show their
-- provenance, found through `activity_id`.
ALTER TABLE xapi_statements ADD COLUMN voided_by TEXT;
ALTER TABLE xapi_statements ADD COLUMN voided_at TIMESTAMP;
CREATE INDEX xapi_statements_activity ON xapi_statements (activity_id);
