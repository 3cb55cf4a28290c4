//! How the gateway runs work off its single-threaded runtime: [`blocking`] runs file
//! work on the blocking pool.
//!
//! A leaf: it imports no other module of the crate.

use anyhow::Context;

/// Runs blocking work (file I/O) on the blocking pool and waits for it. A panic in
/// it becomes an error here instead of ending the caller.
pub async fn blocking<T, F>(work: F) -> anyhow::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .context("a blocking task of the gateway panicked")
}
