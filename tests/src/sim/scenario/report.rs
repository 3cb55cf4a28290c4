//! The results as CI servers and people read them: JUnit XML (one test case per
//! scenario, its failure listing each broken expectation with its line), JSON, and a
//! Markdown report with each scenario's timeline, mails and refusals.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::runner::ScenarioResult;

/// Each broken expectation as `FILE:LINE: sentence`, with what the step saw last.
fn failures(result: &ScenarioResult) -> Vec<String> {
    let mut lines: Vec<String> = result.error.iter().cloned().collect();
    for step in result.steps.iter().filter(|s| !s.passed) {
        for failure in &step.failures {
            lines.push(format!(
                "{}:{}: {} — {failure}",
                result.file.display(),
                step.line,
                step.what
            ));
        }
    }
    lines
}

pub fn junit(results: &[ScenarioResult]) -> Result<String> {
    let mut report = Report::new("solme-scenarios");
    let mut suite = TestSuite::new("scenarios");
    for result in results {
        let status = if let Some(why) = &result.skipped {
            let mut status = TestCaseStatus::skipped();
            status.set_message(why.clone());
            status
        } else if result.passed {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(if result.error.is_some() {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            });
            let lines = failures(result);
            status.set_message(lines.first().cloned().unwrap_or_default());
            let last_seen = result
                .steps
                .iter()
                .rev()
                .find(|s| !s.passed)
                .map(|s| format!("\n\nlast seen:\n{:#}", s.observed))
                .unwrap_or_default();
            status.set_description(format!("{}{last_seen}", lines.join("\n")));
            status
        };
        let mut case = TestCase::new(result.name.clone(), status);
        case.set_classname(result.file.display().to_string());
        case.set_time(Duration::from_secs_f64(result.seconds.max(0.0)));
        case.set_assertions(result.steps.len());
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    report.to_string().context("writing the JUnit XML")
}

pub fn json(results: &[ScenarioResult]) -> Result<String> {
    serde_json::to_string_pretty(results).context("writing the JSON result")
}

pub fn markdown(results: &[ScenarioResult]) -> Result<String> {
    let mut out = String::new();
    let passed = results
        .iter()
        .filter(|r| r.passed && r.skipped.is_none())
        .count();
    writeln!(out, "# Scenario report\n")?;
    writeln!(out, "{passed} of {} scenario(s) passed.\n", results.len())?;
    writeln!(out, "| Scenario | Rule | Verdict | Seconds |")?;
    writeln!(out, "| --- | --- | --- | --- |")?;
    for r in results {
        writeln!(
            out,
            "| {} | {} | {} | {:.1} |",
            r.name,
            r.rule.as_deref().unwrap_or(""),
            match (&r.skipped, r.passed) {
                (Some(_), _) => "skipped",
                (None, true) => "passed",
                (None, false) => "**FAILED**",
            },
            r.seconds
        )?;
    }
    for r in results {
        writeln!(out, "\n## {}\n", r.name)?;
        writeln!(out, "File `{}`.", r.file.display())?;
        if let Some(rule) = &r.rule {
            writeln!(out, "Rule: {rule}")?;
        }
        if let Some(error) = &r.error {
            writeln!(out, "\nThe scenario could not run: {error}")?;
        }
        if let Some(why) = &r.skipped {
            writeln!(out, "\nSkipped: {why}.")?;
            continue;
        }
        writeln!(
            out,
            "\n| Line | Step | Simulated time | Real time | Verdict |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- |")?;
        for s in &r.steps {
            let what = match &s.note {
                Some(note) => format!("{} — {note}", s.what),
                None => s.what.clone(),
            };
            writeln!(
                out,
                "| {} | {} | {} | +{:.1} s | {} |",
                s.line,
                what.replace('|', "\\|"),
                s.simulated.as_deref().unwrap_or("?"),
                s.real_seconds,
                if s.passed { "ok" } else { "**FAILED**" }
            )?;
        }
        for line in failures(r) {
            writeln!(out, "\n- {line}")?;
        }
        if !r.mails.is_empty() {
            writeln!(out, "\nMails exchanged:\n")?;
            for m in &r.mails {
                let who = if m["direction"] == "to Solme" {
                    format!("{} → {}", text(&m["from"]), text(&m["to"]))
                } else {
                    format!("Solme → {}", text(&m["to"]))
                };
                writeln!(
                    out,
                    "- {who}: \"{}\"{}{}",
                    text(&m["subject"]),
                    m["date"]
                        .as_str()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default(),
                    if m["license_file"] == true {
                        ", license file attached"
                    } else {
                        ""
                    }
                )?;
            }
        }
        if !r.refusals.is_empty() {
            writeln!(out, "\nRefusals seen:\n")?;
            for f in &r.refusals {
                writeln!(
                    out,
                    "- line {}: `{}` — {}",
                    f["line"],
                    text(&f["code"]),
                    text(&f["message"])
                )?;
            }
        }
        if let Some(dir) = &r.data_dir {
            writeln!(
                out,
                "\nThe simulation's files are kept in `{}`.",
                dir.display()
            )?;
        }
    }
    Ok(out)
}

fn text(value: &serde_json::Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}
