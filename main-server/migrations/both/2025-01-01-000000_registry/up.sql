-- Registry of the main license server, for both dialects. The audit log's key is
-- SQLite's auto-numbered row id; PostgreSQL gives it a sequence next
-- (`postgres/2025-01-01-000001_audit_log_sequence`).
-- Every timestamp is a BIGINT of Unix milliseconds (UTC), identical on both backends.

CREATE TABLE customers (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Registered contact addresses, stored lower-case: only these may sync or ask for a
-- key clear by email.
CREATE TABLE customer_emails (
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    PRIMARY KEY (customer_id, email)
);
CREATE INDEX customer_emails_email ON customer_emails (email);

-- One row per license server id. `bound_fingerprint` is the key-pair registry: the
-- first sync sets it with `UPDATE ... WHERE bound_fingerprint IS NULL`, so exactly one
-- key wins. `revision` moves on every license change, `sequence` on every license file.
CREATE TABLE servers (
    id                TEXT PRIMARY KEY NOT NULL,
    customer_id       TEXT NOT NULL REFERENCES customers (id),
    revision          BIGINT NOT NULL,
    sequence          BIGINT NOT NULL,
    bound_fingerprint TEXT,
    bound_at          BIGINT,
    last_sync_at      BIGINT,
    last_sync_channel TEXT,
    valid_until       BIGINT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX servers_customer ON servers (customer_id);
CREATE INDEX servers_valid_until ON servers (valid_until);

CREATE TABLE licenses (
    id          TEXT PRIMARY KEY NOT NULL,
    server_id   TEXT NOT NULL REFERENCES servers (id),
    feature     TEXT NOT NULL,
    seats       INTEGER NOT NULL,
    valid_from  BIGINT,
    valid_until BIGINT,
    created_at  BIGINT NOT NULL,
    UNIQUE (server_id, feature)
);

-- Replay protection: a request id is accepted once. Rows older than the longest stale
-- window (plus margin) are pruned; older requests are refused as stale anyway.
CREATE TABLE used_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    server_id  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL
);
CREATE INDEX used_requests_created_at ON used_requests (created_at);

CREATE TABLE key_clear_requests (
    id         TEXT PRIMARY KEY NOT NULL,
    server_id  TEXT NOT NULL REFERENCES servers (id),
    sender     TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    text       TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    operator   TEXT,
    reason     TEXT,
    notified   BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX key_clear_requests_status ON key_clear_requests (status);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY NOT NULL,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    server_id TEXT,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL
);
