-- Installation receipts: a local server's signed statement that it installed license
-- file `sequence` (written by `local-server import-license-file --receipt`), uploaded in
-- the customer portal or mailed to licensing@. One row per id and file: the same
-- receipt again changes nothing. With the held sequence of sync requests (sync_history)
-- this says which license file each id's server holds.
CREATE TABLE installation_receipts (
    server_id TEXT NOT NULL REFERENCES servers (id),
    sequence BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    file_sha256 TEXT NOT NULL,
    installed_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    channel TEXT NOT NULL,
    sender TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (server_id, sequence)
);
