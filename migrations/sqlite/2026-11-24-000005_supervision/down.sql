DROP TABLE summary_assessments;
DROP TABLE talk_participants;
DROP TABLE talks;
