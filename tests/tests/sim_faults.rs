//! The simulation's network faults across real processes: `solme-sim` started as a
//! process of its own, its relays in front of the main server's sync ports and its
//! customer's proxy switched through the control API, and what the real local server
//! and plain sockets then see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::sim::scenario::driver::{RunningSim, SimOptions};

/// A running `solme-sim --no-journeys` with one local server, started by the journeys'
/// driver; the control API's answers are unwrapped for the assertions below.
struct Sim(RunningSim);

impl Sim {
    fn start(customer_proxy: bool) -> Self {
        let mut options = SimOptions::new(env!("CARGO_BIN_EXE_solme-sim"), 1);
        options.customer_proxy = customer_proxy;
        Self(RunningSim::start(&options).expect("the simulation comes up"))
    }

    fn data_dir(&self) -> PathBuf {
        self.0.data_dir()
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.0
            .call(method, path, body)
            .expect("the control API answers")
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.0
            .ok(method, path, body)
            .expect("the control API answers 200")
    }

    fn fault(&self, body: Value) -> (Value, Duration) {
        let started = Instant::now();
        let answer = self.ok("POST", "/v1/faults", Some(body));
        (answer, started.elapsed())
    }

    /// `local-server-1 VERB…` through the control API: (exit code, stdout + stderr,
    /// how long it took).
    fn local(&self, args: &[&str]) -> (i64, String, Duration) {
        let started = Instant::now();
        let output = self.ok(
            "POST",
            "/v1/exec",
            Some(json!({"program": "local-server-1", "args": args, "timeout_seconds": 120})),
        );
        let text = format!(
            "{}{}",
            output["stdout"].as_str().unwrap_or_default(),
            output["stderr"].as_str().unwrap_or_default()
        );
        (
            output["exit_code"].as_i64().unwrap_or(-1),
            text,
            started.elapsed(),
        )
    }

