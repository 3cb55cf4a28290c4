ALTER TABLE licenses DROP COLUMN max_borrow_hours;
