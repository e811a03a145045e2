DROP TABLE attachments;
DROP TABLE record_delmal;
DROP TABLE activities;
DROP TABLE audit_log;
