-- xAPI statement ids are unique per organisation (the receiving client's), not
-- globally: with one global key, one organisation's LMS could block another's statements
-- by sending their ids first, and learn from `duplicate`/`conflict` which ids another
-- organisation had received.
ALTER TABLE xapi_statements DROP CONSTRAINT xapi_statements_pkey;
ALTER TABLE xapi_statements ADD PRIMARY KEY (organisation_id, id);
-- Administrators look a statement up by its id across the organisations they administer.
CREATE INDEX xapi_statements_id ON xapi_statements(id);
