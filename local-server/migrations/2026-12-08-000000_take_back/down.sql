ALTER TABLE report_log DROP COLUMN reason;
ALTER TABLE report_log DROP COLUMN actor;
DROP TRIGGER taken_back_inserted;
DROP TABLE taken_back;
