//! The world around the servers, across real processes: a simulation stopped and
//! resumed on its directory, customers and servers added while it runs, a server
//! reinstalled (refused until Solme clears its key pair), and two main-server replicas
//! on one PostgreSQL database with one of them lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_harness::process::{signal, signal_group, Signal};
use test_harness::wait_until;
use uuid::Uuid;

/// Setting a world up without journeys (or resuming one) takes a few seconds; a busy
/// machine may need more.
const START: Duration = Duration::from_secs(180);

/// A running `solme-sim` on `data_dir`; dropping it kills its whole process group.
struct Sim {
    child: std::process::Child,
    data_dir: PathBuf,
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
    /// Starts `solme-sim --data-dir DATA_DIR ARGS…` and waits for its control API.
    fn start(data_dir: &Path, args: &[&str]) -> Self {
        let output_file = data_dir.with_extension("output.txt");
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output_file)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            // The programs are built already: no `cargo build` from inside the test.
            .env_remove("CARGO")
            .env_remove("SOLME_SIM_DATA_DIR")
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
            let info: Value = serde_json::from_str(&text).ok()?;
            // A control.json left by a run that was killed names another process.
            (info["pid"] == child.id()).then_some(Ok(info))
        });
        let info = match found {
            Ok(Ok(info)) => info,
            other => {
                let output = std::fs::read_to_string(&output_file).unwrap_or_default();
                signal_group(child.id(), Signal::KILL);
                let _ = child.wait();
                panic!("the simulation did not come up ({other:?}):\n{output}");
            }
        };
        let token = std::fs::read_to_string(info["token_file"].as_str().unwrap())
            .unwrap()
            .trim()
            .to_string();
        Self {
            child,
            data_dir: data_dir.to_path_buf(),
            url: info["url"].as_str().unwrap().to_string(),
            token,
        }
    }

    /// Stops it as Ctrl-C or a service manager would (SIGTERM) and waits for the end.
    fn stop(mut self) {
        signal(self.child.id(), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "solme-sim ended with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "solme-sim did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(300))
            .build()
            .request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token));
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

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {body}");
        body
    }

    /// `POST /v1/exec`: the verb's exit code and both outputs.
    fn exec(&self, program: &str, args: &[&str]) -> (i64, String) {
        let output = self.ok(
            "POST",
            "/v1/exec",
            Some(json!({"program": program, "args": args, "timeout_seconds": 120})),
        );
        (
            output["exit_code"].as_i64().unwrap_or(-1),
            format!(
                "{}{}",
                output["stdout"].as_str().unwrap(),
                output["stderr"].as_str().unwrap()
            ),
        )
    }

    fn local_status(&self, program: &str) -> Value {
        let (code, text) = self.exec(program, &["status", "--json"]);
        assert_eq!(code, 0, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    fn checkout(&self, server: &str) -> Value {
        self.ok(
            "POST",
            "/v1/client",
            Some(json!({"action": "checkout", "server": server, "feature": "solme-cad"})),
        )
    }

    /// `solme-sim --data-dir DIR ARGS…`, the CLI over the control API.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_solme-sim"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .output()
            .unwrap()
    }

    fn programs(&self) -> Vec<Value> {
        self.ok("GET", "/v1/status", None)["programs"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn program(&self, name: &str) -> Value {
        self.programs()
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no program {name}"))
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The programs' names and addresses, the comparable part of a status.
fn addresses(programs: &[Value]) -> Vec<(String, Value)> {
    programs
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["addresses"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_stopped_simulation_resumes_with_its_ids_keys_data_and_ports() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sim");
    let sim = Sim::start(&data_dir, &["--no-journeys", "--local-servers", "2"]);
    let (code, output) = sim.exec("local-server-1", &["sync"]);
    assert_eq!(code, 0, "{output}");
    sim.ok("POST", "/v1/clock", Some(json!({"advance": "5d"})));
    let world = sim.ok("GET", "/v1/world", None);
    let programs = sim.programs();
    let before = sim.local_status("local-server-1");
    assert_eq!(before["state"], "synchronized", "{before}");
    let old_token = std::fs::read_to_string(data_dir.join("control-token")).unwrap();
    let events_before = sim.ok("GET", "/v1/events", None).as_array().unwrap().len();
    sim.stop();
    assert!(
        !data_dir.join("control.json").exists(),
        "a stopped simulation left its control.json"
    );

    // Another program took local-server-2's port meanwhile.
    let taken = programs
        .iter()
        .find(|p| p["name"] == "local-server-2")
        .unwrap()["addresses"]["api"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let squatter = std::net::TcpListener::bind(&taken).unwrap();

    let started = Instant::now();
    let sim = Sim::start(&data_dir, &[]);
    let resumed_in = started.elapsed();
    eprintln!("resumed in {:.2} s", resumed_in.as_secs_f64());

    // The same customers, ids and servers, on the same ports where free: local-server-2
    // moved, and the world's record says where.
    let moved = sim.program("local-server-2");
    assert_eq!(moved["state"], "running");
    let now_at = moved["addresses"]["api"].as_str().unwrap().to_string();
    assert_ne!(now_at, format!("http://{taken}"));
    drop(squatter);
    let mut expected_world = world.clone();
    expected_world["servers"][1]["listen"] = json!(now_at.trim_start_matches("http://"));
    assert_eq!(sim.ok("GET", "/v1/world", None), expected_world);
    let keep = |list: Vec<(String, Value)>| -> Vec<(String, Value)> {
        list.into_iter()
            .filter(|(name, _)| name != "local-server-2")
            .collect()
    };
    assert_eq!(keep(addresses(&sim.programs())), keep(addresses(&programs)));
    // The clock file's offset is kept.
    let clock = sim.ok("GET", "/v1/status", None)["clock"].clone();
    assert_eq!(clock["offset"], "+5d", "{clock}");
    // The same key pair, still synchronized: it issues seats without another sync.
    let after = sim.local_status("local-server-1");
    assert_eq!(after["state"], "synchronized", "{after}");
    assert_eq!(after["fingerprint"], before["fingerprint"]);
    assert_eq!(after["server_id"], before["server_id"]);
    let lease = sim.checkout("local-server-1");
    assert_eq!(lease["status"], 201, "{lease}");
    // The never-synchronized one is still that.
    assert_eq!(
        sim.local_status("local-server-2")["state"],
        "never_synchronized"
    );
    // A new token for the new run; the old one is refused.
    let new_token = std::fs::read_to_string(data_dir.join("control-token")).unwrap();
    assert_ne!(new_token, old_token);
    let refused = ureq::get(&format!("{}/v1/status", sim.url))
        .set("Authorization", &format!("Bearer {}", old_token.trim()))
        .call();
    assert!(matches!(refused, Err(ureq::Error::Status(401, _))));
    // The event log goes on from where it was, and says the simulation was resumed.
    let events = sim.ok("GET", "/v1/events", None);
    let events = events.as_array().unwrap();
    assert!(events.len() > events_before, "{events:?}");
    assert!(
        events.iter().enumerate().all(|(n, e)| e["seq"] == n + 1),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "world" && e["change"] == "resumed"),
        "{events:?}"
    );

    // Starting it again while it runs is refused, and changes nothing.
    let again = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("CARGO")
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(text(&again).contains("is running"), "{}", text(&again));
    assert_eq!(sim.program("local-server-1")["state"], "running");
    sim.stop();

    // A directory that holds something else is not taken for a simulation.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("--data-dir")
        .arg(&other)
        .env_remove("CARGO")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("holds no simulation to resume"),
        "{}",
        text(&refused)
    );
}

#[test]
fn customers_and_servers_are_added_and_a_reinstall_is_refused_until_the_key_pair_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sim");
    let sim = Sim::start(&data_dir, &["--no-journeys", "--local-servers", "1"]);

    // A customer, through the CLI.
    let output = sim.cli(&[
        "customers",
        "add",
        "Globex GmbH",
        "--contact",
        "it@globex.example",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("Globex GmbH registered"),
        "{}",
        text(&output)
    );
    // Solme's operator sees it.
    let (code, list) = sim.exec("main-server", &["admin", "customer", "list"]);
    assert_eq!(code, 0, "{list}");
    assert!(list.contains("Globex GmbH"), "{list}");

    // A server for it: an id allocated with Solme, its local server installed and serving.
    let output = sim.cli(&["servers", "add", "globex-1", "--customer", "Globex GmbH"]);
    assert!(output.status.success(), "{}", text(&output));
    let world = sim.ok("GET", "/v1/world", None);
    let globex = world["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "globex-1")
        .unwrap()
        .clone();
    let id: Uuid = globex["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(sim.program("globex-1")["state"], "running");
    assert!(data_dir.join("globex-1").join("listening.json").exists());
    let (code, show) = sim.exec("main-server", &["admin", "server", "show", &id.to_string()]);
    assert_eq!(code, 0, "{show}");
    assert!(show.contains("Globex GmbH"), "{show}");
    assert!(show.contains("solme-cad"), "{show}");
    // Before a sync it refuses; after one it issues seats of its licenses.
    assert_eq!(sim.checkout("globex-1")["body"]["code"], "NOT_SYNCHRONIZED");
    let (code, output) = sim.exec("globex-1", &["sync"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("Globex GmbH"), "{output}");
    assert_eq!(sim.checkout("globex-1")["status"], 201);
    let fingerprint = sim.local_status("globex-1")["fingerprint"].clone();

    // Refusals change nothing.
    let refusals = [
        (json!({"name": "globex-1", "customer": "Globex GmbH"}), 409),
        (json!({"name": "globex-2", "customer": "Nobody Ltd"}), 404),
        (
            json!({"name": "globex-2", "customer": "Globex GmbH", "id": id}),
            400,
        ),
        (json!({"name": "Bad Name", "customer": "Globex GmbH"}), 400),
        (
            json!({"name": "main-server-3", "customer": "Globex GmbH"}),
            409,
        ),
        (
            json!({"name": "x", "customer": "Globex GmbH", "colour": "red"}),
            400,
        ),
    ];
    for (body, status) in refusals {
        let (got, answer) = sim.call("POST", "/v1/servers", Some(body.clone()));
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["code"].is_string() && answer["message"].is_string());
    }
    let (got, answer) = sim.call(
        "POST",
        "/v1/customers",
        Some(json!({"name": "Globex GmbH", "contacts": ["a@b.example"]})),
    );
    assert_eq!(got, 409, "{answer}");
    let (got, answer) = sim.call(
        "POST",
        "/v1/customers",
        Some(json!({"name": "Initech", "contacts": ["not an address"]})),
    );
    assert_eq!(got, 400, "{answer}");
    assert_eq!(sim.ok("GET", "/v1/world", None), world);
    assert!(!data_dir.join("globex-2").exists());

    // The reinstall: a new key pair on the same id, refused until it is cleared.
    let output = sim.cli(&["servers", "reinstall", "globex-1"]);
    assert!(output.status.success(), "{}", text(&output));
    let reinstalled = sim.local_status("globex-1");
    assert_eq!(reinstalled["server_id"], id.to_string());
    assert_ne!(reinstalled["fingerprint"], fingerprint);
    assert_eq!(reinstalled["state"], "never_synchronized", "{reinstalled}");
    // On the same port.
    assert_eq!(
        sim.program("globex-1")["addresses"]["api"],
        format!("http://{}", globex["listen"].as_str().unwrap())
    );
    let (code, output) = sim.exec("globex-1", &["sync"]);
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("ID_IN_USE"), "{output}");
    assert_eq!(sim.checkout("globex-1")["body"]["code"], "NOT_SYNCHRONIZED");
    // A reinstall while a fault is on the server is refused.
    sim.ok(
        "POST",
        "/v1/faults",
        Some(json!({"fault": "stop", "program": "globex-1", "on": true})),
    );
    let (got, answer) = sim.call("POST", "/v1/servers/globex-1/reinstall", None);
    assert_eq!(got, 409, "{answer}");
    sim.ok(
        "POST",
        "/v1/faults",
        Some(json!({"fault": "stop", "program": "globex-1", "on": false})),
    );
    // The operator clears the key pair through the main server's own CLI.
    let (code, output) = sim.exec(
        "main-server",
        &[
            "admin",
            "key",
            "clear",
            &id.to_string(),
            "--reason",
            "reinstalled",
        ],
    );
    assert_eq!(code, 0, "{output}");
    let (code, output) = sim.exec("globex-1", &["sync"]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(sim.checkout("globex-1")["status"], 201);

    // Another installation on that id (a stolen one) is refused; the bound one goes on.
    let output = sim.cli(&["servers", "add", "copycat", "--id", &id.to_string()]);
    assert!(output.status.success(), "{}", text(&output));
    let (code, output) = sim.exec("copycat", &["sync"]);
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("ID_IN_USE"), "{output}");
    let (code, output) = sim.exec("globex-1", &["sync"]);
    assert_eq!(code, 0, "{output}");

    // A server that syncs by mail only has no way to the main server.
    let output = sim.cli(&[
        "servers",
        "add",
        "offline-1",
        "--customer",
        "Globex GmbH",
        "--sync",
        "email",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let (code, output) = sim.exec("offline-1", &["sync"]);
    assert_ne!(code, 0, "{output}");

    // Each change is in the event log and in world.json.
    let events = sim.ok("GET", "/v1/events", None);
    let changes: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "world")
        .map(|e| {
            format!(
                "{} {}",
                e["change"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            "customer-added Globex GmbH",
            "server-added globex-1",
            "server-reinstalled globex-1",
            "server-added copycat",
            "server-added offline-1",
        ]
    );
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir.join("world.json")).unwrap())
            .unwrap();
    assert_eq!(recorded["servers"].as_array().unwrap().len(), 4);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data_dir.join("world.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "world.json is readable by others");

    // The grown world is what a resumed simulation starts.
    sim.stop();
    let sim = Sim::start(&data_dir, &[]);
    assert_eq!(sim.program("globex-1")["state"], "running");
    assert_eq!(sim.program("copycat")["state"], "running");
    let (code, output) = sim.exec("globex-1", &["sync"]);
    assert_eq!(code, 0, "{output}");
    sim.stop();
}

#[test]
fn two_replicas_need_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sim");
    let output = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--main-replicas", "2"])
        .env_remove("CARGO")
        .env_remove("SOLME_SIM_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("one PostgreSQL database"),
        "{}",
        text(&output)
    );
    assert!(!data_dir.exists(), "a refused start made its directory");
    let output = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .args(["--main-replicas", "3", "--database-url", "postgres://x/y"])
        .env_remove("CARGO")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

/// A fresh database on the server of SOLME_TEST_DATABASE_URL.
fn fresh_database(url: &str) -> String {
    let name = format!("solme_world_{}", Uuid::new_v4().simple());
    let status = Command::new("psql")
        .arg(url)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .unwrap();
    assert!(status.success(), "creating the test database");
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

#[test]
fn with_two_replicas_a_lost_one_stops_no_sync() {
    let Ok(url) = std::env::var("SOLME_TEST_DATABASE_URL") else {
        eprintln!("skipped: SOLME_TEST_DATABASE_URL is not set");
        return;
    };
    let database = fresh_database(&url);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sim");
    let sim = Sim::start(
        &data_dir,
        &[
            "--no-journeys",
            "--local-servers",
            "2",
            "--main-replicas",
            "2",
            "--database-url",
            &database,
        ],
    );
    // Both replicas are listed, each with its own process and ports.
    let first = sim.program("main-server");
    let second = sim.program("main-server-2");
    assert_eq!(second["kind"], "main-server");
    assert_eq!(second["state"], "running");
    assert_ne!(first["pid"], second["pid"]);
    assert_ne!(
        first["addresses"]["sync-443"],
        second["addresses"]["sync-443"]
    );
    let world = sim.ok("GET", "/v1/world", None);
    assert_eq!(world["replicas"], json!(["main-server", "main-server-2"]));
    assert_eq!(world["postgres"], true);
    for server in ["local-server-1", "local-server-2"] {
        let (code, output) = sim.exec(server, &["sync"]);
        assert_eq!(code, 0, "{output}");
    }

    for lost in ["main-server", "main-server-2"] {
        let killed = sim.ok(
            "POST",
            "/v1/faults",
            Some(json!({"fault": "kill", "program": lost, "on": true})),
        );
        assert_eq!(killed["changed"], true, "{killed}");
        assert_eq!(sim.program(lost)["state"], "killed");
        // Each local server tries a different replica first: both fall over.
        let started = Instant::now();
        for server in ["local-server-1", "local-server-2"] {
            let (code, output) = sim.exec(server, &["sync"]);
            assert_eq!(code, 0, "{lost} lost, {server}: {output}");
        }
        eprintln!(
            "{lost} lost: both local servers synchronized in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        // Seats are issued, and the operators work through the other replica.
        assert_eq!(sim.checkout("local-server-1")["status"], 201);
        let other = if lost == "main-server" {
            "main-server-2"
        } else {
            "main-server"
        };
        let id = sim.local_status("local-server-1")["server_id"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, output) = sim.exec(other, &["admin", "server", "show", &id]);
        assert_eq!(code, 0, "{output}");
        // A server added now gets its id through the replica that runs.
        let added = sim.ok(
            "POST",
            "/v1/servers",
            Some(json!({"name": format!("after-{lost}"), "customer": "Acme Engineering AB"})),
        );
        let (code, output) = sim.exec(&format!("after-{lost}"), &["sync"]);
        assert_eq!(code, 0, "{added}: {output}");
        sim.ok(
            "POST",
            "/v1/faults",
            Some(json!({"fault": "kill", "program": lost, "on": false})),
        );
        assert_eq!(sim.program(lost)["state"], "running");
    }
    // Resumed, both replicas come back on their ports and database.
    let programs = sim.programs();
    sim.stop();
    let sim = Sim::start(&data_dir, &[]);
    assert_eq!(addresses(&sim.programs()), addresses(&programs));
    let (code, output) = sim.exec("local-server-2", &["sync"]);
    assert_eq!(code, 0, "{output}");
    sim.stop();
}
