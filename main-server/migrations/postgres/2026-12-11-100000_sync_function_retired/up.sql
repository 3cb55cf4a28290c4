-- The sync function again (see `sync_function` and `sync_function_copies`), now also
-- refusing a retired id: SERVER_RETIRED, changing nothing, read after the id's row lock.
-- Before, the writer read the group's retired ids just before calling the function, so
-- a retire committed between that read and the row lock let one last sync through;
-- retiring updates the row, so here the lock waits for it and the check sees it.
-- `o_retired_at` says since when, for the refusal's words.
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
    p_detail      TEXT[],
    p_counter     BIGINT[],
    p_held        BIGINT[],
    p_held_hash   TEXT[]
) RETURNS TABLE (
    o_index     INTEGER,
    o_outcome   TEXT,
    o_sequence  BIGINT,
    o_revision  BIGINT,
    o_customer  TEXT,
    o_bound_now BOOLEAN,
    o_licenses  TEXT,
    o_marked_copy BOOLEAN,
    o_retired_at BIGINT
) LANGUAGE plpgsql AS $$
DECLARE
    v_bound    TEXT;
    v_customer TEXT;
    v_marked   BIGINT;
    v_policy   TEXT;
    v_back     BIGINT;
    v_evidence TEXT;
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
        o_marked_copy := FALSE;
        o_retired_at := NULL;
        SELECT s.bound_fingerprint, s.customer_id, s.possible_copy_since, s.retired_at
            INTO v_bound, v_customer, v_marked, o_retired_at
            FROM servers s WHERE s.id = p_server_id[o_index] FOR UPDATE;
        IF NOT FOUND THEN
            o_outcome := 'UNKNOWN_SERVER_ID';
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF o_retired_at IS NOT NULL THEN
            o_outcome := 'SERVER_RETIRED';
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF v_bound IS NOT NULL AND v_bound <> p_fingerprint[o_index] THEN
            o_outcome := 'ID_IN_USE';
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF v_marked IS NOT NULL THEN
            SELECT c.copy_policy INTO v_policy FROM customers c WHERE c.id = v_customer;
            IF v_policy = 'refuse' THEN
                o_outcome := 'POSSIBLE_COPY';
                RETURN NEXT;
                CONTINUE;
            END IF;
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
        -- The sync's history and the possible-copy rule (src/store/copies.rs, whose
        -- `GOING_BACK` query and `evidence` words these repeat).
        INSERT INTO sync_history (server_id, issued_sequence, fingerprint, created_at,
                                  seen_at, channel, request_counter, held_sequence,
                                  held_file_sha256)
            VALUES (p_server_id[o_index], o_sequence, p_fingerprint[o_index],
                    p_created_at[o_index], p_now[o_index], p_channel[o_index],
                    p_counter[o_index], p_held[o_index], p_held_hash[o_index]);
        DELETE FROM sync_history h WHERE h.server_id = p_server_id[o_index]
            AND h.seen_at < p_now[o_index] - 90::BIGINT * 86400000;
        IF v_marked IS NULL THEN
            SELECT COUNT(*) INTO v_back FROM (
                SELECT h.request_counter AS c, h.held_sequence AS s,
                       LAG(h.request_counter) OVER (ORDER BY h.created_at, h.issued_sequence) AS pc,
                       LAG(h.held_sequence) OVER (ORDER BY h.created_at, h.issued_sequence) AS ps
                FROM sync_history h
                WHERE h.server_id = p_server_id[o_index] AND h.fingerprint = p_fingerprint[o_index]
            ) t WHERE t.c <= t.pc OR t.s < t.ps;
            IF v_back >= 2 THEN
                UPDATE servers s SET possible_copy_since = p_now[o_index]
                    WHERE s.id = p_server_id[o_index];
                SELECT string_agg(
                        '[counter ' || COALESCE(t.request_counter::TEXT, 'not sent') || ', '
                        || CASE WHEN t.held_sequence IS NULL THEN 'no license file held'
                                ELSE 'held sequence ' || t.held_sequence
                                     || COALESCE(' (file ' || substr(t.held_file_sha256, 1, 12) || ')', '')
                           END
                        || ', ' || t.channel
                        || ', made ' || to_char(to_timestamp(t.created_at / 1000) AT TIME ZONE 'UTC',
                                                'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                        || ', answered with sequence ' || t.issued_sequence || ']',
                        '; ' ORDER BY t.created_at, t.issued_sequence)
                    INTO v_evidence
                    FROM (SELECT * FROM sync_history h
                          WHERE h.server_id = p_server_id[o_index]
                            AND h.fingerprint = p_fingerprint[o_index]
                          ORDER BY h.created_at DESC, h.issued_sequence DESC LIMIT 8) t;
                INSERT INTO audit_log (at, actor, action, server_id, outcome, detail)
                    VALUES (p_now[o_index], p_actor[o_index], 'server.possible_copy',
                            p_server_id[o_index], 'OK',
                            'two installations seem to synchronize with key '
                            || p_fingerprint[o_index] || ': ordered by the time they were '
                            || 'made, this key pair''s requests went back ' || v_back
                            || ' times (a request counter not above the one before, or an '
                            || 'older license file held; once is a restored backup). Latest '
                            || 'requests, oldest first: ' || v_evidence);
                o_marked_copy := TRUE;
            END IF;
        END IF;
        o_outcome := 'OK';
        RETURN NEXT;
    END LOOP;
END
$$;
