-- The customer portal: sign-in links mailed to registered contacts, the sessions they
-- open, and the link requests counted by the rate limits. No secret is stored: a link's
-- token and a session's secret are kept as their SHA-256 (hex, lower-case).
--
-- A link is mailed by the mail gateway like a reminder: claimed while `handed_at` is
-- NULL and not expired, marked handed once staged. Its token is derived again from
-- Solme's key and the link's id at each claim (see src/store/portal.rs), so a gateway
-- that crashed after staging gets the same link again. `used_at` makes it single-use:
-- the sign-in is one conditional UPDATE ... WHERE used_at IS NULL.
CREATE TABLE portal_links (
    id          TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    email       TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    handed_at   BIGINT,
    used_at     BIGINT
);
CREATE INDEX portal_links_unhanded ON portal_links (handed_at, created_at);

-- A session lasts 8 hours from sign-in, and only while its address is still a
-- registered contact of its customer (checked on every request).
CREATE TABLE portal_sessions (
    secret_hash TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    email       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);

-- Every link request, known address or not (so the limits answer alike), for the
-- per-address and per-client-address rate limits across replicas. The address is
-- kept as its SHA-256 only: an unknown address someone typed is nobody's business.
CREATE TABLE portal_link_requests (
    id           TEXT PRIMARY KEY NOT NULL,
    address_hash TEXT NOT NULL,
    peer         TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX portal_link_requests_address ON portal_link_requests (address_hash, at);
CREATE INDEX portal_link_requests_peer ON portal_link_requests (peer, at);
