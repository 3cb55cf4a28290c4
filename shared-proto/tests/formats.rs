//! Round trips and tampering of the two armored formats, through the public API only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use chrono::{Duration, Utc};
use proptest::prelude::*;
use shared_proto::armor::{self, ArmorKind};
use shared_proto::{
    license_file, sync_data, ErrorCode, License, LicenseFile, ProtoError, ServerIdentity,
    SolmeSigningKey, SyncRequest,
};
use uuid::Uuid;

struct World {
    server: ServerIdentity,
    solme: SolmeSigningKey,
    server_id: Uuid,
}

impl World {
    /// Opens a license file as this world's server would.
    fn open(&self, text: &str) -> Result<LicenseFile, ProtoError> {
        license_file::open(text, &self.server, &self.solme.public_key(), self.server_id)
    }
}

fn world() -> World {
    World {
        server: ServerIdentity::generate().unwrap(),
        solme: SolmeSigningKey::generate().unwrap(),
        server_id: Uuid::new_v4(),
    }
}

fn request(world: &World) -> SyncRequest {
    SyncRequest {
        version: 1,
        server_id: world.server_id,
        request_id: Uuid::new_v4(),
        created_at: Utc::now(),
        public_keys: world.server.public_keys(),
        held_revision: Some(3),
        held_sequence: None,
        software_version: "1.0.0".into(),
        usage: vec![],
        usage_since: None,
        held_file_sha256: None,
        request_counter: None,
        borrows: None,
        standby_keys: None,
    }
}

fn license(world: &World, sequence: i64) -> LicenseFile {
    let issued_at = Utc::now();
    LicenseFile {
        version: 1,
        server_id: world.server_id,
        answers_request: Uuid::new_v4(),
        recipient: world.server.fingerprint(),
        sequence,
        revision: 7,
        issued_at,
        valid_until: shared_proto::validity::valid_until_for(issued_at),
        customer: "Acme AB".into(),
        licenses: vec![
            License::perpetual("solme-cad", 5),
            License {
                feature: "solme-cam".into(),
                seats: 2,
                valid_from: Some(issued_at - Duration::days(1)),
                valid_until: Some(issued_at + Duration::days(90)),
                max_borrow_hours: None,
            },
        ],
        inherited_borrows: None,
        standby: None,
    }
}

fn sealed_license(world: &World) -> (LicenseFile, String) {
    let file = license(world, 1);
    let text = license_file::seal(&world.solme, &file, &world.server.public_keys()).unwrap();
    (file, text)
}

/// Re-armors `body` with the headers of `text`, as an attacker editing the file would.
fn rearmor(kind: ArmorKind, text: &str, body: &[u8]) -> String {
    let armored = armor::decode(text, kind).unwrap();
    let headers: Vec<(&str, String)> = armored
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    armor::encode(kind, &headers, body)
}

fn body(kind: ArmorKind, text: &str) -> Vec<u8> {
    armor::decode(text, kind).unwrap().body
}

#[test]
fn sync_data_round_trip() {
    let world = world();
    let request = request(&world);
    let text = sync_data::seal(&world.server, &request).unwrap();
    assert!(text.starts_with("-----BEGIN SOLME SYNC DATA-----\n"));
    let verified = sync_data::open(&text).unwrap();
    assert_eq!(verified.request, request);
    assert_eq!(verified.fingerprint, world.server.fingerprint());
}

#[test]
fn license_file_round_trip() {
    let world = world();
    let (file, text) = sealed_license(&world);
    assert!(text.starts_with("-----BEGIN SOLME LICENSE FILE-----\n"));
    let opened = world.open(&text).unwrap();
    assert_eq!(opened, file);
    let headers = license_file::peek_headers(&text).unwrap();
    assert!(headers.iter().any(|(k, v)| k == "Sequence" && v == "1"));
}

