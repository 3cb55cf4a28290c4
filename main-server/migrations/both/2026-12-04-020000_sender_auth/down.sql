ALTER TABLE key_clear_requests DROP COLUMN sender_auth_detail;
ALTER TABLE key_clear_requests DROP COLUMN sender_auth;
