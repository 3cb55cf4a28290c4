-- The options file in force (reservations and limits), as `options apply` accepted it.
CREATE TABLE options (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    text TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);
CREATE TRIGGER options_inserted AFTER INSERT ON options
BEGIN UPDATE changes SET generation = generation + 1; END;
CREATE TRIGGER options_updated AFTER UPDATE ON options
BEGIN UPDATE changes SET generation = generation + 1; END;
