-- The answer to an email sync, kept with the request id so that the mail gateway can
-- ask again after an interruption and get the same license file (not REPLAYED_REQUEST).
ALTER TABLE used_requests ADD COLUMN fingerprint TEXT;
ALTER TABLE used_requests ADD COLUMN answer TEXT;
