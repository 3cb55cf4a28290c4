DROP TABLE reported_borrows;
