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
}

/// One accessor per file of the data directory: its name there, in one table.
macro_rules! files {
    ($($name:ident => $file:literal,)*) => {
        impl DataDir {
            $(
                pub fn $name(&self) -> PathBuf {
                    self.root.join($file)
                }
            )*
        }
    };
}

files! {
    solme_signing_key => "solme-signing.pem",
    solme_public_key => "solme-public.pem",
    ca_cert => "ca.pem",
    ca_key => "ca-key.pem",
    tls_cert => "tls-cert.pem",
    tls_key => "tls-key.pem",
    tls_lock => "tls.lock",
    admin_token => "admin-token",
    gateway_token => "gateway-token",
    listening => "listening.json",
    last_audit_head => "last-audit-head.json",
}
