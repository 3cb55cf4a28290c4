//! `main-server admin audit …`: the newest entries, pages of the log by filter, every
//! matching entry as CSV or JSON (read page after page and written as they come, so
//! nothing is left out and memory stays small), the chain's walk and its signed head.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use shared_proto::admin_api::{AuditEntry, SignedAuditHead};
use shared_proto::audit_head::{HEAD_PREFIX, MAX_HEAD_LEN};
use shared_proto::audit_log::{
    csv_line, AuditChainStatus, AuditPage, AuditVerifyReport, CSV_HEADER, MAX_PAGE,
};

use super::client::{CliError, Client};
use super::tables::{json_out, show_list};
use crate::cli::{AuditArgs, AuditCommand, AuditFormat, AuditListArgs, Cli};

/// Largest saved-head file read (the head itself is one line of a few hundred bytes).
const MAX_HEAD_FILE: u64 = 64 * 1024;

pub(super) async fn run(client: &Client, args: &AuditArgs, json: bool) -> Result<String, CliError> {
    match &args.command {
        None => {
            let list: Vec<AuditEntry> = client
                .get(&format!("/admin/v1/audit?limit={}", args.limit))
                .await?;
            show_list(
                &list,
                json,
                &["AT (UTC)", "ACTOR", "ACTION", "SERVER", "OUTCOME", "DETAIL"],
                |e| {
                    vec![
                        e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        e.actor.clone(),
                        e.action.to_string(),
                        e.server_id.map(|s| s.to_string()).unwrap_or_default(),
                        e.outcome.to_string(),
                        e.detail.clone(),
                    ]
                },
            )
        }
        Some(AuditCommand::List(list)) => list_entries(client, list, json).await,
        Some(AuditCommand::Head) => {
            let head: SignedAuditHead = client.get("/admin/v1/audit/head").await?;
            if json {
                return json_out(&head);
            }
            Ok(show_audit_head(&head))
        }
        Some(AuditCommand::Verify { head, full }) => {
            let mut query = Query::default();
            if let Some(file) = head {
                query.push("head", &read_saved_head(file)?);
            }
            if *full {
                query.push("full", "true");
            }
            let report: AuditVerifyReport = client
                .get(&format!("/admin/v1/audit/verify{}", query.text()))
                .await?;
            let output = if json {
                json_out(&report)?
            } else {
                show_verification(&report)
            };
            if report.report.intact {
                Ok(output)
            } else {
                Err(CliError::CheckFailed(output))
            }
        }
    }
}

/// A query string built a value at a time, each value percent-encoded (all but the
/// unreserved characters of RFC 3986).
#[derive(Default)]
struct Query(String);

impl Query {
    fn push(&mut self, name: &str, value: &str) {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        self.0.push_str(name);
        self.0.push('=');
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                self.0.push(char::from(byte));
            } else {
                self.0.push_str(&format!("%{byte:02X}"));
            }
        }
    }

    fn push_some(&mut self, name: &str, value: Option<String>) {
        if let Some(value) = value {
            self.push(name, &value);
        }
    }

    fn text(&self) -> &str {
        &self.0
    }
}

/// The filter flags as the query of `GET /audit/entries`.
fn filter_query(args: &AuditListArgs) -> Query {
    let mut query = Query::default();
    query.push_some("server_id", args.server_id.map(|id| id.to_string()));
    query.push_some("customer_id", args.customer_id.map(|id| id.to_string()));
    query.push_some("actor", args.actor.clone());
    query.push_some("action", args.action.clone());
    query.push_some("outcome", args.outcome.clone());
    query.push_some("from", args.from.map(|at| at.to_rfc3339()));
    query.push_some("to", args.to.map(|at| at.to_rfc3339()));
    query.push_some("q", args.search.clone());
    query
}

async fn list_entries(
    client: &Client,
    args: &AuditListArgs,
    json: bool,
) -> Result<String, CliError> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from >= to {
            // A usage mistake, like a malformed date: exit 2 with the expected form.
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--from ({}) must be before --to ({}): the list holds entries from \
                         --from up to, not including, --to",
                        from.format("%Y-%m-%d %H:%M:%S UTC"),
                        to.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                )
                .exit();
        }
    }
    match args.format {
        AuditFormat::Table => {
            let mut query = filter_query(args);
            query.push("limit", &args.limit.to_string());
            query.push_some("before", args.before.clone());
            query.push_some("after", args.after.clone());
            let page: AuditPage = client
                .get(&format!("/admin/v1/audit/entries{}", query.text()))
                .await?;
            if json {
                return json_out(&page);
            }
            Ok(show_page(&page))
        }
        AuditFormat::Csv | AuditFormat::Json => export(client, args).await,
    }
}

