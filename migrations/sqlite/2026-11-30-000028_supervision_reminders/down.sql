DROP TABLE reminder_days;
