-- The audit log: every change and every refusal, in the order it happened. Only its key
-- differs between the dialects (SQLite here). Databases made before this migration was
-- split from the registry already have the table.
CREATE TABLE IF NOT EXISTS audit_log (
    id        INTEGER PRIMARY KEY NOT NULL,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    server_id TEXT,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL
);
