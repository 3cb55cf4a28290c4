//! The blocking interface: the same client, run on a thread of its own.
//!
//! The thread runs an actix-rt system (a current-thread tokio runtime) with the
//! asynchronous [`crate::Client`] on it; each call sends it a job and waits for the
//! answer on a plain channel, so it may be made from any thread, inside another
//! runtime or not. Lease keepers run on that thread too. The thread ends when the
//! client and every lease made with it are gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use url::Url;
use uuid::Uuid;

use crate::client::{Identity, Options, Settings};
use crate::error::Error;
use crate::lease::{LeaseInfo, LeaseState};
use crate::wire::Feature;

type Job = Box<dyn FnOnce(crate::Client) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The client thread, alive while a handle to it is.
struct Runtime {
    jobs: mpsc::UnboundedSender<Job>,
}

/// The blocking client. Clones share the thread and its connections.
#[derive(Clone)]
pub struct Client {
    runtime: Arc<Runtime>,
}

impl Client {
    /// A client of `servers` (tried in that order) with the default settings.
    pub fn new(servers: Vec<Url>, identity: Identity) -> Result<Self, Error> {
        Self::with_settings(Settings::new(servers, identity)?)
    }

    pub fn with_settings(settings: Settings) -> Result<Self, Error> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("solme-client".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let client = crate::Client::with_settings(settings);
                    while let Some(job) = queue.recv().await {
                        actix_rt::spawn(job(client.clone()));
                    }
                });
            })
            .map_err(|err| {
                Error::Usage(format!("cannot start the license client's thread: {err}"))
            })?;
        Ok(Self {
            runtime: Arc::new(Runtime { jobs }),
        })
    }

    /// Runs `call` on the client thread and waits for its result.
    fn call<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(crate::Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let _ = tx.send(call(client).await);
            })
        });
        self.runtime.jobs.send(job).map_err(|_| Error::Stopped)?;
        rx.recv().map_err(|_| Error::Stopped)?
    }

    /// [`crate::Client::checkout`]: blocks until a seat is given or refused.
    pub fn checkout(&self, feature: &str, options: Options) -> Result<Lease, Error> {
        let feature = feature.to_owned();
        let lease =
            self.call(move |client| async move { client.checkout(&feature, options).await })?;
        Ok(Lease {
            inner: lease,
            _runtime: self.runtime.clone(),
        })
    }

    /// [`crate::Client::check_in`].
    pub fn check_in(&self, id: Uuid) -> Result<(), Error> {
        self.call(move |client| async move { client.check_in(id).await })
    }

    /// [`crate::Client::features`].
    pub fn features(&self) -> Result<Vec<Feature>, Error> {
        self.call(|client| async move { client.features().await })
    }

    /// [`crate::Client::public_key`].
    pub fn public_key(&self) -> Result<[u8; 32], Error> {
        self.call(|client| async move { client.public_key().await })
    }
}

/// A checked-out seat. Dropping it returns the seat and waits for the server's answer
/// (briefly: the seat goes back when the lease runs out anyway); a borrowed seat stays
/// borrowed until its end or an explicit [`Lease::release`].
#[derive(Debug)]
pub struct Lease {
    inner: crate::Lease,
    /// Keeps the client thread, which runs this lease's keeper, alive.
    _runtime: Arc<Runtime>,
}

impl Lease {
    pub fn info(&self) -> LeaseInfo {
        self.inner.info()
    }

    pub fn id(&self) -> Uuid {
        self.inner.id()
    }

    pub fn expires_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.expires_at()
    }

    pub fn borrow_token(&self) -> Option<String> {
        self.inner.borrow_token()
    }

    pub fn state(&self) -> LeaseState {
        self.inner.state()
    }

    /// Returns the seat now and waits for the server's answer.
    pub fn release(mut self) -> Result<(), Error> {
        self.inner.release_blocking()
    }

    /// [`crate::Lease::keep`].
    pub fn keep(mut self) -> LeaseInfo {
        self.inner.stop_keeping();
        self.inner.info()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.inner.is_done() || self.inner.is_borrow() {
            return;
        }
        if let Err(err) = self.inner.release_blocking() {
            log::warn!(
                "the seat could not be returned, it goes back when its lease runs out: {err}"
            );
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}
