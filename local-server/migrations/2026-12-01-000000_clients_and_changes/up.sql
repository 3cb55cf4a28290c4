-- Who holds a lease: the client program's user and host (FlexNet/RLM style), and
-- whether it is a borrow (held offline until `expires_at`, no heartbeats).
ALTER TABLE leases ADD COLUMN user TEXT NOT NULL DEFAULT '';
ALTER TABLE leases ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE leases ADD COLUMN borrowed BOOLEAN NOT NULL DEFAULT FALSE;

-- Counts the changes the serving process must reload (licenses, sync state, options)
-- made by any connection. Triggers keep it, so the lease engine's own writes (leases,
-- peaks, a rising clock mark) never make it reload.
CREATE TABLE changes (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO changes (id, generation) VALUES (1, 0);

CREATE TRIGGER licenses_inserted AFTER INSERT ON licenses
BEGIN UPDATE changes SET generation = generation + 1; END;
CREATE TRIGGER licenses_updated AFTER UPDATE ON licenses
BEGIN UPDATE changes SET generation = generation + 1; END;
CREATE TRIGGER licenses_deleted AFTER DELETE ON licenses
BEGIN UPDATE changes SET generation = generation + 1; END;
CREATE TRIGGER sync_state_changed AFTER UPDATE ON sync_state
WHEN NEW.sequence IS NOT OLD.sequence
  OR NEW.valid_until IS NOT OLD.valid_until
  OR NEW.clock_high_water < OLD.clock_high_water
BEGIN UPDATE changes SET generation = generation + 1; END;
CREATE TRIGGER usage_peaks_deleted AFTER DELETE ON usage_peaks
BEGIN UPDATE changes SET generation = generation + 1; END;

-- The report log: every check-out, check-in, expiry, borrow, return, queue wait and
-- refusal. `in_use` is the feature's seats in use after the event, so peak use and
-- seat-hours follow from the rows alone. Pruned by age and size (see `report_log`).
CREATE TABLE report_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    feature TEXT NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    lease_id TEXT,
    code TEXT,
    in_use INTEGER NOT NULL,
    wait_ms BIGINT
);
CREATE INDEX report_log_at ON report_log (at);
