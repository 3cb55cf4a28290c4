//! A real HTTP proxy for the journeys: Debian's tinyproxy, demanding credentials.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::process::{wait_until, Child, START_TIMEOUT};

/// The user name and password the proxy accepts.
pub const PROXY_USER: &str = "acme";
pub const PROXY_PASSWORD: &str = "proxy-secret";

/// A running tinyproxy on a loopback port, asking for Basic credentials.
#[derive(Debug)]
pub struct Tinyproxy {
    pub port: u16,
    _child: Child,
}

impl Tinyproxy {
    /// The tinyproxy binary, if the package is installed.
    pub fn binary() -> Option<PathBuf> {
        ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    /// Starts tinyproxy with its configuration and log in `dir`.
    pub fn start(binary: &Path, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).context("creating the proxy's directory")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let config = dir.join("tinyproxy.conf");
        // No ConnectPort line: CONNECT is allowed to any port (the main server's are ephemeral).
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 100\nLogLevel Info\n\
                 BasicAuth {PROXY_USER} {PROXY_PASSWORD}\n"
            ),
        )
        .context("writing the proxy's configuration")?;
        let mut command = Command::new(binary);
        command.arg("-d").arg("-c").arg(&config);
        let mut child = Child::spawn("tinyproxy", command, &dir.join("tinyproxy.log"))?;
        wait_until("tinyproxy to listen", START_TIMEOUT, || {
            if child.has_exited() {
                return Some(false);
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| true)
        })?
        .then_some(())
        .with_context(|| format!("tinyproxy exited at start-up:\n{}", child.log()))?;
        Ok(Self {
            port,
            _child: child,
        })
    }

    /// The proxy URL with the given credentials (`user:password`).
    pub fn url(&self, credentials: &str) -> String {
        format!("http://{credentials}@127.0.0.1:{}", self.port)
    }
}
