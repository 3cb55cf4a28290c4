//! `solme-license`: a seat held while a command runs, returned when it ends.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use solme_client::Options;
use test_harness::process::{signal, Signal};

use crate::helpers::*;

fn wrapper(server: &url::Url) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_solme-license"));
    command
        .args([
            "--server",
            server.as_str(),
            "--user",
            "qa",
            "--host",
            "test-host",
        ])
        .env_remove("SOLME_LICENSE_SERVER")
        .env_remove("RUST_LOG");
    command
}

/// `solme-license run --feature cad -- sh -c SCRIPT`, started.
fn run_sh(server: &Server, script: &str) -> Child {
    wrapper(&server.url())
        .args(["run", "--feature", "cad", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: Child) -> Output {
    let mut child = child;
    wait_until("the wrapper to exit", DEADLINE, || {
        child.try_wait().unwrap().map(|_| ())
    })
    .unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wait_for_file(path: &Path) -> String {
    wait_until(&format!("{}", path.display()), DEADLINE, || {
        std::fs::read_to_string(path)
            .ok()
            .filter(|t| t.ends_with('\n'))
    })
    .unwrap()
}

#[test]
fn the_seat_is_held_while_the_command_runs_and_free_when_it_exits_with_its_status() {
    let server = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // The command runs past two lease times, so heartbeats must keep its seat.
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; exit 3",
        go.display()
    );
    let child = run_sh(&server, &script);
    server.wait_in_use("cad", 1);
    let out = wrapper(&server.url())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["in_use"], 1);
    // Two lease times: the seat is checked on every poll of the wait.
    let started = std::time::Instant::now();
    wait_until("4 seconds of the command running", DEADLINE, || {
        assert_eq!(
            server.in_use("cad"),
            1,
            "the seat went back while the command ran"
        );
        (started.elapsed() > Duration::from_secs(4)).then_some(())
    })
    .unwrap();
    std::fs::write(&go, "").unwrap();
    let out = finished(child);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(server.in_use("cad"), 0, "the seat is back at once");
}

#[test]
fn a_command_killed_with_9_frees_the_seat_at_once() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let child = run_sh(&server, &script);
    let pid = wait_for_file(&pid_file);
    assert_eq!(server.in_use("cad"), 1);
    assert!(signal(pid.trim().parse().unwrap(), Signal::KILL));
    let out = finished(child);
    assert_eq!(out.status.code(), Some(128 + 9), "{}", stderr(&out));
    assert_eq!(server.in_use("cad"), 0);
}

#[test]
fn sigterm_is_passed_on_to_the_command() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'exit 7' TERM; echo ready > {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let child = run_sh(&server, &script);
    wait_for_file(&ready);
    assert!(signal(child.id(), Signal::TERM));
    let out = finished(child);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(server.in_use("cad"), 0);
}

#[test]
fn no_seat_is_exit_69_with_the_reason_and_the_command_does_not_run() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let other = blocking(vec![server.url()], "alice");
    let _held = other.checkout("cad", Options::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let out = finished(run_sh(&server, &format!("touch {}", ran.display())));
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(stderr(&out).contains("no seat of cad"), "{}", stderr(&out));
    assert!(stderr(&out).contains("NO_SEATS"), "{}", stderr(&out));
    assert!(!ran.exists());
}

#[test]
fn no_server_answering_is_exit_75() {
    let out = wrapper(&nowhere())
        .args(["--retry-for", "1", "run", "--feature", "cad", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no license server answered"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn checkout_prints_the_lease_and_return_gives_it_back() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let out = wrapper(&server.url())
        .args(["checkout", "--feature", "cad"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lease: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lease["feature"], "cad");
    assert_eq!(lease["user"], "qa");
    assert_eq!(
        server.in_use("cad"),
        1,
        "the seat stays out after checkout exits"
    );
    let id = lease["lease_id"].as_str().unwrap();
    let out = wrapper(&server.url())
        .args(["return", id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.in_use("cad"), 0);
    let out = wrapper(&server.url())
        .args(["return", id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
}

#[test]
fn a_wrapper_killed_with_9_leaves_the_seat_until_its_lease_runs_out() {
    let server = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let mut child = run_sh(&server, &script);
    let command_pid = wait_for_file(&pid_file);
    child.kill().unwrap();
    child.wait().unwrap();
    // No heartbeats any more: the server takes the seat back after its lease time.
    server.wait_in_use("cad", 0);
    signal(command_pid.trim().parse().unwrap(), Signal::KILL);
}
