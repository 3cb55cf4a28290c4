//! The file a verb writes its result to (`support-bundle FILE`, `export-sync-data FILE`),
//! checked before the verb does any work: those verbs change state on the way (a
//! synchronization, a request marked as sent), and a destination found unwritable only
//! at the end would leave the change made and the result lost.
//!
//! The check is the one the write itself will face: the folder exists, is a folder, and
//! a file can be created in it (a probe created and removed at once; permission bits
//! alone would not see a read-only file system, nor what root may write); the target
//! is not a directory.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::Error;

/// Checks that `what` (e.g. "the support bundle") can be written to `path`; the error
/// names the path and the reason, in words.
pub fn check(path: &Path, what: &str) -> Result<(), Error> {
    let refuse = |why: String| {
        Error::Internal(anyhow::anyhow!(
            "cannot write {what} to {}: {why}",
            path.display()
        ))
    };
    let folder = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match std::fs::metadata(folder) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(refuse(format!("{} is not a folder", folder.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(refuse(format!(
                "the folder {} does not exist",
                folder.display()
            )))
        }
        Err(e) => return Err(refuse(format!("{}: {}", folder.display(), os_text(&e)))),
    }
    if path.is_dir() {
        return Err(refuse("it is a folder; give a file name".to_owned()));
    }
    let probe = folder.join(format!(".write-check-{}.tmp", uuid::Uuid::new_v4()));
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
    {
        Ok(file) => {
            drop(file);
            // A probe left behind is an empty hidden file: harmless, and not a reason
            // to refuse a destination just shown to be writable.
            drop(std::fs::remove_file(&probe));
            Ok(())
        }
        Err(e) => Err(refuse(format!(
            "the folder {} cannot be written to ({})",
            folder.display(),
            os_text(&e)
        ))),
    }
}

/// An I/O error as a sentence, without the "(os error N)" code.
fn os_text(err: &std::io::Error) -> String {
    shared_proto::exit::error_text(err)
}
