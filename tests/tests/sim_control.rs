//! `solme-sim` as a QA team drives it: the simulation started as a process of its own,
//! then moved and questioned only through its control API, never restarted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;
use test_harness::process::{signal_group, Signal};
use test_harness::{wait_until, Admin};

const CONTACT: &str = "ops@acme.example";
/// Setting the world up includes an email sync and a direct sync.
const START: Duration = Duration::from_secs(240);

/// A running `solme-sim`; dropping it kills its whole process group (the simulation
/// and every program it started), so nothing outlives the test.
struct Sim {
    child: std::process::Child,
    dir: TempDir,
    url: String,
    token: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        signal_group(self.child.id(), Signal::KILL);
        let _ = self.child.wait();
    }
}

impl Sim {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let output = std::fs::File::create(dir.path().join("sim-output.txt")).unwrap();
        let data_dir = dir.path().join("sim");
        let mut child = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
            .arg("--data-dir")
            .arg(&data_dir)
            // The programs are built already: no `cargo build` from inside the test.
            .env_remove("CARGO")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .process_group(0)
            .spawn()
            .unwrap();
        let control = data_dir.join("control.json");
        let found = wait_until("the simulation's control.json", START, || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            let text = std::fs::read_to_string(&control).ok()?;
            serde_json::from_str::<Value>(&text).ok().map(Ok)
        });
        let info = match found {
            Ok(Ok(info)) => info,
            other => {
                let output =
                    std::fs::read_to_string(dir.path().join("sim-output.txt")).unwrap_or_default();
                signal_group(child.id(), Signal::KILL);
                panic!("the simulation did not come up ({other:?}):\n{output}");
            }
        };
        let token = std::fs::read_to_string(info["token_file"].as_str().unwrap())
            .unwrap()
            .trim()
            .to_string();
        Self {
            child,
            dir,
            url: info["url"].as_str().unwrap().to_string(),
            token,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("sim")
    }

    /// A control API call with `token`: (status, JSON body).
    fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = ureq::request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {token}"));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("control API unreachable: {e}"),
        };
        (response.status(), response.into_json().unwrap())
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body)
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {body}");
        body
    }

    fn advance(&self, by: &str) -> Value {
        self.ok("POST", "/v1/clock", Some(json!({"advance": by})))
    }

    fn program(&self, name: &str) -> Value {
        let status = self.ok("GET", "/v1/status", None);
        status["programs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    }

    fn inbox(&self, address: &str) -> Vec<Value> {
        self.ok("GET", &format!("/v1/mail/inbox?address={address}"), None)
            .as_array()
            .unwrap()
            .clone()
    }

    fn exec(&self, program: &str, args: &[&str]) -> Value {
        self.ok(
            "POST",
            "/v1/exec",
            Some(json!({"program": program, "args": args})),
        )
    }

    /// The main server's admin API, as its operator (the first admin).
    fn admin(&self) -> Admin {
        let main = self.program("main-server");
        let dir = PathBuf::from(main["data_dir"].as_str().unwrap());
        let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
        Admin::new(
            main["addresses"]["admin"].as_str().unwrap(),
            token.trim(),
            &dir.join("ca.pem"),
        )
        .unwrap()
    }
}

/// `solme_clock_offset_seconds` on a /metrics text.
fn offset_in(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("solme_clock_offset_seconds "))
        .and_then(|value| value.trim().parse().ok())
}

fn http_text(url: &str) -> String {
    ureq::get(url).call().unwrap().into_string().unwrap()
}

/// Waits until every program's /metrics shows `days` of offset; returns how long the
/// slowest took from `since`.
fn wait_for_every_program(sim: &Sim, days: f64, since: Instant) -> Duration {
    let expected = days * 86_400.0;
    let near = |offset: Option<f64>| offset.is_some_and(|o| (o - expected).abs() < 60.0);
    let local = sim.program("local-server-1")["addresses"]["api"]
        .as_str()
        .unwrap()
        .to_string();
    let gateway = sim.program("mail-gateway")["addresses"]["http"]
        .as_str()
        .unwrap()
        .to_string();
    let admin = sim.admin();
    wait_until(
        "every program to follow the clock",
        Duration::from_secs(5),
        || {
            let main = match admin.call("GET", "/metrics", None).ok()? {
                (200, Value::String(text)) => text,
                _ => return None,
            };
            (near(offset_in(&main))
                && near(offset_in(&http_text(&format!("{local}/metrics"))))
                && near(offset_in(&http_text(&format!("{gateway}/metrics")))))
            .then(|| since.elapsed())
        },
    )
    .unwrap()
}

