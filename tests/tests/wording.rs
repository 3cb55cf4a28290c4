//! Every message a user can get that is cheap to collect, read for wording that is not
//! written for people: the `--help` of every command of the three programs, a set of
//! command-line refusals, the mails' snapshots and the pages' texts. It fails on Rust's
//! Debug forms, operating-system error codes, library internals and API field names in
//! prose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAMS: [&str; 3] = ["main-server", "local-server", "mail-gateway"];

/// The workspace root (this crate is `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What a text must not contain, whatever its medium, with why.
const NEVER: [(&str, &str); 15] = [
    ("Some(", "a Debug form"),
    ("None)", "a Debug form"),
    ("Ok(", "a Debug form"),
    ("Err(", "a Debug form"),
    ("\\\"", "an escaped quote"),
    ("os error", "an operating-system error code"),
    ("statem_", "an OpenSSL internal"),
    ("SSL routines", "an OpenSSL internal"),
    ("chrono", "a library's name"),
    ("ParseError", "a library's type"),
    ("serde", "a library's name"),
    ("invalid type:", "the JSON library's words"),
    ("invalid character: found", "the uuid library's words"),
    ("input is out of range", "the date library's words"),
    ("premature end of input", "the date library's words"),
];

/// Field names of the APIs that prose must not use (code marks may).
const FIELD_NAMES: [&str; 4] = ["valid_until", "server_id", "valid_from", "max_borrow_hours"];

/// The findings in `text`, where it came from `source`.
fn findings(source: &str, text: &str, prose: bool) -> Vec<String> {
    let mut found = Vec::new();
    for (needle, why) in NEVER {
        if text.contains(needle) {
            found.push(format!("{source}: {why} ({needle:?})"));
        }
    }
    // A C source file and line, e.g. `statem_clnt.c:1889`.
    if text
        .split_whitespace()
        .any(|w| w.contains(".c:") && w.chars().any(|c| c.is_ascii_digit()))
    {
        found.push(format!("{source}: a C source file and line"));
    }
    if prose {
        for line in text.lines() {
            // Outside code marks: drop `…` spans and the option names of help texts.
            let outside: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
            for field in FIELD_NAMES {
                if outside
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|w| w == field)
                {
                    found.push(format!("{source}: the field name {field} in {line:?}"));
                }
            }
        }
    }
    found
}

