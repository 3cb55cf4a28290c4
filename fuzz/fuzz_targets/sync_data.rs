//! Sync data as the main server and the mail gateway receive it: any text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = shared_proto::sync_data::open(text);
    }
});