fn checkout(api: &str) -> (u16, Value) {
    let result = ureq::post(&format!("{api}/api/v1/leases"))
        .send_json(json!({"feature": "solme-cad", "client": "qa-laptop"}));
    match result {
        Ok(response) => (response.status(), response.into_json().unwrap()),
        Err(ureq::Error::Status(status, response)) => (status, response.into_json().unwrap()),
        Err(e) => panic!("checkout failed: {e}"),
    }
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_running_simulation_moves_to_day_367_through_its_control_api() {
    let sim = Sim::start();
    let status = sim.ok("GET", "/v1/status", None);
    assert_eq!(status["clock"]["offset"], "+0s", "{status}");
    let local = sim.program("local-server-1");
    assert!(local["pid"].as_u64().is_some(), "{local}");
    let api = local["addresses"]["api"].as_str().unwrap().to_string();
    let (code, lease) = checkout(&api);
    assert_eq!(code, 201, "day 0: {lease}");

    // Day 340: the 30-day reminder reaches the customer's inbox.
    let moved_at = Instant::now();
    let moved = sim.advance("340d");
    assert_eq!(moved["offset"], "+340d", "{moved}");
    let reached = wait_for_every_program(&sim, 340.0, moved_at);
    eprintln!("a 340-day jump reached every program in {reached:?}");
    let reminder = wait_until(
        "a reminder to the customer",
        Duration::from_secs(30),
        || {
            sim.inbox(CONTACT)
                .into_iter()
                .find(|mail| mail["kind"] == "reminder")
        },
    )
    .unwrap();
    assert!(
        reminder["subject"].as_str().unwrap().len() > 5,
        "{reminder}"
    );
    assert!(reminder["date"].as_str().is_some(), "{reminder}");

    // Day 367: the local server refuses, from its client API and its status.
    let moved_at = Instant::now();
    sim.advance("27d");
    wait_for_every_program(&sim, 367.0, moved_at);
    let (code, refusal) = wait_until(
        "SYNC_EXPIRED from the client API",
        Duration::from_secs(5),
        || {
            let (code, body) = checkout(&api);
            (body["code"] == "SYNC_EXPIRED").then_some((code, body))
        },
    )
    .unwrap();
    assert!((400..500).contains(&code), "{code} {refusal}");
    let output = sim.exec("local-server-1", &["status", "--json"]);
    assert_eq!(output["exit_code"], 0, "{output}");
    let report: Value = serde_json::from_str(output["stdout"].as_str().unwrap()).unwrap();
    assert_eq!(report["state"], "expired", "{report}");
    assert!(
        report["clock"]
            .as_str()
            .unwrap()
            .contains("simulated clock"),
        "{report}"
    );
    // Nothing was restarted.
    assert_eq!(sim.program("local-server-1")["pid"], local["pid"]);
}

/// The committed description of the control API, as users and tools read it without
/// running anything.
fn committed_openapi() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/control-api.openapi.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_committed_openapi_document_is_what_solme_sim_openapi_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed == committed_openapi(),
        "docs/control-api.openapi.json differs from the document the code generates; \
         regenerate it with `cargo run -p tests --bin solme-sim -- openapi > \
         docs/control-api.openapi.json` and commit it"
    );
    let document: Value = serde_json::from_str(&printed).unwrap();
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    assert_eq!(
        document["paths"]["/v1/status"]["get"]["security"],
        json!([{"bearer": []}])
    );
}

