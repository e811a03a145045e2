-- Supervision reminders in the daily digest (issue 14, item 11). Same SQL on both backends.
-- One row per Swedish calendar day on which the day's reminders (supervision overdue, a
-- signature request waiting more than 7 days, a placement change within 14 days without
-- a planned handover) were queued: the primary key lets exactly one housekeeping round,
-- on any node, claim the day, so a reminder is queued once a day however many nodes run.
CREATE TABLE reminder_days (
    day TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL
);
