ALTER TABLE servers DROP COLUMN retired_at;
