DROP FUNCTION solme_issue_syncs(TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[], BIGINT[], BIGINT[],
                                TEXT[], TEXT[], BIGINT[], BIGINT[], TEXT[]);
CREATE FUNCTION solme_issue_syncs(
    p_server_id   TEXT[],
    p_request_id  TEXT[],
    p_created_at  BIGINT[],
    p_fingerprint TEXT[],
    p_channel     TEXT[],
    p_now         BIGINT[],
    p_valid_until BIGINT[],
    p_actor       TEXT[],
    p_detail      TEXT[]
) RETURNS TABLE (
    o_index     INTEGER,
    o_outcome   TEXT,
    o_sequence  BIGINT,
    o_revision  BIGINT,
    o_customer  TEXT,
    o_bound_now BOOLEAN,
    o_licenses  TEXT
) LANGUAGE plpgsql AS $$
DECLARE
    v_bound    TEXT;
    v_customer TEXT;
BEGIN
    FOR o_index IN
        SELECT a.i FROM generate_subscripts(p_server_id, 1) AS a (i)
        ORDER BY p_server_id[a.i], a.i
    LOOP
        o_sequence := NULL;
        o_revision := NULL;
        o_customer := NULL;
        o_bound_now := FALSE;
        o_licenses := NULL;
        SELECT s.bound_fingerprint, s.customer_id INTO v_bound, v_customer
            FROM servers s WHERE s.id = p_server_id[o_index] FOR UPDATE;
        IF NOT FOUND THEN
            o_outcome := 'UNKNOWN_SERVER_ID';
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF v_bound IS NOT NULL AND v_bound <> p_fingerprint[o_index] THEN
            o_outcome := 'ID_IN_USE';
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO used_requests (request_id, server_id, created_at, used_at)
            VALUES (p_request_id[o_index], p_server_id[o_index], p_created_at[o_index],
                    p_now[o_index])
            ON CONFLICT (request_id) DO NOTHING;
        IF NOT FOUND THEN
            o_outcome := 'REPLAYED_REQUEST';
            RETURN NEXT;
            CONTINUE;
        END IF;
        o_bound_now := v_bound IS NULL;
        UPDATE servers s SET
                sequence = s.sequence + 1,
                bound_fingerprint = p_fingerprint[o_index],
                bound_at = CASE WHEN o_bound_now THEN p_now[o_index] ELSE s.bound_at END,
                last_sync_at = p_now[o_index],
                last_sync_channel = p_channel[o_index],
                valid_until = p_valid_until[o_index]
            WHERE s.id = p_server_id[o_index]
            RETURNING s.sequence, s.revision INTO o_sequence, o_revision;
        SELECT c.name INTO o_customer FROM customers c WHERE c.id = v_customer;
        SELECT COALESCE(json_agg(l ORDER BY l.feature), '[]')::TEXT INTO o_licenses
            FROM licenses l WHERE l.server_id = p_server_id[o_index];
        -- The same words as the SQLite path's entry (src/store/sync.rs, `accepted_detail`).
        INSERT INTO audit_log (at, actor, action, server_id, outcome, detail)
            VALUES (p_now[o_index], p_actor[o_index], 'sync', p_server_id[o_index], 'OK',
                    p_detail[o_index] || ', issued sequence ' || o_sequence || ' of revision '
                        || o_revision || CASE WHEN o_bound_now THEN ', key bound now' ELSE '' END);
        o_outcome := 'OK';
        RETURN NEXT;
    END LOOP;
END
$$;
