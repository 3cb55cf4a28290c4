//! The golden folder: `tests/golden/*.eml` written in the styles of common
//! mail clients, each with its expected outcome in `expected.txt`. Sync data
//! is made fresh and put in place of `{{…}}` placeholders in the encoding
//! each file needs; every file is checked in LF and in CRLF form.

use std::path::PathBuf;

use base64::Engine;
use chrono::{DateTime, Utc};
use mail_gateway::classify::message::{classify, Problem, Request, Verdict};
use mail_gateway::vocabulary::{Envelope, Intake};
use shared_proto::ServerIdentity;
use uuid::Uuid;

use crate::helpers::{sync_data, LICENSING};

const LIMIT: usize = 2 * 1024 * 1024;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn envelope(truncated: bool) -> Envelope {
    Envelope {
        return_path: None,
        recipients: vec![LICENSING.into()],
        received_at: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        intake: Intake::Smtp,
        size: 100,
        truncated,
    }
}

struct Vars {
    server_id: Uuid,
    sync: String,
}

impl Vars {
    fn new() -> Vars {
        let identity = ServerIdentity::generate().unwrap();
        let server_id = Uuid::new_v4();
        Vars {
            server_id,
            sync: sync_data(&identity, server_id),
        }
    }

    /// The golden mail `name`, rendered with these values.
    fn golden(&self, name: &str) -> String {
        self.render(&std::fs::read_to_string(golden_dir().join(name)).unwrap())
    }

    fn render(&self, template: &str) -> String {
        let base64 = base64::engine::general_purpose::STANDARD.encode(self.sync.as_bytes());
        let base64_lines: Vec<String> = base64
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let qp: String = self
            .sync
            .lines()
            .map(|line| format!("{}\n", line.replace('=', "=3D")))
            .collect();
        let quoted: String = self.sync.lines().map(|l| format!("> {l}\n")).collect();
        let lines: Vec<&str> = self.sync.lines().collect();
        let truncated: String = lines[..lines.len() / 2]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        // Change one character in the middle of the base64 body.
        let mut damaged_lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let body_line = damaged_lines.len() / 2 + 1;
        let flipped: String = damaged_lines[body_line]
            .chars()
            .enumerate()
            .map(|(i, c)| match (i, c) {
                (10, 'A') => 'B',
                (10, _) => 'A',
                (_, c) => c,
            })
            .collect();
        damaged_lines[body_line] = flipped;
        let damaged: String = damaged_lines.iter().map(|l| format!("{l}\n")).collect();
        template
            .replace("{{SYNC_BASE64}}", &base64_lines.join("\n"))
            .replace("{{SYNC_QP}}", qp.trim_end())
            .replace("{{SYNC_QUOTED}}", quoted.trim_end())
            .replace("{{SYNC_TRUNCATED}}", truncated.trim_end())
            .replace("{{SYNC_DAMAGED}}", damaged.trim_end())
            .replace("{{SYNC}}", self.sync.trim_end())
            .replace("{{SERVER_ID}}", &self.server_id.to_string())
    }
}

fn outcome(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Drop(reason) => format!("drop:{}", reason.label()),
        Verdict::Answer { request, .. } => match request {
            Request::Sync { .. } => "sync".into(),
            Request::KeyClear { .. } => "key-clear".into(),
            Request::Receipt { .. } => "receipt".into(),
            Request::Problem(problem) => problem.label().into(),
        },
    }
}

fn expectations() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(golden_dir().join("expected.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let file = words.next().unwrap().to_owned();
            let outcome = words.next().unwrap().to_owned();
            (file, outcome)
        })
        .collect()
}

#[test]
fn every_golden_file_is_listed() {
    let listed: Vec<String> = expectations().into_iter().map(|(f, _)| f).collect();
    let mut files: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    files.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(files, sorted);
}

