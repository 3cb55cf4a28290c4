//! The armor decoder on its own, for both kinds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_proto::armor::{decode, ArmorKind};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode(text, ArmorKind::SyncData);
        let _ = decode(text, ArmorKind::LicenseFile);
    }
});
