DROP INDEX enrolments_bt_enrolment_id;
ALTER TABLE enrolments DROP COLUMN applied_on;
ALTER TABLE enrolments DROP COLUMN bt_enrolment_id;
