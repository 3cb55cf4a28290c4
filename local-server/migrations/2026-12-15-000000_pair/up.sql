-- The pair of a primary and a standby license server (docs/standby.md): one row on each
-- server once the two are paired. Its changes move the `changes` generation, so a
-- running `serve` applies a promotion, a step-down or a fence at its next request.
CREATE TABLE pair (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    -- 'primary' or 'standby': what this server is in the pair.
    role TEXT NOT NULL,
    -- primary: 'waiting' (started, asking its standby first), 'serving', 'fenced';
    -- standby: 'following', 'promoted', 'stepping_down'.
    state TEXT NOT NULL,
    -- Moves with every promotion and hand-back; a server that sees a higher one than
    -- its own stops issuing.
    epoch BIGINT NOT NULL,
    -- The other server's public keys (JSON), pinned at pairing.
    peer_keys TEXT NOT NULL,
    -- On the standby: the primary's address (http://host:port).
    peer_address TEXT,
    paired_at BIGINT NOT NULL,
    -- How often the standby calls the primary (its `serve --pair-interval`), in ms.
    interval_ms BIGINT,
    -- primary: until when a starting server waits for its standby's word.
    waiting_until BIGINT,
    -- The standby's promotion.
    promoted_at BIGINT,
    promoted_by TEXT,
    promoted_reason TEXT,
    -- The failover period runs from `failover_started_at`, per license file of the
    -- primary (`failover_sequence`): promoting again before a newer file continues it.
    failover_sequence BIGINT,
    failover_started_at BIGINT,
    -- The failover period Solme set, from the primary's license file (days).
    failover_days BIGINT,
    -- The signed content of the primary's newest license file: on the primary what it
    -- hands on, on the standby the copy it installed.
    license_file BLOB
);
CREATE TRIGGER pair_inserted AFTER INSERT ON pair
BEGIN UPDATE changes SET generation = generation + 1; END;
CREATE TRIGGER pair_state_changed AFTER UPDATE OF state, epoch, failover_started_at, failover_days ON pair
BEGIN UPDATE changes SET generation = generation + 1; END;

-- What each server of a pair last learnt from the other: written at every call, so
-- apart from `pair`, whose changes the lease engine reloads.
CREATE TABLE pair_news (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    -- When this server last heard from the other, and what it said.
    last_heard_at BIGINT,
    last_heard_state TEXT,
    -- The other's clock minus this one's, measured at `clock_measured_at`, with the
    -- round trip bounding the error.
    clock_offset_ms BIGINT,
    clock_round_trip_ms BIGINT,
    clock_measured_at BIGINT,
    -- The last message number each side accepted from the other (replays refused).
    peer_counter BIGINT NOT NULL DEFAULT 0,
    own_counter BIGINT NOT NULL DEFAULT 0,
    -- The last time the two were found issuing together, for status and the report.
    overlap_detected_at BIGINT,
    overlap_detail TEXT,
    -- The last step-down of the standby: when, and how many report entries it handed.
    handed_back_at BIGINT,
    handed_back_entries BIGINT
);

-- One-time pairing codes made by `local-server standby pair` on the primary: only their
-- SHA-256 is kept, for ten minutes, and a code is used once.
CREATE TABLE pairing_codes (
    code_sha256 TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
