//! The client side of the simulation's TLS: every client of a Solme server (local
//! servers, the admin CLI, the mail gateway) trusts one pinned CA and nothing else.

use std::net::{IpAddr, SocketAddr};

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

use crate::ProtoError;

/// A TLS client context whose only trust anchors are the certificates in `ca_pem`:
/// the system's CAs are not consulted. Build it once per process (OpenSSL 3 makes each
/// new context costly) and clone it.
pub fn pinned_connector(ca_pem: &[u8]) -> Result<SslConnector, ProtoError> {
    let certs = X509::stack_from_pem(ca_pem)
        .map_err(|e| ProtoError::Malformed(format!("the CA file is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ProtoError::Malformed(
            "the CA file holds no certificate".into(),
        ));
    }
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    let mut store = X509StoreBuilder::new()?;
    for cert in certs {
        store.add_cert(cert)?;
    }
    // Replacing the store drops the system's CAs: the pin is the only trust anchor.
    builder.set_cert_store(store.build());
    builder.set_verify(SslVerifyMode::PEER);
    Ok(builder.build())
}

/// Whether a connection failure (as the HTTP client printed it) is OpenSSL refusing
/// the server's certificate: not issued by the pinned CA, or not for the name dialled.
pub fn is_untrusted_certificate(failure: &str) -> bool {
    failure.contains("certificate verify failed")
}

/// Whether an `http://` URL names a loopback address (`localhost`, 127.0.0.0/8, ::1),
/// the only place a plain-HTTP admin API may be.
pub fn is_loopback_http_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return false; // user info: the host is after it
    }
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let err = pinned_connector(b"").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("the CA file holds no certificate"));
    }

    #[test]
    fn plain_http_is_for_loopback_urls_only() {
        for url in [
            "http://127.0.0.1:8081",
            "http://[::1]:8081/",
            "http://localhost:8081",
            "http://127.0.0.1",
        ] {
            assert!(is_loopback_http_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:8081",
            "http://main.example:8081",
            "http://localhost.evil.example:80",
            "http://localhost:80@evil.example",
            "https://127.0.0.1:8081",
        ] {
            assert!(!is_loopback_http_url(url), "{url}");
        }
    }
}
