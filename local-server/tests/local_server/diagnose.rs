//! `diagnose` names the right cause (the proxy case is in `proxy.rs`).

use crate::helpers::*;
use crate::proxy::diagnose_json;

#[actix_rt::test]
async fn diagnose_tells_firewall_stopped_server_and_id_in_use_apart() -> TestResult {
    let Some(mut main) = Main::start() else {
        return Ok(());
    };
    let id = main.new_server("cad", 1);

    // Healthy: no cause, exit 0, and the check synchronized the server.
    let local = Local::for_main(&main, id, &main.sync.clone(), &[]);
    assert_stdout(&local.cli(&["diagnose"]), 0, "No problem found");
    assert_eq!(local.status()["state"], "synchronized");

    // Both ports closed, never reached: a firewall.
    let closed = [
        format!("https://127.0.0.1:{}", closed_port().unwrap()),
        format!("https://127.0.0.1:{}", closed_port().unwrap()),
    ];
    let walled = Local::for_main(&main, id, &closed, &[]);
    let report = diagnose_json(&walled, &[]);
    assert_eq!(report["cause"], "PORTS_BLOCKED", "{report:#}");
    assert_stdout(&walled.cli(&["diagnose"]), 1, "network administrator");

    // Another key pair holds the id (a second installation with the same id).
    let twin = Local::for_main(&main, id, &main.sync.clone(), &[]);
    let report = diagnose_json(&twin, &[]);
    assert_eq!(report["cause"], "ID_IN_USE", "{report:#}");
    assert!(report["remedy"].as_str().unwrap().contains("licensing@"));

    // An id Solme does not know.
    let stranger = Local::for_main(&main, uuid::Uuid::new_v4(), &main.sync.clone(), &[]);
    assert_eq!(diagnose_json(&stranger, &[])["cause"], "UNKNOWN_SERVER_ID");

    // The main server stops: the server that reached it before says it is down.
    main.stop();
    let report = diagnose_json(&local, &[]);
    assert_eq!(report["cause"], "MAIN_SERVER_DOWN", "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    assert!(checks
        .iter()
        .any(|c| c["check"] == "last sync" && c["outcome"] == "ok"));
    Ok(())
}

#[test]
fn diagnose_without_installation_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(local_bin())
        .args(["diagnose", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["cause"], "NOT_INITIALISED");
}

#[actix_rt::test]
async fn a_port_that_takes_the_connection_and_never_answers_is_a_server_down_not_a_certificate(
) -> TestResult {
    let Some(main) = Main::start() else {
        return Ok(());
    };
    let id = main.new_server("cad", 1);
    // Accepts every connection and holds it without a word, like a hung server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hung = format!("https://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().map_while(Result::ok).collect();
        drop(held);
    });
    let local = Local::for_main(&main, id, &[hung.clone(), hung], &[]);
    let report = diagnose_json(&local, &[]);
    assert_eq!(report["cause"], "MAIN_SERVER_DOWN", "{report:#}");
    assert!(
        report.to_string().contains("nothing answered within 10 s"),
        "{report:#}"
    );
    Ok(())
}

#[actix_rt::test]
async fn a_port_that_closes_the_connection_without_a_word_is_a_server_down() -> TestResult {
    let Some(main) = Main::start() else {
        return Ok(());
    };
    let id = main.new_server("cad", 1);
    // A front with nothing behind it: takes each connection and closes it at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let front = format!("https://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    let local = Local::for_main(&main, id, &[front.clone(), front], &[]);
    let report = diagnose_json(&local, &[]);
    assert_eq!(report["cause"], "MAIN_SERVER_DOWN", "{report:#}");
    assert!(
        report.to_string().contains("closed before any secure"),
        "{report:#}"
    );
    Ok(())
}
