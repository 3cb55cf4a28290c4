//! The files of a main server's data directory (see the table in the README) and the
//! helpers that write them: private files 0600, `listening.json` atomically.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

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

    pub fn listening(&self) -> PathBuf {
        self.root.join("listening.json")
    }
}

/// Creates `path` with mode 0600; fails if it exists (keys are never overwritten).
pub fn write_private_new(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates `path` (world-readable: certificates and public keys); fails if it exists.
pub fn write_public_new(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Replaces `path` atomically (temp file + rename), so a reader never sees half a file.
pub fn write_atomic(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
