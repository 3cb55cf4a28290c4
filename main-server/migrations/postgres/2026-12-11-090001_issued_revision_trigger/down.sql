DROP TRIGGER servers_issued_revision ON servers;
DROP FUNCTION solme_keep_issued_revision();
