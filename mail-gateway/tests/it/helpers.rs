//! Shared test helpers: the gateway and the main server started through the shared
//! `test-harness` on port 0, sync data, SMTP, and the outbox.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shared_proto::{Clock, ServerIdentity};
use test_harness::process::spawn_listening;
use test_harness::programs::GatewayArgs;
use test_harness::Child;
use uuid::Uuid;

pub use test_harness::mail::{outbox_count, read_outbox, Reply};
pub use test_harness::net::reserve_port;
pub use test_harness::programs::LICENSING;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// Waits (see `test_harness::wait_until`) up to [`DEADLINE`] for `check` to give a value.
pub fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    test_harness::wait_until(what, DEADLINE, check).unwrap()
}

pub fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mail-gateway"))
}

/// Runs `mail-gateway ARGS` (e.g. `deliver …`, as an MTA's pipe transport does) with
/// `message` on its standard input; returns the exit code. A program that exits before
/// reading all of it is no error here: the exit code tells.
pub fn run_gateway(args: &[&str], env: &[(&str, &str)], message: &[u8]) -> Option<i32> {
    let mut child = Command::new(gateway_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(message);
    child.wait().unwrap().code()
}

/// A running gateway in its own temporary directory.
pub struct Gateway {
    pub proc: Child,
    pub data_dir: PathBuf,
    pub outbox: PathBuf,
    pub smtp: Option<SocketAddr>,
    pub http: SocketAddr,
    /// The arguments it was started with (to restart it the same way).
    pub args: Vec<String>,
}

impl Gateway {
    /// Starts `mail-gateway serve` with an outbox under `root`, for the main
    /// server at `main_url` (which need not be up; an `https://` one's CA is the
    /// `ca.pem` beside `token_file`), plus `extra` flags.
    pub fn start(root: &Path, main_url: &str, token_file: &Path, extra: &[&str]) -> Gateway {
        let data_dir = root.join("gateway");
        let outbox = root.join("outbox");
        // Quick retries and notices, so that tests see them soon, unless `extra` sets them.
        let quick = [
            ("--retry-initial-ms", "50"),
            ("--retry-max-ms", "400"),
            ("--notice-interval-ms", "100"),
        ];
        let mut flags: Vec<&str> = quick
            .iter()
            .filter(|(flag, _)| !extra.contains(flag))
            .flat_map(|&(flag, value)| [flag, value])
            .collect();
        flags.extend_from_slice(extra);
        // A real main server's token file lies in its data directory, beside the CA
        // its admin API's certificate comes from.
        let ca = token_file.with_file_name("ca.pem");
        let args = GatewayArgs {
            data_dir: &data_dir,
            main_url,
            main_ca: main_url.starts_with("https://").then_some(ca.as_path()),
            token_file,
            outbox: &outbox,
            portal_url: None,
        }
        .serve(&flags);
        Gateway::start_with(data_dir, outbox, args)
    }

    pub fn start_with(data_dir: PathBuf, outbox: PathBuf, args: Vec<String>) -> Gateway {
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut command = Command::new(gateway_bin());
        command.args(&args);
        let (proc, json) = spawn_listening("mail-gateway", command, &data_dir).unwrap();
        let smtp = json["smtp"].as_str().map(|s| s.parse().unwrap());
        let http = json["http"].as_str().unwrap().parse().unwrap();
        Gateway {
            proc,
            data_dir,
            outbox,
            smtp,
            http,
            args,
        }
    }

    /// Kills it with SIGKILL and starts it again with the same arguments.
    pub fn restart(mut self) -> Gateway {
        self.proc.kill();
        Gateway::start_with(
            self.data_dir.clone(),
            self.outbox.clone(),
            self.args.clone(),
        )
    }

    pub fn smtp(&self) -> SocketAddr {
        self.smtp.unwrap()
    }

    /// The `/status` JSON.
    pub fn status(&self) -> Value {
        let body = http_get(self.http, "/status");
        serde_json::from_str(&body).unwrap()
    }

    /// The replies written to the outbox so far, parsed.
    pub fn replies(&self) -> Vec<Reply> {
        read_outbox(&self.outbox).unwrap()
    }

    /// Waits until the outbox holds at least `n` replies.
    pub fn wait_replies(&self, n: usize) -> Vec<Reply> {
        wait_for(&format!("{n} replies in the outbox"), || {
            let replies = self.replies();
            (replies.len() >= n).then_some(replies)
        })
    }

    /// Waits until the `/status` JSON satisfies `until`, and returns it.
    pub fn wait_status(&self, what: &str, until: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || {
            let status = self.status();
            until(&status).then_some(status)
        })
    }

    /// Waits until the spool queue and outgoing folders are empty.
    pub fn wait_idle(&self) {
        self.wait_status("an empty spool", |status| {
            status["queued"] == 0 && status["outgoing"] == 0
        });
    }
}

