DROP TABLE course_confirmation_links;
DROP TABLE course_confirmations;
