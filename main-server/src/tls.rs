//! The simulation's TLS material: a private CA made at `init`, an ECDSA P-256 server
//! certificate for the names the server is reached by, its renewal, and the acceptor
//! `serve` uses for the sync and the admin listeners.
//!
//! ECDSA P-256 rather than RSA: the server signs once per handshake, and a P-256
//! signature costs a small fraction of an RSA-2048 one.
//!
//! The CA is long-lived because every local server pins it: replacing it needs every
//! customer. The server certificate lasts at most [`SERVER_CERT_LIFETIME`] and is
//! renewed from the CA's key when it ends within [`RENEW_BEFORE`] (at `init`, at every
//! `serve` start and by `main-server renew-certificate`); clients trust the CA, not the
//! certificate, so a renewal needs nothing from customers.
//!
//! Certificates are dated by the operating system's clock, never by the simulated
//! clock (`SOLME_CLOCK_OFFSET`): TLS peers check them against their own system clocks,
//! and a certificate dated by a moved clock would be "not yet valid" to all of them.

use std::fs::OpenOptions;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use openssl::asn1::{Asn1Integer, Asn1Time, Asn1TimeRef};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod, SslOptions};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509NameRef, X509VerifyResult, X509};
use shared_proto::files::{self, Access, Existing};

use crate::data_dir::DataDir;

/// Certificates start a day in the past so that a client whose clock is slightly behind
/// still accepts them.
const BACKDATE: Duration = Duration::days(1);
/// The CA's lifetime (from its backdated start): ten years.
const CA_LIFETIME: Duration = Duration::days(3650);
/// The longest a server certificate lasts, from its backdated start to its end: the
/// 397 days that browsers and the CA/Browser Forum accept for a server certificate.
pub const SERVER_CERT_LIFETIME: Duration = Duration::days(397);
/// A server certificate that ends sooner than this is renewed.
pub const RENEW_BEFORE: Duration = Duration::days(30);

/// A key and its certificate, in PEM.
pub struct Issued {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

fn p256_key() -> anyhow::Result<PKey<Private>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).context("loading curve P-256")?;
    let key = EcKey::generate(&group).context("generating a P-256 key")?;
    PKey::from_ec_key(key).context("wrapping the P-256 key")
}

fn random_serial() -> anyhow::Result<Asn1Integer> {
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    Ok(serial.to_asn1_integer()?)
}

fn validity(now: DateTime<Utc>, lifetime: Duration) -> anyhow::Result<(Asn1Time, Asn1Time)> {
    let start = now - BACKDATE;
    let from = Asn1Time::from_unix(start.timestamp()).context("certificate start")?;
    let until = Asn1Time::from_unix((start + lifetime).timestamp()).context("certificate end")?;
    Ok((from, until))
}

/// A version 3 certificate of `key` for `subject`, issued by `issuer`, with a random
/// serial number, valid from `now` (backdated) for `lifetime`; extensions and
/// signature are the caller's.
fn certificate(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
    now: DateTime<Utc>,
    lifetime: Duration,
) -> anyhow::Result<X509Builder> {
    let (from, until) = validity(now, lifetime)?;
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let serial = random_serial()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(subject)?;
    builder.set_issuer_name(issuer)?;
    builder.set_pubkey(key)?;
    builder.set_not_before(&from)?;
    builder.set_not_after(&until)?;
    Ok(builder)
}

/// Signs the finished certificate with `signer` (SHA-256) and returns it with its own
/// `key`.
fn sign(
    mut builder: X509Builder,
    signer: &PKey<Private>,
    key: &PKey<Private>,
) -> anyhow::Result<Issued> {
    builder.sign(signer, MessageDigest::sha256())?;
    let cert = builder.build();
    Ok(Issued {
        cert_pem: cert.to_pem()?,
        key_pem: key.private_key_to_pem_pkcs8()?,
    })
}

/// A self-signed CA for the simulation.
pub fn make_ca(now: DateTime<Utc>) -> anyhow::Result<Issued> {
    let key = p256_key()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Solme AB (simulation)")?;
    name.append_entry_by_nid(Nid::COMMONNAME, "Solme simulation CA")?;
    let name = name.build();

    let mut builder = certificate(&name, &name, &key, now, CA_LIFETIME)?;
    builder.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    sign(builder, &key, &key)
}

