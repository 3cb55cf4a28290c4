-- All times are milliseconds since the Unix epoch (UTC): cheap to compare and index,
-- and independent of SQLite's text date formats.

-- What `init` stored: one row.
CREATE TABLE config (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    server_id TEXT NOT NULL,
    -- JSON array of base URLs, tried in order.
    endpoints TEXT NOT NULL,
    solme_public_pem TEXT NOT NULL,
    ca_pem TEXT NOT NULL,
    proxy TEXT,
    auto_sync TEXT NOT NULL DEFAULT 'off' CHECK (auto_sync IN ('off', 'daily', 'weekly')),
    created_at BIGINT NOT NULL
);

-- The synchronization state and clock bookkeeping: one row.
CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    -- From the license file in force (NULL = never synchronized).
    sequence BIGINT,
    revision BIGINT,
    customer TEXT,
    issued_at BIGINT,
    valid_until BIGINT,
    last_sync_at BIGINT,
    last_sync_channel TEXT,
    -- Latest time this server has seen; only grows (clock-rollback detection).
    clock_high_water BIGINT,
    -- Direct-sync attempts (manual or automatic).
    last_attempt_at BIGINT,
    last_attempt_error TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    -- When the main server last answered at all (tells "it went down" from "never reachable").
    last_contact_at BIGINT,
    next_auto_sync_at BIGINT,
    -- Held while a synchronization runs, so that two never run at once (any process).
    sync_lock_until BIGINT
);

-- The licenses of the license file in force.
CREATE TABLE licenses (
    id INTEGER PRIMARY KEY NOT NULL,
    feature TEXT NOT NULL,
    seats INTEGER NOT NULL,
    valid_from BIGINT,
    valid_until BIGINT
);

-- Live leases (write-through copy of the serving process's index).
CREATE TABLE leases (
    id TEXT PRIMARY KEY NOT NULL,
    feature TEXT NOT NULL,
    client TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX leases_expires_at ON leases (expires_at);

-- Highest number of seats in use per feature since the last synchronization (reported to Solme).
CREATE TABLE usage_peaks (
    feature TEXT PRIMARY KEY NOT NULL,
    peak_in_use INTEGER NOT NULL
);

-- Sync requests sent or exported, for the record.
CREATE TABLE sync_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    channel TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
