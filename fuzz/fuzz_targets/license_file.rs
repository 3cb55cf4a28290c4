//! License files as a local server imports them: any text, for a fixed identity.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shared_proto::{ServerIdentity, SolmeSigningKey};

struct Keys {
    server: ServerIdentity,
    solme: SolmeSigningKey,
}

fn keys() -> Option<&'static Keys> {
    static KEYS: OnceLock<Option<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Some(Keys {
            server: ServerIdentity::generate().ok()?,
            solme: SolmeSigningKey::generate().ok()?,
        })
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    if let (Ok(text), Some(keys)) = (std::str::from_utf8(data), keys()) {
        let _ = shared_proto::license_file::open(
            text,
            &keys.server,
            &keys.solme.public_key(),
            uuid::Uuid::nil(),
        );
        let _ = shared_proto::license_file::peek_headers(text);
    }
});

