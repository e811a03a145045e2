DROP INDEX activities_checklist;
DROP INDEX record_delmal_type;
ALTER TABLE record_delmal DROP COLUMN record_type;
