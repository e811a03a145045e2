-- Evidence per delmål is counted from the links alone: each link says what kind of
-- record it belongs to, and a deleted record's links go with it.
ALTER TABLE record_delmal ADD COLUMN record_type TEXT NOT NULL DEFAULT '';
UPDATE record_delmal SET record_type = 'activity' WHERE record_id IN (SELECT id FROM activities);
UPDATE record_delmal SET record_type = 'assessment' WHERE record_id IN (SELECT id FROM assessments);
UPDATE record_delmal SET record_type = 'talk' WHERE record_id IN (SELECT id FROM talks);
DELETE FROM record_delmal WHERE record_id IN (SELECT id FROM activities WHERE deleted_at IS NOT NULL);
DELETE FROM record_delmal WHERE record_id IN (SELECT id FROM assessments WHERE deleted_at IS NOT NULL);
DELETE FROM record_delmal WHERE record_id IN (SELECT id FROM talks WHERE deleted_at IS NOT NULL);
CREATE INDEX record_delmal_type ON record_delmal(enrolment_id, record_type, code);
-- Checklist progress counts only live activities recorded against an item.
CREATE INDEX activities_checklist ON activities(enrolment_id, checklist_item_id)
    WHERE deleted_at IS NULL AND checklist_item_id IS NOT NULL;
