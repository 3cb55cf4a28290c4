ALTER TABLE customers DROP COLUMN copy_policy;
ALTER TABLE servers DROP COLUMN possible_copy_since;
DROP TABLE sync_history;
