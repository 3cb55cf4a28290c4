//! Files that must survive a crash, and small secret files.
//!
//! Every file a program keeps (keys, certificates, `listening.json`, configuration,
//! the mail gateway's spool) is written by [`write`] or [`write_staged`]: the contents
//! go to a temporary file beside the target, are synced, then take the target's name
//! in one step (a link that refuses to replace, or a rename), and the directory is
//! synced so that the name survives a power cut too. A reader, or the program after a
//! crash, sees either no file, the old one or the whole new one; never half of one.

use std::fs::{File, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use secrecy::SecretString;

use crate::error::ProtoError;

/// Who may read a written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Mode 0600: private keys, tokens, anything holding a secret or customer data.
    Private,
    /// Mode 0644: certificates, public keys, addresses.
    Public,
}

impl Access {
    fn mode(self) -> u32 {
        match self {
            Self::Private => 0o600,
            Self::Public => 0o644,
        }
    }
}

/// What to do when the target already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Fail (with [`ProtoError::is_already_exists`]) and leave it alone: keys and
    /// identities are never overwritten by accident, and a claim is won only once.
    Refuse,
    /// Replace it in one step.
    Replace,
}

/// Writes `path` durably, its temporary file beside it (a dot-file ending `.tmp`).
pub fn write(
    path: &Path,
    contents: &[u8],
    access: Access,
    existing: Existing,
) -> Result<(), ProtoError> {
    write_staged(parent_of(path), path, contents, access, existing)
}

/// Like [`write`], with the temporary file made in `staging` (on the same filesystem):
/// for directories whose readers must never meet a file being written.
pub fn write_staged(
    staging: &Path,
    path: &Path,
    contents: &[u8],
    access: Access,
    existing: Existing,
) -> Result<(), ProtoError> {
    let context = || format!("writing {}", path.display());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // Created with its final mode: a private file is never readable by others, not
    // even for a moment. Dropped (and so deleted) on every early return.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(access.mode()))
        .tempfile_in(staging)
        .map_err(|e| ProtoError::io(context(), e))?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| ProtoError::io(context(), e))?;
    let placed = match existing {
        Existing::Refuse => temp.persist_noclobber(path),
        Existing::Replace => temp.persist(path),
    };
    placed.map_err(|e| ProtoError::io(context(), e.error))?;
    sync_dir(parent_of(path))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Syncs a directory, so that the names created, renamed or removed in it last.
pub fn sync_dir(dir: &Path) -> Result<(), ProtoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ProtoError::io(format!("syncing the directory {}", dir.display()), e))
}

/// Largest secret file read: a token or a password is one short line.
const MAX_SECRET_FILE: u64 = 4096;

/// Reads a one-line secret file (a token, a password), trimmed; refuses an empty or
/// an oversized file. The secret never appears in an error message.
pub fn read_secret(path: &Path) -> Result<SecretString, ProtoError> {
    let mut text = String::new();
    File::open(path)
        .and_then(|file| file.take(MAX_SECRET_FILE + 1).read_to_string(&mut text))
        .map_err(|e| ProtoError::io(format!("reading {}", path.display()), e))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(ProtoError::Malformed(format!(
            "{} is too large to hold a token or a password",
            path.display()
        )));
    }
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ProtoError::Malformed(format!(
            "{} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn new_files_are_never_overwritten_and_replacements_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        write(&key, b"first", Access::Private, Existing::Refuse).unwrap();
        assert_eq!(mode(&key), 0o600);
        let refused = write(&key, b"second", Access::Private, Existing::Refuse).unwrap_err();
        assert!(refused.is_already_exists(), "{refused}");
        assert_eq!(std::fs::read(&key).unwrap(), b"first");

        let listening = dir.path().join("listening.json");
        write(&listening, b"{}", Access::Public, Existing::Replace).unwrap();
        let json = b"{\"a\":1}";
        write(&listening, json, Access::Public, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&listening).unwrap(), b"{\"a\":1}");
        assert_eq!(mode(&listening) & 0o600, 0o600);
        // No temporary file is left behind, on success or on refusal.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn secrets_are_trimmed_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret\n").unwrap();
        assert_eq!(read_secret(&path).unwrap().expose_secret(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_secret(&path).is_err());
        std::fs::write(&path, "x".repeat(5000)).unwrap();
        let err = read_secret(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("too large"), "{err}");
        assert!(read_secret(&dir.path().join("missing")).is_err());
    }
}
