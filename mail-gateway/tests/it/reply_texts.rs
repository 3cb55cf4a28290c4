//! Snapshots of what customers read: the subject, attachment names and text of
//! every kind of reply, with fixed ids and dates, kept by `insta` in
//! `snapshots/it__reply_texts__<kind>.snap`. After a deliberate wording change,
//! review with `cargo insta review` (or `INSTA_UPDATE=always cargo test`).

use chrono::{DateTime, Utc};
use mail_gateway::classify::message::Problem;
use mail_gateway::outgoing::replies::{Composer, Refusal, Reply};
use mail_gateway::vocabulary::Sender;
use mail_parser::{MessageParser, MimeHeaders};
use shared_proto::admin_api::{KeyClearRequest, KeyClearStatus, License, SenderAuth, SyncAnswer};
use uuid::Uuid;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

#[test]
fn reply_texts_match_their_snapshots() {
    let composer = Composer::new("licensing@solme.example", "Solme Licensing").unwrap();
    let server_id = Uuid::parse_str("6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10").unwrap();
    let request_id = Uuid::parse_str("0b8e2f4c-9d1a-4c3e-8f7b-2a6d5e4c3b21").unwrap();
    let now = at(1_795_000_000);
    let sender = Sender {
        address: "ops@acme.example".into(),
        name: Some("Ops".into()),
        message_id: Some("m1@acme.example".into()),
        references: vec![],
        subject: "Sync data".into(),
    };
    let answer = SyncAnswer {
        license_file: "-----BEGIN SOLME LICENSE FILE-----\n…\n-----END SOLME LICENSE FILE-----\n"
            .into(),
        server_id,
        valid_until: at(1_826_622_400),
        licenses: vec![
            License {
                id: request_id,
                feature: "solme-cad".into(),
                seats: 5,
                valid_from: None,
                valid_until: None,
                max_borrow_hours: None,
            },
            License {
                id: server_id,
                feature: "solme-render".into(),
                seats: 1,
                valid_from: Some(at(1_790_000_000)),
                valid_until: Some(at(1_830_000_000)),
                max_borrow_hours: None,
            },
        ],
        usage: vec![shared_proto::FeatureUsage {
            feature: "solme-cad".into(),
            seats_total: 5,
            peak_in_use: 4,
            seat_hours: 37.25,
            refusals: [("NO_SEATS".to_owned(), 2)].into(),
        }],
    };
    // The approved one's sender was authenticated, the rejected one's was not.
    let decided = |status: KeyClearStatus, reason: Option<&str>| KeyClearRequest {
        id: request_id,
        server_id,
        sender: "ops@acme.example".into(),
        message_id: "m1@acme.example".into(),
        text: "clear".into(),
        sender_auth: if status == KeyClearStatus::Approved {
            SenderAuth::Authenticated
        } else {
            SenderAuth::NotAuthenticated
        },
        sender_auth_detail: if status == KeyClearStatus::Approved {
            "spf=pass, dkim=pass, dmarc=pass".into()
        } else {
            "spf=fail, dmarc=fail".into()
        },
        status,
        created_at: now,
        decided_at: Some(now),
        operator: Some("alice".into()),
        reason: reason.map(str::to_owned),
    };
    let approved = decided(KeyClearStatus::Approved, Some("server reinstalled"));
    let rejected = decided(
        KeyClearStatus::Rejected,
        Some("the id belongs to another site"),
    );
    // Approved with the override, the gateway trusting no header: the notice words
    // the check for a customer, not the gateway's configuration.
    let unchecked = KeyClearRequest {
        sender_auth: SenderAuth::NotChecked,
        sender_auth_detail:
            "the mail gateway trusts no Authentication-Results header (no --authserv-id)".into(),
        ..approved.clone()
    };
    let problems = [
        Problem::NoSyncData {
            attachments: vec!["screenshot.pdf".into()],
        },
        Problem::Damaged {
            detail:
                "the sync data is damaged: its text between the BEGIN and END lines was changed"
                    .into(),
        },
        Problem::LicenseFileSent,
        Problem::KeyClearWithoutId,
        Problem::SeveralIds {
            ids: vec![server_id, request_id],
        },
        Problem::TooLarge {
            size: 5_000_000,
            limit: 2_097_152,
        },
        Problem::SupportBundle {
            name: "support-bundle-6f0c1a52.tar.gz".into(),
        },
    ];
    let refusals = [
        ("unknown-id", Refusal::UnknownId, false),
        ("id-in-use", Refusal::IdInUse, false),
        ("not-registered", Refusal::NotRegistered, false),
        ("not-registered-key-clear", Refusal::NotRegistered, true),
        ("replayed", Refusal::Replayed { resumed: false }, false),
        (
            "replayed-after-interruption",
            Refusal::Replayed { resumed: true },
            false,
        ),
        ("stale", Refusal::Stale, false),
        (
            "refused-bad-signature",
            Refusal::Damaged {
                message: "the signature does not match the presented key".into(),
            },
            false,
        ),
    ];

    let mut replies: Vec<(String, Reply<'_>)> = vec![
        ("license".into(), Reply::License(&answer)),
        (
            "key-clear-ack".into(),
            Reply::KeyClearAck {
                server_id,
                request_id,
                sender_auth: SenderAuth::Authenticated,
            },
        ),
        (
            "key-clear-ack-unauthenticated".into(),
            Reply::KeyClearAck {
                server_id,
                request_id,
                sender_auth: SenderAuth::NotAuthenticated,
            },
        ),
        ("key-clear-approved".into(), Reply::Decision(&approved)),
        ("key-clear-rejected".into(), Reply::Decision(&rejected)),
        (
            "key-clear-approved-unchecked".into(),
            Reply::Decision(&unchecked),
        ),
    ];
    for problem in &problems {
        replies.push((problem.label().into(), Reply::Problem(problem)));
    }
    for (name, refusal, for_key_clear) in &refusals {
        replies.push((
            (*name).into(),
            Reply::Refused {
                server_id,
                refusal: refusal.clone(),
                for_key_clear: *for_key_clear,
            },
        ));
    }

    for (name, reply) in &replies {
        let (_, bytes) = composer.compose(reply, &sender, "r1", now).unwrap();
        let message = MessageParser::default().parse(&bytes).unwrap();
        let mut text = format!("Subject: {}\n", message.subject().unwrap_or_default());
        for attachment in message.attachments() {
            text.push_str(&format!(
                "Attachment: {}\n",
                attachment.attachment_name().unwrap_or_default()
            ));
        }
        text.push('\n');
        text.push_str(
            &message
                .body_text(0)
                .unwrap_or_default()
                .replace("\r\n", "\n"),
        );
        insta::assert_snapshot!(name.as_str(), text);
    }
}
