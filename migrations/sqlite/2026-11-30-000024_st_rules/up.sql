-- ST rules (issue 14, item 10). Same SQL on both backends.
-- `bt_enrolment_id`: on an ST 2021 enrolment, the BT enrolment it builds on (integrated or
-- standalone BT); its time counts towards the ST minimum length and, for integrated BT,
-- the plan warns when the BT certificate is not applied for in time. No foreign key on
-- purpose: both enrolments belong to the same trainee and are erased together (GDPR), in
-- whatever order; a link to an enrolment that is gone reads as no link. One ST enrolment
-- per BT enrolment (NULLs are distinct in a unique index on both backends).
-- `applied_on`: the day the trainee applied to Socialstyrelsen for the certificate or
-- bevis the enrolment leads to (BT: HSLF-FS 2021:8 bilaga 1).
ALTER TABLE enrolments ADD COLUMN bt_enrolment_id TEXT;
ALTER TABLE enrolments ADD COLUMN applied_on TEXT;
CREATE UNIQUE INDEX enrolments_bt_enrolment_id ON enrolments (bt_enrolment_id);