    fn status_json(&self) -> Value {
        let (code, text, _) = self.local(&["status", "--json"]);
        assert_eq!(code, 0, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The relays' and the proxy's addresses, as `DIR/network.json` keeps them.
    fn network(&self) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.data_dir().join("network.json")).unwrap(),
        )
        .unwrap()
    }

    /// The relay in front of the main server's port in `role` (`443`, `8080`).
    fn front(&self, role: &str) -> SocketAddr {
        self.network()["relays"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"] == role)
            .unwrap_or_else(|| panic!("no relay for {role}"))["front"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn events(&self) -> Vec<Value> {
        self.ok("GET", "/v1/events?since=0", None)
            .as_array()
            .unwrap()
            .clone()
    }

    fn active_faults(&self) -> Vec<Value> {
        self.ok("GET", "/v1/status", None)["faults"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn port_fault(fault: &str, port: &str, on: bool) -> Value {
    json!({"fault": fault, "program": "main-server", "port": port, "on": on})
}

/// What a plain TCP connect to `address` gets within a second.
fn connect(address: SocketAddr) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&address, Duration::from_secs(1))
}

/// The TLS handshake with `address`, trusting only the main server's CA.
fn handshake(sim: &Sim, address: SocketAddr) -> Result<(), String> {
    handshake_within(sim, address, Duration::from_secs(10))
}

/// The TLS handshake with `address`, failing when an answer takes longer than `wait`.
fn handshake_within(sim: &Sim, address: SocketAddr, wait: Duration) -> Result<(), String> {
    let ca = sim.data_dir().join("main-server").join("ca.pem");
    let connector = test_harness::tls::pinned(&ca).unwrap();
    let stream = connect(address).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(wait)).unwrap();
    connector
        .connect("127.0.0.1", stream)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn sync_ports_dropped_hung_refused_slowed_cut_and_rogue() {
    let sim = Sim::start(false);
    let (front_443, front_8080) = (sim.front("443"), sim.front("8080"));
    let status = sim.ok("GET", "/v1/status", None);
    let main = status["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "main-server")
        .unwrap()
        .clone();
    // The local server is given the relays, never the main server's own ports.
    let configured = sim.status_json()["main_server"].clone();
    assert_eq!(
        configured,
        json!([
            format!("https://{front_443}"),
            format!("https://{front_8080}")
        ]),
        "{main}"
    );
    let (code, text, baseline) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("Synchronized through https://{front_443}")),
        "{text}"
    );
    assert!(handshake(&sim, front_443).is_ok());

    // Refused: both ports closed, as a host with nothing listening.
    let (answer, took) = sim.fault(port_fault("port-refuse", "both", true));
    assert_eq!(answer["changed"], true, "{answer}");
    eprintln!("port-refuse on both ports answered in {took:?}");
    for front in [front_443, front_8080] {
        let error = connect(front).unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::ConnectionRefused,
            "{front}: {error}"
        );
    }
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 75, "{text}");
    assert!(text.contains("could not be reached"), "{text}");
    assert!(
        text.contains(&format!("nothing answers on {front_443}")),
        "{text}"
    );
    sim.fault(port_fault("port-refuse", "both", false));
    assert!(connect(front_443).is_ok());

    // Dropped: 443 never connects (the kernel drops the SYN), 8080 does; the local
    // server falls back to 8080 after its connect timeout.
    let (_, took) = sim.fault(port_fault("port-drop", "443", true));
    eprintln!("port-drop on 443 answered in {took:?}");
    let error = connect(front_443).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
        "{error}"
    );
    assert!(connect(front_8080).is_ok());
    let active = sim.active_faults();
    assert!(
        active
            .iter()
            .any(|f| f["fault"] == "port-drop" && f["port"] == "443"),
        "{active:?}"
    );
    let (code, text, took) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("Synchronized through https://{front_8080}")),
        "{text}"
    );
    assert!(took >= Duration::from_secs(4), "{took:?}");
    eprintln!("sync with 443 dropped (fallback to 8080): {took:?}");
    // Another fault on a port under one is refused, and changes nothing.
    let (status, body) = sim.call(
        "POST",
        "/v1/faults",
        Some(port_fault("port-refuse", "both", true)),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "CONFLICT");
    assert!(
        connect(front_8080).is_ok(),
        "8080 was switched all the same"
    );
    sim.fault(port_fault("port-drop", "443", false));
    assert!(connect(front_443).is_ok());

    // Hung: connected, never answered.
    sim.fault(port_fault("port-hang", "443", true));
    assert!(connect(front_443).is_ok(), "a hung port still accepts");
    let hung = handshake_within(&sim, front_443, Duration::from_secs(1)).unwrap_err();
    assert!(handshake(&sim, front_8080).is_ok());
    sim.fault(port_fault("port-hang", "443", false));
    assert!(handshake(&sim, front_443).is_ok(), "after {hung}");

    // Slowed: each piece of the answer held 400 ms.
    let mut slow = port_fault("port-slow", "443", true);
    slow["ms"] = json!(400);
    sim.fault(slow);
    let (code, text, slowed) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("through https://{front_443}")),
        "{text}"
    );
    // At least two pieces of answer, one after the other: the server's handshake
    // flight, then the answer.
    assert!(
        slowed >= Duration::from_millis(800) && slowed > baseline,
        "{slowed:?} against {baseline:?}"
    );
    eprintln!("sync: {baseline:?} untouched, {slowed:?} with 443 slowed by 400 ms");
    sim.fault(port_fault("port-slow", "443", false));

    // Cut: the request reaches the main server, which issues a license file, but the
    // answer is cut in the middle. On 443 alone the sync goes on to 8080 with a new
    // request (the main server takes each request id once) and succeeds.
    let before = sim.status_json()["license_file_sequence"].as_i64().unwrap();
    sim.fault(port_fault("port-cut", "443", true));
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");
    sim.fault(port_fault("port-cut", "443", false));
    let after = sim.status_json()["license_file_sequence"].as_i64().unwrap();
    assert_eq!(
        after,
        before + 2,
        "the cut answer's file was issued (the request went through) and never arrived; \
         the new request to 8080 got the next one"
    );
    // On both ports the sync fails, in words (no HTTP library's wording).
    sim.fault(port_fault("port-cut", "both", true));
    let (code, text, _) = sim.local(&["sync"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("closed before the answer came"), "{text}");
    assert!(!text.contains("Internal error"), "{text}");
    sim.fault(port_fault("port-cut", "both", false));
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");

    // A rogue endpoint: a certificate from another CA, refused with the local server's
    // words.
    sim.fault(port_fault("rogue-endpoint", "both", true));
    let refused = handshake(&sim, front_443).unwrap_err();
    assert!(refused.contains("certificate verify failed"), "{refused}");
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 75, "{text}");
    assert!(
        text.contains("the server's certificate was not issued by the CA this installation trusts"),
        "{text}"
    );
    let (_, text, _) = sim.local(&["diagnose"]);
    assert!(text.contains("TLS_CERTIFICATE"), "{text}");
    sim.fault(port_fault("rogue-endpoint", "both", false));
    assert!(handshake(&sim, front_443).is_ok());
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");

    // Every switch is in the event log, on and off.
    let events = sim.events();
    for fault in [
        "port-refuse",
        "port-drop",
        "port-hang",
        "port-slow",
        "port-cut",
        "rogue-endpoint",
    ] {
        for kind in ["fault-on", "fault-off"] {
            assert!(
                events.iter().any(|e| e["kind"] == kind
                    && e["fault"] == fault
                    && e["program"] == "main-server"),
                "no {kind} for {fault}"
            );
        }
    }
    assert!(sim.active_faults().is_empty());
}

