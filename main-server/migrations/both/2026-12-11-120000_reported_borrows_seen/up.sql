-- When Solme stored each key pair's report (its own clock): the files to a new key pair
-- carry the report of the key pair seen last, not the one whose local clock said latest
-- (two installations' clocks need not agree).
ALTER TABLE reported_borrows ADD COLUMN seen_at BIGINT NOT NULL DEFAULT 0;
