//! Synchronization through a real HTTP proxy (Debian's tinyproxy), with and without
//! the right credentials. Skipped, with a notice, where tinyproxy is not installed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// A tinyproxy demanding `alice:secret`, on a free port.
struct Tinyproxy {
    _dir: tempfile::TempDir,
    _proc: Proc,
    port: u16,
}

fn tinyproxy_bin() -> Option<PathBuf> {
    let out = Command::new("which").arg("tinyproxy").output().ok()?;
    if out.status.success() {
        Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    } else {
        missing("tinyproxy", "apt-get install tinyproxy");
        None
    }
}

impl Tinyproxy {
    fn start() -> Option<Self> {
        let bin = tinyproxy_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let port = closed_port();
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nLogLevel Error\n\
                 BasicAuth alice secret\n"
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
        Some(Self {
            _dir: dir,
            _proc: proc,
            port,
        })
    }

    fn url(&self, credentials: &str) -> String {
        format!("http://{credentials}@127.0.0.1:{}", self.port)
    }
}

#[actix_rt::test]
async fn sync_through_a_proxy_needs_the_right_credentials() -> TestResult {
    let Some(proxy) = Tinyproxy::start() else {
        return Ok(());
    };
    let Some(main) = Main::start() else {
        return Ok(());
    };
    let http = client();
    let id = main.new_server(&http, "cad", 1).await;
    let local = Local::for_main(
        &main,
        id,
        &main.sync.clone(),
        &["--proxy", &proxy.url("alice:wrong")],
    );

    // The stored proxy with wrong credentials: a network failure (exit 75) naming the 407.
    let out = local.cli(&["sync"]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rejected the user name and password"),
        "{}",
        stderr(&out)
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
    let good = proxy.url("alice:secret");
    let out = local.cli(&["sync", "--proxy", &good]);
    assert_success(&out);
    let out = local.cli_env(
        &["sync"],
        &[("HTTPS_PROXY", good.as_str()), ("LOCAL_SERVER_PROXY", "")],
    );
    // The stored (wrong) proxy wins over HTTPS_PROXY, so this one fails again.
    assert_eq!(out.status.code(), Some(75));
    // NO_PROXY lets the main server be reached directly despite the stored proxy.
    let out = local.cli_env(&["sync"], &[("NO_PROXY", "127.0.0.1")]);
    assert_success(&out);
    Ok(())
}

pub fn diagnose_json(local: &Local, env: &[(&str, &str)]) -> serde_json::Value {
    let out = local.cli_env(&["diagnose", "--json"], env);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)))
}
