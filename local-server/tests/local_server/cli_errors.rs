//! How a failed command-line verb reports its error: once, on stderr, each cause once,
//! and an operating-system error as its sentence without the "(os error N)" code.

use std::process::{Command, Output};

use crate::helpers::*;
use shared_proto::exit;

/// Runs a verb with the logging a customer gets (no RUST_LOG).
fn run_plain(local: &Local, args: &[&str]) -> Output {
    let (verb, rest) = args.split_first().unwrap();
    Command::new(local_bin())
        .arg(verb)
        .arg("--data-dir")
        .arg(local.data_dir())
        .args(rest)
        .env_remove("RUST_LOG")
        .env_remove("LOCAL_SERVER_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .unwrap()
}

fn occurrences(text: &str, words: &str) -> usize {
    text.matches(words).count()
}

#[test]
fn a_missing_license_file_is_named_once_in_plain_words() {
    let local = Local::offline();
    let out = run_plain(&local, &["import-license-file", "/no/such/file"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILED)), "{err}");
    assert_eq!(
        err.trim(),
        "error: cannot read /no/such/file: No such file or directory",
        "{err}"
    );
}

#[test]
fn a_wrapped_io_error_is_not_repeated() {
    // The key pair is read through an error type that prints its source itself.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(local_bin())
        .args(["status", "--data-dir"])
        .arg(empty.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILED)), "{err}");
    assert_eq!(occurrences(&err, "No such file or directory"), 1, "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert!(err.contains("was `local-server init` run?"), "{err}");
}

#[test]
fn a_failed_sync_is_told_once_without_a_log_line() {
    let local = Local::offline();
    let out = run_plain(&local, &["sync"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(i32::from(exit::TEMPORARY)), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: the main server could not be reached"),
        "{err}"
    );
    assert!(!err.contains("WARN"), "{err}");
}

#[test]
fn usage_mistakes_exit_2_with_the_expected_form_before_anything_is_opened() {
    // No installation: a usage mistake is found before the data directory is read.
    let empty = tempfile::tempdir().unwrap();
    let usage = |args: &[&str], expected: &str| {
        let out = Command::new(local_bin())
            .args(args)
            .arg("--data-dir")
            .arg(empty.path())
            .env_remove("RUST_LOG")
            .env_remove("LOCAL_SERVER_PROXY")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(i32::from(exit::USAGE)),
            "{args:?}: {err}"
        );
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(
            !err.contains("init"),
            "{args:?} read the installation: {err}"
        );
    };
    usage(
        &["sync", "--proxy", "not a url"],
        "expected http://host:port",
    );
    usage(
        &["diagnose", "--proxy", "ftp://proxy:21"],
        "expected http://host:port",
    );
    usage(
        &["report", "--from", "2027-02-01", "--to", "2027-01-01"],
        "expected for example `--from 2027-01-01 --to 2027-02-01`",
    );
    usage(&["report", "--from", "2027-02-30"], "YYYY-MM-DD");
}