#[test]
fn golden_files_give_their_expected_outcome_in_lf_and_crlf() {
    let vars = Vars::new();
    let mut failures = Vec::new();
    for (file, expected) in expectations() {
        let template = std::fs::read_to_string(golden_dir().join(&file)).unwrap();
        let lf = vars.render(&template);
        let crlf = lf.replace('\n', "\r\n");
        for (form, raw) in [("LF", &lf), ("CRLF", &crlf)] {
            let verdict = classify(raw.as_bytes(), &envelope(false), LICENSING, LIMIT);
            let got = outcome(&verdict);
            if got != expected {
                failures.push(format!(
                    "{file} ({form}): expected {expected}, got {got}: {verdict:?}"
                ));
                continue;
            }
            match &verdict {
                Verdict::Answer {
                    request: Request::Sync { server_id, .. } | Request::KeyClear { server_id, .. },
                    sender,
                } => {
                    assert_eq!(*server_id, vars.server_id, "{file} ({form})");
                    assert!(sender.address.contains('@'), "{file} ({form})");
                    assert!(sender.message_id.is_some(), "{file} ({form})");
                }
                Verdict::Answer { sender, .. } => {
                    assert!(sender.address.contains('@'), "{file} ({form})")
                }
                Verdict::Drop(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The problem the classifier answers the golden mail `name` with.
fn problem_of(vars: &Vars, name: &str) -> Problem {
    let raw = vars.golden(name);
    match classify(raw.as_bytes(), &envelope(false), LICENSING, LIMIT) {
        Verdict::Answer {
            request: Request::Problem(problem),
            ..
        } => problem,
        verdict => panic!("{verdict:?}"),
    }
}

#[test]
fn names_and_details_survive_encodings() {
    let vars = Vars::new();
    let raw = vars.golden("outlook-base64-attachment.eml");
    let Verdict::Answer { sender, .. } =
        classify(raw.as_bytes(), &envelope(false), LICENSING, LIMIT)
    else {
        panic!("no answer");
    };
    assert_eq!(sender.name.as_deref(), Some("Björn Åberg"));
    assert_eq!(sender.subject, "Synkronisering för licensserver");

    match problem_of(&vars, "pdf-attachment.eml") {
        Problem::NoSyncData { attachments } => {
            assert_eq!(attachments, vec!["screenshot.pdf".to_owned()])
        }
        other => panic!("{other:?}"),
    }
    match problem_of(&vars, "damaged-attachment.eml") {
        Problem::Damaged { detail } => assert!(!detail.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_oversized_message_is_answered_too_large_but_automatic_mail_still_is_not() {
    let vars = Vars::new();
    let sync = vars.golden("thunderbird-attachment.eml");
    let verdict = classify(sync.as_bytes(), &envelope(true), LICENSING, LIMIT);
    assert_eq!(outcome(&verdict), "too-large");
    let bounce = vars.golden("bounce-null-sender.eml");
    let verdict = classify(bounce.as_bytes(), &envelope(true), LICENSING, LIMIT);
    assert_eq!(outcome(&verdict), "drop:bounce");
}

#[test]
fn the_envelope_sender_overrides_the_return_path_header() {
    let vars = Vars::new();
    let raw = vars.golden("thunderbird-attachment.eml");
    let mut bounce = envelope(false);
    bounce.return_path = Some(String::new());
    assert_eq!(
        outcome(&classify(raw.as_bytes(), &bounce, LICENSING, LIMIT)),
        "drop:bounce"
    );
}

/// No input makes the classifier panic: every golden file cut at many
/// points and with bytes changed.
#[test]
fn damaged_input_never_panics() {
    let vars = Vars::new();
    for (file, _) in expectations() {
        let raw = vars
            .render(&std::fs::read_to_string(golden_dir().join(&file)).unwrap())
            .into_bytes();
        for cut in (0..raw.len()).step_by(53) {
            let _ = classify(&raw[..cut], &envelope(false), LICENSING, LIMIT);
        }
        for at in (0..raw.len()).step_by(97) {
            let mut changed = raw.clone();
            changed[at] ^= 0xA5;
            let _ = classify(&changed, &envelope(false), LICENSING, LIMIT);
        }
    }
    let _ = classify(b"", &envelope(false), LICENSING, LIMIT);
    let _ = classify(&[0xff; 1000], &envelope(false), LICENSING, LIMIT);
}
