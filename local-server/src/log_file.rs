//! The log file of `serve`: every log line goes to standard error as before and is also
//! appended to `DIR/serve.log` (0600), so `support-bundle` can include the recent lines.
//! Bounded: past [`MAX_LOG_BYTES`] the file becomes `serve.log.1` (replacing the older
//! one) and a new one starts. Log lines carry no secrets (see docs/API.md), so the file
//! holds none either.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The log file's name in the data directory, and its previous part's.
pub const LOG_FILE: &str = "serve.log";
pub const OLD_LOG_FILE: &str = "serve.log.1";
/// Size at which the log file is rotated.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;

struct Open {
    file: File,
    written: u64,
}

/// A writer for `env_logger` that copies each line to standard error and the log file.
pub struct TeeLog {
    path: PathBuf,
    open: Mutex<Option<Open>>,
}

fn open(path: &Path) -> io::Result<Open> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let written = file.metadata()?.len();
    Ok(Open { file, written })
}

impl TeeLog {
    /// Opens (or creates) the log file of `data_dir`.
    pub fn new(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(LOG_FILE);
        let first = open(&path)?;
        Ok(Self {
            path,
            open: Mutex::new(Some(first)),
        })
    }

    fn append(&self, buf: &[u8]) -> io::Result<()> {
        let mut guard = self
            .open
            .lock()
            .map_err(|_| io::Error::other("the log file lock was poisoned"))?;
        if guard.as_ref().is_some_and(|o| o.written >= MAX_LOG_BYTES) {
            *guard = None;
            std::fs::rename(&self.path, self.path.with_file_name(OLD_LOG_FILE))?;
        }
        if guard.is_none() {
            *guard = Some(open(&self.path)?);
        }
        if let Some(o) = guard.as_mut() {
            o.file.write_all(buf)?;
            o.written += buf.len() as u64;
        }
        Ok(())
    }
}

impl Write for TeeLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().write_all(buf)?;
        // A full disk must not stop the server: the line still reached stderr.
        let _ = self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The last `lines` lines the log files of `data_dir` hold (oldest first); empty when
/// there is no log file (`serve` never ran here).
pub fn recent_lines(data_dir: &Path, lines: usize) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for name in [OLD_LOG_FILE, LOG_FILE] {
        if let Ok(bytes) = std::fs::read(data_dir.join(name)) {
            all.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
        }
    }
    let skip = all.len().saturating_sub(lines);
    all.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_and_keeps_the_recent_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = TeeLog::new(dir.path()).unwrap();
        let line = format!("{}\n", "x".repeat(1023));
        for _ in 0..(MAX_LOG_BYTES / 1024 + 10) {
            log.append(line.as_bytes()).unwrap();
        }
        log.append(b"the last line\n").unwrap();
        assert!(dir.path().join(OLD_LOG_FILE).exists());
        let size = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        assert!(size < MAX_LOG_BYTES, "{size}");
        let recent = recent_lines(dir.path(), 3);
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[2], "the last line");
        assert!(recent_lines(tempfile::tempdir().unwrap().path(), 5).is_empty());
    }
}
