-- The xAPI Statements resource filters by `registration` (issue 16): the statement's
-- `context.registration` (a UUID, lower case) gets a column of its own. Statements
-- stored before are filled in from their JSON. The backends differ only in how JSON is
-- read: `json_extract` on SQLite, `->>` on PostgreSQL.
ALTER TABLE xapi_statements ADD COLUMN registration TEXT;
UPDATE xapi_statements SET registration = lower(json_extract(statement, '$.context.registration'))
    WHERE json_valid(statement) AND json_type(statement, '$.context.registration') = 'text';
