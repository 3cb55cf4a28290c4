//! Snapshots of the mails that name the customer portal (`--portal-url`): the sign-in
//! link mail, and the license reply and reminder with the portal as the other way to
//! synchronize (`snapshots/it__portal_texts__*.snap`, fixed ids and dates). Without
//! `--portal-url` those two are as in `reply_texts` and `reminder_texts`.

use chrono::{DateTime, Utc};
use mail_gateway::outgoing::replies::{Composer, Reply};
use mail_gateway::own_mail::portal_links::{link_text, mail_name, SUBJECT};
use mail_gateway::vocabulary::{ReplyKind, Sender};
use mail_parser::MessageParser;
use shared_proto::admin_api::{DuePortalLink, DueReminder, License, ReminderThreshold, SyncAnswer};
use uuid::Uuid;

const PORTAL: &str = "https://licensing.solme.example";

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn composer() -> Composer {
    Composer::new("licensing@solme.example", "Solme Licensing")
        .unwrap()
        .with_portal(Some(PORTAL.to_owned()))
}

/// Subject and text of a composed mail, as the snapshots hold them.
fn shown(bytes: &[u8]) -> String {
    let message = MessageParser::default().parse(bytes).unwrap();
    format!(
        "Subject: {}\n\n{}",
        message.subject().unwrap_or_default(),
        message
            .body_text(0)
            .unwrap_or_default()
            .replace("\r\n", "\n")
    )
}

#[test]
fn the_sign_in_link_mail_matches_its_snapshot() {
    let now = at(1_795_000_000);
    let link = DuePortalLink {
        id: Uuid::parse_str("0b8e2f4c-9d1a-4c3e-8f7b-2a6d5e4c3b21").unwrap(),
        to: "ops@acme.example".into(),
        customer_name: "Acme Engineering AB".into(),
        path: "/portal/link?token=EXAMPLE-TOKEN".into(),
        expires_at: at(1_795_000_000 + 14 * 60 + 30),
    };
    let name = mail_name(&link);
    assert_eq!(name, "portal-link-0b8e2f4c9d1a4c3e8f7b2a6d5e4c3b21");
    let text = link_text(&link, PORTAL, now);
    let (envelope, bytes) = composer()
        .compose_generated(
            &link.to,
            SUBJECT.to_owned(),
            &text,
            &name,
            now,
            ReplyKind::PortalLink,
        )
        .unwrap();
    assert_eq!(envelope.to, "ops@acme.example");
    assert_eq!(
        envelope.from, None,
        "a null envelope sender: no bounce loops"
    );
    assert_eq!(envelope.kind, ReplyKind::PortalLink);
    let message = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert!(message.in_reply_to().is_empty());
    let shown = shown(&bytes);
    assert!(shown.contains("https://licensing.solme.example/portal/link?token=EXAMPLE-TOKEN"));
    insta::assert_snapshot!("portal-link", shown);

    // A link claimed late says the time really left.
    let late = link_text(&link, PORTAL, at(1_795_000_000 + 14 * 60));
    assert!(late.contains("within 1 minute:"), "{late}");
}

#[test]
fn replies_and_reminders_name_the_portal_when_it_is_set() {
    let server_id = Uuid::parse_str("6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10").unwrap();
    let now = at(1_795_000_000);
    let answer = SyncAnswer {
        license_file: "-----BEGIN SOLME LICENSE FILE-----\n…\n-----END SOLME LICENSE FILE-----\n"
            .into(),
        server_id,
        valid_until: at(1_826_622_400),
        licenses: vec![License {
            id: server_id,
            feature: "solme-cad".into(),
            seats: 5,
            valid_from: None,
            valid_until: None,
            max_borrow_hours: None,
        }],
        usage: Vec::new(),
    };
    let sender = Sender {
        address: "ops@acme.example".into(),
        name: Some("Ops".into()),
        message_id: Some("m1@acme.example".into()),
        references: vec![],
        subject: "Sync data".into(),
    };
    let (_, bytes) = composer()
        .compose(&Reply::License(&answer), &sender, "q-1", now)
        .unwrap();
    insta::assert_snapshot!("license-with-portal", shown(&bytes));

    let reminder = DueReminder {
        id: Uuid::parse_str("0b8e2f4c-9d1a-4c3e-8f7b-2a6d5e4c3b21").unwrap(),
        server_id,
        customer_id: Uuid::nil(),
        customer_name: "Acme Engineering AB".into(),
        contacts: vec!["ops@acme.example".into()],
        threshold: ReminderThreshold::ThirtyDays,
        valid_until: at(1_797_000_000),
        days_left: 24,
    };
    let (_, bytes) = composer()
        .compose_reminder(&reminder, "ops@acme.example", "reminder-1", now)
        .unwrap();
    insta::assert_snapshot!("reminder-with-portal", shown(&bytes));

    // Without --portal-url neither names it.
    let plain = Composer::new("licensing@solme.example", "Solme Licensing").unwrap();
    let (_, bytes) = plain
        .compose(&Reply::License(&answer), &sender, "q-1", now)
        .unwrap();
    assert!(!shown(&bytes).contains("portal"));
    let (_, bytes) = plain
        .compose_reminder(&reminder, "ops@acme.example", "reminder-1", now)
        .unwrap();
    assert!(!shown(&bytes).contains("portal"));
}
