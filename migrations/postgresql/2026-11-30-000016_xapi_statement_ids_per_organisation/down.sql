-- Back to globally unique statement ids (fails if two organisations share one).
DROP INDEX xapi_statements_id;
ALTER TABLE xapi_statements DROP CONSTRAINT xapi_statements_pkey;
ALTER TABLE xapi_statements ADD PRIMARY KEY (id);
