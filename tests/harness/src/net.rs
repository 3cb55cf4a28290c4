//! Loopback ports for tests: one nothing listens on, and one held for a server that
//! starts later.

use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, Result};

/// A loopback port nothing listens on (bound, then released), as behind a firewall.
pub fn closed_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(listener
        .local_addr()
        .context("reading a bound port")?
        .port())
}

/// A port for a server that starts later: held by a socket bound with SO_REUSEADDR
/// that never listens. No other test can be given the port while the socket lives,
/// connections to it are refused, and a server binding it with SO_REUSEADDR (Rust's
/// `TcpListener`, Postfix) can take it over meanwhile: there is no window in which the
/// port is free for anyone.
pub fn reserve_port() -> Result<(tokio::net::TcpSocket, SocketAddr)> {
    let socket = tokio::net::TcpSocket::new_v4().context("opening a socket")?;
    socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("binding a loopback port")?;
    let addr = socket.local_addr().context("reading a bound port")?;
    Ok((socket, addr))
}
