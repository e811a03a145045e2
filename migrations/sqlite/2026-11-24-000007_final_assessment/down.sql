DROP TABLE service_keys;
DROP TABLE final_assessment_signers;
DROP TABLE final_assessments;
