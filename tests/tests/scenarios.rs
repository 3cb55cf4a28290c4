//! `solme-sim run` as CI runs it: the whole scenario library (`scenarios/` at the
//! repository's root) with its JUnit file, a deliberately wrong scenario, and files that
//! are refused before anything starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

fn library() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn run(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("run")
        .args(args)
        // The programs are built already: no `cargo build` from inside the test.
        .env_remove("CARGO")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_whole_library_passes_and_the_junit_file_says_so() {
    whole_library("sqlite", &[]);
}

/// The same library again with the main server on PostgreSQL, a fresh database per
/// scenario (`scripts/test-all` starts a server and sets SOLME_TEST_DATABASE_URL), and
/// two main-server replicas on it in every scenario.
#[test]
fn the_whole_library_passes_on_postgresql() {
    if std::env::var_os("SOLME_TEST_DATABASE_URL").is_none() {
        eprintln!("skipped: SOLME_TEST_DATABASE_URL is not set");
        return;
    }
    whole_library(
        "postgres",
        &["--database", "postgres", "--main-replicas", "2"],
    );
}

/// Where a run's results are kept for CI and people: `target/scenarios/LABEL/`
/// (`junit.xml`, `report.md`, `results.json`), documented in docs/scenarios.md and
/// named by `.ci/run`.
fn results_dir(label: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory holds tmp/");
    let dir = target.join("scenarios").join(label);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn whole_library(label: &str, extra: &[&str]) {
    let files = library();
    assert!(files.len() >= 15, "{files:?}");
    let out = results_dir(label);
    let junit = out.join("junit.xml");
    let report = out.join("report.md");
    let json = out.join("results.json");
    // A result of an earlier run never passes for this one.
    for file in [&junit, &report, &json] {
        let _ = std::fs::remove_file(file);
    }
    let mut args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let flags = [
        ("--junit", junit.as_path()),
        ("--report", report.as_path()),
        ("--json", json.as_path()),
        ("--jobs", Path::new("4")),
    ];
    for (flag, value) in &flags {
        args.push(Path::new(flag));
        args.push(value);
    }
    args.extend(extra.iter().map(Path::new));
    let started = std::time::Instant::now();
    let output = run(&args);
    let all = text(&output);
    println!(
        "the {label} run of {} scenarios took {:.1} s; JUnit XML in {}",
        files.len(),
        started.elapsed().as_secs_f64(),
        junit.display()
    );
    assert!(output.status.success(), "{all}");
    // On SQLite, the scenarios whose world needs two main-server replicas (one
    // PostgreSQL database) are skipped, saying why; on PostgreSQL every one runs.
    let needs_replicas = |file: &PathBuf| {
        std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .any(|line| line.replace(' ', "") == "main_replicas=2")
    };
    let skipped = if label == "sqlite" {
        files.iter().filter(|f| needs_replicas(f)).count()
    } else {
        0
    };
    assert!(
        all.contains(&format!(
            "{} of {} scenario(s) passed",
            files.len() - skipped,
            files.len()
        )),
        "{all}"
    );
    if skipped > 0 {
        assert!(
            all.contains(&format!("({skipped} skipped: see above why)")),
            "{all}"
        );
        assert!(all.contains("this run is on SQLite"), "{all}");
    }

    let report_xml = std::fs::read_to_string(&junit).unwrap();
    let parsed = Report::deserialize_from_str(&report_xml).unwrap();
    let cases: Vec<_> = parsed
        .test_suites
        .iter()
        .flat_map(|s| s.test_cases.iter())
        .collect();
    assert_eq!(cases.len(), files.len(), "{report_xml}");
    let skipped_cases = cases
        .iter()
        .filter(|case| matches!(case.status, TestCaseStatus::Skipped { .. }))
        .count();
    assert_eq!(skipped_cases, skipped, "{report_xml}");
    for case in &cases {
        assert!(
            matches!(
                case.status,
                TestCaseStatus::Success { .. } | TestCaseStatus::Skipped { .. }
            ),
            "{report_xml}"
        );
    }
    let markdown = std::fs::read_to_string(&report).unwrap();
    assert!(
        markdown.contains("| Line | Step | Simulated time"),
        "{markdown}"
    );
    assert!(markdown.contains("Refusals seen"), "{markdown}");
    assert!(markdown.contains("Mails exchanged"), "{markdown}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result.as_array().unwrap().len(), files.len());
}

#[test]
fn a_broken_expectation_fails_with_its_line_and_what_was_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.toml");
    std::fs::write(
        &file,
        r#"# Deliberately wrong: an unsynchronized server never grants a seat.
name = "Deliberately wrong"

[world]
local_servers = 1

[[step]]
checkout = { server = "local-server-1", feature = "solme-cad" }
expect = { code = "granted" }

[[step]]
sync = "local-server-1"
"#,
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let output = run(&[&file, Path::new("--junit"), &junit]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    let place = format!("{}:7:", file.display());
    assert!(all.contains(&place), "{all}");
    assert!(
        all.contains("expected code granted, saw NOT_SYNCHRONIZED"),
        "{all}"
    );
    // The step after the broken one did not run.
    assert!(!all.contains("local-server-1 sync"), "{all}");

    let report = Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let case = &report.test_suites[0].test_cases[0];
    match &case.status {
        TestCaseStatus::NonSuccess {
            kind,
            message,
            description,
            ..
        } => {
            assert_eq!(*kind, NonSuccessKind::Failure);
            let message = message.as_ref().unwrap().as_str();
            assert!(message.contains(&place), "{message}");
            let description = description.as_ref().unwrap().as_str();
            // What the local server answered last, as it said it.
            assert!(description.contains("last seen"), "{description}");
            assert!(
                description.contains("\"NOT_SYNCHRONIZED\""),
                "{description}"
            );
        }
        other => panic!("a broken expectation passed: {other:?}"),
    }
}

#[test]
fn a_file_that_cannot_run_is_refused_with_its_line_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown-key.toml",
            "name = \"x\"\n\n[[step]]\nsync = \"local-server-1\"\n\n[[step]]\ncheckout = { server = \"local-server-1\", feature = \"solme-cad\", colour = \"red\" }\n",
            7,
            "unknown field `colour`",
        ),
        (
            "never-saved.toml",
            "name = \"x\"\n\n[[step]]\nsync = \"local-server-1\"\n\n[[step]]\ncheckin = { server = \"local-server-1\", lease = \"${lease}\" }\n",
            6,
            "${lease} is used before any step saved it",
        ),
        (
            "no-such-server.toml",
            "name = \"x\"\n[world]\nlocal_servers = 1\n\n[[step]]\nsync = \"local-server-2\"\n",
            5,
            "there is no local server \"local-server-2\"",
        ),
        (
            "no-such-fault.toml",
            "name = \"x\"\n\n[[step]]\nfault = { fault = \"explode\", program = \"local-server-1\", on = true }\n",
            3,
            "there is no fault \"explode\"",
        ),
        (
            "two-actions.toml",
            "name = \"x\"\n\n[[step]]\nsync = \"local-server-1\"\nclock = { advance = \"1d\" }\n",
            3,
            "a step does one thing",
        ),
        (
            "write-outside.toml",
            "name = \"x\"\n\n[[step]]\nwrite = { program = \"local-server-1\", file = \"../escape.toml\", text = \"x\" }\n",
            3,
            "is not a plain file name",
        ),
        (
            "import-two-files.toml",
            "name = \"x\"\n\n[[step]]\nimport = { server = \"local-server-1\" }\n",
            3,
            "either reply_to",
        ),
        (
            "hold-and-within.toml",
            "name = \"x\"\n\n[[step]]\nstatus = \"local-server-1\"\nwithin = \"3s\"\nhold = \"3s\"\nexpect.status = { days_left = 1 }\n",
            3,
            "not both",
        ),
    ];
    let good = library().into_iter().next().unwrap();
    for (name, content, line, why) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        // A good file beside it: nothing runs, not even that one.
        let output = run(&[&good, &file]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {all}");
        assert!(
            all.contains(&format!("{}:{line}: ", file.display())),
            "{name}: {all}"
        );
        assert!(all.contains(why), "{name}: {all}");
        assert!(!all.contains("starting a simulation"), "{name}: {all}");
    }
}

#[test]
fn attached_scenarios_run_on_a_running_simulation_and_leave_it_running() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sim");
    let log = std::fs::File::create(dir.path().join("sim-output.txt")).unwrap();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--no-journeys", "--local-servers", "1"])
        .env_remove("CARGO")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    let up = test_harness::wait_until(
        "the simulation's control.json",
        std::time::Duration::from_secs(120),
        || data_dir.join("control.json").exists().then_some(()),
    );
    let scenario = library()
        .into_iter()
        .find(|f| f.ends_with("unsynchronized-server-refuses.toml"))
        .unwrap();
    let output = up.map(|()| run(&[Path::new("--attach"), &data_dir, &scenario]));
    let still_up = sim.try_wait().unwrap().is_none();
    let status = Command::new(env!("CARGO_BIN_EXE_solme-sim"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["exec", "local-server-1", "--", "status", "--json"])
        .output()
        .unwrap();
    test_harness::process::signal_group(sim.id(), test_harness::process::Signal::KILL);
    let _ = sim.wait();

    let output = output.unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("on the running simulation in"), "{all}");
    assert!(!all.contains("starting a simulation"), "{all}");
    assert!(still_up, "the attached simulation was stopped");
    // The scenario's sync happened in that simulation.
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["state"], "synchronized", "{status}");
}
