DROP TABLE inherited_borrows;
