-- Nothing to undo: the audit log's key keeps numbering itself (databases made before
-- this migration have the same sequence from the registry's BIGSERIAL, which must
-- stay); reverting the registry drops the table with its sequence.
SELECT 1;
