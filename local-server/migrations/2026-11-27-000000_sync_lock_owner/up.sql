-- Who holds the synchronization lock: only the holder releases it (a holder that
-- outlived the lock's expiry must not release the next holder's lock).
ALTER TABLE sync_state ADD COLUMN sync_lock_owner TEXT;

-- Was written on every sync request and never read: the main server is the one that
-- refuses replays, and a license file is checked by its sequence.
DROP TABLE sync_requests;
