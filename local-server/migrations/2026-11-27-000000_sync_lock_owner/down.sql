CREATE TABLE sync_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    channel TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
ALTER TABLE sync_state DROP COLUMN sync_lock_owner;
