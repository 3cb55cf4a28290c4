-- Seats the previous installation of this id lent for offline use and had not had back
-- when it last reported to Solme: after a reinstall and a key clearing, Solme's license
-- file names them and the key pair that lent them (signed by Solme). The import keeps
-- each one here once, and writes it as a borrowed lease, so it counts as taken until it
-- ends or is returned. A seat returned is not brought back by a later file naming it
-- again: its row here stays. The insert moves the `changes` generation, so a running
-- `serve` takes them in at its next request.
CREATE TABLE inherited_borrows (
    lease_id TEXT PRIMARY KEY NOT NULL,
    feature TEXT NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    until BIGINT NOT NULL,
    -- Fingerprint of the key pair that lent the seat and signed its token.
    from_key TEXT NOT NULL,
    imported_at BIGINT NOT NULL
);
CREATE TRIGGER inherited_borrows_inserted AFTER INSERT ON inherited_borrows
BEGIN UPDATE changes SET generation = generation + 1; END;
