//! The application state every handler and background loop shares: the database
//! pools, the clock, Solme's signing key and the writer of direct syncs. The sync core
//! (`sync.rs`) adds its operations to it; the routes reach it as `web::Data<AppState>`.

use std::sync::Arc;

use shared_proto::{Clock, SolmeSigningKey};

use crate::db::Db;
use crate::writer::Writer;

/// What the running server shares between its handlers and loops (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub clock: Clock,
    pub signing_key: Arc<SolmeSigningKey>,
    /// The group-committing writer of direct syncs (see `writer.rs`).
    pub writer: Writer,
}

impl AppState {
    /// Builds the state and starts the writer's threads.
    pub fn new(db: Db, clock: Clock, signing_key: SolmeSigningKey) -> anyhow::Result<Self> {
        let writer = Writer::start(&db)?;
        Ok(Self {
            db,
            clock,
            signing_key: Arc::new(signing_key),
            writer,
        })
    }
}
