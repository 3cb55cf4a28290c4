//! `main-server admin …`: a client of the admin API, so the CLI and the web console
//! can never do something the API does not allow. Reads print tables, or JSON with
//! `--json`; refusals print the server's message and exit 1; an unreachable or
//! failing (5xx) server exits 75 (temporary); a bad `--operator` is a usage error (2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use shared_proto::{ApiError, ErrorCode};

use crate::auth::read_token_file;
use crate::cli::{
    AdminArgs, AdminCommand, CustomerCommand, KeyCommand, LicenseCommand, PageArgs, RequestCommand,
    ServerCommand,
};
use crate::data_dir::DataDir;
use shared_proto::admin_api::{
    AuditEntry, Customer, Decision, KeyClear, KeyClearRequest, License, LicenseChange, Listening,
    MailSync, MailSyncAnswer, NewCustomer, NewEmail, NewKeyClearRequest, NewLicense, NewServer,
    Server,
};

/// Largest answer accepted from the admin API (listings of many ids can be big).
const MAX_ANSWER: usize = 256 * 1024 * 1024;

/// Why a command failed, deciding the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with a refusal.
    #[error("{code}: {message}")]
    Refused { code: ErrorCode, message: String },
    /// The server could not be reached: worth retrying.
    #[error("cannot reach the admin API at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// The server failed (5xx: database down, overload, …): worth retrying too.
    #[error("the admin API failed ({status}): {message}")]
    ServerFailed { status: u16, message: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Where to send requests and with which token.
pub struct Client {
    base: String,
    token: SecretString,
    operator: String,
    http: awc::Client,
}

impl Client {
    /// The URL from `--admin-url` or `DATA_DIR/listening.json`, the token from
    /// `--token-file` or `DATA_DIR/admin-token`.
    pub fn from_args(args: &AdminArgs) -> anyhow::Result<Self> {
        let dir = args.data_dir.as_ref().map(DataDir::new);
        let base = match (&args.admin_url, &dir) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(dir)) => {
                let path = dir.listening();
                let text = std::fs::read(&path).with_context(|| {
                    format!(
                        "reading {} (is `main-server serve` running?)",
                        path.display()
                    )
                })?;
                let listening: Listening = serde_json::from_slice(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                format!("http://{}", listening.admin)
            }
            (None, None) => anyhow::bail!("give --data-dir or --admin-url"),
        };
        let token_path: PathBuf = match (&args.token_file, &dir) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => dir.admin_token(),
            (None, None) => anyhow::bail!("give --data-dir or --token-file"),
        };
        let token = read_token_file(&token_path)?;
        let http = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        Ok(Self {
            base,
            token,
            operator: args.operator.clone(),
            http,
        })
    }

    async fn send<B: Serialize>(
        &self,
        method: awc::http::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let request = self
            .http
            .request(method, &url)
            .insert_header((
                "Authorization",
                format!("Bearer {}", self.token.expose_secret()),
            ))
            .insert_header(("X-Operator", self.operator.as_str()));
        let unreachable = |e: &dyn std::fmt::Display| CliError::Unreachable {
            url: self.base.clone(),
            cause: e.to_string(),
        };
        let mut response = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        }
        .map_err(|e| unreachable(&e))?;
        let bytes = response
            .body()
            .limit(MAX_ANSWER)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes)
                .context("the admin API answered something that is not JSON")
                .map_err(CliError::Other);
        }
        let error = serde_json::from_slice::<ApiError>(&bytes).ok();
        if status.is_server_error() {
            // Not a refusal of this command: the server could not do it right now.
            let message = error.map_or_else(
                || String::from_utf8_lossy(&bytes).chars().take(500).collect(),
                |e| e.message,
            );
            return Err(CliError::ServerFailed {
                status: status.as_u16(),
                message,
            });
        }
        match error {
            Some(error) => Err(CliError::Refused {
                code: error.code,
                message: error.message,
            }),
            // Not the admin API's answer (a wrong URL, a proxy in the way).
            None => Err(CliError::Other(anyhow::anyhow!(
                "the admin API answered {status} without an error body: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(500)
                    .collect::<String>()
            ))),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let value = self.send::<()>(awc::http::Method::GET, path, None).await?;
        decode(value)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        decode(self.send(awc::http::Method::POST, path, Some(body)).await?)
    }
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T, CliError> {
    serde_json::from_value(value)
        .context("the admin API answered in an unexpected shape")
        .map_err(CliError::Other)
}

