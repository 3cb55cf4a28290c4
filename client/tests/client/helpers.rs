//! Real local servers for the client's tests: an offline installation with an
//! imported license file, served on a loopback port (the same one again after a
//! restart, when asked), and a reading of its seats that does not go through the
//! library under test.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use shared_proto::{License, LicenseFile, ServerIdentity, SolmeSigningKey};
use tempfile::TempDir;
use test_harness::process::spawn_listening;
use test_harness::Child;
use uuid::Uuid;

pub use test_harness::net::closed_port;
pub use test_harness::wait_until;

/// How long a test waits for a condition.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The `local-server` binary, built first when the test runs alone under cargo.
pub fn local_server_bin() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if test_harness::binary("local-server").is_err() {
            test_harness::process::cargo_build(&["-p", "local-server", "--bin", "local-server"])
                .unwrap();
        }
    });
    test_harness::binary("local-server").unwrap()
}

pub fn license(feature: &str, seats: u32) -> License {
    License::perpetual(feature, seats)
}

pub fn borrowable(feature: &str, seats: u32, hours: u32) -> License {
    License {
        max_borrow_hours: Some(hours),
        ..license(feature, seats)
    }
}

/// A local server installation in a temporary directory.
pub struct Server {
    pub dir: TempDir,
    serve: Option<Child>,
    pub addr: Option<SocketAddr>,
}

impl Server {
    /// Installed offline (its main server answers nothing) with a license file holding
    /// `licenses` imported; not serving yet.
    pub fn installed(licenses: Vec<License>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let solme = SolmeSigningKey::generate().unwrap();
        let key = dir.path().join("solme-public.pem");
        solme.public_key().save(&key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            test_harness::certs::self_signed("test CA", 30)
                .unwrap()
                .cert_pem,
        )
        .unwrap();
        let id = Uuid::new_v4();
        let main = format!("https://127.0.0.1:{}", closed_port().unwrap());
        let server = Self {
            dir,
            serve: None,
            addr: None,
        };
        server.cli(&[
            "init",
            "--id",
            &id.to_string(),
            "--solme-key",
            key.to_str().unwrap(),
            "--ca-cert",
            ca.to_str().unwrap(),
            "--main-server",
            &main,
        ]);
        let identity = ServerIdentity::load(server.dir.path()).unwrap();
        let issued_at = Utc::now();
        let file = LicenseFile {
            version: shared_proto::messages::MESSAGE_VERSION,
            server_id: id,
            answers_request: Uuid::new_v4(),
            recipient: identity.fingerprint(),
            sequence: 1,
            revision: 1,
            issued_at,
            valid_until: shared_proto::validity::valid_until_for(issued_at),
            customer: "Acme Engineering".into(),
            licenses,
            inherited_borrows: None,
            standby: None,
        };
        let text =
            shared_proto::license_file::seal(&solme, &file, &identity.public_keys()).unwrap();
        let path = server.dir.path().join("license.txt");
        std::fs::write(&path, text).unwrap();
        server.cli(&["import-license-file", path.to_str().unwrap()]);
        server
    }

    /// [`Server::installed`] and serving on a new port with `extra` flags.
    pub fn serving(licenses: Vec<License>, extra: &[&str]) -> Self {
        let mut server = Self::installed(licenses);
        server.serve("127.0.0.1:0", extra);
        server
    }

    fn command(&self, verb: &str) -> Command {
        let mut command = Command::new(local_server_bin());
        command
            .arg(verb)
            .arg("--data-dir")
            .arg(self.dir.path())
            .env("RUST_LOG", "warn")
            .env_remove(shared_proto::clock::CLOCK_OFFSET_ENV)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy");
        command
    }

    /// Runs a manager verb, which must succeed.
    fn cli(&self, args: &[&str]) {
        let (verb, rest) = args.split_first().unwrap();
        let out = self.command(verb).args(rest).output().unwrap();
        assert!(
            out.status.success(),
            "local-server {verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `serve` on `listen` (a killed server first); waits until it listens.
    pub fn serve(&mut self, listen: &str, extra: &[&str]) {
        self.kill();
        let mut command = self.command("serve");
        command
            .args(["--listen", listen, "--workers", "1"])
            .args(extra);
        let (child, listening) = spawn_listening("local-server", command, self.dir.path()).unwrap();
        self.addr = Some(listening["api"].as_str().unwrap().parse().unwrap());
        self.serve = Some(child);
    }

    /// Starts `serve` again on the port it had, as after a crash or an update.
    pub fn restart(&mut self, extra: &[&str]) {
        let addr = self.addr.unwrap().to_string();
        self.serve(&addr, extra);
    }

    /// Kills `serve` (SIGKILL), as a crash would; the address is kept.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.serve.take() {
            child.kill();
        }
    }

    pub fn url(&self) -> url::Url {
        format!("http://{}", self.addr.unwrap()).parse().unwrap()
    }

    /// A count of `feature` in `GET /api/v1/features` (0 when not listed), read with a
    /// plain HTTP client.
    pub fn count(&self, feature: &str, field: &str) -> u64 {
        let text = ureq::get(&format!("{}api/v1/features", self.url()))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|f| f["feature"] == feature)
            .and_then(|f| f[field].as_u64())
            .unwrap_or(0)
    }

    pub fn in_use(&self, feature: &str) -> u64 {
        self.count(feature, "in_use")
    }

    /// Waits until `in_use` of `feature` is `seats`.
    pub fn wait_in_use(&self, feature: &str, seats: u64) {
        wait_until(
            &format!("{seats} seats of {feature} in use"),
            DEADLINE,
            || (self.in_use(feature) == seats).then_some(()),
        )
        .unwrap();
    }
}

/// An address nothing listens on.
pub fn nowhere() -> url::Url {
    format!("http://127.0.0.1:{}", closed_port().unwrap())
        .parse()
        .unwrap()
}

pub fn identity(user: &str) -> solme_client::Identity {
    solme_client::Identity {
        client: "client tests".into(),
        user: user.into(),
        host: "test-host".into(),
    }
}

/// Settings whose retries give up after `give_up` (the default is minutes).
pub fn settings(servers: Vec<url::Url>, user: &str, give_up: Duration) -> solme_client::Settings {
    let mut settings = solme_client::Settings::new(servers, identity(user)).unwrap();
    settings.backoff.first = Duration::from_millis(50);
    settings.backoff.cap = Duration::from_millis(500);
    settings.backoff.give_up_after = give_up;
    settings
}

/// A blocking client of `servers` for `user`.
pub fn blocking(servers: Vec<url::Url>, user: &str) -> solme_client::blocking::Client {
    solme_client::blocking::Client::with_settings(settings(servers, user, Duration::from_secs(20)))
        .unwrap()
}