#[test]
fn bad_network_fault_requests_are_refused_and_change_nothing() {
    let sim = Sim::start(false);
    let refused = [
        (
            json!({"fault": "port-drop", "program": "main-server", "on": true}),
            400,
        ),
        (port_fault("port-drop", "9999", true), 400),
        (port_fault("port-slow", "443", true), 400),
        (
            json!({"fault": "port-slow", "program": "main-server", "port": "443", "on": true, "ms": 0}),
            400,
        ),
        (
            json!({"fault": "port-drop", "program": "main-server", "port": "443", "on": true, "ms": 5}),
            400,
        ),
        (
            json!({"fault": "port-drop", "program": "local-server-1", "port": "443", "on": true}),
            400,
        ),
        (
            json!({"fault": "kill", "program": "local-server-1", "port": "443", "on": true}),
            400,
        ),
        (
            json!({"fault": "proxy-auth", "program": "customer-proxy", "on": true}),
            422,
        ),
    ];
    for (body, status) in refused {
        let (got, answer) = sim.call("POST", "/v1/faults", Some(body.clone()));
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(sim.active_faults().is_empty());
    assert!(!sim
        .events()
        .iter()
        .any(|e| e["kind"] == "fault-on" || e["kind"] == "fault-off"));
    // Switching off a fault that is not on changes nothing and says so.
    let (answer, _) = sim.fault(port_fault("port-cut", "8080", false));
    assert_eq!(answer["changed"], false, "{answer}");
    // The CLI over the same API.
    let output = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("--data-dir")
        .arg(sim.data_dir())
        .args(["fault", "port-refuse", "main-server", "--port", "8080"])
        .env_remove("CARGO")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("port 8080") && said.contains("refused"),
        "{said}"
    );
    assert_eq!(
        connect(sim.front("8080")).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
}

/// Asks the customer's proxy for a tunnel: its status line.
fn proxy_connect(proxy: SocketAddr, target: SocketAddr, credentials: Option<&str>) -> String {
    let mut stream = connect(proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(credentials) = credentials {
        let encoded = openssl::base64::encode_block(credentials.as_bytes());
        request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = [0u8; 256];
    let n = stream.read(&mut answer).unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_customers_proxy_demands_credentials_refuses_and_goes_down() {
    let sim = Sim::start(true);
    let proxy: SocketAddr = sim.network()["proxy"].as_str().unwrap().parse().unwrap();
    let target = sim.front("443");
    let right = "acme:proxy-secret";
    assert!(proxy_connect(proxy, target, None).contains(" 407 "));
    assert!(proxy_connect(proxy, target, Some("acme:wrong")).contains(" 407 "));
    assert!(proxy_connect(proxy, target, Some(right)).contains(" 200 "));
    // Only to this machine.
    let outside: SocketAddr = "192.0.2.1:443".parse().unwrap();
    assert!(proxy_connect(proxy, outside, Some(right)).contains(" 403 "));

    // The local server goes through it, with the credentials it was given.
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");
    let (_, text, _) = sim.local(&["diagnose"]);
    assert!(
        text.contains(&format!("the proxy http://acme:***@{proxy}")),
        "{text}"
    );

    let proxy_fault =
        |fault: &str, on: bool| json!({"fault": fault, "program": "customer-proxy", "on": on});
    sim.fault(proxy_fault("proxy-auth", true));
    assert!(proxy_connect(proxy, target, Some(right)).contains(" 407 "));
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 75, "{text}");
    assert!(
        text.contains("rejected the user name and password (HTTP 407)"),
        "{text}"
    );
    // One proxy fault at a time.
    let (status, body) = sim.call(
        "POST",
        "/v1/faults",
        Some(proxy_fault("proxy-refuse", true)),
    );
    assert_eq!(status, 409, "{body}");
    sim.fault(proxy_fault("proxy-auth", false));

    sim.fault(proxy_fault("proxy-refuse", true));
    assert!(proxy_connect(proxy, target, Some(right)).contains(" 403 "));
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 75, "{text}");
    assert!(text.contains("with HTTP 403"), "{text}");
    sim.fault(proxy_fault("proxy-refuse", false));

    sim.fault(proxy_fault("proxy-down", true));
    assert_eq!(
        connect(proxy).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 75, "{text}");
    assert!(
        text.contains(&format!("nothing answers on the proxy {proxy}")),
        "{text}"
    );
    let active = sim.active_faults();
    assert!(
        active
            .iter()
            .any(|f| f["fault"] == "proxy-down" && f["program"] == "customer-proxy"),
        "{active:?}"
    );
    sim.fault(proxy_fault("proxy-down", false));
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");
    let events = sim.events();
    assert!(events
        .iter()
        .any(|e| e["kind"] == "fault-off" && e["fault"] == "proxy-down"));
}

/// A licensed program's call through the control API: (HTTP status, body).
fn client(sim: &Sim, body: Value) -> (u64, Value) {
    let answer = sim.ok("POST", "/v1/client", Some(body));
    (answer["status"].as_u64().unwrap(), answer["body"].clone())
}

fn checkout(feature: &str) -> Value {
    json!({"action": "checkout", "server": "local-server-1", "feature": feature, "user": "qa"})
}

#[test]
fn a_features_answers_forced_in_front_of_the_client_api() {
    let sim = Sim::start(false);
    let force = |feature: &str, code: &str| {
        json!({"fault": "client-force", "program": "local-server-1", "on": true,
               "feature": feature, "code": code})
    };
    // Before any sync the server itself refuses everything.
    let (status, body) = client(&sim, checkout("solme-cad"));
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("NOT_SYNCHRONIZED")),
        "{body}"
    );

    // Always granted: a lease the front makes, renewed and returned by it.
    let (answer, took) = sim.fault(force("solme-cad", "granted"));
    eprintln!("client-force on answered in {took:?}");
    let done = answer["done"].as_str().unwrap().to_string();
    let front = done
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap()
        .to_string();
    let (status, body) = client(&sim, checkout("solme-cad"));
    assert_eq!(status, 201, "{body}");
    let lease = body["lease_id"].as_str().unwrap().to_string();
    assert!(body["expires_at"].as_str().is_some(), "{body}");
    let (status, body) = client(
        &sim,
        json!({"action": "heartbeat", "server": "local-server-1", "lease": lease}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = client(
        &sim,
        json!({"action": "checkin", "server": "local-server-1", "lease": lease}),
    );
    assert_eq!(status, 204);
    // Another feature is the server's own answer, through the front.
    let (status, body) = client(&sim, checkout("solme-cam"));
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("NOT_SYNCHRONIZED")),
        "{body}"
    );

    // Always NO_SEATS, whatever the server would say; a licensed program under test is
    // pointed at the front and gets the same.
    let (code, text, _) = sim.local(&["sync"]);
    assert_eq!(code, 0, "{text}");
    sim.fault(force("solme-cad", "NO_SEATS"));
    let (status, body) = client(&sim, checkout("solme-cad"));
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("NO_SEATS")),
        "{body}"
    );
    let direct = ureq::post(&format!("{front}/api/v1/leases"))
        .send_json(json!({"feature": "solme-cad", "client": "program under test"}));
    match direct {
        Err(ureq::Error::Status(409, response)) => {
            let body: Value = response.into_json().unwrap();
            assert_eq!(body["code"], "NO_SEATS", "{body}");
        }
        other => panic!("expected 409 NO_SEATS from the front, got {other:?}"),
    }
    let (status, body) = client(&sim, checkout("solme-cam"));
    assert_eq!(status, 201, "the server's own grant: {body}");
    let active = sim.active_faults();
    assert!(
        active.iter().any(|f| f["fault"] == "client-force"
            && f["feature"] == "solme-cad"
            && f["code"] == "NO_SEATS"),
        "{active:?}"
    );
    // The server itself was never told anything: it holds only the real lease.
    let (_, text, _) = sim.local(&["leases", "--json"]);
    assert!(
        text.contains("solme-cam") && !text.contains("solme-cad"),
        "{text}"
    );

    // Off: the server's answer again.
    let (answer, _) =
        sim.fault(json!({"fault": "client-force", "program": "local-server-1", "on": false}));
    assert_eq!(answer["changed"], true, "{answer}");
    let (status, body) = client(&sim, checkout("solme-cad"));
    assert_eq!(status, 201, "{body}");
    assert!(sim.active_faults().is_empty());

    // Refused, changing nothing.
    for (body, expected) in [
        (force("solme-cad", "BOGUS"), 400),
        (
            json!({"fault": "client-force", "program": "local-server-1", "on": true, "code": "NO_SEATS"}),
            400,
        ),
        (
            json!({"fault": "client-force", "program": "main-server", "on": true, "feature": "x", "code": "NO_SEATS"}),
            400,
        ),
        (
            json!({"fault": "client-force", "program": "local-server-9", "on": true, "feature": "x", "code": "NO_SEATS"}),
            404,
        ),
        (
            json!({"fault": "kill", "program": "local-server-1", "on": true, "feature": "x"}),
            400,
        ),
    ] {
        let (status, answer) = sim.call("POST", "/v1/faults", Some(body.clone()));
        assert_eq!(status, expected, "{body}: {answer}");
    }
    assert!(sim.active_faults().is_empty());
    let events = sim.events();
    assert!(events
        .iter()
        .any(|e| e["kind"] == "fault-on" && e["fault"] == "client-force"));
    assert!(events
        .iter()
        .any(|e| e["kind"] == "fault-off" && e["fault"] == "client-force"));
}

