DROP TABLE reminders;
ALTER TABLE customers DROP COLUMN reminders_enabled;
