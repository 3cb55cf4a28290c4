//! What every worker of `serve` shares: the lease engine, the installation, and what a
//! synchronization needs to reach the main server. Its own file, so that the routes and
//! the metrics can name it without importing the start-up that builds it.

use std::sync::Arc;

use openssl::ssl::SslConnector;

use crate::installation::Installation;
use crate::leases::LeaseEngine;
use crate::proxy::ProxySettings;

/// Shared by all workers.
pub struct AppState {
    pub engine: Arc<LeaseEngine>,
    pub installation: Installation,
    pub tls: SslConnector,
    pub proxy: ProxySettings,
}
