//! The crypto floor of one full sync: what the main server cannot avoid doing for a
//! sync on a new connection, measured here with the same OpenSSL the server links.
//!
//! - Ed25519 verify: the sync request's signature;
//! - Ed25519 sign: the license file;
//! - X25519 key generation and agreement: encrypting the license file to the local
//!   server (an ephemeral key per file);
//! - the server's share of a full TLS handshake, with the server's own certificate
//!   (ECDSA P-256) and the acceptor settings of `serve` (Mozilla intermediate, no
//!   session tickets), timed on the accepting thread only.
//!
//! Each operation is run `iterations` times on one thread and timed by that thread's
//! CPU clock, so other load on the machine slows the run but barely moves the figure.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use openssl::derive::Deriver;
use openssl::pkey::PKey;
use openssl::sign::{Signer, Verifier};
use openssl::ssl::{SslAcceptor, SslConnector, SslFiletype, SslMethod};

use super::cpu::thread_time;

/// CPU time per operation.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub verify: Duration,
    pub sign: Duration,
    pub key_agreement: Duration,
    pub tls_server: Duration,
}

impl Floor {
    pub fn total(&self) -> Duration {
        self.verify + self.sign + self.key_agreement + self.tls_server
    }
}

impl std::fmt::Display for Floor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        write!(
            f,
            "Ed25519 verify {:.0} µs + Ed25519 sign {:.0} µs + X25519 key generation and \
             agreement {:.0} µs + TLS handshake, server share {:.0} µs = {:.0} µs ({})",
            us(self.verify),
            us(self.sign),
            us(self.key_agreement),
            us(self.tls_server),
            us(self.total()),
            openssl::version::version()
        )
    }
}

/// Times `op` on this thread's CPU clock.
fn per_op(iterations: u32, mut op: impl FnMut() -> Result<()>) -> Result<Duration> {
    let iterations = iterations.max(1);
    op()?; // warm up (lazy algorithm look-ups)
    let before = thread_time()?;
    for _ in 0..iterations {
        op()?;
    }
    Ok((thread_time()? - before) / iterations)
}

/// Measures the floor. `tls_dir` holds the main server's `tls-cert.pem`, `tls-key.pem`
/// and `ca.pem` (any `main-server init` directory).
pub fn measure(tls_dir: &Path, iterations: u32) -> Result<Floor> {
    // Payload sizes like the real ones: a sync request and a license file are a few
    // hundred bytes of JSON.
    let message = vec![b'x'; 600];
    let signing = PKey::generate_ed25519()?;
    let public =
        PKey::public_key_from_raw_bytes(&signing.raw_public_key()?, openssl::pkey::Id::ED25519)?;
    let signature = Signer::new_without_digest(&signing)?.sign_oneshot_to_vec(&message)?;
    let verify = per_op(iterations, || {
        let valid = Verifier::new_without_digest(&public)?.verify_oneshot(&signature, &message)?;
        anyhow::ensure!(valid, "the floor's own signature did not verify");
        Ok(())
    })?;
    let sign = per_op(iterations, || {
        Signer::new_without_digest(&signing)?.sign_oneshot_to_vec(&message)?;
        Ok(())
    })?;
    let recipient = PKey::generate_x25519()?;
    let recipient_public =
        PKey::public_key_from_raw_bytes(&recipient.raw_public_key()?, openssl::pkey::Id::X25519)?;
    let key_agreement = per_op(iterations, || {
        let ephemeral = PKey::generate_x25519()?;
        let mut deriver = Deriver::new(&ephemeral)?;
        deriver.set_peer(&recipient_public)?;
        deriver.derive_to_vec()?;
        Ok(())
    })?;
    let tls_server = tls_server_share(tls_dir, iterations)?;
    Ok(Floor {
        verify,
        sign,
        key_agreement,
        tls_server,
    })
}

/// Full handshakes over socket pairs: a client thread connects, this thread accepts,
/// and only this thread's CPU time is counted.
fn tls_server_share(tls_dir: &Path, iterations: u32) -> Result<Duration> {
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    acceptor.set_private_key_file(tls_dir.join("tls-key.pem"), SslFiletype::PEM)?;
    acceptor.set_certificate_chain_file(tls_dir.join("tls-cert.pem"))?;
    acceptor.set_num_tickets(0)?;
    let acceptor = acceptor.build();
    let mut connector = SslConnector::builder(SslMethod::tls())?;
    connector.set_ca_file(tls_dir.join("ca.pem"))?;
    let connector = connector.build();

    let (streams, incoming) = std::sync::mpsc::channel::<UnixStream>();
    let client = std::thread::spawn(move || -> Result<()> {
        for stream in incoming {
            let mut tls = connector
                .connect("localhost", stream)
                .map_err(|e| anyhow::anyhow!("client handshake: {e}"))?;
            // Wait for the server's close so the handshake is complete on both sides.
            let _ = std::io::Read::read(&mut tls, &mut [0u8; 1]);
        }
        Ok(())
    });
    let handshake = || -> Result<()> {
        let (server, client) = UnixStream::pair().context("making a socket pair")?;
        streams
            .send(client)
            .map_err(|_| anyhow::anyhow!("the TLS client thread stopped"))?;
        let mut tls = acceptor
            .accept(server)
            .map_err(|e| anyhow::anyhow!("server handshake: {e}"))?;
        let _ = tls.shutdown();
        Ok(())
    };
    let share = per_op(iterations, handshake);
    drop(streams);
    client
        .join()
        .map_err(|_| anyhow::anyhow!("the TLS client thread panicked"))??;
    share
}