/// Runs one admin command and maps the outcome to the exit code.
pub fn run(args: AdminArgs) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async {
        let client = Client::from_args(&args)?;
        execute(&client, &args).await
    });
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(CliError::Unreachable { url, cause }) => {
            eprintln!("error: cannot reach the admin API at {url}: {cause}");
            ExitCode::from(shared_proto::exit::TEMPORARY)
        }
        Err(CliError::ServerFailed { status, message }) => {
            eprintln!("error: the admin API failed ({status}): {message}; try again later");
            ExitCode::from(shared_proto::exit::TEMPORARY)
        }
        Err(CliError::Refused { code, message }) => {
            eprintln!("refused ({code}): {message}");
            ExitCode::FAILURE
        }
        Err(CliError::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses a date option: `YYYY-MM-DD` (midnight UTC), RFC 3339, or `none`.
pub fn parse_date(text: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date
            .and_hms_opt(0, 0, 0)
            .context("midnight exists on every date")?;
        return Ok(Some(midnight.and_utc()));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|d| Some(d.with_timezone(&Utc)))
        .with_context(|| format!("{text:?} is not a date (YYYY-MM-DD, RFC 3339 or none)"))
}

fn json_out<T: Serialize>(value: &T) -> Result<String, CliError> {
    let mut text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    text.push('\n');
    Ok(text)
}

async fn execute(client: &Client, args: &AdminArgs) -> Result<String, CliError> {
    let json = args.json;
    match &args.command {
        AdminCommand::Customer(command) => match command {
            CustomerCommand::Add { name, emails } => {
                let customer: Customer = client
                    .post(
                        "/admin/v1/customers",
                        &NewCustomer {
                            name: name.clone(),
                            emails: emails.clone(),
                        },
                    )
                    .await?;
                show_customers(&[customer], json)
            }
            CustomerCommand::List => {
                let list: Vec<Customer> = client.get("/admin/v1/customers").await?;
                show_customers(&list, json)
            }
            CustomerCommand::AddEmail { customer_id, email } => {
                let customer: Customer = client
                    .post(
                        &format!("/admin/v1/customers/{customer_id}/emails"),
                        &NewEmail {
                            email: email.clone(),
                        },
                    )
                    .await?;
                show_customers(&[customer], json)
            }
        },
        AdminCommand::Server(command) => match command {
            ServerCommand::Add { customer_id } => {
                let server: Server = client
                    .post(
                        "/admin/v1/servers",
                        &NewServer {
                            customer_id: *customer_id,
                        },
                    )
                    .await?;
                show_server(&server, json)
            }
            ServerCommand::List { page } => {
                let list: Vec<Server> = client
                    .get(&format!("/admin/v1/servers?{}", page_query(page)))
                    .await?;
                show_server_page(&list, page, json)
            }
            ServerCommand::Due { within_days, page } => {
                let list: Vec<Server> = client
                    .get(&format!(
                        "/admin/v1/servers?due_within_days={within_days}&{}",
                        page_query(page)
                    ))
                    .await?;
                show_server_page(&list, page, json)
            }
            ServerCommand::Show { server_id } => {
                let server: Server = client
                    .get(&format!("/admin/v1/servers/{server_id}"))
                    .await?;
                show_server(&server, json)
            }
        },
        AdminCommand::License(command) => license(client, command, json).await,
        AdminCommand::Key(KeyCommand::Clear { server_id, reason }) => {
            let server: Server = client
                .post(
                    &format!("/admin/v1/servers/{server_id}/key-clear"),
                    &KeyClear {
                        reason: reason.clone(),
                    },
                )
                .await?;
            show_server(&server, json)
        }
        AdminCommand::Requests(command) => requests(client, command, json).await,
        AdminCommand::MailSync(mail) => {
            let sync_data = std::fs::read_to_string(&mail.input)
                .with_context(|| format!("reading {}", mail.input.display()))?;
            let answer: MailSyncAnswer = client
                .post(
                    "/admin/v1/mail/sync",
                    &MailSync {
                        sender: mail.sender.clone(),
                        sync_data,
                    },
                )
                .await?;
            std::fs::write(&mail.output, &answer.license_file)
                .with_context(|| format!("writing {}", mail.output.display()))?;
            if json {
                return json_out(&answer);
            }
            Ok(format!(
                "license file for {} written to {} (valid until {}, {} licenses)\n",
                answer.server_id,
                mail.output.display(),
                answer.valid_until.to_rfc3339(),
                answer.licenses.len()
            ))
        }
        AdminCommand::Audit { limit } => {
            let list: Vec<AuditEntry> = client
                .get(&format!("/admin/v1/audit?limit={limit}"))
                .await?;
            if json {
                return json_out(&list);
            }
            let rows = list
                .iter()
                .map(|e| {
                    vec![
                        e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        e.actor.clone(),
                        e.action.clone(),
                        e.server_id.map(|s| s.to_string()).unwrap_or_default(),
                        e.outcome.clone(),
                        e.detail.clone(),
                    ]
                })
                .collect::<Vec<_>>();
            Ok(table(
                &["AT (UTC)", "ACTOR", "ACTION", "SERVER", "OUTCOME", "DETAIL"],
                &rows,
            ))
        }
    }
}

