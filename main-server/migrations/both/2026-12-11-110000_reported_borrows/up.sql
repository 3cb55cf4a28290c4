-- Seats out on borrow, as each key pair of an id last reported them with a sync
-- (README, "Borrowed seats across a reinstall"): after a key clearing, the license
-- files to the id's next key pair carry the previous key pair's set, until the new
-- installation holds a file, so it counts those seats as taken.
CREATE TABLE reported_borrows (
    server_id   TEXT NOT NULL REFERENCES servers (id),
    -- The key pair that lent the seats (and signed their tokens).
    fingerprint TEXT NOT NULL,
    -- When the local server made the request that reported them: a report made
    -- earlier (a mailed file arriving late) never replaces a later one.
    reported_at BIGINT NOT NULL,
    -- The seats as JSON: [{"lease_id", "feature", "user", "host", "until"}].
    borrows     TEXT NOT NULL,
    PRIMARY KEY (server_id, fingerprint)
);
