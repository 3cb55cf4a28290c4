//! The tests' one way to trust a main server: its data directory's CA (`ca.pem`) and
//! nothing else, as the admin CLI, the gateway and local servers do. For ureq (the
//! harness's own clients) and for awc (the crates' async tests) alike.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use openssl::hash::{hash, MessageDigest};
use openssl::ssl::{SslConnector, SslStream};
use openssl::x509::X509;

/// The TLS context trusting only the CA certificate in `ca_file` (a data directory's
/// `ca.pem`): for an `awc::Connector::new().openssl(…)`.
pub fn pinned(ca_file: &Path) -> Result<SslConnector> {
    let pem = std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    shared_proto::tls::pinned_connector(&pem).context("trusting the CA")
}

/// A ureq agent whose HTTPS trusts only the CA certificate in `ca_file`.
pub fn agent(ca_file: &Path) -> Result<ureq::Agent> {
    Ok(plain_agent()
        .tls_connector(Arc::new(UreqTls(pinned(ca_file)?)))
        .build())
}

/// A ureq agent for plain HTTP (a gateway's status page, a local server's API).
pub(crate) fn plain_agent() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(30))
}

/// Chromium's `--ignore-certificate-errors-spki-list` value for the certificate in
/// `cert_file`: base64 of the SHA-256 of its public key. Chromium then accepts that
/// one server certificate, and no other it could not verify.
pub fn spki_pin(cert_file: &Path) -> Result<String> {
    use base64::Engine as _;
    let pem =
        std::fs::read(cert_file).with_context(|| format!("reading {}", cert_file.display()))?;
    let spki = X509::from_pem(&pem)?.public_key()?.public_key_to_der()?;
    let digest = hash(MessageDigest::sha256(), &spki)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// OpenSSL under ureq (which has no OpenSSL back end of its own).
struct UreqTls(SslConnector);

impl ureq::TlsConnector for UreqTls {
    fn connect(
        &self,
        dns_name: &str,
        io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let failed = |e: &dyn std::fmt::Display| -> ureq::Error {
            std::io::Error::other(format!("TLS with {dns_name}: {e}")).into()
        };
        let stream = self.0.connect(dns_name, io).map_err(|e| failed(&e))?;
        Ok(Box::new(UreqStream(stream)))
    }
}

#[derive(Debug)]
struct UreqStream(SslStream<Box<dyn ureq::ReadWrite>>);

impl Read for UreqStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for UreqStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ureq::ReadWrite for UreqStream {
    fn socket(&self) -> Option<&std::net::TcpStream> {
        self.0.get_ref().socket()
    }
}
