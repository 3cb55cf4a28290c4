DROP FUNCTION solme_issue_syncs(TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[], BIGINT[], BIGINT[], TEXT[], TEXT[]);
