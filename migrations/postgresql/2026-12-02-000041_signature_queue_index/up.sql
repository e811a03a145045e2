-- The supervisor's signature queue (issue 19): the assessments awaiting this assessor's
-- signature, and their own drafts, oldest request first, one page at a time. Without an
-- index in that order the database read every assessment of the assessor and sorted the
-- waiting ones for each page; with it a page reads its rows in order and stops. The
-- query repeats the predicate literally (`portfolio::assessments::signature_queue`), so
-- that both backends prove it implies the index's.
CREATE INDEX assessments_signature_queue
    ON assessments (assessor_id, (COALESCE(requested_at, created_at)), id)
    WHERE deleted_at IS NULL AND status IN ('awaiting_signature', 'draft');