async fn license(
    client: &Client,
    command: &LicenseCommand,
    json: bool,
) -> Result<String, CliError> {
    match command {
        LicenseCommand::Add {
            server_id,
            feature,
            seats,
            valid_from,
            valid_until,
        } => {
            let body = NewLicense {
                feature: feature.clone(),
                seats: *seats,
                valid_from: valid_from.as_deref().map(parse_date).transpose()?.flatten(),
                valid_until: valid_until
                    .as_deref()
                    .map(parse_date)
                    .transpose()?
                    .flatten(),
            };
            let license: License = client
                .post(&format!("/admin/v1/servers/{server_id}/licenses"), &body)
                .await?;
            show_licenses(&[license], json)
        }
        LicenseCommand::Change {
            server_id,
            license_id,
            seats,
            valid_from,
            valid_until,
        } => {
            let body = LicenseChange {
                seats: *seats,
                valid_from: valid_from.as_deref().map(parse_date).transpose()?,
                valid_until: valid_until.as_deref().map(parse_date).transpose()?,
            };
            let value = client
                .send(
                    awc::http::Method::PATCH,
                    &format!("/admin/v1/servers/{server_id}/licenses/{license_id}"),
                    Some(&body),
                )
                .await?;
            let license: License = decode(value)?;
            show_licenses(&[license], json)
        }
        LicenseCommand::Remove {
            server_id,
            license_id,
        } => {
            client
                .send::<()>(
                    awc::http::Method::DELETE,
                    &format!("/admin/v1/servers/{server_id}/licenses/{license_id}"),
                    None,
                )
                .await?;
            Ok(format!("license {license_id} removed from {server_id}\n"))
        }
    }
}

async fn requests(
    client: &Client,
    command: &RequestCommand,
    json: bool,
) -> Result<String, CliError> {
    let request: KeyClearRequest = match command {
        RequestCommand::List { status } => {
            let path = match status {
                Some(status) => format!("/admin/v1/key-clear-requests?status={}", status.as_str()),
                None => "/admin/v1/key-clear-requests".to_owned(),
            };
            let list: Vec<KeyClearRequest> = client.get(&path).await?;
            return show_requests(&list, json);
        }
        RequestCommand::Approve { request_id, reason } => {
            client
                .post(
                    &format!("/admin/v1/key-clear-requests/{request_id}/approve"),
                    &Decision {
                        reason: reason.clone(),
                    },
                )
                .await?
        }
        RequestCommand::Reject { request_id, reason } => {
            client
                .post(
                    &format!("/admin/v1/key-clear-requests/{request_id}/reject"),
                    &Decision {
                        reason: Some(reason.clone()),
                    },
                )
                .await?
        }
        RequestCommand::Create {
            server_id,
            sender,
            message_id,
            text,
        } => {
            client
                .post(
                    "/admin/v1/key-clear-requests",
                    &NewKeyClearRequest {
                        server_id: *server_id,
                        sender: sender.clone(),
                        message_id: message_id.clone(),
                        text: text.clone(),
                    },
                )
                .await?
        }
    };
    show_requests(&[request], json)
}

fn date(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |d| d.format("%Y-%m-%d %H:%M").to_string(),
    )
}

fn show_customers(list: &[Customer], json: bool) -> Result<String, CliError> {
    if json {
        return json_out(&list);
    }
    let rows = list
        .iter()
        .map(|c| vec![c.id.to_string(), c.name.clone(), c.emails.join(", ")])
        .collect::<Vec<_>>();
    Ok(table(&["CUSTOMER", "NAME", "CONTACTS"], &rows))
}

