//! The network between the customer's local servers and Solme's main server, as the
//! simulation makes it: a relay in front of each of the main server's two sync ports
//! (its "443" and its "8080"), and, when asked for (`--customer-proxy`), the customer's
//! HTTP proxy. The local servers are set up (`init --main-server`, `--proxy`) to reach
//! the main server through these, exactly as a customer configures them, so faults made
//! here reach them without any switch inside a program.
//!
//! Each relay passes bytes untouched (TLS stays end to end between the local server and
//! the main server) until a fault changes what it does with **new** connections:
//! - `drop`: they are never established (a firewall dropping packets: the client's
//!   connect times out). Made without root: the port's listener has room for one queued
//!   connection, which the relay fills itself, and never accepts, so the kernel drops
//!   every new SYN;
//! - `hang`: accepts them and holds them without a byte of answer until the client
//!   gives up (a middlebox that swallows the traffic: the client's TLS handshake times
//!   out);
//! - `refuse`: the relay's port is closed (connection refused); switched off, it listens
//!   again on the same port;
//! - `slow` (`ms`): every piece of the main server's answer is held `ms` milliseconds
//!   before it is passed on, so each round trip takes that much longer;
//! - `cut`: once the client's request has gone through (its second TLS application-data
//!   record: TLS 1.3's Finished, then the request), the first large record of the
//!   answer (600 bytes or more: the license file) is passed only half, then both sides
//!   are closed; small records (session tickets, a short refusal) pass whole;
//! - `rogue`: the port is answered by a TLS server whose certificate (for 127.0.0.1 and
//!   localhost) comes from another CA, made when the simulation starts.
//!
//! The customer's proxy is a small HTTP `CONNECT` proxy on loopback that demands Basic
//! credentials (`acme` / `proxy-secret`, the ones the local servers are given) and
//! tunnels only to loopback addresses. Its faults: `auth` (it answers 407 whatever
//! credentials come: it wants ones the local server does not have), `refuse` (403 to
//! every `CONNECT`), `down` (its port closed).
//!
//! Why not an existing fault proxy: `noxious` (a Rust port of toxiproxy) was the first
//! choice. Its last release is from April 2021, it pulls in an old `tokio-util` (0.6)
//! and `mockall_double` at run time, its embedding interface (toxic events) is marked
//! hidden, it has no "refused" state (toxiproxy's disabled proxy lives in its server,
//! not in the library) and no way to cut an answer after the request rather than after
//! a byte count (which, under TLS, cuts the handshake instead). Toxiproxy itself is not
//! packaged for Debian. The fault logic here is a few short loops on tokio.
//!
//! A switch takes effect before its answer: the relay's task acknowledges it once the
//! listener is closed or bound again, and every connection accepted afterwards follows
//! the new mode. Connections already open keep what they had (a held connection is
//! closed when `drop` is switched off).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

pub use test_harness::proxy::{PROXY_PASSWORD, PROXY_USER};

/// The longest `slow` may hold each piece of an answer, in milliseconds.
pub const MAX_SLOW_MS: u64 = 120_000;
/// A TLS record of the answer at least this long is the one `cut` cuts.
const CUT_RECORD: usize = 600;
/// Largest TLS record accepted by `cut` (16 KiB of data plus expansion); anything
/// longer is not TLS and passes untouched.
const MAX_RECORD: usize = 16 * 1024 + 2048;
/// Largest request head the customer's proxy reads.
const MAX_HEAD: usize = 8 * 1024;
/// How long a connect may take before the blackhole's queue counts as full.
const FILL_WAIT: Duration = Duration::from_millis(100);
/// How long the customer's proxy tries to reach a target.
const PROXY_CONNECT: Duration = Duration::from_secs(30);
/// How long the proxy and the rogue endpoint wait for a client's first bytes.
const CLIENT_WAIT: Duration = Duration::from_secs(15);

