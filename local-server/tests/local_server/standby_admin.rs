//! The standby pair as its administrator sees it, with the real binaries: `status` and
//! `diagnose` on both servers, and the promotion through the manager API and page
//! (refused while the primary answers, refused on a server that is no standby).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared_proto::clock::CLOCK_OFFSET_ENV;
use tempfile::TempDir;
use test_harness::browser::chromium_present;
use test_harness::process::spawn_listening;
use test_harness::Child;

use crate::helpers::*;

/// How often the standby calls its primary in these tests.
const INTERVAL_MS: &str = "200";

/// A standby installation paired with a primary, `serve` running.
struct Standby {
    _dir: TempDir,
    data: PathBuf,
    _serve: Child,
    addr: String,
}

impl Standby {
    /// Pairs a new standby with `primary` (which must be serving) and starts it.
    fn pair_with(primary: &Local) -> Self {
        let out = primary.cli(&["standby", "pair"]);
        assert_success(&out);
        let code = stdout(&out)
            .lines()
            .find_map(|line| line.strip_prefix("Pairing code: "))
            .expect("a pairing code")
            .trim()
            .to_owned();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("standby");
        let primary_url = primary.url("");
        let out = command(
            &data,
            &[
                "init",
                "--standby-of",
                &primary_url,
                "--pairing-code",
                &code,
            ],
        )
        .output()
        .unwrap();
        assert_success(&out);
        let serve = command(
            &data,
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--pair-interval-ms",
                INTERVAL_MS,
            ],
        );
        let (child, listening) = spawn_listening("standby", serve, &data).unwrap();
        let addr = format!("http://{}", listening["api"].as_str().unwrap());
        Self {
            _dir: dir,
            data,
            _serve: child,
            addr,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        command(&self.data, args).output().unwrap()
    }

    fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert_success(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `POST /manager/v1/promote` as the page sends it.
    async fn promote(&self, body: Value) -> (u16, Value) {
        promote_at(&self.addr, body).await
    }
}

/// `local-server VERB --data-dir DATA ARGS…`, without proxy or clock settings.
fn command(data: &Path, args: &[&str]) -> Command {
    let (verb, rest) = args.split_first().unwrap();
    let mut cmd = Command::new(local_bin());
    cmd.arg(verb)
        .arg("--data-dir")
        .arg(data)
        .args(rest)
        .env("RUST_LOG", "warn");
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "LOCAL_SERVER_PROXY",
        CLOCK_OFFSET_ENV,
    ] {
        cmd.env_remove(var);
    }
    cmd
}

async fn promote_at(base: &str, body: Value) -> (u16, Value) {
    let mut resp = client()
        .post(format!("{base}/manager/v1/promote"))
        .insert_header(("X-Solme-Manager", "1"))
        .send_json(&body)
        .await
        .unwrap();
    let answer: Value = resp.json().await.unwrap();
    (resp.status().as_u16(), answer)
}

