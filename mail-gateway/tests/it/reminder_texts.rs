//! Snapshots of the reminder mails customers read (`snapshots/it__reminder_texts__*.snap`,
//! fixed ids and dates), and the headers that keep them out of mail loops.

use chrono::DateTime;
use mail_gateway::outgoing::replies::Composer;
use mail_gateway::own_mail::reminders::mail_name;
use mail_gateway::vocabulary::ReplyKind;
use mail_parser::MessageParser;
use shared_proto::admin_api::{DueReminder, ReminderThreshold};
use uuid::Uuid;

#[test]
fn reminder_texts_match_their_snapshots() {
    let composer = Composer::new("licensing@solme.example", "Solme Licensing").unwrap();
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    let due = |threshold, days_left| DueReminder {
        id: Uuid::parse_str("0b8e2f4c-9d1a-4c3e-8f7b-2a6d5e4c3b21").unwrap(),
        server_id: Uuid::parse_str("6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10").unwrap(),
        customer_id: Uuid::nil(),
        customer_name: "Acme Engineering AB".into(),
        contacts: vec!["ops@acme.example".into(), "it@acme.example".into()],
        threshold,
        valid_until: DateTime::from_timestamp(1_797_000_000, 0).unwrap(),
        days_left,
    };
    for (name, reminder) in [
        ("30d", due(ReminderThreshold::ThirtyDays, 24)),
        ("1d", due(ReminderThreshold::OneDay, 1)),
        ("passed", due(ReminderThreshold::Passed, -3)),
    ] {
        let file = mail_name(&reminder, "Ops@Acme.Example");
        assert_eq!(file, mail_name(&reminder, "ops@acme.example"));
        assert_ne!(file, mail_name(&reminder, "it@acme.example"));
        let (envelope, bytes) = composer
            .compose_reminder(&reminder, "ops@acme.example", &file, now)
            .unwrap();
        assert_eq!(envelope.to, "ops@acme.example");
        assert_eq!(
            envelope.from, None,
            "a null envelope sender: no bounce loops"
        );
        assert_eq!(envelope.kind, ReplyKind::Reminder);
        let message = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(
            message.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        assert!(message.in_reply_to().is_empty());
        let text = format!(
            "Subject: {}\n\n{}",
            message.subject().unwrap_or_default(),
            message
                .body_text(0)
                .unwrap_or_default()
                .replace("\r\n", "\n")
        );
        insta::assert_snapshot!(name, text);
    }
}
