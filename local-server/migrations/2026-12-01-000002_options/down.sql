DROP TRIGGER options_updated;
DROP TRIGGER options_inserted;
DROP TABLE options;