/// A server certificate signed by the CA, valid for `localhost`, `127.0.0.1` and every
/// name in `hostnames` (IP addresses become IP SANs), for [`SERVER_CERT_LIFETIME`]
/// from `now`.
pub fn make_server_cert(
    ca: &Issued,
    hostnames: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<Issued> {
    let ca_cert = X509::from_pem(&ca.cert_pem).context("reading the CA certificate")?;
    let ca_key = PKey::private_key_from_pem(&ca.key_pem).context("reading the CA key")?;
    let key = p256_key()?;

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for name in hostnames {
        let name = name.trim().to_ascii_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    let mut subject = X509NameBuilder::new()?;
    subject.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Solme AB (simulation)")?;
    let common_name = names.get(2).map_or("localhost", String::as_str);
    subject.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    let subject = subject.build();

    let mut builder = certificate(
        &subject,
        ca_cert.subject_name(),
        &key,
        now,
        SERVER_CERT_LIFETIME,
    )?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut san = SubjectAlternativeName::new();
    for name in &names {
        if name.parse::<IpAddr>().is_ok() {
            san.ip(name);
        } else {
            san.dns(name);
        }
    }
    let context = builder.x509v3_context(Some(&ca_cert), None);
    let san = san
        .build(&context)
        .with_context(|| format!("building the certificate names {names:?}"))?;
    let ski = SubjectKeyIdentifier::new().build(&context)?;
    let aki = AuthorityKeyIdentifier::new().keyid(false).build(&context)?;
    builder.append_extension(san)?;
    builder.append_extension(ski)?;
    builder.append_extension(aki)?;
    sign(builder, &ca_key, &key)
}

/// The names (DNS names and IP addresses) a certificate is valid for, in its order.
fn certificate_names(cert: &X509) -> Vec<String> {
    let Some(names) = cert.subject_alt_names() else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|name| {
            if let Some(dns) = name.dnsname() {
                return Some(dns.to_owned());
            }
            let ip = match name.ipaddress()? {
                &[a, b, c, d] => IpAddr::from([a, b, c, d]),
                bytes => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
            };
            Some(ip.to_string())
        })
        .collect()
}

/// Seconds from `from` to `to` (negative when `to` is earlier).
fn seconds_between(from: &Asn1TimeRef, to: &Asn1TimeRef) -> anyhow::Result<i64> {
    let diff = from.diff(to).context("comparing certificate times")?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// Why the server certificate `cert` with the private key `key` must be replaced at
/// `now`, if it must: it does not match its key, is not from `ca`, is not valid yet,
/// has ended or ends within [`RENEW_BEFORE`], or lasts longer than
/// [`SERVER_CERT_LIFETIME`] (made by an older version, which issued ten-year
/// certificates).
pub fn renewal_reason(
    cert: &X509,
    key: &PKey<Private>,
    ca: &X509,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let public = cert.public_key().context("reading the certificate's key")?;
    if !public.public_eq(key) {
        return Ok(Some("it does not belong to the key beside it".into()));
    }
    let ca_key = ca.public_key().context("reading the CA's key")?;
    if ca.issued(cert) != X509VerifyResult::OK || !cert.verify(&ca_key).unwrap_or(false) {
        return Ok(Some("it was not issued by the CA in ca.pem".into()));
    }
    let now = Asn1Time::from_unix(now.timestamp()).context("the current time")?;
    let (start, end) = (cert.not_before(), cert.not_after());
    if seconds_between(&now, start)? > 0 {
        return Ok(Some(format!("it is valid only from {start}")));
    }
    let left = seconds_between(&now, end)?;
    if left <= 0 {
        return Ok(Some(format!("it ended on {end}")));
    }
    if left < RENEW_BEFORE.num_seconds() {
        return Ok(Some(format!(
            "it ends on {end}, within {} days",
            RENEW_BEFORE.num_days()
        )));
    }
    let lifetime = seconds_between(start, end)?;
    if lifetime > SERVER_CERT_LIFETIME.num_seconds() {
        return Ok(Some(format!(
            "it lasts {} days, longer than {}",
            lifetime / 86_400,
            SERVER_CERT_LIFETIME.num_days()
        )));
    }
    Ok(None)
}

/// The server certificate and key a server presents, as read (or just written).
pub struct ServerCertificate {
    pub issued: Issued,
    /// Its end, as people read it.
    pub not_after: String,
    /// Why it was renewed just now; `None` when it was kept.
    pub renewed: Option<String>,
}

/// Reads the data directory's server certificate and key, renewing them first from
/// the CA when [`renewal_reason`] says so, or when `force`. `now` is the operating
/// system's time (see the module's notes).
///
/// Processes sharing the data directory (replicas starting together, an operator's
/// `renew-certificate`) take turns through an exclusive lock on `tls.lock`: only one
/// renews, the others then read its certificate, and nobody reads a key and a
/// certificate from two different renewals. The key is written before the
/// certificate, each whole or not at all; after a crash between the two, the next run
/// finds a certificate that does not belong to its key and renews again.
pub fn server_certificate(
    dir: &DataDir,
    now: DateTime<Utc>,
    force: bool,
) -> anyhow::Result<ServerCertificate> {
    let lock_path = dir.tls_lock();
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", lock_path.display()))?;

    let (cert_path, key_path, ca_path) = (dir.tls_cert(), dir.tls_key(), dir.ca_cert());
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .with_context(|| format!("reading {} (run `main-server init` first)", path.display()))
    };
    let current = Issued {
        cert_pem: read(&cert_path)?,
        key_pem: read(&key_path)?,
    };
    let cert = X509::from_pem(&current.cert_pem)
        .with_context(|| format!("{} holds no PEM certificate", cert_path.display()))?;
    let key = PKey::private_key_from_pem(&current.key_pem)
        .with_context(|| format!("{} holds no PEM private key", key_path.display()))?;
    let ca_cert = X509::from_pem(&read(&ca_path)?)
        .with_context(|| format!("{} holds no PEM certificate", ca_path.display()))?;

    let reason = if force {
        Some("renewal was asked for".to_owned())
    } else {
        renewal_reason(&cert, &key, &ca_cert, now)?
    };
    let Some(reason) = reason else {
        return Ok(ServerCertificate {
            issued: current,
            not_after: cert.not_after().to_string(),
            renewed: None,
        });
    };
    let ca_key_path = dir.ca_key();
    let ca_key = match std::fs::read(&ca_key_path) {
        Ok(pem) => pem,
        // A CA key kept elsewhere (offline): serve what there is, and say what to do.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !force => {
            log::warn!(
                "{} should be renewed ({reason}), but the CA key {} is not here: put it \
                 back and run `main-server renew-certificate`",
                cert_path.display(),
                ca_key_path.display()
            );
            return Ok(ServerCertificate {
                issued: current,
                not_after: cert.not_after().to_string(),
                renewed: None,
            });
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "reading the CA key {} to renew {} ({reason})",
                    ca_key_path.display(),
                    cert_path.display()
                )
            })
        }
    };
    let ca = Issued {
        cert_pem: ca_cert.to_pem().context("encoding the CA certificate")?,
        key_pem: ca_key,
    };
    let names = certificate_names(&cert);
    let issued = make_server_cert(&ca, &names, now)?;
    files::write(
        &key_path,
        &issued.key_pem,
        Access::Private,
        Existing::Replace,
    )?;
    files::write(
        &cert_path,
        &issued.cert_pem,
        Access::Public,
        Existing::Replace,
    )?;
    let not_after = X509::from_pem(&issued.cert_pem)
        .context("reading the new certificate")?
        .not_after()
        .to_string();
    Ok(ServerCertificate {
        issued,
        not_after,
        renewed: Some(reason),
    })
}

