DROP INDEX customers_name;
CREATE INDEX customers_name ON customers (lower(name), id);
