//! Synchronization through a real HTTP proxy (Debian's tinyproxy), with and without
//! the right credentials. Skipped, with a notice, where tinyproxy is not installed.

use test_harness::proxy::{Tinyproxy, PROXY_PASSWORD, PROXY_USER};

use crate::helpers::*;
use shared_proto::exit;

/// A tinyproxy demanding the harness's credentials; `None` (with a notice) when not
/// installed.
fn tinyproxy(dir: &std::path::Path) -> Option<Tinyproxy> {
    let binary = Tinyproxy::binary();
    if !tool_present(binary.is_some(), "tinyproxy", "apt-get install tinyproxy") {
        return None;
    }
    Some(Tinyproxy::start(&binary?, dir).unwrap())
}

#[actix_rt::test]
async fn sync_through_a_proxy_needs_the_right_credentials() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let Some(proxy) = tinyproxy(scratch.path()) else {
        return Ok(());
    };
    let Some(main) = Main::start() else {
        return Ok(());
    };
    let id = main.new_server("cad", 1);
    let local = Local::for_main(
        &main,
        id,
        &main.sync.clone(),
        &["--proxy", &proxy.url(&format!("{PROXY_USER}:wrong"))],
    );

    // The stored proxy with wrong credentials: a network failure (exit 75) naming the 407.
    let out = local.cli(&["sync"]);
    assert_stderr(
        &out,
        i32::from(exit::TEMPORARY),
        "rejected the user name and password",
    );
    assert!(
        !stderr(&out).contains("wrong"),
        "the password must not be printed"
    );
    let report = diagnose_json(&local, &[]);
    assert_eq!(report["cause"], "PROXY_CREDENTIALS", "{report:#}");

    // No credentials at all (from the environment): same cause, worded as missing.
    let no_creds = format!("http://127.0.0.1:{}", proxy.port);
    let out = local.cli_env(
        &["diagnose", "--json"],
        &[("LOCAL_SERVER_PROXY", no_creds.as_str())],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["cause"], "PROXY_CREDENTIALS");
    assert!(
        report.to_string().contains("asks for a user name"),
        "{report}"
    );

    // The right ones, from the flag: synchronized through the tunnel.
    let good = proxy.url(&format!("{PROXY_USER}:{PROXY_PASSWORD}"));
    let out = local.cli(&["sync", "--proxy", &good]);
    assert_success(&out);
    let out = local.cli_env(
        &["sync"],
        &[("HTTPS_PROXY", good.as_str()), ("LOCAL_SERVER_PROXY", "")],
    );
    // The stored (wrong) proxy wins over HTTPS_PROXY, so this one fails again.
    assert_eq!(out.status.code(), Some(i32::from(exit::TEMPORARY)));
    // NO_PROXY lets the main server be reached directly despite the stored proxy.
    let out = local.cli_env(&["sync"], &[("NO_PROXY", "127.0.0.1")]);
    assert_success(&out);
    Ok(())
}

pub fn diagnose_json(local: &Local, env: &[(&str, &str)]) -> serde_json::Value {
    let out = local.cli_env(&["diagnose", "--json"], env);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)))
}