/// The subcommands a `--help` lists under "Commands:".
fn subcommands(help: &str) -> Vec<String> {
    help.split("Commands:")
        .nth(1)
        .map(|section| {
            section
                .lines()
                .skip(1)
                .take_while(|l| l.starts_with("  "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|name| *name != "help")
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Every `--help` of `program`'s command tree, with the command line that printed it.
fn helps(program: &Path, prefix: &[String], out: &mut Vec<(String, String)>) {
    let run = Command::new(program)
        .args(prefix)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&run.stdout).into_owned();
    let name = format!(
        "{} {} --help",
        program.file_name().unwrap().to_string_lossy(),
        prefix.join(" ")
    );
    assert!(run.status.success(), "{name} failed");
    for sub in subcommands(&help) {
        let mut next = prefix.to_vec();
        next.push(sub);
        helps(program, &next, out);
    }
    out.push((name, help));
}

#[test]
fn every_help_text_is_written_for_people() {
    let mut texts = Vec::new();
    for program in PROGRAMS {
        let Ok(bin) = test_harness::binary(program) else {
            eprintln!("note: {program} is not built; build the workspace first");
            return;
        };
        helps(&bin, &[], &mut texts);
    }
    assert!(texts.len() > 30, "only {} help texts found", texts.len());
    let found: Vec<String> = texts
        .iter()
        .flat_map(|(source, text)| findings(source, text, false))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn command_line_refusals_are_written_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let id = "6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10";
    // (program, arguments, expected exit code).
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        (
            "local-server",
            vec!["sync", "--data-dir", data, "--proxy", "not a url"],
            2,
        ),
        (
            "local-server",
            vec!["report", "--data-dir", data, "--from", "2027-02-30"],
            2,
        ),
        (
            "local-server",
            vec![
                "report",
                "--data-dir",
                data,
                "--from",
                "2027-02-01",
                "--to",
                "2027-01-01",
            ],
            2,
        ),
        ("local-server", vec!["status", "--data-dir", data], 1),
        (
            "local-server",
            vec!["import-license-file", "--data-dir", data, "/no/such/file"],
            1,
        ),
        ("local-server", vec!["init", "--id", "not-an-id"], 2),
        ("local-server", vec!["serve", "--no-such-flag"], 2),
        (
            "main-server",
            vec!["admin", "--data-dir", data, "server", "show", "not-a-uuid"],
            2,
        ),
        (
            "main-server",
            vec![
                "admin",
                "--data-dir",
                data,
                "license",
                "add",
                id,
                "--feature",
                "cad",
                "--seats",
                "1",
                "--valid-until",
                "2027-02-30",
            ],
            2,
        ),
        (
            "main-server",
            vec!["admin", "--data-dir", data, "server", "show", id],
            1,
        ),
        ("mail-gateway", vec!["--no-such-flag"], 2),
    ];
    let mut found = Vec::new();
    for (program, args, code) in &cases {
        let Ok(bin) = test_harness::binary(program) else {
            eprintln!("note: {program} is not built; build the workspace first");
            return;
        };
        let out = Command::new(bin)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("MAIN_SERVER_ADMIN_URL")
            .env_remove("LOCAL_SERVER_PROXY")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let source = format!("{program} {}", args.join(" "));
        if out.status.code() != Some(*code) {
            found.push(format!(
                "{source}: exit {:?}, not {code}: {err}",
                out.status.code()
            ));
        }
        found.extend(findings(&source, &err, true));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn mails_are_written_for_people() {
    let dir = root().join("mail-gateway/tests/it/snapshots");
    let mut found = Vec::new();
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snap") {
            let text = std::fs::read_to_string(&path).unwrap();
            // The body after insta's header.
            let body = text.splitn(3, "---\n").nth(2).unwrap_or(&text);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            found.extend(findings(&name, body, true));
            for flag in ["--authserv-id", "authserv"] {
                if body.contains(flag) {
                    found.push(format!(
                        "{name}: the gateway's setting {flag} in a customer's mail"
                    ));
                }
            }
            read += 1;
        }
    }
    assert!(read > 10, "only {read} mail snapshots");
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The quoted strings of a page script: what it can show to people.
fn script_strings(js: &str) -> Vec<String> {
    let mut strings = Vec::new();
    for quote in ['"', '`'] {
        let mut parts = js.split(quote);
        parts.next();
        while let Some(inside) = parts.next() {
            // Only text with a space in it is a sentence; keys and ids have none.
            if inside.contains(' ') && !inside.contains('\n') {
                strings.push(inside.to_owned());
            }
            parts.next();
        }
    }
    strings
}

#[test]
fn page_texts_are_written_for_people() {
    let mut found = Vec::new();
    for (crate_dir, files) in [
        ("local-server/assets", vec!["manager.html", "app.js"]),
        ("main-server/assets", vec![]),
    ] {
        let dir = root().join(crate_dir);
        let mut files: Vec<String> = files.into_iter().map(str::to_owned).collect();
        if files.is_empty() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".html") || name.ends_with(".js") {
                    files.push(name);
                }
            }
        }
        for name in files {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            let source = format!("{crate_dir}/{name}");
            if name.ends_with(".js") {
                for s in script_strings(&text) {
                    found.extend(findings(&source, &s, true));
                }
            } else {
                found.extend(findings(&source, &text, false));
            }
            // A page with a Diagnose button names no command to run instead.
            if crate_dir.starts_with("local-server") && text.contains("local-server diagnose") {
                found.push(format!(
                    "{source}: names `local-server diagnose` on the page"
                ));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The gateway's status page, fetched from a running gateway (no mail yet): the page an
/// operator reads, and its style sheet's neighbour texts.
#[test]
fn the_gateway_status_page_is_written_for_people() {
    let Ok(bin) = test_harness::binary("mail-gateway") else {
        eprintln!("note: mail-gateway is not built; build the workspace first");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gateway");
    std::fs::create_dir_all(&data).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "not-a-real-token\n").unwrap();
    let mut command = Command::new(bin);
    command.args([
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--address",
        "licensing@solme.example",
        "--main-server",
        "http://127.0.0.1:9",
        "--token-file",
        token.to_str().unwrap(),
        "--smtp-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--outbox",
        dir.path().join("outbox").to_str().unwrap(),
    ]);
    let (_gateway, listening) =
        test_harness::process::spawn_listening("mail-gateway", command, &data).unwrap();
    let addr = listening["http"].as_str().unwrap();
    let page = ureq::get(&format!("http://{addr}/"))
        .set("Accept", "text/html")
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("Recent mails"), "{page}");
    let found = findings("the gateway's status page", &page, false);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Where the local or the main server tells the customer to mail Solme, it names the
/// whole address (from one setting), never a bare "licensing@".
#[test]
fn the_licensing_address_is_named_whole() {
    let mut found = Vec::new();
    for file in [
        "local-server/assets/app.js",
        "local-server/assets/manager.html",
        "local-server/src/cli.rs",
        "local-server/src/diagnose.rs",
        "local-server/src/receipt.rs",
        "local-server/src/sync.rs",
        "main-server/src/store/copies.rs",
        "main-server/src/store/sync.rs",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") || code.contains(".replace(\"licensing@\"") {
                continue;
            }
            let bare = line.match_indices("licensing@").any(|(at, _)| {
                !line[at + "licensing@".len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
            });
            // The remedies of diagnose.rs are completed by Cause::remedy.
            if bare && !file.ends_with("diagnose.rs") {
                found.push(format!("{file}: a bare licensing@ in {line:?}"));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
