-- The due list pages by (valid_until, id) and the plain list by id: one index serves
-- the due query's range, its order and its keyset cursor (never-synced ids are
-- `valid_until IS NULL`, also answered from it). It supersedes the single-column index.
CREATE INDEX servers_due ON servers (valid_until, id);
DROP INDEX servers_valid_until;