fn show_servers(list: &[Server], json: bool) -> Result<String, CliError> {
    if json {
        return json_out(&list);
    }
    let rows = list
        .iter()
        .map(|s| {
            vec![
                s.server_id.to_string(),
                s.customer_name.clone(),
                if s.bound_fingerprint.is_some() {
                    "bound"
                } else {
                    "free"
                }
                .to_owned(),
                date(s.last_sync_at),
                s.last_sync_channel
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                s.days_until_due
                    .map_or_else(|| "never synced".to_owned(), |d| d.to_string()),
            ]
        })
        .collect::<Vec<_>>();
    Ok(table(
        &[
            "SERVER",
            "CUSTOMER",
            "KEY",
            "LAST SYNC",
            "CHANNEL",
            "DAYS LEFT",
        ],
        &rows,
    ))
}

fn page_query(page: &PageArgs) -> String {
    match page.after {
        Some(after) => format!("limit={}&after={after}", page.limit),
        None => format!("limit={}", page.limit),
    }
}

/// A page of ids; a full page ends with how to ask for the next one (tables only: a
/// JSON reader pages with the last id itself).
fn show_server_page(list: &[Server], page: &PageArgs, json: bool) -> Result<String, CliError> {
    let mut text = show_servers(list, json)?;
    if !json && list.len() >= page.limit as usize {
        if let Some(last) = list.last() {
            text.push_str(&format!(
                "(more ids may follow: run again with --after {})\n",
                last.server_id
            ));
        }
    }
    Ok(text)
}

fn show_server(server: &Server, json: bool) -> Result<String, CliError> {
    if json {
        return json_out(server);
    }
    let due = match server.days_until_due {
        None => "never synced: issues no licenses until its first sync".to_owned(),
        Some(d) if d < 0 => format!("OVERDUE by {} days", -d),
        Some(d) => format!("{d} days left of the 366-day limit"),
    };
    let mut out = format!(
        "server id     {}\ncustomer      {} ({})\nrevision      {}\nsequence      {}\n\
         key pair      {}\nbound at      {}\nlast sync     {} via {}\nvalid until   {}\ndue           {due}\n\nlicenses:\n",
        server.server_id,
        server.customer_name,
        server.customer_id,
        server.revision,
        server.sequence,
        server.bound_fingerprint.as_deref().unwrap_or("none bound"),
        date(server.bound_at),
        date(server.last_sync_at),
        server
            .last_sync_channel
            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        date(server.valid_until),
    );
    out.push_str(&show_licenses(&server.licenses, false)?);
    Ok(out)
}

fn show_licenses(list: &[License], json: bool) -> Result<String, CliError> {
    if json {
        return json_out(&list);
    }
    let rows = list
        .iter()
        .map(|l| {
            vec![
                l.id.to_string(),
                l.feature.clone(),
                l.seats.to_string(),
                date(l.valid_from),
                l.valid_until
                    .map_or_else(|| "perpetual".to_owned(), |d| date(Some(d))),
            ]
        })
        .collect::<Vec<_>>();
    Ok(table(
        &["LICENSE", "FEATURE", "SEATS", "FROM", "UNTIL"],
        &rows,
    ))
}

fn show_requests(list: &[KeyClearRequest], json: bool) -> Result<String, CliError> {
    if json {
        return json_out(&list);
    }
    let rows = list
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.server_id.to_string(),
                r.sender.clone(),
                r.status.to_string(),
                date(Some(r.created_at)),
                r.operator.clone().unwrap_or_else(|| "-".into()),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect::<Vec<_>>();
    Ok(table(
        &[
            "REQUEST", "SERVER", "SENDER", "STATUS", "CREATED", "OPERATOR", "REASON",
        ],
        &rows,
    ))
}

/// Left-aligned columns separated by two spaces.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_three_forms() {
        let day = parse_date("2027-03-01").ok().flatten();
        assert_eq!(
            day.map(|d| d.to_rfc3339()).as_deref(),
            Some("2027-03-01T00:00:00+00:00")
        );
        assert!(parse_date("none").ok().is_some_and(|d| d.is_none()));
        assert!(parse_date("2027-03-01T12:00:00+02:00")
            .ok()
            .flatten()
            .is_some());
        assert!(parse_date("tomorrow").is_err());
    }

    #[test]
    fn tables_align_columns() {
        let text = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(text, "A     BB\nlong  x\n");
        assert!(table(&["A"], &[]).contains("(none)"));
    }
}