/// What a sync port's relay does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMode {
    Pass,
    Drop,
    Hang,
    Refuse,
    Slow(u64),
    Cut,
    Rogue,
}

impl PortMode {
    /// The fault's name (`port-drop`, …), None when passing.
    pub fn fault(self) -> Option<&'static str> {
        match self {
            Self::Pass => None,
            Self::Drop => Some("port-drop"),
            Self::Hang => Some("port-hang"),
            Self::Refuse => Some("port-refuse"),
            Self::Slow(_) => Some("port-slow"),
            Self::Cut => Some("port-cut"),
            Self::Rogue => Some("rogue-endpoint"),
        }
    }

    /// What it does, for people.
    pub fn describe(self) -> String {
        match self {
            Self::Pass => "passes connections untouched".to_string(),
            Self::Drop => {
                "drops connections (as a firewall drops packets): they are never established, \
                 clients wait for their connect timeout"
                    .to_string()
            }
            Self::Hang => {
                "accepts connections and answers nothing: clients wait for their own timeout"
                    .to_string()
            }
            Self::Refuse => "is closed: connections are refused".to_string(),
            Self::Slow(ms) => format!("holds each piece of the answer {ms} ms"),
            Self::Cut => {
                "cuts the answer in the middle, after the request went through".to_string()
            }
            Self::Rogue => {
                "is answered by a TLS server whose certificate comes from another CA".to_string()
            }
        }
    }
}

/// What the customer's proxy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Tunnels for the right credentials.
    Pass,
    /// 407 whatever credentials come.
    Auth,
    /// 403 to every `CONNECT`.
    Refuse,
    /// Its port closed.
    Down,
}

impl ProxyMode {
    pub fn fault(self) -> Option<&'static str> {
        match self {
            Self::Pass => None,
            Self::Auth => Some("proxy-auth"),
            Self::Refuse => Some("proxy-refuse"),
            Self::Down => Some("proxy-down"),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Self::Pass => "tunnels to Solme for the configured credentials".to_string(),
            Self::Auth => "demands credentials and refuses the ones given (407)".to_string(),
            Self::Refuse => "refuses every tunnel to Solme (403)".to_string(),
            Self::Down => "is down: its port refuses connections".to_string(),
        }
    }
}

/// A switch sent to a listener's task, answered once it is in force. Plain channels
/// on the caller's side: switches come from the control API's blocking threads.
type Switch<M> = (M, std::sync::mpsc::Sender<Result<(), String>>);

/// How long a switch may take to be in force.
const SWITCH_WAIT: Duration = Duration::from_secs(10);

/// One listener the simulation controls: its address, its mode now, and its task.
struct Front<M> {
    listen: SocketAddr,
    mode: Mutex<(M, DateTime<Utc>)>,
    control: mpsc::UnboundedSender<Switch<M>>,
    /// Connections accepted since the start.
    accepted: Arc<AtomicU64>,
}

/// A sync port of a main-server process as the local servers see it: the relay in
/// front of it.
pub struct SyncPort {
    /// `443` or `8080`: the role of the main server's port behind it.
    pub name: &'static str,
    /// The main server's own port.
    pub upstream: SocketAddr,
    front: Front<PortMode>,
}

impl SyncPort {
    /// The relay's address, the one the local servers are given.
    pub fn front(&self) -> SocketAddr {
        self.front.listen
    }

    /// The relay's mode now and since when.
    pub fn mode(&self) -> (PortMode, DateTime<Utc>) {
        *relock(&self.front.mode)
    }

    /// Connections the relay accepted since it started.
    pub fn accepted(&self) -> u64 {
        self.front.accepted.load(Ordering::Relaxed)
    }
}

