ALTER TABLE external_assessors DROP COLUMN qualifications_confirmed_by;
ALTER TABLE external_assessors DROP COLUMN assessment_training_detail;
ALTER TABLE external_assessors DROP COLUMN assessment_training;
ALTER TABLE external_assessors DROP COLUMN specialty;
ALTER TABLE external_assessors DROP COLUMN specialist;
DROP TABLE signer_profiles;
