//! The installation: one license server's data directory opened for use, with its
//! identity, its database pool and the clock it runs on. The reports, synchronizations
//! and `serve` take it instead of opening the directory themselves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use diesel::SqliteConnection;
use shared_proto::{Clock, ServerIdentity};

use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::error::Error;

/// This installation: its database, identity, clock and data directory, shared by
/// every task that reads or changes it (the client and manager APIs, synchronizations,
/// the scheduler, the diagnosis). Cheap to clone.
#[derive(Clone)]
pub struct Installation {
    pub pool: DbPool,
    pub clock: Clock,
    pub identity: Arc<ServerIdentity>,
    pub data_dir: PathBuf,
}

impl Installation {
    /// Opens the installation in `data_dir` (its identity and a small database pool).
    pub fn open(data_dir: &Path, clock: Clock) -> anyhow::Result<Self> {
        let identity = crate::config::load_identity(data_dir)?;
        Ok(Self {
            pool: db::pool(data_dir, 4)?,
            clock,
            identity: Arc::new(identity),
            data_dir: data_dir.to_owned(),
        })
    }

    /// The stored configuration, read now (it may change under a running `serve`).
    pub fn settings(&self) -> Result<Settings, Error> {
        let mut conn = self.pool.get().context("opening the database")?;
        Ok(Settings::load(&self.data_dir, &mut conn)?)
    }

    /// [`Self::settings`] off the async executor.
    pub async fn load_settings(&self) -> Result<Settings, Error> {
        let data_dir = self.data_dir.clone();
        self.db(move |c| Ok(Settings::load(&data_dir, c)?)).await
    }

    /// Runs blocking database work off the async executor.
    pub async fn db<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().context("opening the database")?;
            work(&mut conn)
        })
        .await?
    }

    /// [`Self::db`] for work that needs the configuration, read in the same connection.
    pub async fn db_with_settings<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut SqliteConnection, &Settings) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let data_dir = self.data_dir.clone();
        self.db(move |c| {
            let settings = Settings::load(&data_dir, c)?;
            work(c, &settings)
        })
        .await
    }
}
