DROP INDEX attachments_enrolment;

DROP INDEX assignments_enrolment;
CREATE INDEX assignments_enrolment ON assignments(enrolment_id);

DROP INDEX record_delmal_code;
CREATE INDEX record_delmal_code ON record_delmal(enrolment_id, code);

DROP INDEX activities_enrolment;
CREATE INDEX activities_enrolment ON activities(enrolment_id, start_date);
