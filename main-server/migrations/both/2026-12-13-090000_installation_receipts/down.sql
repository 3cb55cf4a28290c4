DROP TABLE installation_receipts;
