-- Every UPDATE that moves an id's sequence issues a license file of the id's revision
-- at that moment: keep that revision in servers.issued_revision. A trigger, so
-- solme_issue_syncs (whichever migration last wrote it) needs no change for it.
CREATE FUNCTION solme_keep_issued_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.issued_revision := NEW.revision;
    RETURN NEW;
END;
$$;

CREATE TRIGGER servers_issued_revision
    BEFORE UPDATE OF sequence ON servers
    FOR EACH ROW
    WHEN (NEW.sequence IS DISTINCT FROM OLD.sequence)
    EXECUTE FUNCTION solme_keep_issued_revision();
