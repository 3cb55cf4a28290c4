-- Operator accounts and service identities of the admin API. Only the SHA-256 of a
-- token is kept (hex, lower-case): the token itself is shown once when issued.
-- `revoked_at` set means the account no longer authenticates; the row stays so that
-- the name is never reused for someone else.
CREATE TABLE operators (
    name       TEXT PRIMARY KEY NOT NULL,
    role       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