/// `DIR/network.json`: the relays' and the proxy's ports, so that a resumed simulation
/// listens where its local servers were told to connect.
#[derive(Debug, Default, Serialize, Deserialize)]
struct NetworkFile {
    relays: Vec<RelayRecord>,
    proxy: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RelayRecord {
    role: String,
    upstream: SocketAddr,
    front: SocketAddr,
}

/// The file that keeps the simulated network's ports.
pub const NETWORK_FILE: &str = "network.json";
/// The local server's own setting for its proxy (its `--proxy` flag's variable).
pub const PROXY_ENV: &str = "LOCAL_SERVER_PROXY";

/// The relays, the customer's proxy and the tokio runtime they run on: one per
/// simulation process ([`install`]).
pub struct Network {
    runtime: tokio::runtime::Runtime,
    rogue: Arc<SslAcceptor>,
    ports: Mutex<Vec<Arc<SyncPort>>>,
    proxy: Option<Front<ProxyMode>>,
    file: std::path::PathBuf,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("proxy", &self.proxy.as_ref().map(|p| p.listen))
            .finish_non_exhaustive()
    }
}

fn relock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

static NETWORK: OnceLock<Network> = OnceLock::new();

/// Sets up the simulated network of the simulation in `root`: the relays and proxy
/// recorded in `DIR/network.json` (a resumed simulation) on their ports, and the
/// customer's proxy when `proxy` is true (or recorded). With a proxy, the local servers
/// started from now on find it in their environment ([`PROXY_ENV`]), as a service
/// manager gives a program its settings. Relays in front of new main-server ports are
/// made by [`front`].
pub fn install(root: &Path, proxy: bool) -> Result<&'static Network> {
    if let Some(network) = NETWORK.get() {
        return Ok(network);
    }
    let file = root.join(NETWORK_FILE);
    let recorded: NetworkFile = match std::fs::read_to_string(&file) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("{} is damaged", file.display()))?
        }
        Err(_) => NetworkFile::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(16)
        .thread_name("sim-network")
        .enable_all()
        .build()
        .context("starting the simulated network's runtime")?;
    let (control, switches) = mpsc::unbounded_channel();
    let proxy = if proxy || recorded.proxy.is_some() {
        let at = recorded
            .proxy
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let accepted = Arc::new(AtomicU64::new(0));
        let listen = spawn_bound(&runtime, at, {
            let accepted = accepted.clone();
            move |listener| customer_proxy(listener, switches, accepted)
        })
        .context("listening for the customer's proxy")?;
        Some(Front {
            listen,
            mode: Mutex::new((ProxyMode::Pass, Utc::now())),
            control,
            accepted,
        })
    } else {
        None
    };
    let network = Network {
        runtime,
        rogue: Arc::new(rogue_acceptor()?),
        ports: Mutex::new(Vec::new()),
        proxy,
        file,
    };
    for relay in &recorded.relays {
        let role = if relay.role == "443" { 0 } else { 1 };
        network.start_relay(relay.upstream, role, Some(relay.front))?;
    }
    if let Some(url) = network.proxy_url() {
        // Set once, before any local server of this simulation starts.
        std::env::set_var(PROXY_ENV, url);
    }
    network.save()?;
    Ok(NETWORK.get_or_init(|| network))
}

/// The simulated network of this process, once [`install`]ed.
pub fn network() -> Option<&'static Network> {
    NETWORK.get()
}

/// The address a local server is given for the main server's sync listener `upstream`
/// (`127.0.0.1:PORT`) in role `role` (0: its "443", 1: its "8080"): the relay in front
/// of it, started now if there is none yet. Without a simulated network (or when the
/// relay cannot be started: said on the output), `upstream` itself.
pub fn front(upstream: &str, role: usize) -> String {
    let Some(network) = network() else {
        return upstream.to_string();
    };
    let Ok(address) = upstream.parse::<SocketAddr>() else {
        return upstream.to_string();
    };
    match network.relay_for(address, role) {
        Ok(port) => port.front().to_string(),
        Err(error) => {
            eprintln!(
                "solme-sim: no relay in front of {upstream} (its faults cannot be made): {error:#}"
            );
            upstream.to_string()
        }
    }
}