/// Waits (with a deadline) until `check` holds.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text_of(pair: &Value) -> String {
    pair["text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[actix_rt::test]
async fn a_server_that_is_no_standby_is_not_promoted_and_shows_no_pair() -> TestResult {
    let local = Local::offline_serving();
    let (status, body) = promote_at(&local.url(""), json!({"reason": "test"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("WRONG_SERVER")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("not a standby"),
        "{body}"
    );
    // Without the manager header, nothing happens.
    let resp = client()
        .post(local.url("/manager/v1/promote"))
        .send_json(&json!({}))
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    let status = local.status();
    assert!(status.get("pair").is_none(), "{status}");
    let text = stdout(&local.cli(&["status"]));
    assert!(!text.contains("standby"), "{text}");
    Ok(())
}

#[actix_rt::test]
async fn both_servers_of_a_pair_say_where_they_stand_and_a_standby_whose_primary_answers_is_not_promoted(
) -> TestResult {
    let primary = Local::serving(vec![license("cad", 2)], &[]);
    let standby = Standby::pair_with(&primary);

    // The standby calls and is answered: both say so.
    wait_for("the standby's clock measure", || {
        standby.status()["pair"]["clock_offset_ms"].is_i64()
    });
    let status = standby.status();
    let pair = &status["pair"];
    assert_eq!(pair["role"], "standby");
    assert_eq!(pair["state"], "following");
    assert_eq!(pair["peer_address"], primary.url("/"));
    assert!(status["issuing"] == false, "{status}");
    let words = text_of(pair);
    assert!(
        words.contains(&format!("following the primary at {}", primary.url(""))),
        "{words}"
    );
    assert!(
        words.contains("no copy of the primary's license file yet"),
        "{words}"
    );
    let printed = stdout(&standby.cli(&["status"]));
    assert!(
        printed.contains("  standby:         following the primary at"),
        "{printed}"
    );
    assert!(
        printed.contains("No copy of the primary's license file yet"),
        "{printed}"
    );
    wait_for("the primary to hear from its standby", || {
        primary.status()["pair"]["clock_offset_ms"].is_i64()
    });
    let status = primary.status();
    assert_eq!(status["pair"]["role"], "primary");
    assert_eq!(status["pair"]["state"], "serving");
    assert!(status["issuing"] == true, "{status}");
    let printed = stdout(&primary.cli(&["status"]));
    assert!(
        printed.contains(&format!(
            "  pair:            standby paired (key {}), following, heard",
            status["pair"]["peer_fingerprint"].as_str().unwrap()
        )),
        "{printed}"
    );
    assert!(printed.contains("apart"), "{printed}");

    // The page's promotion: the primary answers, so no.
    let (code, body) = standby.promote(json!({"reason": "test"})).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("SERVING_ELSEWHERE")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("a primary that answers is not down"),
        "{body}"
    );
    assert_eq!(standby.status()["pair"]["state"], "following");

    // The standby's diagnosis asks its primary, not Solme.
    let out = standby.cli(&["diagnose", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let checks = report["checks"].as_array().unwrap();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {report}"))
    };
    assert_eq!(check("primary")["outcome"], "ok", "{report}");
    assert_eq!(check("clock")["outcome"], "ok", "{report}");
    assert_eq!(check("license copy")["outcome"], "fail", "{report}");
    assert_eq!(report["cause"], "STANDBY_COPY_MISSING", "{report}");
    assert!(
        checks.iter().all(|c| c["check"] != "main server"),
        "{report}"
    );
    assert_eq!(out.status.code(), Some(1));

    // The primary's diagnosis names its standby beside its own checks.
    let out = primary.cli(&["diagnose", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let standby_check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "standby")
        .unwrap_or_else(|| panic!("no standby check in {report}"));
    assert_eq!(standby_check["outcome"], "ok", "{report}");
    assert!(
        standby_check["detail"]
            .as_str()
            .unwrap()
            .contains("standby paired"),
        "{report}"
    );
    Ok(())
}

#[actix_rt::test]
async fn chromium_promotes_a_standby_only_after_the_question_and_shows_the_refusal() -> TestResult {
    if !chromium_present() {
        return Ok(());
    }
    let primary = Local::serving(vec![license("cad", 2)], &[]);
    let standby = Standby::pair_with(&primary);
    let mut page = crate::devtools::Browser::open(&format!("{}/", standby.addr), 1280, 900).await;
    page.wait_for("!document.getElementById('promote-button').hidden")
        .await;
    let lines = page
        .eval("document.getElementById('pair-lines').textContent")
        .await;
    assert!(
        lines.as_str().unwrap().contains("following the primary at"),
        "{lines}"
    );

    // The first click only asks; Cancel promotes nothing.
    page.eval("document.getElementById('promote-button').click(); true")
        .await;
    page.wait_for("!document.getElementById('promote-confirm').hidden")
        .await;
    let warning = page
        .eval("document.getElementById('promote-warning').textContent")
        .await;
    assert_eq!(
        warning,
        "Make sure the primary is off. If it still runs in a part of the network this \
         server cannot reach, both would issue seats."
    );
    page.eval("document.getElementById('promote-no').click(); true")
        .await;
    page.wait_for("document.getElementById('promote-confirm').hidden")
        .await;
    assert_eq!(standby.status()["pair"]["state"], "following");

    // Confirmed with a reason: the primary answers, so the refusal is shown in words.
    page.eval("document.getElementById('promote-button').click(); true")
        .await;
    page.wait_for("!document.getElementById('promote-confirm').hidden")
        .await;
    page.eval("document.getElementById('promote-reason').value = 'primary room flooded'; document.getElementById('promote-yes').click(); true").await;
    page.wait_for(
        "document.getElementById('promote-result').textContent.includes('SERVING_ELSEWHERE')",
    )
    .await;
    let result = page
        .eval("document.getElementById('promote-result').textContent")
        .await;
    let result = result.as_str().unwrap();
    assert!(
        result.contains("a primary that answers is not down"),
        "{result}"
    );
    assert!(result.contains("This server was not promoted."), "{result}");
    assert_eq!(standby.status()["pair"]["state"], "following");
    assert!(page.failed_requests().iter().all(|u| u.contains("promote")));
    Ok(())
}

#[actix_rt::test]
async fn a_standby_whose_primary_is_gone_says_so_and_is_promoted_only_with_a_license_copy(
) -> TestResult {
    let mut primary = Local::serving(vec![license("cad", 2)], &[]);
    let standby = Standby::pair_with(&primary);
    wait_for("the standby's first call", || {
        standby.status()["pair"]["peer_reachable"] == true
    });
    primary.kill();

    // A few missed calls: status and diagnose say the primary is not heard from.
    wait_for("the primary to count as unreachable", || {
        standby.status()["pair"]["peer_reachable"] == false
    });
    let words = text_of(&standby.status()["pair"]);
    assert!(words.contains("but not heard from since"), "{words}");
    let out = standby.cli(&["diagnose", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["cause"], "PRIMARY_UNREACHABLE", "{report}");
    let primary_check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "primary")
        .unwrap_or_else(|| panic!("no primary check in {report}"));
    assert!(
        primary_check["detail"]
            .as_str()
            .unwrap()
            .contains("does not answer; last heard"),
        "{report}"
    );
    assert_eq!(out.status.code(), Some(1));

    // Silent long enough (5 s at this interval): the promotion now fails on what the
    // standby lacks, a copy of the primary's license file naming it.
    wait_for("a promotion to become possible", || {
        text_of(&standby.status()["pair"]).contains("make sure it is off")
    });
    let (code, body) = standby.promote(json!({})).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("NOT_SYNCHRONIZED")),
        "{body}"
    );
    assert_eq!(standby.status()["pair"]["state"], "following");
    Ok(())
}