/// A plain HTTP GET (the status page).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// Fresh sync data signed by `identity` for `server_id`.
pub fn sync_data(identity: &ServerIdentity, server_id: Uuid) -> String {
    test_harness::sync_data::sync_data_at(identity, server_id, Clock::system().now()).unwrap()
}

/// A simple mail with the sync data attached.
/// `n` sync mails from `from`, each with fresh sync data of `server_id` and the
/// Message-ID `{prefix}-{i}@acme.example`.
pub fn sync_mails(
    from: &str,
    prefix: &str,
    n: usize,
    identity: &ServerIdentity,
    server_id: Uuid,
) -> Vec<String> {
    (0..n)
        .map(|i| {
            let message_id = format!("{prefix}-{i}@acme.example");
            sync_mail(from, &message_id, &sync_data(identity, server_id))
        })
        .collect()
}

pub fn sync_mail(from: &str, message_id: &str, sync_data: &str) -> String {
    format!(
        "From: Ops <{from}>\r\n\
         To: {LICENSING}\r\n\
         Subject: sync data\r\n\
         Message-ID: <{message_id}>\r\n\
         Date: Fri, 13 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\
         \r\n\
         --b\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         Here is our sync data.\r\n\
         --b\r\n\
         Content-Type: text/plain; name=\"sync.txt\"\r\n\
         Content-Disposition: attachment; filename=\"sync.txt\"\r\n\
         \r\n\
         {}\r\n\
         --b--\r\n",
        sync_data.replace('\n', "\r\n")
    )
}

/// A plain-text mail.
pub fn text_mail(
    from: &str,
    message_id: &str,
    subject: &str,
    extra_headers: &str,
    body: &str,
) -> String {
    format!(
        "From: {from}\r\n\
         To: {LICENSING}\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{message_id}>\r\n\
         Date: Fri, 13 Nov 2026 10:00:00 +0000\r\n\
         {extra_headers}\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}\r\n"
    )
}

/// A raw SMTP client session for protocol tests.
pub struct SmtpClient {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl SmtpClient {
    pub fn connect(addr: SocketAddr) -> (SmtpClient, String) {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut client = SmtpClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        };
        let greeting = client.read_reply();
        (client, greeting)
    }

    /// Reads one (possibly multi-line) reply; empty at end of stream.
    pub fn read_reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return reply;
            }
            reply.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return reply;
            }
        }
    }

    /// The connection, to change its timeouts.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one command line and returns the reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// MAIL FROM `from`, RCPT TO the licensing address and DATA, each accepted.
    pub fn begin_data(&mut self, from: &str) {
        assert!(self
            .command(&format!("MAIL FROM:<{from}>"))
            .starts_with("250"));
        assert!(self
            .command(&format!("RCPT TO:<{LICENSING}>"))
            .starts_with("250"));
        assert!(self.command("DATA").starts_with("354"));
    }

    /// A whole transaction; returns the final reply.
    pub fn mail(&mut self, from: &str, message: &str) -> String {
        assert!(self.command("EHLO client.example").starts_with("250"));
        self.begin_data(from);
        let mut data = String::new();
        for line in message.replace("\r\n", "\n").lines() {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.send(data.as_bytes());
        self.read_reply()
    }
}

/// Sends one message through a fresh SMTP session; panics unless accepted.
pub fn send_mail(addr: SocketAddr, from: &str, message: &str) {
    let (mut client, greeting) = SmtpClient::connect(addr);
    assert!(greeting.starts_with("220"), "{greeting}");
    let reply = client.mail(from, message);
    assert!(reply.starts_with("250"), "{reply}");
    client.command("QUIT");
}

