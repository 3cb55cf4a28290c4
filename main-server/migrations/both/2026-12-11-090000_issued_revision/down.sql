ALTER TABLE servers DROP COLUMN issued_revision;
