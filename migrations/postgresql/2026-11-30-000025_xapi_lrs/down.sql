DROP INDEX xapi_statements_activity;
ALTER TABLE xapi_statements DROP COLUMN voided_at;
ALTER TABLE xapi_statements DROP COLUMN voided_by;
