DROP TABLE audit_log;
DROP TABLE key_clear_requests;
DROP TABLE used_requests;
DROP TABLE licenses;
DROP TABLE servers;
DROP TABLE customer_emails;
DROP TABLE customers;
