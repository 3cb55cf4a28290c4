-- Where the usage of the next sync request begins: the end of the period the last request
-- that left for Solme carried (an exported file, or a direct sync Solme answered). Each
-- request then reports the use since the one before it, so use made while a mailed sync
-- is on its way is carried by the next request and no moment is reported twice. One row;
-- an installation that synchronized before starts from its last synchronization.
CREATE TABLE usage_reported (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    until BIGINT NOT NULL
);
INSERT INTO usage_reported (id, until)
    SELECT 1, last_sync_at FROM sync_state WHERE last_sync_at IS NOT NULL;
