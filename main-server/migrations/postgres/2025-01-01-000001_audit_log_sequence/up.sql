-- The audit log's key numbers itself, as SQLite's INTEGER PRIMARY KEY does: a BIGINT
-- with a sequence, what BIGSERIAL makes. Databases whose registry created the key as
-- BIGSERIAL already have all of it, and nothing here changes them.
ALTER TABLE audit_log ALTER COLUMN id TYPE BIGINT;
CREATE SEQUENCE IF NOT EXISTS audit_log_id_seq OWNED BY audit_log.id;
ALTER TABLE audit_log ALTER COLUMN id SET DEFAULT nextval('audit_log_id_seq');
