//! A TLS failure is told in words: never OpenSSL's source file and line, and a
//! certificate not yet valid by this computer's clock is said to be that, with the date
//! this computer believes it is.

use std::process::{Command, Output};

use crate::helpers::*;

/// Runs `verb` of `local` with this computer's clock `offset` (faketime) away.
fn with_clock(local: &Local, offset: &str, args: &[&str]) -> Output {
    Command::new("faketime")
        .args(["-f", offset])
        .arg(local_bin())
        .arg(args[0])
        .arg("--data-dir")
        .arg(local.data_dir())
        .args(&args[1..])
        .env("RUST_LOG", "warn")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("LOCAL_SERVER_PROXY")
        .output()
        .unwrap()
}

/// No OpenSSL internals, whatever the words are.
fn assert_no_internals(text: &str) {
    for internal in [".c:", "statem", "SSL routines", "error:0"] {
        assert!(!text.contains(internal), "{internal:?} in: {text}");
    }
}

#[actix_rt::test]
async fn a_clock_behind_the_certificate_is_said_as_such() -> TestResult {
    if !tool_present(
        Command::new("faketime").arg("--version").output().is_ok(),
        "faketime",
        "apt-get install faketime",
    ) {
        return Ok(());
    }
    let Some((_main, local)) = Main::start_with_local("cad", 1) else {
        return Ok(());
    };
    // The main server's certificate starts today; this computer believes it is
    // three days earlier.
    let out = with_clock(&local, "-3d", &["sync"]);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert_no_internals(&err);
    assert!(err.contains("not valid yet"), "{err}");
    assert!(err.contains("clock"), "{err}");
    let believed = (chrono::Utc::now() - chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    assert!(err.contains(&believed), "no {believed} in: {err}");

    // The diagnosis says the same and names the clock as the cause.
    let out = with_clock(&local, "-3d", &["diagnose", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let text = report.to_string();
    assert_no_internals(&text);
    assert_eq!(report["cause"], "CLOCK_SKEW", "{report:#}");
    assert!(text.contains("not valid yet"), "{report:#}");
    assert!(text.contains(&believed), "{report:#}");
    Ok(())
}

#[actix_rt::test]
async fn a_server_that_does_not_speak_tls_is_said_in_words() -> TestResult {
    // A plain TCP listener that closes every connection: the handshake cannot finish.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(stream);
        }
    });
    let mut local = Local::offline();
    let url = format!("https://127.0.0.1:{port}");
    assert_success(&local.init(&[&url], local.data_dir(), &["--force"]));
    let out = local.cli(&["sync"]);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert_no_internals(&err);
    assert!(err.contains("secure connection"), "{err}");
    // The command line names the command that diagnoses...
    assert!(err.contains("local-server diagnose"), "{err}");

    // ...the manager page has a Diagnose button of its own: its answer names no command.
    local.serve(&[], &[]);
    let (status, body) = manager_call(&client(), &local, "POST", "sync", None).await;
    assert_eq!(status, 503, "{body:#}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("secure connection"), "{body:#}");
    assert!(!message.contains("local-server"), "{body:#}");
    assert_no_internals(message);
    Ok(())
}
