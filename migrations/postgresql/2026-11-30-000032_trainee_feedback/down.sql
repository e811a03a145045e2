DROP TABLE group_reviews;
DROP TABLE placement_evaluations;