#[test]
fn the_control_api_refuses_a_wrong_token_and_bad_input_and_changes_nothing() {
    let sim = Sim::start();

    // Its description is public: served without a token, the same as the committed one.
    let served = ureq::get(&format!("{}/v1/openapi.json", sim.url))
        .call()
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.content_type(), "application/json");
    assert!(served.into_string().unwrap() == committed_openapi());
    let before = sim.ok("GET", "/v1/status", None)["clock"]["offset_ms"].clone();

    let (code, body) = sim.call_as(
        "not-the-token",
        "POST",
        "/v1/clock",
        Some(json!({"advance": "10d"})),
    );
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["code"], "UNAUTHORIZED", "{body}");
    let (code, _) = sim.call_as("", "GET", "/v1/status", None);
    assert_eq!(code, 401);

    for bad in [
        json!({"advance": "soon"}),
        json!({"advance": "-3d"}),
        json!({"set": "next tuesday"}),
        json!({"advance": "1d", "back": "1d"}),
        json!({"advance": "40000d"}),
        json!("340d"),
    ] {
        let (code, body) = sim.call("POST", "/v1/clock", Some(bad.clone()));
        assert_eq!(code, 400, "{bad}: {body}");
        assert_eq!(body["code"], "MALFORMED", "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().len() > 10, "{body}");
    }
    let (code, body) = sim.call(
        "POST",
        "/v1/exec",
        Some(json!({"program": "nobody", "args": ["status"]})),
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = sim.call("GET", "/v1/mail/inbox", None);
    assert_eq!(code, 400, "{body}");
    let after = sim.ok("GET", "/v1/status", None)["clock"]["offset_ms"].clone();
    assert_eq!(before, after, "a refused request moved the clock");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(sim.data_dir().join("clock.json")).unwrap())
            .unwrap();
    assert_eq!(file["offset_ms"], before);

    // The token file is the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sim.data_dir().join("control-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Moving the clock back is allowed: the local server's own defence answers.
    sim.ok("POST", "/v1/clock", Some(json!({"back": "2d"})));
    let api = sim.program("local-server-1")["addresses"]["api"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(
        "CLOCK_ROLLBACK after the clock went back",
        Duration::from_secs(5),
        || (checkout(&api).1["code"] == "CLOCK_ROLLBACK").then_some(()),
    )
    .unwrap();

    // The simulation's own fixes: each local server's serve.log has each line once
    // (the harness wrote the program's output into it too), and the gateway's syncs
    // run under its own identity, not the first admin's.
    let log = lines_of(&sim.data_dir().join("local-server-1").join("serve.log"));
    let starts = log
        .iter()
        .filter(|line| line.contains("simulated clock: following"))
        .count();
    assert_eq!(starts, 1, "{log:#?}");
    for pair in log.windows(2) {
        assert_ne!(pair[0], pair[1], "a line written twice in serve.log");
    }
    let audit = sim.admin().audit().unwrap();
    let email_syncs: Vec<&Value> = audit
        .iter()
        .filter(|e| {
            e["action"] == "sync" && e["detail"].as_str().unwrap().contains("channel email")
        })
        .collect();
    assert!(!email_syncs.is_empty(), "no email sync in {audit:#?}");
    for sync in email_syncs {
        // The account that called the main server: the gateway's own, role gateway.
        assert!(
            sync["detail"]
                .as_str()
                .unwrap()
                .contains("peer mail-gateway,"),
            "an email sync ran under another account: {sync:#}"
        );
    }
}

/// The events after `since` from the control API.
fn events_since(sim: &Sim, since: u64) -> Vec<Value> {
    sim.ok("GET", &format!("/v1/events?since={since}"), None)
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_clock_move_and_an_exec_appear_in_the_event_log() {
    let sim = Sim::start();
    // The set-up is in the log: every program started, the email sync's reply sent.
    let setup = wait_until(
        "the set-up's reply in the log",
        Duration::from_secs(10),
        || {
            let events = events_since(&sim, 0);
            events
                .iter()
                .any(|e| {
                    e["kind"] == "mail-sent" && e["mail_kind"] == "reply" && e["to"] == CONTACT
                })
                .then_some(events)
        },
    )
    .unwrap();
    for program in [
        "main-server",
        "mail-gateway",
        "local-server-1",
        "local-server-2",
    ] {
        assert!(
            setup
                .iter()
                .any(|e| e["kind"] == "program-started" && e["program"] == program),
            "{program} not started in {setup:#?}"
        );
    }
    let last = setup.last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(
        last as usize,
        setup.len(),
        "sequence numbers from 1 without gaps"
    );

    sim.advance("10d");
    let output = sim.exec("local-server-1", &["status", "--json"]);
    assert_eq!(output["exit_code"], 0, "{output}");
    let (code, _) = sim.call("POST", "/v1/clock", Some(json!({"advance": "not a span"})));
    assert_eq!(code, 400);

    let new = events_since(&sim, last);
    let kinds: Vec<&str> = new.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["clock-moved", "exec"], "{new:#?}");
    let moved = &new[0];
    assert_eq!(moved["seq"], last + 1);
    assert_eq!(moved["by"], "advance 10d");
    assert_eq!(moved["from_offset"], "+0s");
    assert_eq!(moved["to_offset"], "+10d");
    let exec = &new[1];
    assert_eq!(exec["program"], "local-server-1");
    assert_eq!(exec["args"], json!(["status", "--json"]));
    assert_eq!(exec["exit_code"], 0);
    // Events after the move carry the simulated time.
    let at: chrono::DateTime<chrono::Utc> = exec["at"].as_str().unwrap().parse().unwrap();
    let sim_time: chrono::DateTime<chrono::Utc> =
        exec["sim_time"].as_str().unwrap().parse().unwrap();
    assert_eq!((sim_time - at).num_days(), 10, "{exec}");

    // The file has the same events, one JSON line each.
    let lines = lines_of(&sim.data_dir().join("events.jsonl"));
    let from_file: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(from_file, events_since(&sim, 0));

    // A waiting reader gets the next event as it happens.
    let seq = exec["seq"].as_u64().unwrap();
    let waiter = {
        let (url, token) = (sim.url.clone(), sim.token.clone());
        std::thread::spawn(move || {
            ureq::get(&format!("{url}/v1/events?since={seq}&wait_ms=20000"))
                .set("Authorization", &format!("Bearer {token}"))
                .call()
                .unwrap()
                .into_json::<Value>()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    sim.ok("POST", "/v1/clock", Some(json!({"back": "1d"})));
    let next = waiter.join().unwrap();
    assert_eq!(next[0]["kind"], "clock-moved", "{next}");
    assert_eq!(next[0]["by"], "back 1d", "{next}");

    // The CLI prints them, one line each.
    let output = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("--data-dir")
        .arg(sim.data_dir())
        .args(["events", "--since", &last.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("clock-moved") && lines[0].contains("by=advance 10d"),
        "{text}"
    );
    assert!(
        lines[1].contains("exec") && lines[1].contains("args=[status --json]"),
        "{text}"
    );
}

/// Switches a fault through the control API and returns the answer.
fn fault(sim: &Sim, body: Value) -> Value {
    sim.ok("POST", "/v1/faults", Some(body))
}

fn status_page(url: &str) -> Result<u16, String> {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(1500))
        .build()
        .get(&format!("{url}/status"))
        .call()
        .map(|r| r.status())
        .map_err(|e| e.to_string())
}

#[test]
fn faults_kill_and_restart_the_main_server_stop_the_gateway_and_lock_a_database() {
    let sim = Sim::start();
    let main_pid = sim.program("main-server")["pid"].as_u64().unwrap();

    // The main server killed: a direct sync fails on the network.
    let answer = fault(
        &sim,
        json!({"fault": "kill", "program": "main-server", "on": true}),
    );
    assert_eq!(answer["changed"], true, "{answer}");
    assert!(answer["pid"].is_null(), "{answer}");
    let main = sim.program("main-server");
    assert_eq!(main["state"], "killed", "{main}");
    assert!(main["pid"].is_null(), "{main}");
    let status = sim.ok("GET", "/v1/status", None);
    assert_eq!(status["faults"][0]["fault"], "kill", "{status}");
    assert_eq!(status["faults"][0]["program"], "main-server", "{status}");
    let output = sim.exec("local-server-1", &["sync"]);
    assert_ne!(output["exit_code"], 0, "{output}");
    let said = output["stderr"].as_str().unwrap().to_lowercase();
    assert!(
        said.contains("connect") || said.contains("refused") || said.contains("reach"),
        "not a network error: {output}"
    );
    // Stopping a killed program is refused, and changes nothing.
    let (code, body) = sim.call(
        "POST",
        "/v1/faults",
        Some(json!({"fault": "stop", "program": "main-server", "on": true})),
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "CONFLICT", "{body}");

    // Started again on the same ports: the sync passes.
    let answer = fault(
        &sim,
        json!({"fault": "kill", "program": "main-server", "on": false}),
    );
    assert_eq!(answer["changed"], true, "{answer}");
    let main = sim.program("main-server");
    assert_eq!(main["state"], "running", "{main}");
    assert_ne!(main["pid"].as_u64().unwrap(), main_pid);
    let output = sim.exec("local-server-1", &["sync"]);
    assert_eq!(output["exit_code"], 0, "{output}");
    assert_eq!(sim.ok("GET", "/v1/status", None)["faults"], json!([]));

    // The gateway stopped (SIGSTOP): its status page answers nothing, then again.
    let gateway = sim.program("mail-gateway");
    let page = gateway["addresses"]["http"].as_str().unwrap().to_string();
    assert_eq!(status_page(&page), Ok(200));
    let answer = fault(
        &sim,
        json!({"fault": "stop", "program": "mail-gateway", "on": true}),
    );
    assert_eq!(answer["changed"], true, "{answer}");
    assert_eq!(sim.program("mail-gateway")["state"], "stopped");
    let refused = status_page(&page);
    assert!(refused.is_err(), "a stopped gateway answered: {refused:?}");
    let answer = fault(
        &sim,
        json!({"fault": "stop", "program": "mail-gateway", "on": false}),
    );
    assert_eq!(answer["changed"], true, "{answer}");
    assert_eq!(status_page(&page), Ok(200));
    assert_eq!(sim.program("mail-gateway")["pid"], gateway["pid"]);

    // The local database held locked: a checkout answers UNAVAILABLE, then passes.
    let api = sim.program("local-server-1")["addresses"]["api"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = fault(
        &sim,
        json!({"fault": "db-lock", "program": "local-server-1", "on": true, "seconds": 120}),
    );
    assert_eq!(answer["changed"], true, "{answer}");
    let status = sim.ok("GET", "/v1/status", None);
    assert_eq!(status["faults"][0]["fault"], "db-lock", "{status}");
    assert!(status["faults"][0]["until"].is_string(), "{status}");
    let (code, body) = checkout(&api);
    assert_eq!(
        (code, body["code"].as_str()),
        (503, Some("UNAVAILABLE")),
        "{body}"
    );
    fault(
        &sim,
        json!({"fault": "db-lock", "program": "local-server-1", "on": false}),
    );
    let (code, body) = checkout(&api);
    assert_eq!(code, 201, "{body}");

    // Restarted: a new process on the same address, serving.
    let before = sim.program("local-server-1");
    let answer = fault(
        &sim,
        json!({"fault": "restart", "program": "local-server-1", "on": true}),
    );
    assert_eq!(answer["changed"], true, "{answer}");
    let after = sim.program("local-server-1");
    assert_ne!(after["pid"], before["pid"]);
    assert_eq!(after["addresses"], before["addresses"]);
    assert_eq!(checkout(&api).0, 201);

    // What cannot be done says why, and changes nothing.
    for (bad, code, error) in [
        (
            json!({"fault": "db-lock", "program": "mail-gateway", "on": true}),
            422,
            "UNSUPPORTED",
        ),
        (
            json!({"fault": "restart", "program": "main-server", "on": false}),
            400,
            "MALFORMED",
        ),
        (
            json!({"fault": "melt", "program": "main-server", "on": true}),
            400,
            "MALFORMED",
        ),
        (
            json!({"fault": "kill", "program": "nobody", "on": true}),
            404,
            "NOT_FOUND",
        ),
        (
            json!({"fault": "db-lock", "program": "local-server-1", "on": true, "seconds": 0}),
            400,
            "MALFORMED",
        ),
    ] {
        let (status, body) = sim.call("POST", "/v1/faults", Some(bad.clone()));
        assert_eq!(
            (status, body["code"].as_str()),
            (code, Some(error)),
            "{bad}: {body}"
        );
    }
    assert_eq!(sim.ok("GET", "/v1/status", None)["faults"], json!([]));

    // Every switch is in the event log.
    let events = events_since(&sim, 0);
    let faults: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] == "fault-on" || e["kind"] == "fault-off")
        .map(|e| {
            format!(
                "{} {} {}",
                e["kind"].as_str().unwrap(),
                e["fault"].as_str().unwrap(),
                e["program"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        faults,
        [
            "fault-on kill main-server",
            "fault-off kill main-server",
            "fault-on stop mail-gateway",
            "fault-off stop mail-gateway",
            "fault-on db-lock local-server-1",
            "fault-off db-lock local-server-1",
            "fault-on restart local-server-1",
        ],
        "{events:#?}"
    );
    assert!(events.iter().any(|e| e["kind"] == "program-stopped"
        && e["program"] == "main-server"
        && e["how"] == "killed"));
}

#[test]
fn the_cli_switches_faults_and_shows_them() {
    let sim = Sim::start();
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
            .arg("--data-dir")
            .arg(sim.data_dir())
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let (ok, said) = cli(&["fault", "stop", "local-server-2"]);
    assert!(ok && said.contains("stopped (SIGSTOP)"), "{said}");
    let (ok, said) = cli(&["status"]);
    assert!(
        ok && said.contains("fault on: stop local-server-2"),
        "{said}"
    );
    assert!(said.contains("stopped"), "{said}");
    let (ok, said) = cli(&["fault", "stop", "local-server-2", "--off"]);
    assert!(ok && said.contains("continued"), "{said}");
    let (ok, said) = cli(&["fault", "db-lock", "mail-gateway"]);
    assert!(!ok && said.contains("UNSUPPORTED"), "{said}");
    let (ok, said) = cli(&["status"]);
    assert!(ok && !said.contains("fault on"), "{said}");
}
