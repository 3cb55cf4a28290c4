ALTER TABLE used_requests DROP COLUMN answer;
ALTER TABLE used_requests DROP COLUMN fingerprint;