/// A token file for a gateway whose main server does not matter.
pub fn dummy_token(root: &Path) -> PathBuf {
    let path = root.join("token");
    std::fs::write(&path, "not-a-real-token\n").unwrap();
    path
}

/// An address where nothing listens: one port held, for the whole test
/// binary, by a socket that never listens (see [`reserve_port`]).
pub fn closed_port_url() -> String {
    static CLOSED: std::sync::OnceLock<(tokio::net::TcpSocket, SocketAddr)> =
        std::sync::OnceLock::new();
    let (_, addr) = CLOSED.get_or_init(|| reserve_port().unwrap());
    format!("http://{addr}")
}

/// A running main server (the real binary, SQLite, port 0) in its own directory.
/// A main server and a gateway (with the `extra` arguments) in one temporary root.
pub fn main_and_gateway(extra: &[&str]) -> (tempfile::TempDir, MainServer, Gateway) {
    let root = tempfile::tempdir().unwrap();
    let main = MainServer::start(root.path());
    let gw = Gateway::start(root.path(), &main.url(), &main.token_file(), extra);
    (root, main, gw)
}

/// Registers a license server for `from`, stops the main server and mails one sync
/// from `from` with `message_id`: the gateway has to keep it and retry.
pub fn sync_mail_during_outage(main: &mut MainServer, gw: &Gateway, from: &str, message_id: &str) {
    let (_, server_id) = main.customer_with_server(&[from]);
    main.kill();
    let identity = ServerIdentity::generate().unwrap();
    let mail = sync_mail(from, message_id, &sync_data(&identity, server_id));
    send_mail(gw.smtp(), from, &mail);
}

pub struct MainServer {
    pub server: test_harness::MainServer,
    pub data_dir: PathBuf,
    admin: test_harness::Admin,
}

impl MainServer {
    /// `main-server init` then `serve` in `root/main`.
    pub fn start(root: &Path) -> MainServer {
        let data_dir = root.join("main");
        let options = test_harness::MainOptions {
            workers: Some(1),
            ..test_harness::MainOptions::default()
        };
        let server = test_harness::MainServer::start(&data_dir, options).unwrap();
        MainServer {
            admin: server.admin().unwrap(),
            server,
            data_dir,
        }
    }

    /// Kills the server (SIGKILL, as a crash) and starts it again on the same ports.
    pub fn restart(mut self) -> MainServer {
        self.server.kill();
        self.server.start_again().unwrap();
        self
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    pub fn url(&self) -> String {
        self.server.admin_url()
    }

    pub fn token_file(&self) -> PathBuf {
        self.server.token_file()
    }

    pub fn solme_key(&self) -> shared_proto::SolmePublicKey {
        shared_proto::SolmePublicKey::load(&self.data_dir.join("solme-public.pem")).unwrap()
    }

    /// One admin API call: `(status, JSON body or null)`.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.admin.call(method, path, body).unwrap()
    }

    /// A customer with `emails`, one server id, and one license of 5 seats.
    /// Returns `(customer id, server id)`.
    pub fn customer_with_server(&self, emails: &[&str]) -> (String, Uuid) {
        let (status, customer) = self.admin(
            "POST",
            "/admin/v1/customers",
            Some(serde_json::json!({ "name": "Acme AB", "emails": emails })),
        );
        assert_eq!(status, 201, "{customer}");
        let customer_id = customer["id"].as_str().unwrap().to_owned();
        let (status, server) = self.admin(
            "POST",
            "/admin/v1/servers",
            Some(serde_json::json!({ "customer_id": customer_id })),
        );
        assert_eq!(status, 201, "{server}");
        let server_id: Uuid = server["server_id"].as_str().unwrap().parse().unwrap();
        let (status, license) = self.admin(
            "POST",
            &format!("/admin/v1/servers/{server_id}/licenses"),
            Some(serde_json::json!({ "feature": "solme-cad", "seats": 5 })),
        );
        assert_eq!(status, 201, "{license}");
        (customer_id, server_id)
    }
}
