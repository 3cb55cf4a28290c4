-- The customer list pages by name ignoring case, then id, and its name search looks
-- for a prefix of that lower-cased name (`store/customers.rs`): one index answers the
-- order, the keyset cursor and the search's range, so a page costs the same at a
-- hundred thousand customers as at ten. SQLite compares it byte by byte (BINARY);
-- PostgreSQL gets the same order from its own migration after this one.
CREATE INDEX customers_name ON customers (lower(name), id);
