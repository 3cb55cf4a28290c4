-- The audit log's hash chain (see README "Tamper-evident audit log"). Writers insert
-- entries unsealed, as before (PostgreSQL's sync function `solme_issue_syncs` is
-- unchanged); the sealer fills the three columns in id order:
-- `chain_seq` is the entry's position in the chain (1, 2, …), `entry_hash` the hex
-- SHA-256 of its canonical bytes, `prev_hash` the hash of the entry before it (64
-- zeros for the first). Entries already present stay unsealed here and are sealed, in
-- id order, by the first sealing round.
ALTER TABLE audit_log ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_log ADD COLUMN entry_hash TEXT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
-- One entry per position (NULLs, the unsealed entries, do not collide).
CREATE UNIQUE INDEX audit_log_chain_seq ON audit_log (chain_seq);
-- The sealer's work list stays small however long the log grows.
CREATE INDEX audit_log_unsealed ON audit_log (id) WHERE chain_seq IS NULL;
