DROP TABLE pairing_codes;
DROP TABLE pair_news;
DROP TRIGGER pair_state_changed;
DROP TRIGGER pair_inserted;
DROP TABLE pair;
