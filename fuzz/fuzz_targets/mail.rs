//! Inbound mail as the gateway receives it: any bytes, classified the way the
//! worker does (parsing, automatic-mail checks, sync data and key-clear search),
//! and the sender check of its `Authentication-Results` headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_gateway::classify::message::classify;
use mail_gateway::classify::sender_auth;
use mail_gateway::vocabulary::{Envelope, Intake};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the envelope facts that change the path taken.
    let (flags, raw) = match data.split_first() {
        Some((flags, raw)) => (*flags, raw),
        None => (0, data),
    };
    let envelope = Envelope {
        return_path: match flags & 3 {
            0 => None,
            1 => Some(String::new()),
            _ => Some("ops@acme.example".into()),
        },
        recipients: vec!["licensing@solme.example".into()],
        received_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        intake: Intake::Smtp,
        size: raw.len() as u64,
        truncated: flags & 4 != 0,
    };
    let _ = classify(raw, &envelope, "licensing@solme.example", 2 * 1024 * 1024);
    // Mail an MTA handed over is the path whose headers are read at all.
    let _ = sender_auth::check(raw, Intake::Deliver, Some("mx.solme.example"), "ops@acme.example");
});
