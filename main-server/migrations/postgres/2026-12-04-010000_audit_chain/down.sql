DROP INDEX audit_log_unsealed;
DROP INDEX audit_log_chain_seq;
ALTER TABLE audit_log
    DROP COLUMN prev_hash,
    DROP COLUMN entry_hash,
    DROP COLUMN chain_seq;