/// The replies in the gateway's outbox to `message_id`, waited for up to `wait`.
fn replies(sim: &Sim, message_id: &str, wait: Duration) -> Vec<test_harness::mail::Reply> {
    let outbox = sim.data_dir().join("mail-gateway").join("outbox");
    let deadline = Instant::now() + wait;
    loop {
        let found = test_harness::mail::replies_to(&outbox, message_id).unwrap_or_default();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mail_fault(fault: &str, on: bool) -> Value {
    json!({"fault": fault, "program": "mail-gateway", "on": on})
}

#[test]
fn mail_to_licensing_lost_delayed_duplicated_mangled_and_from_a_stranger() {
    let sim = Sim::start(false);
    let file = sim.data_dir().join("local-server-1").join("sync-data.txt");
    let export = |sim: &Sim| {
        let (code, text, _) = sim.local(&["export-sync-data", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{text}");
    };
    let send = |sim: &Sim| -> Value {
        sim.ok(
            "POST",
            "/v1/mail/send",
            Some(json!({"from": "ops@acme.example", "sync_data": file})),
        )
    };
    // Untouched: answered with a license file.
    export(&sim);
    let sent = send(&sim);
    assert!(sent.get("fault").is_none(), "{sent}");
    let found = replies(
        &sim,
        sent["message_id"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    assert!(found[0].license_file().is_some(), "{:?}", found[0].subject);

    // Lost: no reply ever comes (watched for 5 s).
    let (answer, _) = sim.fault(mail_fault("mail-lost", true));
    assert_eq!(answer["changed"], true);
    export(&sim);
    let sent = send(&sim);
    assert!(
        sent["fault"].as_str().unwrap().contains("never delivered"),
        "{sent}"
    );
    assert!(replies(
        &sim,
        sent["message_id"].as_str().unwrap(),
        Duration::from_secs(5)
    )
    .is_empty());
    // One mail fault at a time.
    let (status, body) = sim.call(
        "POST",
        "/v1/faults",
        Some(mail_fault("mail-duplicate", true)),
    );
    assert_eq!(status, 409, "{body}");
    sim.fault(mail_fault("mail-lost", false));

    // Delayed 3 s of real time: the reply comes, not before.
    let mut delay = mail_fault("mail-delay", true);
    delay["seconds"] = json!(3);
    sim.fault(delay);
    export(&sim);
    let started = Instant::now();
    let sent = send(&sim);
    let found = replies(
        &sim,
        sent["message_id"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    assert!(
        !found.is_empty() && took >= Duration::from_secs(3),
        "{took:?}"
    );
    eprintln!("a mail delayed 3 s was answered {took:?} after it was sent");
    sim.fault(mail_fault("mail-delay", false));

    // Duplicated: the same message twice.
    sim.fault(mail_fault("mail-duplicate", true));
    export(&sim);
    let sent = send(&sim);
    let id = sent["message_id"].as_str().unwrap().to_string();
    let first = replies(&sim, &id, Duration::from_secs(60));
    assert!(!first.is_empty());
    std::thread::sleep(Duration::from_secs(3));
    let all = replies(&sim, &id, Duration::ZERO);
    eprintln!(
        "a mail delivered twice got {} reply(ies): {:?}",
        all.len(),
        all.iter().map(|r| r.subject.clone()).collect::<Vec<_>>()
    );
    assert_eq!(all.len(), 1, "a message delivered twice is answered once");
    sim.fault(mail_fault("mail-duplicate", false));

    // Mangled on the way: each change, and what the gateway made of it.
    for how in ["quoted-printable", "base64", "crlf", "rewrapped", "inline"] {
        let mut mangle = mail_fault("mail-mangle", true);
        mangle["mangle"] = json!(how);
        sim.fault(mangle);
        export(&sim);
        let sent = send(&sim);
        assert!(sent["fault"].as_str().unwrap().contains(how), "{sent}");
        let found = replies(
            &sim,
            sent["message_id"].as_str().unwrap(),
            Duration::from_secs(60),
        );
        assert!(!found.is_empty(), "no reply to a mail changed by {how}");
        eprintln!(
            "mangled {how}: \"{}\", license file: {}",
            found[0].subject,
            found[0].license_file().is_some()
        );
        if matches!(how, "quoted-printable" | "base64") {
            // A transfer encoding is the mail system's business: the data is the same.
            assert!(
                found[0].license_file().is_some(),
                "{how}: {}",
                found[0].text
            );
        }
        sim.fault(mail_fault("mail-mangle", false));
    }

    // From an address no customer registered.
    sim.fault(mail_fault("mail-unregistered", true));
    export(&sim);
    let sent = send(&sim);
    assert!(
        sent["fault"]
            .as_str()
            .unwrap()
            .contains("unregistered.example"),
        "{sent}"
    );
    let found = replies(
        &sim,
        sent["message_id"].as_str().unwrap(),
        Duration::from_secs(30),
    );
    for reply in &found {
        assert!(
            reply.license_file().is_none(),
            "a stranger got a license file"
        );
        eprintln!("from a stranger: \"{}\" to {}", reply.subject, reply.to);
    }
    sim.fault(mail_fault("mail-unregistered", false));

    let events = sim.events();
    for fault in [
        "mail-lost",
        "mail-delay",
        "mail-duplicate",
        "mail-mangle",
        "mail-unregistered",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == "fault-on" && e["fault"] == fault),
            "no fault-on for {fault}"
        );
    }
    for (body, expected) in [
        (mail_fault("mail-delay", true), 400),
        (
            json!({"fault": "mail-mangle", "program": "mail-gateway", "on": true, "mangle": "rot13"}),
            400,
        ),
        (
            json!({"fault": "mail-lost", "program": "main-server", "on": true}),
            400,
        ),
        (
            json!({"fault": "mail-lost", "program": "mail-gateway", "on": true, "mangle": "crlf"}),
            400,
        ),
    ] {
        let (status, answer) = sim.call("POST", "/v1/faults", Some(body.clone()));
        assert_eq!(status, expected, "{body}: {answer}");
    }
    assert!(sim.active_faults().is_empty());
}

/// The files of the customer's mailbox (`GET /v1/mail/inbox`) for `address`.
fn inbox_files(sim: &Sim, address: &str) -> Vec<String> {
    let mails = sim.ok("GET", &format!("/v1/mail/inbox?address={address}"), None);
    mails
        .as_array()
        .unwrap()
        .iter()
        .map(|mail| mail["file"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn solmes_mail_to_the_customer_lost_or_late_on_the_way_to_the_mailbox() {
    let sim = Sim::start(false);
    let contact = "ops@acme.example";
    let file = sim.data_dir().join("local-server-1").join("sync-data.txt");
    // A mailed sync; the gateway's reply as it left Solme (its outbox file).
    let mailed_sync = |sim: &Sim| -> String {
        let (code, text, _) = sim.local(&["export-sync-data", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{text}");
        let sent = sim.ok(
            "POST",
            "/v1/mail/send",
            Some(json!({"from": contact, "sync_data": file})),
        );
        let found = replies(
            sim,
            sent["message_id"].as_str().unwrap(),
            Duration::from_secs(60),
        );
        assert_eq!(found.len(), 1, "the gateway answers once");
        found[0].file.clone()
    };

    // Lost: the gateway sent the reply, the customer never gets it, even once the
    // fault is off.
    let (answer, _) = sim.fault(mail_fault("customer-mail-lost", true));
    assert_eq!(answer["changed"], true, "{answer}");
    let status = sim.ok("GET", "/v1/status", None);
    assert!(
        status.to_string().contains("customer-mail-lost"),
        "the status lists the fault: {status}"
    );
    let lost = mailed_sync(&sim);
    assert!(!inbox_files(&sim, contact).contains(&lost));
    sim.fault(mail_fault("customer-mail-lost", false));
    assert!(!inbox_files(&sim, contact).contains(&lost));

    // Late by 3 s of real time: not in the mailbox at first, then there.
    let mut delay = mail_fault("customer-mail-delay", true);
    delay["seconds"] = json!(3);
    sim.fault(delay);
    let late = mailed_sync(&sim);
    let written = std::fs::metadata(
        sim.data_dir()
            .join("mail-gateway")
            .join("outbox")
            .join(&late),
    )
    .and_then(|meta| meta.modified())
    .unwrap();
    let seen_at_once = inbox_files(&sim, contact).contains(&late);
    if written.elapsed().unwrap_or_default() < Duration::from_millis(2500) {
        assert!(!seen_at_once, "a mail 3 s late was in the mailbox at once");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !inbox_files(&sim, contact).contains(&late) {
        assert!(Instant::now() < deadline, "the late mail never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = written.elapsed().unwrap_or_default();
    assert!(
        after >= Duration::from_secs(3),
        "arrived {after:?} after it left"
    );
    sim.fault(mail_fault("customer-mail-delay", false));

    // Untouched again: the next reply is there at once; bad input changes nothing.
    let on_time = mailed_sync(&sim);
    assert!(inbox_files(&sim, contact).contains(&on_time));
    let (status, body) = sim.call(
        "POST",
        "/v1/faults",
        Some(mail_fault("customer-mail-delay", true)),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = sim.call(
        "POST",
        "/v1/faults",
        Some(json!({"fault": "customer-mail-lost", "program": "main-server", "on": true})),
    );
    assert_eq!(status, 400, "{body}");
    let status = sim.ok("GET", "/v1/status", None);
    assert!(!status.to_string().contains("customer-mail"), "{status}");
}
