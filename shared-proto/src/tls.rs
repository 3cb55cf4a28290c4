//! The client side of the simulation's TLS: every client of a Solme server (local
//! servers, the admin CLI, the mail gateway) trusts one pinned CA and nothing else.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Utc};
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
    // The HTTP clients turn a failed handshake into text; the verify code is kept
    // aside here so that the failure can be told in words decided on that code.
    builder.set_verify_callback(SslVerifyMode::PEER, |preverified, ctx| {
        if !preverified {
            LAST_REFUSAL
                .with(|last| last.set(Some((ctx.error().as_raw(), ctx.error().error_string()))));
        }
        preverified
    });
    Ok(builder.build())
}

thread_local! {
    /// The verify code of the last certificate this thread's handshakes refused. A
    /// handshake runs on the thread that awaits the connection, so the caller that
    /// sees the failure reads it on the same thread right after.
    static LAST_REFUSAL: Cell<Option<(i32, &'static str)>> = const { Cell::new(None) };
}

/// Why a server's certificate was refused, decided on OpenSSL's verify code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRefusal {
    /// Its validity starts after this computer's "now": usually a clock set back.
    NotYetValid,
    /// Its validity ended before this computer's "now" (or the clock is ahead).
    Expired,
    /// It names another host than the one dialled.
    WrongName,
    /// Not issued by the pinned CA (or signed by a CA given to no one here).
    UntrustedIssuer,
    /// Any other verify failure: OpenSSL's own short sentence for it (a sentence from
    /// its table of verify results, such as "certificate revoked").
    Other(&'static str),
}

impl CertificateRefusal {
    /// Decides on a verify code (`X509_V_ERR_*`); `sentence` is OpenSSL's for it.
    pub fn from_code(code: i32, sentence: &'static str) -> Self {
        // Codes from OpenSSL's x509_vfy.h (X509_V_ERR_*), stable across versions.
        const CERT_NOT_YET_VALID: i32 = 9;
        const CERT_HAS_EXPIRED: i32 = 10;
        const ERROR_IN_CERT_NOT_BEFORE_FIELD: i32 = 13;
        const ERROR_IN_CERT_NOT_AFTER_FIELD: i32 = 14;
        const HOSTNAME_MISMATCH: i32 = 62;
        const IP_ADDRESS_MISMATCH: i32 = 64;
        // Unable to get the issuer, bad signature, self-signed, not trusted, invalid CA…
        const UNTRUSTED: [i32; 10] = [2, 4, 7, 18, 19, 20, 21, 24, 27, 28];
        match code {
            CERT_NOT_YET_VALID | ERROR_IN_CERT_NOT_BEFORE_FIELD => Self::NotYetValid,
            CERT_HAS_EXPIRED | ERROR_IN_CERT_NOT_AFTER_FIELD => Self::Expired,
            HOSTNAME_MISMATCH | IP_ADDRESS_MISMATCH => Self::WrongName,
            code if UNTRUSTED.contains(&code) => Self::UntrustedIssuer,
            _ => Self::Other(sentence),
        }
    }

    /// The refusal in words for people; `machine_now` is this computer's clock (the one
    /// OpenSSL compared the certificate's dates with).
    pub fn describe(self, machine_now: DateTime<Utc>) -> String {
        let date = machine_now.format("%Y-%m-%d %H:%M UTC");
        match self {
            Self::NotYetValid => format!(
                "the server's certificate is not valid yet by this computer's clock, which says \
                 it is {date}: this computer's date is probably wrong; set its clock to the \
                 right date and time and try again"
            ),
            Self::Expired => format!(
                "the server's certificate has expired by this computer's clock, which says it is \
                 {date}: if that date is right, tell Solme's support; if not, set this \
                 computer's clock"
            ),
            Self::WrongName => "the server's certificate is for another host name than the \
                 one configured"
                .to_owned(),
            Self::UntrustedIssuer => "the server's certificate was not issued by the CA this \
                 installation trusts (the CA file given to init)"
                .to_owned(),
            Self::Other(sentence) => format!("the server's certificate was refused ({sentence})"),
        }
    }
}

/// Takes the verify code that a handshake on this thread refused since the last call
/// (see [`pinned_connector`]). Call it where a connection failure is told, on the
/// thread that awaited the connection.
pub fn take_certificate_refusal() -> Option<CertificateRefusal> {
    LAST_REFUSAL
        .with(Cell::take)
        .map(|(code, sentence)| CertificateRefusal::from_code(code, sentence))
}

/// A failed TLS connection in words: the certificate's refusal when a handshake on
/// this thread recorded one, otherwise that the secure connection could not be set
/// up. Never OpenSSL's own error text (file names and line numbers of its sources).
pub fn describe_tls_failure(machine_now: DateTime<Utc>) -> String {
    match take_certificate_refusal() {
        Some(refusal) => refusal.describe(machine_now),
        None => "the secure connection (TLS) could not be set up: the other side did not \
                 complete a TLS handshake (is it an HTTPS server?)"
            .to_owned(),
    }
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
