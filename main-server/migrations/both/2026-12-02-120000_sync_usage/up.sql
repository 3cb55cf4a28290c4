-- The usage summary each accepted sync carried (per feature: seats, peak in use,
-- seat-hours, refusals by code), one row per id and license file issued, written in
-- the sync's own transaction. `features` is the summary as JSON (bounded by the
-- sync-data checks); `usage_since` the start of its period (NULL: not known).
CREATE TABLE sync_usage (
    server_id   TEXT NOT NULL REFERENCES servers (id),
    sequence    BIGINT NOT NULL,
    synced_at   BIGINT NOT NULL,
    channel     TEXT NOT NULL,
    usage_since BIGINT,
    features    TEXT NOT NULL,
    PRIMARY KEY (server_id, sequence)
);
