-- Seats the customer's administrator took back (`local-server take-back`, the manager
-- page), like FlexNet's `lmremove`. The manager verbs run in other processes than
-- `serve`: a row here is how a take-back reaches the serving lease engine. Its insert
-- moves the `changes` generation, so the engine notices it at its next request or
-- sweep, drops the lease from memory, gives the seat to the queue and records the
-- `take_back` event (then sets `applied_at`). When no `serve` runs, the verb records the
-- event itself and stores the row applied. The rows stay, so that a heartbeat or a
-- return of a taken-back lease (a borrowed seat's token presented again) is refused
-- with what happened rather than as an unknown lease.
CREATE TABLE taken_back (
    lease_id TEXT PRIMARY KEY NOT NULL,
    feature TEXT NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    borrowed BOOLEAN NOT NULL,
    taken_at BIGINT NOT NULL,
    -- Who took it back (the account that ran the verb, or the manager page).
    actor TEXT NOT NULL,
    reason TEXT,
    -- NULL until the take-back's event is in the report log.
    applied_at BIGINT
);
CREATE TRIGGER taken_back_inserted AFTER INSERT ON taken_back
BEGIN UPDATE changes SET generation = generation + 1; END;

-- Who made an event and why (a take-back); NULL for the events clients cause.
ALTER TABLE report_log ADD COLUMN actor TEXT;
ALTER TABLE report_log ADD COLUMN reason TEXT;
