-- The revision the last license file issued for the id carries, so the console can
-- say whether the local server holds the newest licenses ("revision 7, the server
-- holds 5: changes not yet synced"). NULL: no file issued since this column exists.
-- Written with each issued file: on SQLite by the sync's UPDATE, on PostgreSQL by
-- the trigger of migration issued_revision_trigger (the sync function's own UPDATE
-- stays as it is).
ALTER TABLE servers ADD COLUMN issued_revision BIGINT;
