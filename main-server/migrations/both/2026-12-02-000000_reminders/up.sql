-- Reminder mails before the 366-day limit.
-- Per customer a switch, on by default.
ALTER TABLE customers ADD COLUMN reminders_enabled BOOLEAN NOT NULL DEFAULT TRUE;

-- One row per reminder that became due: id, threshold (30d, 7d, 1d, passed) and the
-- valid-until of the license file it is about. The unique key makes a second reminder
-- for the same id, threshold and validity impossible, whichever process records it.
-- state: pending (recorded, not yet taken by the mail gateway), handed (in the
-- gateway's outgoing spool), cancelled (no longer due before it went out).
CREATE TABLE reminders (
    id          TEXT PRIMARY KEY NOT NULL,
    server_id   TEXT NOT NULL REFERENCES servers (id),
    threshold   TEXT NOT NULL,
    valid_until BIGINT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    handed_at   BIGINT,
    recipients  TEXT NOT NULL DEFAULT '',
    UNIQUE (server_id, threshold, valid_until)
);
CREATE INDEX reminders_state ON reminders (state);
