ALTER TABLE xapi_statements DROP COLUMN registration;
