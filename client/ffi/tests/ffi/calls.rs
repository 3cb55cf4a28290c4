//! The functions called through the C ABI, as a C program calls them: NULL
//! arguments, borrowing, releasing twice, a seat lost in the background.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use solme_client_ffi::*;

use crate::helpers::*;

fn last_error() -> String {
    let message = solme_last_error_message();
    assert!(!message.is_null());
    // SAFETY: the library's message, alive until the next call on this thread.
    unsafe { CStr::from_ptr(message) }
        .to_str()
        .unwrap()
        .to_owned()
}

fn name(status: SolmeStatus) -> &'static str {
    // SAFETY: status names are static C strings.
    unsafe { CStr::from_ptr(solme_status_name(status as i32)) }
        .to_str()
        .unwrap()
}

/// A string the library gave, copied and freed.
fn take(text: *mut c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: a live string of the library's, freed once, here.
    let copy = unsafe { CStr::from_ptr(text) }.to_str().unwrap().to_owned();
    // SAFETY: as above.
    unsafe { solme_string_free(text) };
    Some(copy)
}

fn client(url: &url::Url) -> *mut SolmeClient {
    let servers = CString::new(url.as_str()).unwrap();
    let mut client = null_mut();
    // SAFETY: C strings and an out-pointer that live through the call.
    let status = unsafe {
        solme_client_new(
            servers.as_ptr(),
            c"ffi tests".as_ptr(),
            c"alice".as_ptr(),
            c"test-host".as_ptr(),
            &mut client,
        )
    };
    assert_eq!(status, SolmeStatus::Ok, "{}", last_error());
    client
}

fn checkout(client: *const SolmeClient, feature: &CStr, borrow_hours: u32) -> *mut SolmeLease {
    let mut lease = null_mut();
    // SAFETY: a live client, a C string, an out-pointer.
    let status = unsafe { solme_checkout(client, feature.as_ptr(), 0, borrow_hours, &mut lease) };
    assert_eq!(status, SolmeStatus::Ok, "{}", last_error());
    lease
}

fn lease_id(lease: *const SolmeLease) -> String {
    let mut id = null_mut();
    // SAFETY: a live lease, an out-pointer.
    assert_eq!(unsafe { solme_lease_id(lease, &mut id) }, SolmeStatus::Ok);
    take(id).unwrap()
}

#[test]
fn null_arguments_are_refused_with_their_name_and_frees_accept_null() {
    let mut client = null_mut();
    let mut lease = null_mut();
    let mut id = null_mut();
    let mut expires_at = 7;
    // SAFETY: NULL where the library must check it; valid out-pointers otherwise.
    unsafe {
        let status = solme_client_new(null(), c"x".as_ptr(), null(), null(), &mut client);
        assert_eq!(status, SolmeStatus::InvalidArgument);
        assert_eq!(last_error(), "servers is NULL");
        assert!(client.is_null());

        let status = solme_client_new(
            c"http://127.0.0.1:9".as_ptr(),
            c"x".as_ptr(),
            null(),
            null(),
            null_mut(),
        );
        assert_eq!(status, SolmeStatus::InvalidArgument);
        assert_eq!(last_error(), "client_out is NULL");

        let status = solme_client_new(c" , ".as_ptr(), c"x".as_ptr(), null(), null(), &mut client);
        assert_eq!(status, SolmeStatus::InvalidArgument);
        assert_eq!(last_error(), "no license server given");

        let status = solme_checkout(null(), c"cad".as_ptr(), 0, 0, &mut lease);
        assert_eq!(status, SolmeStatus::InvalidArgument);
        assert_eq!(last_error(), "client is NULL");
        assert!(lease.is_null());

        assert_eq!(
            solme_lease_id(null(), &mut id),
            SolmeStatus::InvalidArgument
        );
        assert!(id.is_null());
        assert_eq!(
            solme_lease_expires_at(null(), &mut expires_at),
            SolmeStatus::InvalidArgument
        );
        assert_eq!(expires_at, 0);
        assert_eq!(solme_lease_check(null()), SolmeStatus::InvalidArgument);
        assert_eq!(solme_lease_release(null()), SolmeStatus::InvalidArgument);
        assert_eq!(last_error(), "lease is NULL");

        solme_client_free(null_mut());
        solme_lease_free(null_mut());
        solme_string_free(null_mut());
    }
    assert_eq!(name(SolmeStatus::InvalidArgument), "INVALID_ARGUMENT");
    assert_eq!(name(SolmeStatus::NoSeats), "NO_SEATS");
    // SAFETY: a static string.
    let unknown = unsafe { CStr::from_ptr(solme_status_name(99)) };
    assert_eq!(unknown, c"UNKNOWN_STATUS");
}

