-- Issue 7: indexes for the hot paths, so the work for one trainee does not grow with
-- the number of trainees (checked with EXPLAIN QUERY PLAN; see README, Benchmark).

-- A list of activities, newest first, reads the index in order and stops at the page
-- size (the id breaks ties of start_date, as the cursor does).
DROP INDEX activities_enrolment;
CREATE INDEX activities_enrolment ON activities(enrolment_id, start_date, id);

-- "My records for delmål X": the record ids come from the index alone.
DROP INDEX record_delmal_code;
CREATE INDEX record_delmal_code ON record_delmal(enrolment_id, code, record_id);

-- Access checks ask for one user's assignments on one enrolment.
DROP INDEX assignments_enrolment;
CREATE INDEX assignments_enrolment ON assignments(enrolment_id, user_id);

-- Whether an enrolment has any attachments, before asking for them record by record.
CREATE INDEX attachments_enrolment ON attachments(enrolment_id);