#[test]
fn survives_a_mail_client_quoting_it_with_crlf() {
    let world = world();
    let (file, text) = sealed_license(&world);
    let quoted: String = text.lines().map(|l| format!("> {l}\r\n")).collect();
    let mail = format!("On Monday Solme wrote:\r\n{quoted}\r\nThanks!\r\n");
    let opened = world.open(&mail).unwrap();
    assert_eq!(opened, file);
}

#[test]
fn wrong_signer_is_refused() {
    let world = world();
    let (_, text) = sealed_license(&world);
    let impostor = SolmeSigningKey::generate().unwrap();
    let err = license_file::open(
        &text,
        &world.server,
        &impostor.public_key(),
        world.server_id,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadSignature);
}

#[test]
fn wrong_recipient_is_refused() {
    let world = world();
    let (_, text) = sealed_license(&world);
    let other = ServerIdentity::generate().unwrap();
    let err =
        license_file::open(&text, &other, &world.solme.public_key(), world.server_id).unwrap_err();
    assert_eq!(err.code(), ErrorCode::WrongServer);
}

#[test]
fn wrong_id_is_refused() {
    let world = world();
    let (_, text) = sealed_license(&world);
    let err = license_file::open(
        &text,
        &world.server,
        &world.solme.public_key(),
        Uuid::new_v4(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::WrongServer);
}

#[test]
fn seal_refuses_a_recipient_mismatch() {
    let world = world();
    let old = ServerIdentity::generate().unwrap();
    let mut file = license(&world, 1);
    // Signed for the old key pair, but encrypted to the new one.
    file.recipient = old.fingerprint();
    let signed_for_old = LicenseFile { ..file };
    let err = license_file::seal(&world.solme, &signed_for_old, &world.server.public_keys());
    assert!(err.is_err(), "seal must refuse a recipient mismatch");
}

#[test]
fn swapped_domain_label_is_refused() {
    // A sync request body placed in a license-file armor (and the reverse) never passes.
    let world = world();
    let sync_text = sync_data::seal(&world.server, &request(&world)).unwrap();
    let sync_body = body(ArmorKind::SyncData, &sync_text);
    let as_license = armor::encode(ArmorKind::LicenseFile, &[], &sync_body);
    let err = world.open(&as_license).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Malformed);

    // A license file's signed message relabelled as a sync request: the kind byte is
    // inside the signed bytes and the label differs, so the signature fails.
    let key = openssl::pkey::PKey::generate_ed25519().unwrap();
    let mut signed =
        shared_proto::envelope::sign(shared_proto::envelope::Kind::LicenseFile, b"{}", &key)
            .unwrap();
    signed[5] = 1;
    let unverified =
        shared_proto::envelope::parse(shared_proto::envelope::Kind::SyncRequest, &signed).unwrap();
    assert!(matches!(
        unverified.verify(&key),
        Err(ProtoError::BadSignature(_))
    ));
}

#[test]
fn truncation_is_refused() {
    let world = world();
    let (_, text) = sealed_license(&world);
    let full = body(ArmorKind::LicenseFile, &text);
    for cut in [1, 16, full.len() / 2, full.len() - 1] {
        let truncated = rearmor(ArmorKind::LicenseFile, &text, &full[..full.len() - cut]);
        assert!(world.open(&truncated).is_err());
    }
    let sync_text = sync_data::seal(&world.server, &request(&world)).unwrap();
    let sync_body = body(ArmorKind::SyncData, &sync_text);
    let truncated = rearmor(
        ArmorKind::SyncData,
        &sync_text,
        &sync_body[..sync_body.len() - 1],
    );
    assert_eq!(
        sync_data::open(&truncated).unwrap_err().code(),
        ErrorCode::Malformed
    );
}

#[test]
fn bad_base64_is_refused() {
    let world = world();
    let text = sync_data::seal(&world.server, &request(&world)).unwrap();
    let damaged = text.replacen("\n\n", "\n\n!!!*", 1);
    let err = sync_data::open(&damaged).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Malformed);
    // Said for a customer: what is wrong, not the decoder's words.
    let message = err.to_string();
    assert!(message.starts_with("the sync data is damaged"), "{message}");
    assert!(!message.contains("base64"), "{message}");
}