/// Binds `at` inside the runtime and runs `serve` on the listener; answers the bound
/// address once listening.
fn spawn_bound<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    at: SocketAddr,
    serve: F,
) -> Result<SocketAddr>
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (bound, listening) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        match TcpListener::bind(at).await {
            Ok(listener) => {
                let _ = bound.send(listener.local_addr());
                serve(listener).await;
            }
            Err(error) => {
                let _ = bound.send(Err(error));
            }
        }
    });
    listening
        .recv_timeout(SWITCH_WAIT)
        .context("the listener did not start in time")?
        .with_context(|| format!("binding {at}"))
}

impl Network {
    /// The relay in front of `upstream`, started if there is none.
    fn relay_for(&self, upstream: SocketAddr, role: usize) -> Result<Arc<SyncPort>> {
        if let Some(port) = relock(&self.ports).iter().find(|p| p.upstream == upstream) {
            return Ok(port.clone());
        }
        let port = self.start_relay(upstream, role, None)?;
        self.save()?;
        Ok(port)
    }

    fn start_relay(
        &self,
        upstream: SocketAddr,
        role: usize,
        at: Option<SocketAddr>,
    ) -> Result<Arc<SyncPort>> {
        let (control, switches) = mpsc::unbounded_channel();
        let accepted = Arc::new(AtomicU64::new(0));
        let rogue = self.rogue.clone();
        let listen = spawn_bound(
            &self.runtime,
            at.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            {
                let accepted = accepted.clone();
                move |listener| relay(listener, upstream, switches, accepted, rogue)
            },
        )
        .context("listening in front of the main server")?;
        let port = Arc::new(SyncPort {
            name: if role == 0 { "443" } else { "8080" },
            upstream,
            front: Front {
                listen,
                mode: Mutex::new((PortMode::Pass, Utc::now())),
                control,
                accepted,
            },
        });
        relock(&self.ports).push(port.clone());
        Ok(port)
    }

    fn save(&self) -> Result<()> {
        let file = NetworkFile {
            relays: relock(&self.ports)
                .iter()
                .map(|p| RelayRecord {
                    role: p.name.to_string(),
                    upstream: p.upstream,
                    front: p.front.listen,
                })
                .collect(),
            proxy: self.proxy.as_ref().map(|p| p.listen),
        };
        let text = serde_json::to_vec_pretty(&file).context("encoding the network's ports")?;
        shared_proto::files::write(
            &self.file,
            &text,
            shared_proto::files::Access::Public,
            shared_proto::files::Existing::Replace,
        )
        .with_context(|| format!("writing {}", self.file.display()))
    }

    /// The proxy address the local servers are given, with its credentials.
    pub fn proxy_url(&self) -> Option<String> {
        self.proxy
            .as_ref()
            .map(|p| format!("http://{PROXY_USER}:{PROXY_PASSWORD}@{}", p.listen))
    }

    /// The proxy's address without credentials.
    pub fn proxy_address(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().map(|p| p.listen)
    }

    /// Every relay, in the order they started.
    pub fn ports(&self) -> Vec<Arc<SyncPort>> {
        relock(&self.ports).clone()
    }

    /// The relays of the sync ports in one role (`443` or `8080`), one per main-server
    /// process.
    pub fn ports_named(&self, name: &str) -> Vec<Arc<SyncPort>> {
        relock(&self.ports)
            .iter()
            .filter(|p| p.name == name)
            .cloned()
            .collect()
    }

    pub fn has_proxy(&self) -> bool {
        self.proxy.is_some()
    }

    /// Connections the customer's proxy accepted since it started.
    pub fn proxy_accepted(&self) -> Option<u64> {
        self.proxy
            .as_ref()
            .map(|p| p.accepted.load(Ordering::Relaxed))
    }