fn show_page(page: &AuditPage) -> String {
    let mut out = show_list(
        &page.entries,
        false,
        &[
            "ENTRY", "AT (UTC)", "ACTOR", "ACTION", "SERVER", "OUTCOME", "DETAIL",
        ],
        |e| {
            vec![
                e.entry.to_string(),
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                e.actor.clone(),
                e.action.to_string(),
                e.server_id.map(|s| s.to_string()).unwrap_or_default(),
                e.outcome.to_string(),
                e.detail.clone(),
            ]
        },
    )
    .unwrap_or_default();
    if page.entries.is_empty() {
        out = "No entry matches.\n".to_owned();
    }
    if let Some(search) = &page.search {
        if !search.complete {
            out.push_str(&format!(
                "The search looked at {} entries and stopped at {}; older entries were not \
                 searched yet.\n",
                group(search.limit),
                search
                    .stopped_at
                    .map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(older) = &page.older {
        out.push_str(&format!("Older entries: --before {older}\n"));
    }
    if let Some(newer) = &page.newer {
        out.push_str(&format!("Newer entries: --after {newer}\n"));
    }
    out.push_str(&chain_line(&page.chain));
    out
}

/// A count with thousands separated by commas.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The chain's verification status in a sentence.
fn chain_line(chain: &AuditChainStatus) -> String {
    if let Some(broken) = &chain.broken {
        return format!(
            "Hash chain: BROKEN at position {} (found {}): {}\n",
            broken.chain_seq,
            broken.found_at.format("%Y-%m-%d %H:%M:%S UTC"),
            broken.message
        );
    }
    match chain.verified_at {
        Some(at) => format!(
            "Hash chain: verified intact up to position {} at {}; {} sealed in all.\n",
            chain.verified_seq,
            at.format("%Y-%m-%d %H:%M:%S UTC"),
            chain.head_seq
        ),
        None => format!(
            "Hash chain: not verified yet ({} entries sealed); run `main-server admin audit \
             verify`.\n",
            chain.head_seq
        ),
    }
}

/// Where an export goes: standard output, or a file written beside its final name
/// and renamed into place only once complete (a failed export leaves no file that
/// looks whole).
enum Sink {
    Stdout(std::io::Stdout),
    File {
        file: std::io::BufWriter<std::fs::File>,
        partial: PathBuf,
        path: PathBuf,
    },
}

impl Sink {
    fn open(output: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = output else {
            return Ok(Self::Stdout(std::io::stdout()));
        };
        let mut name = path
            .file_name()
            .with_context(|| format!("{} is not a file name", path.display()))?
            .to_owned();
        name.push(".partial");
        let partial = path.with_file_name(name);
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(Self::File {
            file: std::io::BufWriter::new(file),
            partial,
            path: path.to_path_buf(),
        })
    }

    fn write(&mut self, text: &str) -> Result<(), CliError> {
        match self {
            Self::Stdout(out) => out
                .lock()
                .write_all(text.as_bytes())
                .context("writing to standard output")?,
            Self::File { file, partial, .. } => file
                .write_all(text.as_bytes())
                .with_context(|| format!("writing {}", partial.display()))?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), CliError> {
        match self {
            Self::Stdout(out) => out.lock().flush().context("writing to standard output")?,
            Self::File {
                file,
                partial,
                path,
            } => {
                let file = file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("writing {}", partial.display()))?;
                file.sync_all()
                    .with_context(|| format!("writing {}", partial.display()))?;
                std::fs::rename(&partial, &path).with_context(|| {
                    format!("renaming {} to {}", partial.display(), path.display())
                })?;
            }
        }
        Ok(())
    }

    fn abandon(self) {
        if let Self::File { partial, .. } = self {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// Every matching entry, newest first, page after page of the most entries a page
/// holds, until no older page is left (a search continues past each window).
async fn export(client: &Client, args: &AuditListArgs) -> Result<String, CliError> {
    let mut sink = Sink::open(args.output.as_deref())?;
    match export_into(client, args, &mut sink).await {
        Ok(written) => {
            sink.finish()?;
            Ok(match &args.output {
                Some(path) => format!("{written} entries written to {}\n", path.display()),
                None => String::new(),
            })
        }
        Err(error) => {
            sink.abandon();
            Err(error)
        }
    }
}

async fn export_into(
    client: &Client,
    args: &AuditListArgs,
    sink: &mut Sink,
) -> Result<u64, CliError> {
    let json = args.format == AuditFormat::Json;
    sink.write(if json { "[" } else { CSV_HEADER })?;
    let mut before = args.before.clone();
    let mut written: u64 = 0;
    loop {
        let mut query = filter_query(args);
        query.push("limit", &MAX_PAGE.to_string());
        query.push_some("before", before.clone());
        let page: AuditPage = client
            .get(&format!("/admin/v1/audit/entries{}", query.text()))
            .await?;
        let mut text = String::new();
        for record in &page.entries {
            if json {
                text.push_str(if written == 0 { "\n" } else { ",\n" });
                text.push_str(&serde_json::to_string(record).context("encoding JSON")?);
            } else {
                csv_line(&mut text, record);
            }
            written += 1;
        }
        sink.write(&text)?;
        match page.older {
            Some(older) => before = Some(older),
            None => break,
        }
    }
    if json {
        sink.write("\n]\n")?;
    }
    Ok(written)
}

/// The signed head line of a saved `audit head` output (or of its `--json` form).
fn read_saved_head(file: &Path) -> Result<String, CliError> {
    let len = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if len > MAX_HEAD_FILE {
        return Err(anyhow::anyhow!(
            "{} is larger than a saved audit head can be ({MAX_HEAD_FILE} bytes)",
            file.display()
        )
        .into());
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // The token is base64url after its prefix; anything else ends it (a JSON quote).
    let token = text
        .find(HEAD_PREFIX)
        .map(|start| {
            text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect::<String>()
        })
        .filter(|token| token.len() > HEAD_PREFIX.len() && token.len() <= MAX_HEAD_LEN)
        .with_context(|| {
            format!(
                "{} holds no saved audit head (the line that starts with {HEAD_PREFIX})",
                file.display()
            )
        })?;
    Ok(token)
}

fn show_audit_head(signed: &SignedAuditHead) -> String {
    let head = &signed.head;
    let position = match head.at {
        Some(at) => format!(
            "Audit chain head: position {}, an entry written {}\nHash: {}\n",
            head.chain_seq,
            at.format("%Y-%m-%d %H:%M:%S UTC"),
            head.entry_hash
        ),
        None => "Audit chain head: the chain is still empty\n".to_owned(),
    };
    format!(
        "{position}Signed with Solme's key at {}. Keep this text outside the database; \
         `main-server admin audit verify --head FILE` checks it later:\n{}\n",
        head.signed_at.format("%Y-%m-%d %H:%M:%S UTC"),
        signed.signed
    )
}

fn show_verification(answer: &AuditVerifyReport) -> String {
    let report = &answer.report;
    let walked = if answer.incremental {
        format!(
            "{} new entries checked after position {}, where the last verification ended \
             (`--full` walks the whole chain)",
            report.checked, answer.started_after
        )
    } else {
        format!("{} entries checked", report.checked)
    };
    let mut out = match &report.problem {
        None => format!(
            "The audit chain is intact: {walked}, the newest at position {} (hash {}).\n",
            report.head_seq, report.head_hash
        ),
        Some(problem) => format!(
            "The audit chain is BROKEN ({}): {}.\n{} entries before it checked out{}.\n",
            problem.kind,
            problem.message,
            report.checked,
            if answer.incremental {
                format!(" (after position {})", answer.started_after)
            } else {
                String::new()
            }
        ),
    };
    if let (Some(saved), None) = (&report.saved_head, &report.problem) {
        out.push_str(&format!(
            "The saved head (position {}, signed {}) is still in the chain with the same hash.\n",
            saved.chain_seq,
            saved.signed_at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    if report.unsealed > 0 {
        out.push_str(&format!(
            "{} newer entries are not sealed yet (the server seals them every second).\n",
            report.unsealed
        ));
    }
    out
}
