DROP TABLE signing_links;
DROP TABLE assessments;
