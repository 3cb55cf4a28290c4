-- PostgreSQL compares text by the database's locale, in which the names starting with
-- a prefix need not lie between the prefix and its successor (punctuation and spaces
-- weigh little there). The customer list's key is therefore compared byte by byte
-- (`COLLATE "C"`), as SQLite does, whatever the locale: a prefix search is then one
-- range of this index.
DROP INDEX customers_name;
CREATE INDEX customers_name ON customers ((lower(name) COLLATE "C"), id);
