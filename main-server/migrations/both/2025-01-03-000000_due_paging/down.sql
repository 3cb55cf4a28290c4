CREATE INDEX servers_valid_until ON servers (valid_until);
DROP INDEX servers_due;
