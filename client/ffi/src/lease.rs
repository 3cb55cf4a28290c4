//! The lease handle: a checked-out seat, kept by heartbeats on the library's thread
//! until it is released or freed, and what the caller may read of it.
//!
//! The handle outlives the seat: after `solme_lease_release` it still answers its id
//! and expiry (as they were when released) until `solme_lease_free`. The seat itself
//! sits behind a mutex so that one thread may release it while another reads.

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard};

use solme_client::{blocking, LeaseInfo, LeaseState};

use crate::guard::{self, call};
use crate::status::{Failure, SolmeStatus};

/// A checked-out (or borrowed) seat. Safe to use from several threads at once.
pub struct SolmeLease {
    seat: Mutex<Seat>,
}

enum Seat {
    Out(blocking::Lease),
    /// Released: what was known of the lease then.
    Released(Box<LeaseInfo>),
}

impl SolmeLease {
    pub(crate) fn new(lease: blocking::Lease) -> Self {
        Self {
            seat: Mutex::new(Seat::Out(lease)),
        }
    }

    fn seat(&self) -> MutexGuard<'_, Seat> {
        // A panic while the lock was held (caught at the boundary) leaves the seat
        // itself consistent: every change to it is one assignment.
        self.seat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn info(&self) -> LeaseInfo {
        match &*self.seat() {
            Seat::Out(lease) => lease.info(),
            Seat::Released(info) => (**info).clone(),
        }
    }
}

/// The lease's id (a UUID, as the server and its reports name it). It changes only if
/// the server forgot the lease and the library checked the feature out again.
///
/// On success `*id_out` is a new string, to be freed with `solme_string_free`.
///
/// # Safety
/// `lease` is NULL or a live lease handle; `id_out` is NULL or valid for writing a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn solme_lease_id(
    lease: *const SolmeLease,
    id_out: *mut *mut c_char,
) -> SolmeStatus {
    call(|| {
        // SAFETY: the pointers are as this function's contract says.
        let (out, lease) = unsafe {
            (
                guard::out(id_out, std::ptr::null_mut(), "id_out")?,
                guard::handle(lease, "lease")?,
            )
        };
        *out = guard::owned_string(&lease.info().grant.lease_id.to_string());
        Ok(())
    })
}

/// When the seat goes back unless renewed (heartbeats move it on), or when a borrow
/// ends: seconds since 1970-01-01 UTC, in `*expires_at_out`.
///
/// # Safety
/// `lease` is NULL or a live lease handle; `expires_at_out` is NULL or valid for
/// writing an `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn solme_lease_expires_at(
    lease: *const SolmeLease,
    expires_at_out: *mut i64,
) -> SolmeStatus {
    call(|| {
        // SAFETY: the pointers are as this function's contract says.
        let (out, lease) = unsafe {
            (
                guard::out(expires_at_out, 0, "expires_at_out")?,
                guard::handle(lease, "lease")?,
            )
        };
        *out = lease.info().grant.expires_at.timestamp();
        Ok(())
    })
}

/// The signed borrow token of a borrowed seat, to check offline later; NULL in
/// `*token_out` when the seat is not borrowed.
///
/// On success a non-NULL `*token_out` is a new string, to be freed with
/// `solme_string_free`.
///
/// # Safety
/// `lease` is NULL or a live lease handle; `token_out` is NULL or valid for writing a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn solme_lease_borrow_token(
    lease: *const SolmeLease,
    token_out: *mut *mut c_char,
) -> SolmeStatus {
    call(|| {
        // SAFETY: the pointers are as this function's contract says.
        let (out, lease) = unsafe {
            (
                guard::out(token_out, std::ptr::null_mut(), "token_out")?,
                guard::handle(lease, "lease")?,
            )
        };
        if let Some(token) = lease.info().grant.borrow_token {
            *out = guard::owned_string(&token);
        }
        Ok(())
    })
}

/// Whether the seat is still held: `SOLME_STATUS_OK`, or why it was lost in the
/// background (a heartbeat refused, or the server forgot the lease and the new
/// check-out was refused or found no server), with its message. No heartbeats are
/// sent for a lost lease. A released lease is `SOLME_STATUS_INVALID_ARGUMENT`.
///
/// # Safety
/// `lease` is NULL or a live lease handle.
#[no_mangle]
pub unsafe extern "C" fn solme_lease_check(lease: *const SolmeLease) -> SolmeStatus {
    call(|| {
        // SAFETY: as this function's contract says.
        let lease = unsafe { guard::handle(lease, "lease") }?;
        let state = match &*lease.seat() {
            Seat::Out(lease) => lease.state(),
            Seat::Released(_) => return Err(released()),
        };
        match state {
            LeaseState::Held => Ok(()),
            LeaseState::Lost(err) => Err(err.into()),
        }
    })
}

/// Returns the seat now (a borrowed one too) and waits for the server's answer; stops
/// the heartbeats. The handle stays valid until `solme_lease_free`. A seat that could
/// not be returned goes back by itself when its lease runs out.
///
/// # Safety
/// `lease` is NULL or a live lease handle.
#[no_mangle]
pub unsafe extern "C" fn solme_lease_release(lease: *const SolmeLease) -> SolmeStatus {
    call(|| {
        // SAFETY: as this function's contract says.
        let lease = unsafe { guard::handle(lease, "lease") }?;
        // Taken out under the lock, released outside it, so that readers on other
        // threads are not held up by the server's answer.
        let out = {
            let mut seat = lease.seat();
            let info = match &*seat {
                Seat::Out(out) => out.info(),
                Seat::Released(_) => return Err(released()),
            };
            match std::mem::replace(&mut *seat, Seat::Released(Box::new(info))) {
                Seat::Out(out) => out,
                Seat::Released(_) => return Err(released()),
            }
        };
        out.release()?;
        Ok(())
    })
}

fn released() -> Failure {
    Failure::invalid("the lease was already released")
}

/// Frees a lease handle. A seat not released is returned first (waiting briefly for
/// the server's answer), except a borrowed one, which stays out until its end. NULL
/// is allowed.
///
/// # Safety
/// `lease` is NULL or a live lease handle, not used again after this call (by any
/// thread).
#[no_mangle]
pub unsafe extern "C" fn solme_lease_free(lease: *mut SolmeLease) {
    guard::call_void(|| {
        if !lease.is_null() {
            // SAFETY: made by Box::into_raw in solme_checkout, freed only here. The
            // drop returns the seat (blocking::Lease's Drop).
            drop(unsafe { Box::from_raw(lease) });
        }
    });
}