/// The TLS acceptor configuration for the listeners (Mozilla "intermediate":
/// TLS 1.2 and 1.3, AEAD ciphers with forward secrecy only), presenting `identity`.
/// Built once per listener at start-up, never per connection.
pub fn acceptor_builder(identity: &Issued) -> anyhow::Result<SslAcceptorBuilder> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .context("creating the TLS context")?;
    let key = PKey::private_key_from_pem(&identity.key_pem).context("reading the TLS key")?;
    let mut chain = X509::stack_from_pem(&identity.cert_pem)
        .context("reading the TLS certificate")?
        .into_iter();
    let leaf = chain
        .next()
        .context("the TLS certificate file holds no certificate")?;
    builder.set_private_key(&key).context("using the TLS key")?;
    builder
        .set_certificate(&leaf)
        .context("using the TLS certificate")?;
    for cert in chain {
        builder
            .add_extra_chain_cert(cert)
            .context("using the TLS certificate chain")?;
    }
    builder
        .check_private_key()
        .context("the TLS key does not match the certificate")?;
    // The server picks the cipher by its own order (strongest and cheapest first), not
    // the client's: an auditor expects it, and it keeps a client that lists a weaker
    // choice first from getting it.
    builder.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    // No TLS 1.3 session tickets: a local server syncs about once a day, long after any
    // ticket would have expired, so minting two per handshake (OpenSSL's default) is
    // pure cost on every new connection.
    builder
        .set_num_tickets(0)
        .context("turning off TLS session tickets")?;
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(cert: &Issued, ca: &Issued, now: DateTime<Utc>) -> Option<String> {
        let x509 = X509::from_pem(&cert.cert_pem).expect("certificate");
        let key = PKey::private_key_from_pem(&cert.key_pem).expect("key");
        let ca = X509::from_pem(&ca.cert_pem).expect("CA");
        renewal_reason(&x509, &key, &ca, now).expect("a verdict")
    }

    #[test]
    fn a_fresh_certificate_is_kept_until_30_days_before_its_end() {
        let now = Utc::now();
        let ca = make_ca(now).expect("CA");
        let cert = make_server_cert(&ca, &["main.example".into()], now).expect("cert");
        assert_eq!(reason(&cert, &ca, now), None);
        let end = now - BACKDATE + SERVER_CERT_LIFETIME;
        let late = end - RENEW_BEFORE + Duration::minutes(1);
        let verdict = reason(&cert, &ca, late).expect("due");
        assert!(verdict.contains("within 30 days"), "{verdict}");
        assert_eq!(reason(&cert, &ca, late - Duration::minutes(2)), None);
        let verdict = reason(&cert, &ca, end + Duration::minutes(1)).expect("ended");
        assert!(verdict.contains("ended"), "{verdict}");
        let verdict = reason(&cert, &ca, now - Duration::days(2)).expect("early");
        assert!(verdict.contains("valid only from"), "{verdict}");
    }

    #[test]
    fn a_certificate_of_another_ca_a_mismatched_key_or_a_long_life_is_renewed() {
        let now = Utc::now();
        let ca = make_ca(now).expect("CA");
        let other_ca = make_ca(now).expect("other CA");
        let cert = make_server_cert(&ca, &[], now).expect("cert");
        let verdict = reason(&cert, &other_ca, now).expect("foreign");
        assert!(verdict.contains("not issued by the CA"), "{verdict}");

        let other = make_server_cert(&ca, &[], now).expect("cert");
        let mismatched = Issued {
            cert_pem: cert.cert_pem.clone(),
            key_pem: other.key_pem,
        };
        let verdict = reason(&mismatched, &ca, now).expect("mismatched");
        assert!(verdict.contains("does not belong to the key"), "{verdict}");

        // What an older `init` made: ten years.
        let ca_cert = X509::from_pem(&ca.cert_pem).expect("CA");
        let ca_key = PKey::private_key_from_pem(&ca.key_pem).expect("CA key");
        let key = p256_key().expect("key");
        let mut builder = certificate(
            ca_cert.subject_name(),
            ca_cert.subject_name(),
            &key,
            now,
            Duration::days(3650),
        )
        .expect("builder");
        builder
            .sign(&ca_key, MessageDigest::sha256())
            .expect("sign");
        let long = Issued {
            cert_pem: builder.build().to_pem().expect("PEM"),
            key_pem: key.private_key_to_pem_pkcs8().expect("PEM"),
        };
        let verdict = reason(&long, &ca, now).expect("too long");
        assert!(verdict.contains("longer than 397"), "{verdict}");
    }

    #[test]
    fn the_names_of_a_certificate_are_read_back() {
        let now = Utc::now();
        let ca = make_ca(now).expect("CA");
        let names = ["main.example".to_owned(), "10.0.0.7".into(), "::1".into()];
        let cert = make_server_cert(&ca, &names, now).expect("cert");
        let cert = X509::from_pem(&cert.cert_pem).expect("PEM");
        assert_eq!(
            certificate_names(&cert),
            ["localhost", "127.0.0.1", "main.example", "10.0.0.7", "::1"]
        );
    }
}
