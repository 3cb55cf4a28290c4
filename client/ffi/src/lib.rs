#![doc = include_str!("../README.md")]
//!
//! ## Modules
//! - `guard`: the boundary's rules (no panic crosses it, every pointer checked).
//! - `status`: the status numbers, their names, the thread's last error message.
//! - `client`, `lease`: the two handles and their functions.
//!
//! Architecture invariant: nothing here talks to a server or keeps a lease itself;
//! all of that is `solme-client`'s blocking interface, so the C interface and the Rust
//! library cannot behave differently.

mod client;
mod guard;
mod lease;
mod status;

use std::ffi::c_char;

pub use client::{solme_checkout, solme_client_free, solme_client_new, SolmeClient};
pub use lease::{
    solme_lease_borrow_token, solme_lease_check, solme_lease_expires_at, solme_lease_free,
    solme_lease_id, solme_lease_release, SolmeLease,
};
pub use status::SolmeStatus;

/// The message of the last call on this thread that failed, written for people
/// (a refusal names the server's code); NULL if none has. Borrowed: valid until the
/// next call into the library on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn solme_last_error_message() -> *const c_char {
    std::panic::catch_unwind(status::last_message).unwrap_or(std::ptr::null())
}

/// The name of a status: the server's code for a refusal (`"FEATURE_UNKNOWN"`), else
/// this library's (`"OK"`, `"UNREACHABLE"`, `"INVALID_ARGUMENT"`, …);
/// `"UNKNOWN_STATUS"` for a number that is none. Static: never freed.
#[no_mangle]
pub extern "C" fn solme_status_name(status: i32) -> *const c_char {
    std::panic::catch_unwind(|| status::name(status))
        .ok()
        .flatten()
        .unwrap_or(c"UNKNOWN_STATUS")
        .as_ptr()
}

/// Frees a string the library gave (a lease id, a borrow token). NULL is allowed.
///
/// # Safety
/// `text` is NULL or a string this library returned as the caller's to free, not
/// freed before.
#[no_mangle]
pub unsafe extern "C" fn solme_string_free(text: *mut c_char) {
    guard::call_void(|| {
        if !text.is_null() {
            // SAFETY: made by CString::into_raw (guard::owned_string), freed only here.
            drop(unsafe { std::ffi::CString::from_raw(text) });
        }
    });
}

// Both handles are used from any thread of the calling program.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<SolmeClient>();
    send_and_sync::<SolmeLease>();
};
