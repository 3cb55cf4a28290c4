-- The longest borrow a license allows, in hours (NULL: not borrowable), from the
-- license file.
ALTER TABLE licenses ADD COLUMN max_borrow_hours INTEGER;
