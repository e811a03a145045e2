ALTER TABLE signing_links DROP COLUMN vetted_by;
DROP TABLE external_assessors;
