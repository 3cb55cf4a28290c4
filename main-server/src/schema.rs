//! Diesel table definitions, written to match `migrations/both/*/up.sql` (both dialects
//! declare the same columns; timestamps are BIGINT Unix milliseconds).

diesel::table! {
    customers (id) {
        id -> Text,
        name -> Text,
        created_at -> BigInt,
        reminders_enabled -> Bool,
        copy_policy -> Text,
    }
}

diesel::table! {
    customer_emails (customer_id, email) {
        customer_id -> Text,
        email -> Text,
    }
}

diesel::table! {
    servers (id) {
        id -> Text,
        customer_id -> Text,
        revision -> BigInt,
        sequence -> BigInt,
        bound_fingerprint -> Nullable<Text>,
        bound_at -> Nullable<BigInt>,
        last_sync_at -> Nullable<BigInt>,
        last_sync_channel -> Nullable<Text>,
        valid_until -> Nullable<BigInt>,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
        possible_copy_since -> Nullable<BigInt>,
        issued_revision -> Nullable<BigInt>,
        standby_fingerprint -> Nullable<Text>,
        standby_registered_at -> Nullable<BigInt>,
        failover_days -> Integer,
    }
}

diesel::table! {
    licenses (id) {
        id -> Text,
        server_id -> Text,
        feature -> Text,
        seats -> Integer,
        valid_from -> Nullable<BigInt>,
        valid_until -> Nullable<BigInt>,
        created_at -> BigInt,
        max_borrow_hours -> Nullable<Integer>,
    }
}

diesel::table! {
    used_requests (request_id) {
        request_id -> Text,
        server_id -> Text,
        created_at -> BigInt,
        used_at -> BigInt,
        fingerprint -> Nullable<Text>,
        answer -> Nullable<Text>,
    }
}

diesel::table! {
    key_clear_requests (id) {
        id -> Text,
        server_id -> Text,
        sender -> Text,
        message_id -> Text,
        text -> Text,
        status -> Text,
        created_at -> BigInt,
        decided_at -> Nullable<BigInt>,
        operator -> Nullable<Text>,
        reason -> Nullable<Text>,
        notified -> Bool,
        sender_auth -> Text,
        sender_auth_detail -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        server_id -> Nullable<Text>,
        outcome -> Text,
        detail -> Text,
        chain_seq -> Nullable<BigInt>,
        entry_hash -> Nullable<Text>,
        prev_hash -> Nullable<Text>,
    }
}

diesel::table! {
    audit_verified (id) {
        id -> Integer,
        verified_seq -> BigInt,
        verified_hash -> Text,
        verified_at -> BigInt,
        broken_seq -> Nullable<BigInt>,
        broken_message -> Nullable<Text>,
        broken_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sync_usage (server_id, sequence) {
        server_id -> Text,
        sequence -> BigInt,
        synced_at -> BigInt,
        channel -> Text,
        usage_since -> Nullable<BigInt>,
        features -> Text,
    }
}

diesel::table! {
    reminders (id) {
        id -> Text,
        server_id -> Text,
        threshold -> Text,
        valid_until -> BigInt,
        state -> Text,
        created_at -> BigInt,
        handed_at -> Nullable<BigInt>,
        recipients -> Text,
    }
}

diesel::table! {
    operators (name) {
        name -> Text,
        role -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    console_sessions (secret_hash) {
        secret_hash -> Text,
        operator -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    portal_links (id) {
        id -> Text,
        customer_id -> Text,
        email -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        handed_at -> Nullable<BigInt>,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    portal_sessions (secret_hash) {
        secret_hash -> Text,
        customer_id -> Text,
        email -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    portal_link_requests (id) {
        id -> Text,
        address_hash -> Text,
        peer -> Text,
        at -> BigInt,
    }
}

diesel::joinable!(customer_emails -> customers (customer_id));
diesel::joinable!(servers -> customers (customer_id));
diesel::joinable!(licenses -> servers (server_id));
diesel::joinable!(key_clear_requests -> servers (server_id));
diesel::joinable!(reminders -> servers (server_id));
diesel::joinable!(console_sessions -> operators (operator));
diesel::joinable!(portal_links -> customers (customer_id));
diesel::joinable!(portal_sessions -> customers (customer_id));

diesel::table! {
    sync_history (server_id, issued_sequence) {
        server_id -> Text,
        issued_sequence -> BigInt,
        fingerprint -> Text,
        created_at -> BigInt,
        seen_at -> BigInt,
        channel -> Text,
        request_counter -> Nullable<BigInt>,
        held_sequence -> Nullable<BigInt>,
        held_file_sha256 -> Nullable<Text>,
    }
}

diesel::joinable!(sync_history -> servers (server_id));

diesel::table! {
    installation_receipts (server_id, sequence) {
        server_id -> Text,
        sequence -> BigInt,
        revision -> BigInt,
        file_sha256 -> Text,
        installed_at -> BigInt,
        received_at -> BigInt,
        channel -> Text,
        sender -> Text,
        fingerprint -> Text,
    }
}

diesel::joinable!(installation_receipts -> servers (server_id));

diesel::allow_tables_to_appear_in_same_query!(
    customers,
    installation_receipts,
    sync_history,
    customer_emails,
    servers,
    licenses,
    used_requests,
    key_clear_requests,
    audit_log,
    sync_usage,
    reminders,
    operators,
    console_sessions,
    portal_links,
    portal_sessions,
    portal_link_requests,
);