#[test]
fn a_refusal_is_the_servers_code_and_a_released_lease_is_read_but_not_released_again() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let client = client(&server.url());
    let lease = checkout(client, c"cad", 0);
    let id = lease_id(lease);

    let mut second = null_mut();
    // SAFETY: live handles, C strings, out-pointers; each handle freed once.
    unsafe {
        let status = solme_checkout(client, c"cad".as_ptr(), 0, 0, &mut second);
        assert_eq!(status, SolmeStatus::NoSeats);
        assert!(last_error().contains("NO_SEATS"), "{}", last_error());
        assert!(second.is_null());

        let mut token = null_mut();
        assert_eq!(solme_lease_borrow_token(lease, &mut token), SolmeStatus::Ok);
        assert!(token.is_null(), "not a borrow");
        assert_eq!(solme_lease_check(lease), SolmeStatus::Ok);

        assert_eq!(solme_lease_release(lease), SolmeStatus::Ok);
        assert_eq!(server.in_use("cad"), 0);
        assert_eq!(lease_id(lease), id, "still readable after the release");
        assert_eq!(solme_lease_release(lease), SolmeStatus::InvalidArgument);
        assert_eq!(last_error(), "the lease was already released");
        assert_eq!(solme_lease_check(lease), SolmeStatus::InvalidArgument);

        solme_lease_free(lease);
        solme_client_free(client);
    }
}

#[test]
fn a_borrowed_seat_has_a_token_that_verifies_and_stays_out_when_freed() {
    let server = Server::serving(vec![borrowable("cad", 2, 48)], &[]);
    let client = client(&server.url());
    let lease = checkout(client, c"cad", 8);
    let mut token = null_mut();
    let mut expires_at = 0;
    // SAFETY: a live lease, out-pointers.
    unsafe {
        assert_eq!(solme_lease_borrow_token(lease, &mut token), SolmeStatus::Ok);
        assert_eq!(
            solme_lease_expires_at(lease, &mut expires_at),
            SolmeStatus::Ok
        );
    }
    let token = take(token).unwrap();
    let key = solme_client::blocking::Client::new(vec![server.url()], identity("bob"))
        .unwrap()
        .public_key()
        .unwrap();
    let read = solme_client::verify_borrow_token(&token, &key).unwrap();
    assert_eq!(read.lease_id.to_string(), lease_id(lease));
    assert_eq!(read.until.timestamp(), expires_at);

    // SAFETY: each handle freed once.
    unsafe {
        solme_lease_free(lease);
        solme_client_free(client);
    }
    assert_eq!(server.in_use("cad"), 1, "a borrow stays out when freed");
}

#[test]
fn a_freed_lease_returns_its_seat_and_outlives_its_client() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let client = client(&server.url());
    let lease = checkout(client, c"cad", 0);
    // SAFETY: each handle freed once; the lease is used after its client is freed,
    // which the library allows.
    unsafe {
        solme_client_free(client);
        assert_eq!(solme_lease_check(lease), SolmeStatus::Ok);
        assert_eq!(server.in_use("cad"), 1);
        solme_lease_free(lease);
    }
    assert_eq!(server.in_use("cad"), 0, "the free waited for the return");
}

#[test]
fn a_seat_lost_in_the_background_is_reported_with_the_servers_code() {
    let mut old = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "3"]);
    let client = client(&old.url());
    let lease = checkout(client, c"cad", 0);
    // A new installation without the feature takes the old one's address: the
    // heartbeat is answered LEASE_UNKNOWN, and the new check-out FEATURE_UNKNOWN.
    let addr = old.addr.unwrap().to_string();
    old.kill();
    let mut new = Server::installed(vec![license("cam", 1)]);
    new.serve(&addr, &["--lease-seconds", "3"]);
    let status = wait_until("the seat to be lost", DEADLINE, || {
        // SAFETY: a live lease.
        let status = unsafe { solme_lease_check(lease) };
        (status != SolmeStatus::Ok).then_some(status)
    })
    .unwrap();
    assert_eq!(status, SolmeStatus::FeatureUnknown);
    assert!(last_error().contains("FEATURE_UNKNOWN"), "{}", last_error());
    // SAFETY: each handle freed once.
    unsafe {
        solme_lease_free(lease);
        solme_client_free(client);
    }
}
