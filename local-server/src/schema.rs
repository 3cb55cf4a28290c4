//! Diesel table definitions, kept in step with `migrations/` (the `schema_matches`
//! test loads every column of every table through them).

diesel::table! {
    config (id) {
        id -> Integer,
        server_id -> Text,
        endpoints -> Text,
        solme_public_pem -> Text,
        ca_pem -> Text,
        proxy -> Nullable<Text>,
        auto_sync -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    sync_state (id) {
        id -> Integer,
        sequence -> Nullable<BigInt>,
        revision -> Nullable<BigInt>,
        customer -> Nullable<Text>,
        issued_at -> Nullable<BigInt>,
        valid_until -> Nullable<BigInt>,
        last_sync_at -> Nullable<BigInt>,
        last_sync_channel -> Nullable<Text>,
        clock_high_water -> Nullable<BigInt>,
        last_attempt_at -> Nullable<BigInt>,
        last_attempt_error -> Nullable<Text>,
        consecutive_failures -> Integer,
        last_contact_at -> Nullable<BigInt>,
        next_auto_sync_at -> Nullable<BigInt>,
        sync_lock_until -> Nullable<BigInt>,
        sync_lock_owner -> Nullable<Text>,
    }
}

diesel::table! {
    licenses (id) {
        id -> Integer,
        feature -> Text,
        seats -> Integer,
        valid_from -> Nullable<BigInt>,
        valid_until -> Nullable<BigInt>,
        max_borrow_hours -> Nullable<Integer>,
    }
}

diesel::table! {
    leases (id) {
        id -> Text,
        feature -> Text,
        client -> Text,
        granted_at -> BigInt,
        expires_at -> BigInt,
        user -> Text,
        host -> Text,
        borrowed -> Bool,
    }
}

diesel::table! {
    changes (id) {
        id -> Integer,
        generation -> BigInt,
    }
}

diesel::table! {
    report_log (id) {
        id -> Integer,
        at -> BigInt,
        event -> Text,
        feature -> Text,
        user -> Text,
        host -> Text,
        lease_id -> Nullable<Text>,
        code -> Nullable<Text>,
        in_use -> Integer,
        wait_ms -> Nullable<BigInt>,
        actor -> Nullable<Text>,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    usage_peaks (feature) {
        feature -> Text,
        peak_in_use -> Integer,
    }
}

diesel::table! {
    options (id) {
        id -> Integer,
        text -> Text,
        applied_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    config,
    sync_state,
    licenses,
    leases,
    usage_peaks,
    changes,
    report_log,
    options,
);

diesel::table! {
    usage_reported (id) {
        id -> Integer,
        until -> BigInt,
    }
}

diesel::table! {
    taken_back (lease_id) {
        lease_id -> Text,
        feature -> Text,
        user -> Text,
        host -> Text,
        borrowed -> Bool,
        taken_at -> BigInt,
        actor -> Text,
        reason -> Nullable<Text>,
        applied_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sync_history (id) {
        id -> Integer,
        requests_made -> BigInt,
        held_file_sha256 -> Nullable<Text>,
    }
}

diesel::table! {
    pair (id) {
        id -> Integer,
        role -> Text,
        state -> Text,
        epoch -> BigInt,
        peer_keys -> Text,
        peer_address -> Nullable<Text>,
        paired_at -> BigInt,
        interval_ms -> Nullable<BigInt>,
        waiting_until -> Nullable<BigInt>,
        promoted_at -> Nullable<BigInt>,
        promoted_by -> Nullable<Text>,
        promoted_reason -> Nullable<Text>,
        failover_sequence -> Nullable<BigInt>,
        failover_started_at -> Nullable<BigInt>,
        failover_days -> Nullable<BigInt>,
        license_file -> Nullable<Binary>,
    }
}

diesel::table! {
    pair_news (id) {
        id -> Integer,
        last_heard_at -> Nullable<BigInt>,
        last_heard_state -> Nullable<Text>,
        clock_offset_ms -> Nullable<BigInt>,
        clock_round_trip_ms -> Nullable<BigInt>,
        clock_measured_at -> Nullable<BigInt>,
        peer_counter -> BigInt,
        own_counter -> BigInt,
        overlap_detected_at -> Nullable<BigInt>,
        overlap_detail -> Nullable<Text>,
        handed_back_at -> Nullable<BigInt>,
        handed_back_entries -> Nullable<BigInt>,
    }
}

diesel::table! {
    pairing_codes (code_sha256) {
        code_sha256 -> Text,
        expires_at -> BigInt,
    }
}
