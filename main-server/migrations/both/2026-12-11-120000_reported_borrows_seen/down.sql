ALTER TABLE reported_borrows DROP COLUMN seen_at;