    pub fn proxy_mode(&self) -> Option<(ProxyMode, DateTime<Utc>)> {
        self.proxy.as_ref().map(|p| *relock(&p.mode))
    }

    /// Puts `port` in `mode`; returns once new connections follow it.
    pub fn set_port(&self, port: &SyncPort, mode: PortMode) -> Result<()> {
        switch(&port.front, mode)
    }

    /// Puts the customer's proxy in `mode`.
    pub fn set_proxy(&self, mode: ProxyMode) -> Result<()> {
        let proxy = self
            .proxy
            .as_ref()
            .context("this simulation has no customer proxy")?;
        switch(proxy, mode)
    }
}

fn switch<M: Copy + Send + 'static>(front: &Front<M>, mode: M) -> Result<()> {
    let (ack, done) = std::sync::mpsc::channel();
    front
        .control
        .send((mode, ack))
        .map_err(|_| anyhow::anyhow!("the listener's task has ended"))?;
    done.recv_timeout(SWITCH_WAIT)
        .map_err(|_| anyhow::anyhow!("the listener did not switch in time"))?
        .map_err(|e| anyhow::anyhow!(e))?;
    *relock(&front.mode) = (mode, Utc::now());
    Ok(())
}

/// A listener that a mode may close: accepts while open, never while closed.
async fn accept(listener: &Option<TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// A port where connections are never established: a listener with room for one
/// queued connection, taken by a connection of its own, and never accepted from. The
/// kernel then drops every new SYN, as a firewall that drops packets does, so clients
/// wait for their connect timeout (no root needed, unlike a packet filter).
struct Blackhole {
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    async fn open(listen: SocketAddr) -> Result<Self, String> {
        let socket = tokio::net::TcpSocket::new_v4()
            .and_then(|socket| {
                socket.set_reuseaddr(true)?;
                socket.bind(listen)?;
                Ok(socket)
            })
            .map_err(|e| format!("{listen} cannot be taken for the drop: {e}"))?;
        let listener = socket
            .listen(0)
            .map_err(|e| format!("{listen} cannot be listened on: {e}"))?;
        let mut fillers = Vec::new();
        // Fill the accept queue; the first connect that does not complete shows it full.
        for _ in 0..8 {
            match tokio::time::timeout(FILL_WAIT, TcpStream::connect(listen)).await {
                Ok(Ok(stream)) => fillers.push(stream),
                _ => break,
            }
        }
        if fillers.is_empty() {
            return Err(format!("{listen} could not be filled for the drop"));
        }
        Ok(Self {
            _listener: listener,
            _fillers: fillers,
        })
    }
}

/// Applies a switch to a listener: closes it for a closed mode, binds it again on the
/// same address when leaving one.
async fn reopen(
    listener: &mut Option<TcpListener>,
    listen: SocketAddr,
    closed: bool,
) -> Result<(), String> {
    match (listener.is_some(), closed) {
        (true, true) => {
            *listener = None;
            Ok(())
        }
        (false, false) => match TcpListener::bind(listen).await {
            Ok(bound) => {
                *listener = Some(bound);
                Ok(())
            }
            Err(error) => Err(format!("{listen} cannot be listened on again: {error}")),
        },
        _ => Ok(()),
    }
}

/// The relay in front of one of the main server's sync ports.
async fn relay(
    listener: TcpListener,
    upstream: SocketAddr,
    mut switches: mpsc::UnboundedReceiver<Switch<PortMode>>,
    accepted: Arc<AtomicU64>,
    rogue: Arc<SslAcceptor>,
) {
    let Ok(listen) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    let mut blackhole: Option<Blackhole> = None;
    let (mode_tx, _) = watch::channel(PortMode::Pass);
    loop {
        tokio::select! {
            switch = switches.recv() => {
                let Some((mode, ack)) = switch else { return };
                let before = *mode_tx.borrow();
                let mut result = Ok(());
                if before == PortMode::Drop && mode != PortMode::Drop {
                    // The port must be free before it is listened on again.
                    drop(blackhole.take());
                }
                if mode == PortMode::Drop && before != PortMode::Drop {
                    listener = None;
                    match Blackhole::open(listen).await {
                        Ok(hole) => drop(blackhole.replace(hole)),
                        Err(error) => result = Err(error),
                    }
                } else {
                    let closed = matches!(mode, PortMode::Refuse | PortMode::Drop);
                    result = reopen(&mut listener, listen, closed).await;
                }
                if result.is_ok() {
                    mode_tx.send_replace(mode);
                } else if mode == PortMode::Drop {
                    // Back to what it was.
                    let _ = reopen(&mut listener, listen, before == PortMode::Refuse).await;
                }
                let _ = ack.send(result);
            }
            client = accept(&listener) => {
                let Ok(client) = client else { continue };
                accepted.fetch_add(1, Ordering::Relaxed);
                let mode = *mode_tx.borrow();
                tokio::spawn(connection(client, upstream, mode, mode_tx.subscribe(), rogue.clone()));
            }
        }
    }
}

/// One connection to a relay, handled by the mode it was accepted in.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: PortMode,
    mut changes: watch::Receiver<PortMode>,
    rogue: Arc<SslAcceptor>,
) {
    match mode {
        PortMode::Hang => {
            // Held: whatever comes is read and forgotten, nothing is answered, until the
            // client gives up or the fault is switched off.
            let mut sink = [0u8; 4096];
            loop {
                tokio::select! {
                    read = client.read(&mut sink) => {
                        if !matches!(read, Ok(n) if n > 0) {
                            return;
                        }
                    }
                    _ = changes.changed() => return,
                }
            }
        }
        PortMode::Refuse | PortMode::Drop => {}
        PortMode::Rogue => rogue_answer(client, rogue).await,
        PortMode::Pass | PortMode::Slow(_) | PortMode::Cut => {
            // The main server down: the client's connection closes at once, as its own
            // port would refuse it.
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            match mode {
                PortMode::Slow(ms) => slow(client, server, ms).await,
                PortMode::Cut => cut(client, server).await,
                _ => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            }
        }
    }
}

