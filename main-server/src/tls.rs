//! The simulation's TLS material: a private CA made at `init`, an ECDSA P-256 server
//! certificate for the names the server is reached by, and the acceptor `serve` uses
//! for the sync and the admin listeners.
//!
//! ECDSA P-256 rather than RSA: the server signs once per handshake, and a P-256
//! signature costs a small fraction of an RSA-2048 one.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslFiletype, SslMethod};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509NameRef, X509};

/// Certificates start a day in the past so that a client whose clock is slightly behind
/// (or a test that moves it) still accepts them, and last ten years.
const BACKDATE: Duration = Duration::days(1);
const LIFETIME: Duration = Duration::days(3650);

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

fn validity(now: DateTime<Utc>) -> anyhow::Result<(Asn1Time, Asn1Time)> {
    let from = Asn1Time::from_unix((now - BACKDATE).timestamp()).context("certificate start")?;
    let until = Asn1Time::from_unix((now + LIFETIME).timestamp()).context("certificate end")?;
    Ok((from, until))
}

/// A version 3 certificate of `key` for `subject`, issued by `issuer`, with a random
/// serial number and the validity from `now`; extensions and signature are the
/// caller's.
fn certificate(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
    now: DateTime<Utc>,
) -> anyhow::Result<X509Builder> {
    let (from, until) = validity(now)?;
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

    let mut builder = certificate(&name, &name, &key, now)?;
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
/// name in `hostnames` (IP addresses become IP SANs).
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

    let mut builder = certificate(&subject, ca_cert.subject_name(), &key, now)?;
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

/// The TLS acceptor configuration for the listeners (Mozilla "intermediate":
/// TLS 1.2 and 1.3). Built once per listener at start-up, never per connection.
pub fn acceptor_builder(cert: &Path, key: &Path) -> anyhow::Result<SslAcceptorBuilder> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .context("creating the TLS context")?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .with_context(|| format!("reading the TLS key {}", key.display()))?;
    builder
        .set_certificate_chain_file(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    builder
        .check_private_key()
        .context("the TLS key does not match the certificate")?;
    // No TLS 1.3 session tickets: a local server syncs about once a day, long after any
    // ticket would have expired, so minting two per handshake (OpenSSL's default) is
    // pure cost on every new connection.
    builder
        .set_num_tickets(0)
        .context("turning off TLS session tickets")?;
    Ok(builder)
}
