DROP TABLE audit_verified;
DROP INDEX audit_log_customer;
DROP INDEX audit_log_failed_code;
DROP INDEX audit_log_failed;
DROP INDEX audit_log_action;
DROP INDEX audit_log_actor;
DROP INDEX audit_log_server;
DROP INDEX audit_log_at;