/// Passes the request at once and each piece of the answer `ms` later.
async fn slow(client: TcpStream, server: TcpStream, ms: u64) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = tokio::io::copy(&mut client_read, &mut server_write);
    let down = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        () = down => {}
    }
}

/// Reads whole TLS records from a stream: `Ok(None)` at its end, `Err(bytes)` with what
/// was read when the stream is not TLS.
struct Records<R> {
    read: R,
    buffer: Vec<u8>,
}

enum Record {
    Whole { kind: u8, bytes: Vec<u8> },
    NotTls(Vec<u8>),
    End,
}

impl<R: tokio::io::AsyncRead + Unpin> Records<R> {
    async fn next(&mut self) -> Record {
        loop {
            if self.buffer.len() >= 5 {
                let length = usize::from(u16::from_be_bytes([self.buffer[3], self.buffer[4]]));
                if !(20..=24).contains(&self.buffer[0]) || length > MAX_RECORD {
                    return Record::NotTls(std::mem::take(&mut self.buffer));
                }
                if self.buffer.len() >= 5 + length {
                    let rest = self.buffer.split_off(5 + length);
                    let bytes = std::mem::replace(&mut self.buffer, rest);
                    return Record::Whole {
                        kind: bytes[0],
                        bytes,
                    };
                }
            }
            let mut chunk = [0u8; 8192];
            match self.read.read(&mut chunk).await {
                Ok(0) | Err(_) => return Record::End,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Passes the handshake and the request, then half of the answer's first large record,
/// then closes both sides.
async fn cut(client: TcpStream, server: TcpStream) {
    const APPLICATION_DATA: u8 = 23;
    let (client_read, mut client_write) = client.into_split();
    let (server_read, mut server_write) = server.into_split();
    let request_sent = AtomicBool::new(false);
    let up = async {
        let mut records = Records {
            read: client_read,
            buffer: Vec::new(),
        };
        let mut application = 0;
        loop {
            let bytes = match records.next().await {
                Record::End => return,
                Record::NotTls(bytes) => {
                    let _ = server_write.write_all(&bytes).await;
                    let mut rest = records.read;
                    let _ = tokio::io::copy(&mut rest, &mut server_write).await;
                    return;
                }
                Record::Whole { kind, bytes } => {
                    if kind == APPLICATION_DATA {
                        application += 1;
                        // TLS 1.3: the client's Finished, then the request.
                        if application >= 2 {
                            request_sent.store(true, Ordering::SeqCst);
                        }
                    }
                    bytes
                }
            };
            if server_write.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut records = Records {
            read: server_read,
            buffer: Vec::new(),
        };
        loop {
            let bytes = match records.next().await {
                Record::End => return,
                Record::NotTls(bytes) => {
                    let _ = client_write.write_all(&bytes).await;
                    let mut rest = records.read;
                    let _ = tokio::io::copy(&mut rest, &mut client_write).await;
                    return;
                }
                Record::Whole { bytes, .. } => bytes,
            };
            if request_sent.load(Ordering::SeqCst) && bytes.len() >= CUT_RECORD {
                let half = 5 + (bytes.len() - 5) / 2;
                let _ = client_write.write_all(&bytes[..half]).await;
                let _ = client_write.flush().await;
                return;
            }
            if client_write.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// Answers a connection as a TLS server with the rogue certificate: the local server
/// refuses it during the handshake; a client that does not gets an empty page.
async fn rogue_answer(client: TcpStream, rogue: Arc<SslAcceptor>) {
    let Ok(stream) = client.into_std() else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        if stream.set_nonblocking(false).is_err()
            || stream.set_read_timeout(Some(CLIENT_WAIT)).is_err()
        {
            return;
        }
        if let Ok(mut tls) = rogue.accept(stream) {
            let mut request = [0u8; 4096];
            let _ = tls.read(&mut request);
            let _ = tls.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 25\r\n\
                  connection: close\r\n\r\nnot Solme's main server.\n",
            );
            let _ = tls.shutdown();
        }
    })
    .await;
}

/// A TLS acceptor with a certificate for 127.0.0.1 and localhost from a CA of its own
/// ("Rogue CA"), made now: the same names as the main server's, another issuer.
fn rogue_acceptor() -> Result<SslAcceptor> {
    let key = || -> Result<PKey<Private>> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
    };
    let name = |common: &str| -> Result<openssl::x509::X509Name> {
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("O", "Not Solme")?;
        name.append_entry_by_text("CN", common)?;
        Ok(name.build())
    };
    let (ca_key, leaf_key) = (key()?, key()?);
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(3650)?;
    let mut ca = X509::builder()?;
    ca.set_version(2)?;
    let (ca_serial, leaf_serial) = (
        BigNum::from_u32(1)?.to_asn1_integer()?,
        BigNum::from_u32(2)?.to_asn1_integer()?,
    );
    let (ca_name, leaf_name) = (name("Rogue CA")?, name("127.0.0.1")?);
    ca.set_serial_number(&ca_serial)?;
    ca.set_subject_name(&ca_name)?;
    ca.set_issuer_name(&ca_name)?;
    ca.set_pubkey(&ca_key)?;
    ca.set_not_before(&not_before)?;
    ca.set_not_after(&not_after)?;
    ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    ca.sign(&ca_key, MessageDigest::sha256())?;
    let ca = ca.build();
    let mut leaf = X509::builder()?;
    leaf.set_version(2)?;
    leaf.set_serial_number(&leaf_serial)?;
    leaf.set_subject_name(&leaf_name)?;
    leaf.set_issuer_name(ca.subject_name())?;
    leaf.set_pubkey(&leaf_key)?;
    leaf.set_not_before(&not_before)?;
    leaf.set_not_after(&not_after)?;
    let names = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&leaf.x509v3_context(Some(&ca), None))?;
    leaf.append_extension(names)?;
    leaf.sign(&ca_key, MessageDigest::sha256())?;
    let leaf = leaf.build();
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .context("the rogue endpoint's TLS settings")?;
    acceptor.set_private_key(&leaf_key)?;
    acceptor.set_certificate(&leaf)?;
    acceptor.add_extra_chain_cert(ca)?;
    acceptor.check_private_key()?;
    Ok(acceptor.build())
}

/// The customer's HTTP proxy.
async fn customer_proxy(
    listener: TcpListener,
    mut switches: mpsc::UnboundedReceiver<Switch<ProxyMode>>,
    accepted: Arc<AtomicU64>,
) {
    let Ok(listen) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    let mut mode = ProxyMode::Pass;
    let expected = Arc::<str>::from(format!(
        "Basic {}",
        openssl::base64::encode_block(format!("{PROXY_USER}:{PROXY_PASSWORD}").as_bytes())
    ));
    loop {
        tokio::select! {
            switch = switches.recv() => {
                let Some((next, ack)) = switch else { return };
                let result = reopen(&mut listener, listen, next == ProxyMode::Down).await;
                if result.is_ok() {
                    mode = next;
                }
                let _ = ack.send(result);
            }
            client = accept(&listener) => {
                let Ok(client) = client else { continue };
                accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(tunnel(client, mode, expected.clone()));
            }
        }
    }
}

/// Reads a `CONNECT` and answers it as `mode` says.
async fn tunnel(mut client: TcpStream, mode: ProxyMode, expected: Arc<str>) {
    let mut head = Vec::new();
    let end = loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > MAX_HEAD {
            return;
        }
        let mut chunk = [0u8; 2048];
        match tokio::time::timeout(CLIENT_WAIT, client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    let rest = head.split_off(end);
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let refuse = |status: &str, extra: &str| {
        format!("HTTP/1.1 {status}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n")
    };
    let answer = |mut client: TcpStream, text: String| async move {
        let _ = client.write_all(text.as_bytes()).await;
        let _ = client.shutdown().await;
    };
    let target = match request.as_slice() {
        ["CONNECT", target, _] => target.parse::<SocketAddr>().ok(),
        _ => {
            return answer(
                client,
                refuse("405 Method Not Allowed", "allow: CONNECT\r\n"),
            )
            .await;
        }
    };
    let credentials = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_default();
    let challenge = "proxy-authenticate: Basic realm=\"Acme proxy\"\r\n";
    let right = credentials.len() == expected.len()
        && openssl::memcmp::eq(credentials.as_bytes(), expected.as_bytes());
    match mode {
        ProxyMode::Down => {}
        ProxyMode::Refuse => answer(client, refuse("403 Forbidden", "")).await,
        ProxyMode::Auth => {
            answer(
                client,
                refuse("407 Proxy Authentication Required", challenge),
            )
            .await
        }
        ProxyMode::Pass if !right => {
            answer(
                client,
                refuse("407 Proxy Authentication Required", challenge),
            )
            .await
        }
        ProxyMode::Pass => {
            // Only to this machine: the simulation's proxy is never a way out.
            let Some(target) = target.filter(|t| t.ip().is_loopback()) else {
                return answer(client, refuse("403 Forbidden", "")).await;
            };
            let mut server =
                match tokio::time::timeout(PROXY_CONNECT, TcpStream::connect(target)).await {
                    Ok(Ok(server)) => server,
                    Ok(Err(_)) => return answer(client, refuse("502 Bad Gateway", "")).await,
                    Err(_) => return answer(client, refuse("504 Gateway Timeout", "")).await,
                };
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            if !rest.is_empty() && server.write_all(&rest).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
    }
}
