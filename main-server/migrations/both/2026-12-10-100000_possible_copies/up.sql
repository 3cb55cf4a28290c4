-- Copies of one installation (README, "Copies of one installation"): what each
-- accepted sync said about the installation that made it, and the mark an id gets when
-- two installations seem to share its key pair.
CREATE TABLE sync_history (
    server_id        TEXT NOT NULL REFERENCES servers (id),
    -- The sequence number this sync issued: unique per id, so the row's key.
    issued_sequence  BIGINT NOT NULL,
    -- The key pair that signed the request: histories are compared per key pair, so a
    -- reinstall after a key clearing starts a new one.
    fingerprint      TEXT NOT NULL,
    -- When the local server made the request (its clock), and when Solme saw it.
    created_at       BIGINT NOT NULL,
    seen_at          BIGINT NOT NULL,
    channel          TEXT NOT NULL,
    -- What the request said: its installation's request counter, the sequence and the
    -- hash of the license file it held (NULL: not sent, an older local server, or no
    -- file held).
    request_counter  BIGINT,
    held_sequence    BIGINT,
    held_file_sha256 TEXT,
    PRIMARY KEY (server_id, issued_sequence)
);
CREATE INDEX sync_history_by_creation ON sync_history (server_id, fingerprint, created_at);

-- Since when the id is marked a possible copy (NULL: not marked).
ALTER TABLE servers ADD COLUMN possible_copy_since BIGINT;
-- What a possible copy does to the customer's syncs: 'warn' (answered) or 'refuse'.
ALTER TABLE customers ADD COLUMN copy_policy TEXT NOT NULL DEFAULT 'warn';
