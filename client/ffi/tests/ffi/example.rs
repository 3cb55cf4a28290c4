//! examples/checkout.c, compiled with the system's C compiler against the built
//! shared library and the committed header, run against a real local server.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use crate::helpers::*;

/// The example's program, compiled once per test run.
fn example() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        // Built by cargo with this test (the crate is a cdylib too), next to it.
        let library = test_harness::binary("libsolme_client_ffi.so").unwrap();
        let library_dir = library.parent().unwrap();
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("solme-ffi-checkout");
        let compiled = Command::new("cc")
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg("-I")
            .arg(crate_dir.join("include"))
            .arg(crate_dir.join("examples/checkout.c"))
            .arg("-o")
            .arg(&out)
            .arg("-L")
            .arg(library_dir)
            .arg("-lsolme_client_ffi")
            .arg(format!("-Wl,-rpath,{}", library_dir.display()))
            .output()
            .unwrap();
        assert!(
            compiled.status.success(),
            "the C example did not compile:\n{}",
            String::from_utf8_lossy(&compiled.stderr)
        );
        out
    })
}

/// Starts the example for `feature` at `servers`, its standard input a pipe.
fn start(servers: &str, feature: &str) -> Child {
    Command::new(example())
        .args([servers, feature])
        .env("USER", "carol")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit (within the tests' deadline): its status, standard
/// output and standard error.
fn finish(mut child: Child) -> (ExitStatus, String, String) {
    let status = wait_until("the example to exit", DEADLINE, || {
        child.try_wait().unwrap()
    });
    if status.is_err() {
        let _ = child.kill();
    }
    let status = status.unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stdout, stderr)
}

#[test]
fn the_c_example_holds_a_seat_with_heartbeats_and_returns_it() {
    // A 2-second lease: held past it only by the heartbeats of the C program's
    // library thread.
    let server = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "2"]);
    let mut child = start(server.url().as_str(), "cad");

    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{line:?}");
    assert_eq!((words[0], words[2]), ("lease", "expires_at"), "{line:?}");
    uuid::Uuid::parse_str(words[1]).unwrap();
    let expires_at = DateTime::from_timestamp(words[3].parse().unwrap(), 0).unwrap();
    assert_eq!(server.in_use("cad"), 1);

    // Past the first expiry (and one lease time more), the seat is still out.
    let later = expires_at + chrono::Duration::seconds(2);
    wait_until("two lease times to pass", DEADLINE, || {
        (Utc::now() > later).then_some(())
    })
    .unwrap();
    assert_eq!(server.in_use("cad"), 1, "the heartbeats kept the seat");

    drop(child.stdin.take());
    let (status, stdout, stderr) = finish(child);
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "released\n", "{stderr}");
    // The release waited for the server's answer: free at once.
    assert_eq!(server.in_use("cad"), 0);
}

#[test]
fn the_c_example_refused_prints_the_code_and_the_message_and_fails() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let child = start(server.url().as_str(), "cam");
    let (status, stdout, stderr) = finish(child);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.starts_with("no seat: FEATURE_UNKNOWN: "), "{stderr}");
    assert!(
        stderr.contains("this server holds no license for the feature \"cam\""),
        "{stderr}"
    );
    assert_eq!(server.in_use("cad"), 0);
}

#[test]
fn the_c_example_given_no_server_address_says_so() {
    let child = start("licenses.example", "cad");
    let (status, _, stderr) = finish(child);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "cannot make the license client: INVALID_ARGUMENT: licenses.example is not a \
         license server address (such as http://licenses.example:7070)\n"
    );
}
