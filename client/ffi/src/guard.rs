//! The boundary's rules, in one place: every entry point runs its body through
//! [`call`] (a panic becomes `SOLME_STATUS_LIBRARY_FAILURE`, never an unwind into C),
//! and reads its arguments through the checks here (NULL, UTF-8) before using them.

use std::any::Any;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::{self, Failure, SolmeStatus};

/// Runs an entry point's body: its failure, or a panic, is recorded as the thread's
/// last error and becomes the status returned.
pub(crate) fn call(body: impl FnOnce() -> Result<(), Failure>) -> SolmeStatus {
    // The caller sees only the status and the message; no state the body touched is
    // shared with it, so observing a half-done body after a panic cannot happen.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SolmeStatus::Ok,
        Ok(Err(failure)) => status::record(failure),
        Err(panic) => status::record(panicked(panic)),
    }
}

/// Runs a body that returns nothing (the `free` functions): a panic is recorded and
/// swallowed.
pub(crate) fn call_void(body: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(body)) {
        status::record(panicked(panic));
    }
}

fn panicked(panic: Box<dyn Any + Send>) -> Failure {
    let what = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no details".to_owned());
    Failure {
        status: SolmeStatus::LibraryFailure,
        message: format!("the license library failed unexpectedly (a bug): {what}"),
    }
}

/// The text at `ptr`, which the caller promised is NULL or a NUL-terminated string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    // SAFETY: forwarded from this function's contract.
    unsafe { optional_text(ptr, what) }?.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// [`text`] where NULL means "not given".
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn optional_text<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: not NULL, and NUL-terminated and alive by the caller's contract.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map(Some)
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8 text")))
}

/// The object behind a handle.
///
/// # Safety
/// `ptr` is NULL or a handle this library made and that was not freed.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: a live handle is a valid, aligned pointer to a `T` (Box::into_raw).
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// Where an out-parameter's value goes, set to `empty` at once so that the caller
/// finds it there when the call fails.
///
/// # Safety
/// `ptr` is NULL or valid for writing a `T`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, empty: T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: valid for writes by the caller's contract; `write` does not read (or
    // drop) what was there, which may be uninitialized.
    unsafe {
        if ptr.is_null() {
            return Err(Failure::invalid(format!("{what} is NULL")));
        }
        ptr.write(empty);
        Ok(&mut *ptr)
    }
}

/// A string handed to the caller, who frees it with `solme_string_free`.
pub(crate) fn owned_string(text: &str) -> *mut c_char {
    // Ids and tokens hold no NUL; one would cut the string, not break it.
    CString::new(text.replace('\0', " "))
        .unwrap_or_default()
        .into_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_a_status_and_a_message() {
        let status = call(|| panic!("boom"));
        assert_eq!(status, SolmeStatus::LibraryFailure);
        // SAFETY: the message is a live C string on this thread.
        let message = unsafe { CStr::from_ptr(status::last_message()) };
        assert!(message.to_str().unwrap().contains("boom"), "{message:?}");
    }

    #[test]
    fn null_and_non_utf8_text_are_invalid_arguments() {
        // SAFETY: NULL and a NUL-terminated literal.
        let (null, bad) = unsafe {
            (
                text(std::ptr::null(), "feature"),
                text(c"\xff".as_ptr(), "feature"),
            )
        };
        assert_eq!(null.unwrap_err().message, "feature is NULL");
        assert_eq!(bad.unwrap_err().message, "feature is not UTF-8 text");
    }
}
