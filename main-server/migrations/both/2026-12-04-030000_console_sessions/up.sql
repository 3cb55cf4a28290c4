-- Console sessions: the web console exchanges an operator's personal token for a
-- short-lived session secret. Only the SHA-256 of the secret is kept (hex,
-- lower-case). `token_hash` is the hash of the personal token the session was opened
-- with: a session counts only while its account is active and still has that token,
-- so revoking or rotating the account ends its sessions at once.
CREATE TABLE console_sessions (
    secret_hash TEXT PRIMARY KEY NOT NULL,
    operator    TEXT NOT NULL REFERENCES operators (name),
    token_hash  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX console_sessions_operator ON console_sessions (operator, created_at);
