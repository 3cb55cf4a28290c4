ALTER TABLE servers DROP COLUMN failover_days;
ALTER TABLE servers DROP COLUMN standby_registered_at;
ALTER TABLE servers DROP COLUMN standby_fingerprint;
