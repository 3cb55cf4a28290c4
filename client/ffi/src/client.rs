//! The client handle: made from a server list and an identity, it checks seats out.
//! It wraps the blocking interface of `solme-client`, whose own thread runs the
//! requests and every lease's heartbeats.

use std::ffi::c_char;
use std::time::Duration;

use solme_client::{blocking, Identity, Options, Url};

use crate::guard::{self, call};
use crate::lease::SolmeLease;
use crate::status::{Failure, SolmeStatus};

/// A license client: the servers to ask, in order, and who asks. Safe to use from
/// several threads at once.
pub struct SolmeClient {
    inner: blocking::Client,
}

/// Makes a client of `servers` (a comma-separated list of `http://` or `https://`
/// addresses, tried in that order: primary, then standby) for the program named
/// `client`, run by `user` on `host`. `user` and `host` may be NULL: then the user is
/// taken from `USER` (or `LOGNAME`) and the host is this machine's name. Starts the
/// library's background thread; contacts no server yet.
///
/// On success `*client_out` is the new handle, to be freed with `solme_client_free`;
/// on failure it is NULL.
///
/// # Safety
/// `servers`, `client`, `user` and `host` are NULL or NUL-terminated strings;
/// `client_out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn solme_client_new(
    servers: *const c_char,
    client: *const c_char,
    user: *const c_char,
    host: *const c_char,
    client_out: *mut *mut SolmeClient,
) -> SolmeStatus {
    call(|| {
        // SAFETY: the pointers are as this function's contract says.
        let (out, servers, client, user, host) = unsafe {
            (
                guard::out(client_out, std::ptr::null_mut(), "client_out")?,
                guard::text(servers, "servers")?,
                guard::text(client, "client")?,
                guard::optional_text(user, "user")?,
                guard::optional_text(host, "host")?,
            )
        };
        let servers = server_list(servers)?;
        let found = Identity::from_environment(client);
        let identity = Identity {
            client: found.client,
            user: user.map_or(found.user, str::to_owned),
            host: host.map_or(found.host, str::to_owned),
        };
        let inner = blocking::Client::new(servers, identity)?;
        *out = Box::into_raw(Box::new(SolmeClient { inner }));
        Ok(())
    })
}

/// `a, b` → the two addresses; an empty list or a word that is no URL is refused with
/// the word named.
fn server_list(text: &str) -> Result<Vec<Url>, Failure> {
    text.split(',')
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .map(|word| {
            word.parse().map_err(|_| {
                Failure::invalid(format!(
                    "{word} is not a license server address (such as http://licenses.example:7070)"
                ))
            })
        })
        .collect()
}

/// Checks a seat of `feature` out. With `wait_seconds` above 0, waits up to that long
/// in the feature's queue when no seat is free (otherwise a full feature is
/// `SOLME_STATUS_NO_SEATS` at once); with `borrow_hours` above 0, borrows the seat for
/// offline use (a borrow token, no heartbeats). Blocks until the seat is given or
/// refused.
///
/// On success `*lease_out` is the lease, kept alive by heartbeats in the background
/// until `solme_lease_release` or `solme_lease_free`; on failure it is NULL and
/// `solme_last_error_message` says why (a refusal names the server's code).
///
/// # Safety
/// `client` is NULL or a live client handle; `feature` is NULL or a NUL-terminated
/// string; `lease_out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn solme_checkout(
    client: *const SolmeClient,
    feature: *const c_char,
    wait_seconds: u32,
    borrow_hours: u32,
    lease_out: *mut *mut SolmeLease,
) -> SolmeStatus {
    call(|| {
        // SAFETY: the pointers are as this function's contract says.
        let (out, client, feature) = unsafe {
            (
                guard::out(lease_out, std::ptr::null_mut(), "lease_out")?,
                guard::handle(client, "client")?,
                guard::text(feature, "feature")?,
            )
        };
        let options = Options {
            wait: (wait_seconds > 0).then(|| Duration::from_secs(wait_seconds.into())),
            borrow_hours: (borrow_hours > 0).then_some(borrow_hours),
        };
        let lease = client.inner.checkout(feature, options)?;
        *out = Box::into_raw(Box::new(SolmeLease::new(lease)));
        Ok(())
    })
}

/// Frees a client. Its leases stay valid (each is freed on its own); the background
/// thread ends when the client and all its leases are freed. NULL is allowed.
///
/// # Safety
/// `client` is NULL or a live client handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn solme_client_free(client: *mut SolmeClient) {
    guard::call_void(|| {
        if !client.is_null() {
            // SAFETY: made by Box::into_raw in solme_client_new, freed only here.
            drop(unsafe { Box::from_raw(client) });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_list_is_comma_separated_and_every_word_must_be_an_address() {
        let list = server_list("http://a.example:7070, http://b.example:7070,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].as_str(), "http://b.example:7070/");
        let err = server_list("http://a.example, b.example").unwrap_err();
        assert_eq!(err.status, SolmeStatus::InvalidArgument);
        assert!(
            err.message.starts_with("b.example is not"),
            "{}",
            err.message
        );
    }
}
