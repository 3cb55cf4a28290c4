-- A retired license server id stays in the registry (its audit entries, licenses and
-- sync history keep pointing at it, and its primary key keeps the id from ever being
-- allocated again); from `retired_at` on, its syncs are refused with SERVER_RETIRED.
ALTER TABLE servers ADD COLUMN retired_at BIGINT;
