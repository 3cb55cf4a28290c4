-- What the main server needs to tell this installation's history from a copy's (see
-- the main server's README, "Copies of one installation"): how many sync requests this
-- installation has made, and the hash of the license file it holds. Both live in the
-- database, so a copy of the data directory carries them and continues from the same
-- number as the original: the two then send the same counters, which Solme notices.
CREATE TABLE sync_history (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    -- Requests built so far (sync data exported or sent directly); grows by one, in the
    -- transaction that builds each request.
    requests_made BIGINT NOT NULL,
    -- Hex SHA-256 of the signed content of the license file in force (NULL: none, or
    -- installed before this column existed).
    held_file_sha256 TEXT
);
INSERT INTO sync_history (id, requests_made, held_file_sha256) VALUES (1, 0, NULL);
