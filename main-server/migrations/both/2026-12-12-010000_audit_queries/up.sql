-- The audit log's pages, filters and exports (`store/audit.rs`): keyset queries
-- ordered newest first by time, then entry number, one index per filter so that a page
-- costs the same at ten million entries as at ten.
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_server ON audit_log (server_id, at, id);
CREATE INDEX audit_log_actor ON audit_log (actor, at, id);
CREATE INDEX audit_log_action ON audit_log (action, at, id);
-- Refusals and failures are few: small indexes for them alone (all of them, and by code).
CREATE INDEX audit_log_failed ON audit_log (at, id) WHERE outcome <> 'OK';
CREATE INDEX audit_log_failed_code ON audit_log (outcome, at, id) WHERE outcome <> 'OK';
-- Entries about a customer itself (its creation, renaming, contacts, reminder and
-- copy settings) name no id; their detail starts with `customer <its id>`.
CREATE INDEX audit_log_customer ON audit_log (substr(detail, 10, 36), at, id)
    WHERE server_id IS NULL AND substr(action, 1, 9) = 'customer.';

-- Where the audit chain's verification stands (one row): the position and hash up to
-- which the chain was last walked intact, so that the next `verify` walks only what
-- came after; and the problem the last walk found, if any, for the console to show.
CREATE TABLE audit_verified (
    id             INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    verified_seq   BIGINT NOT NULL,
    verified_hash  TEXT NOT NULL,
    verified_at    BIGINT NOT NULL,
    broken_seq     BIGINT,
    broken_message TEXT,
    broken_at      BIGINT
);
-- Never verified: position 0.
INSERT INTO audit_verified (id, verified_seq, verified_hash, verified_at)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0);
