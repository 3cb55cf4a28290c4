//! Throwaway certificates for tests that need TLS or a CA file but no main server.

use anyhow::{Context, Result};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509NameBuilder, X509};

/// A self-signed certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// A self-signed ECDSA P-256 certificate named `common_name`, valid from now for `days`.
pub fn self_signed(common_name: &str, days: u32) -> Result<SelfSigned> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).context("the P-256 curve")?;
    let key: PKey<Private> =
        PKey::from_ec_key(EcKey::generate(&group).context("generating a key")?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", common_name)?;
    let name = name.build();
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(&name)?;
    cert.set_pubkey(&key)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(days)?;
    cert.set_not_before(&not_before)?;
    cert.set_not_after(&not_after)?;
    let serial = BigNum::from_u32(1)?.to_asn1_integer()?;
    cert.set_serial_number(&serial)?;
    cert.sign(&key, MessageDigest::sha256())?;
    Ok(SelfSigned {
        cert_pem: cert.build().to_pem()?,
        key_pem: key.private_key_to_pem_pkcs8()?,
    })
}
