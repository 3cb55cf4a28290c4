-- The standby server of an id's pair: the fingerprint of the key pair the id's bound
-- key pair last named in a sync request, and when it was registered (NULL: none, or
-- cleared with the key pair). A request naming none keeps it: the last one registered.
ALTER TABLE servers ADD COLUMN standby_fingerprint TEXT;
ALTER TABLE servers ADD COLUMN standby_registered_at BIGINT;
-- Days a promoted standby may issue seats while its primary is down, carried in the
-- license files that name a standby.
ALTER TABLE servers ADD COLUMN failover_days INTEGER NOT NULL DEFAULT 14
    CHECK (failover_days BETWEEN 1 AND 90);
