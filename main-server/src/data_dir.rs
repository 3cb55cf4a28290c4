//! The files of a main server's data directory (see the table in the README). They
//! are written through `shared_proto::files`: whole or not at all, synced, private
//! ones 0600.

use std::path::{Path, PathBuf};

/// Paths inside one data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn solme_signing_key(&self) -> PathBuf {
        self.root.join("solme-signing.pem")
    }

    pub fn solme_public_key(&self) -> PathBuf {
        self.root.join("solme-public.pem")
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca-key.pem")
    }

    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("tls-cert.pem")
    }

    pub fn tls_key(&self) -> PathBuf {
        self.root.join("tls-key.pem")
    }

    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin-token")
    }

    /// The mail gateway's token (service identity `mail-gateway`, role gateway).
    pub fn gateway_token(&self) -> PathBuf {
        self.root.join("gateway-token")
    }

    pub fn listening(&self) -> PathBuf {
        self.root.join("listening.json")
    }
}
