-- The longest a client may borrow a seat of this license for offline use, in hours
-- (NULL: not borrowable). Carried in the license file.
ALTER TABLE licenses ADD COLUMN max_borrow_hours INTEGER;