#[test]
fn oversized_input_is_refused() {
    let huge = format!(
        "-----BEGIN SOLME SYNC DATA-----\n\n{}\n-----END SOLME SYNC DATA-----\n",
        "QUFB\n".repeat(60_000)
    );
    assert!(matches!(
        sync_data::open(&huge),
        Err(ProtoError::TooLarge { .. })
    ));
}

#[test]
fn unsupported_version_is_named() {
    let world = world();
    let text = sync_data::seal(&world.server, &request(&world)).unwrap();
    let mut raw = body(ArmorKind::SyncData, &text);
    raw[4] = 9;
    let err = sync_data::open(&rearmor(ArmorKind::SyncData, &text, &raw)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
}

#[test]
fn a_request_signed_by_one_key_but_presenting_another_is_refused() {
    let world = world();
    let other = ServerIdentity::generate().unwrap();
    let text = sync_data::seal(&world.server, &request(&world)).unwrap();
    let raw = body(ArmorKind::SyncData, &text);
    // Swap the presented signing key inside the payload for another one.
    let payload_len = u32::from_be_bytes(raw[6..10].try_into().unwrap()) as usize;
    let payload = std::str::from_utf8(&raw[10..10 + payload_len]).unwrap();
    let engine = base64::engine::general_purpose::STANDARD;
    let forged_payload = payload.replace(
        &engine.encode(world.server.public_keys().signing),
        &engine.encode(other.public_keys().signing),
    );
    assert_ne!(forged_payload, payload);
    let mut forged = raw[..6].to_vec();
    forged.extend_from_slice(&(forged_payload.len() as u32).to_be_bytes());
    forged.extend_from_slice(forged_payload.as_bytes());
    forged.extend_from_slice(&raw[10 + payload_len..]);
    let err = sync_data::open(&rearmor(ArmorKind::SyncData, &text, &forged)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadSignature);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any single flipped byte of a sync-data body is refused with a typed error.
    #[test]
    fn any_flipped_byte_of_sync_data_is_refused(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let world = world();
        let text = sync_data::seal(&world.server, &request(&world)).unwrap();
        let mut raw = body(ArmorKind::SyncData, &text);
        let i = index.index(raw.len());
        raw[i] ^= 1 << bit;
        let result = sync_data::open(&rearmor(ArmorKind::SyncData, &text, &raw));
        prop_assert!(result.is_err(), "flipping byte {} bit {} was accepted", i, bit);
    }

    /// Any single flipped byte of a license-file body is refused with a typed error.
    #[test]
    fn any_flipped_byte_of_a_license_file_is_refused(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let world = world();
        let (_, text) = sealed_license(&world);
        let mut raw = body(ArmorKind::LicenseFile, &text);
        let i = index.index(raw.len());
        raw[i] ^= 1 << bit;
        let result = world.open(&rearmor(ArmorKind::LicenseFile, &text, &raw));
        prop_assert!(result.is_err(), "flipping byte {} bit {} was accepted", i, bit);
    }

    /// Arbitrary text never panics either parser.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,2000}") {
        let world = world();
        let _ = sync_data::open(&text);
        let _ = world.open(&text);
    }

    /// Arbitrary bytes inside a well-formed armor never panic and are refused.
    #[test]
    fn arbitrary_bodies_are_refused(raw in prop::collection::vec(any::<u8>(), 0..600)) {
        let world = world();
        let sync = armor::encode(ArmorKind::SyncData, &[], &raw);
        prop_assert!(sync_data::open(&sync).is_err());
        let lic = armor::encode(ArmorKind::LicenseFile, &[], &raw);
        prop_assert!(world.open(&lic).is_err());
    }
}
