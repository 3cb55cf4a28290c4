//! Each `main-server admin` subcommand: the request it sends and what it prints.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::{
    AdminArgs, AdminCommand, AuditArgs, AuditCommand, CustomerCommand, KeyCommand, LicenseCommand,
    OperatorCommand, PageArgs, ReminderCommand, RequestCommand, ServerCommand, Switch,
};
use shared_proto::admin_api::AuditVerification;
use shared_proto::admin_api::{
    AuditEntry, Customer, CustomerRename, Decision, IssuedToken, KeyClear, KeyClearRequest,
    License, LicenseChange, MailSync, NewCustomer, NewEmail, NewKeyClearRequest, NewLicense,
    NewOperator, NewServer, OperatorAccount, Reminder, RemindersSwitch, SenderAuth, Server,
    ServerMove, ServerRetire, SignedAuditHead, SyncAnswer, SyncUsage,
};
use shared_proto::audit_head::{HEAD_PREFIX, MAX_HEAD_LEN};
use shared_proto::ErrorCode;

use super::client::{decode, CliError, Client};
use super::tables::{
    json_out, show_customers, show_licenses, show_list, show_one, show_reminders, show_request,
    show_requests, show_server, show_server_page, show_usage,
};

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
        // Not the date library's words: they name its internals, not the expected form.
        .map_err(|_| anyhow::anyhow!("{text:?} is not a date (YYYY-MM-DD, RFC 3339 or none)"))
}

/// A refusal for want of a confirmation, saying how to give it on the command line.
fn confirm_with_flag(error: CliError) -> CliError {
    confirm_with("--confirm-duplicate-name")(error)
}

/// Like [`confirm_with_flag`], naming the given flag.
fn confirm_with(flag: &'static str) -> impl Fn(CliError) -> CliError {
    move |error| match error {
        CliError::Refused {
            code: code @ ErrorCode::ConfirmationRequired,
            message,
        } => CliError::Refused {
            code,
            message: format!("{message} (run it again with {flag})"),
        },
        other => other,
    }
}

/// `text` as one path segment: every byte but letters, digits and `-._~@` escaped.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) async fn execute(client: &Client, args: &AdminArgs) -> Result<String, CliError> {
    let json = args.json;
    match &args.command {
        AdminCommand::Customer(command) => match command {
            CustomerCommand::Add {
                name,
                emails,
                confirm_duplicate_name,
            } => {
                let customer: Customer = client
                    .post(
                        "/admin/v1/customers",
                        &NewCustomer {
                            name: name.clone(),
                            emails: emails.clone(),
                            confirm_duplicate_name: *confirm_duplicate_name,
                        },
                    )
                    .await
                    .map_err(confirm_with_flag)?;
                show_one(&customer, json, show_customers)
            }
            CustomerCommand::Rename {
                customer_id,
                name,
                confirm_duplicate_name,
            } => {
                let value = client
                    .send(
                        awc::http::Method::PATCH,
                        &format!("/admin/v1/customers/{customer_id}"),
                        Some(&CustomerRename {
                            name: name.clone(),
                            confirm_duplicate_name: *confirm_duplicate_name,
                        }),
                    )
                    .await
                    .map_err(confirm_with_flag)?;
                show_one(&decode::<Customer>(value)?, json, show_customers)
            }
            CustomerCommand::RemoveEmail { customer_id, email } => {
                let value = client
                    .send::<()>(
                        awc::http::Method::DELETE,
                        &format!(
                            "/admin/v1/customers/{customer_id}/emails/{}",
                            path_segment(email)
                        ),
                        None,
                    )
                    .await?;
                show_one(&decode::<Customer>(value)?, json, show_customers)
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
                show_one(&customer, json, show_customers)
            }
            CustomerCommand::Reminders {
                customer_id,
                switch,
            } => {
                let value = client
                    .send(
                        awc::http::Method::PUT,
                        &format!("/admin/v1/customers/{customer_id}/reminders"),
                        Some(&RemindersSwitch {
                            enabled: *switch == Switch::On,
                        }),
                    )
                    .await?;
                let customer: Customer = decode(value)?;
                if json {
                    return json_out(&customer);
                }
                Ok(format!(
                    "Reminder mails for {} ({}) are {}.\n",
                    customer.name,
                    customer.id,
                    if customer.reminders_enabled {
                        "on"
                    } else {
                        "off"
                    }
                ))
            }
        },
        AdminCommand::Reminders(ReminderCommand::List { customer_id }) => {
            let list: Vec<Reminder> = client
                .get(&format!("/admin/v1/customers/{customer_id}/reminders"))
                .await?;
            show_reminders(&list, json)
        }
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
            ServerCommand::Usage { server_id, syncs } => {
                let list: Vec<SyncUsage> = client
                    .get(&format!(
                        "/admin/v1/servers/{server_id}/usage?limit={syncs}"
                    ))
                    .await?;
                show_usage(*server_id, &list, json)
            }
            ServerCommand::Retire {
                server_id,
                reason,
                force,
            } => {
                let server: Server = client
                    .post(
                        &format!("/admin/v1/servers/{server_id}/retire"),
                        &ServerRetire {
                            reason: reason.clone(),
                            force: *force,
                        },
                    )
                    .await
                    .map_err(confirm_with("--force"))?;
                show_server(&server, json)
            }
            ServerCommand::Move {
                server_id,
                customer_id,
            } => {
                let server: Server = client
                    .post(
                        &format!("/admin/v1/servers/{server_id}/move"),
                        &ServerMove {
                            customer_id: *customer_id,
                        },
                    )
                    .await?;
                show_server(&server, json)
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
            let answer: SyncAnswer = client
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
        AdminCommand::Operator(command) => operator(client, command, json).await,
        AdminCommand::Audit(audit_args) => audit(client, audit_args, json).await,
    }
}

/// Largest saved-head file read (the head itself is one line of a few hundred bytes).
const MAX_HEAD_FILE: u64 = 64 * 1024;

pub(super) async fn audit(
    client: &Client,
    args: &AuditArgs,
    json: bool,
) -> Result<String, CliError> {
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
        Some(AuditCommand::Head) => {
            let head: SignedAuditHead = client.get("/admin/v1/audit/head").await?;
            if json {
                return json_out(&head);
            }
            Ok(show_audit_head(&head))
        }
        Some(AuditCommand::Verify { head }) => {
            let path = match head {
                Some(file) => format!("/admin/v1/audit/verify?head={}", read_saved_head(file)?),
                None => "/admin/v1/audit/verify".to_owned(),
            };
            let report: AuditVerification = client.get(&path).await?;
            let output = if json {
                json_out(&report)?
            } else {
                show_verification(&report)
            };
            if report.intact {
                Ok(output)
            } else {
                Err(CliError::CheckFailed(output))
            }
        }
    }
}

/// The signed head line of a saved `audit head` output (or of its `--json` form).
fn read_saved_head(file: &std::path::Path) -> Result<String, CliError> {
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

fn show_verification(report: &AuditVerification) -> String {
    let mut out = match &report.problem {
        None => format!(
            "The audit chain is intact: {} entries checked, the newest at position {} (hash {}).\n",
            report.checked, report.head_seq, report.head_hash
        ),
        Some(problem) => format!(
            "The audit chain is BROKEN ({}): {}.\n{} entries before it checked out.\n",
            problem.kind, problem.message, report.checked
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

pub(super) async fn license(
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
            max_borrow_hours,
            confirm_ended,
        } => {
            let body = NewLicense {
                feature: feature.clone(),
                seats: *seats,
                max_borrow_hours: *max_borrow_hours,
                confirm_ended: *confirm_ended,
                valid_from: valid_from.as_deref().map(parse_date).transpose()?.flatten(),
                valid_until: valid_until
                    .as_deref()
                    .map(parse_date)
                    .transpose()?
                    .flatten(),
            };
            let license: License = client
                .post(&format!("/admin/v1/servers/{server_id}/licenses"), &body)
                .await
                .map_err(confirm_with("--confirm-ended"))?;
            show_one(&license, json, show_licenses)
        }
        LicenseCommand::Change {
            server_id,
            license_id,
            seats,
            valid_from,
            valid_until,
            max_borrow_hours,
            confirm_ended,
        } => {
            let body = LicenseChange {
                seats: *seats,
                valid_from: valid_from.as_deref().map(parse_date).transpose()?,
                valid_until: valid_until.as_deref().map(parse_date).transpose()?,
                max_borrow_hours: max_borrow_hours.map(|limit| limit.0),
                confirm_ended: *confirm_ended,
            };
            let value = client
                .send(
                    awc::http::Method::PATCH,
                    &format!("/admin/v1/servers/{server_id}/licenses/{license_id}"),
                    Some(&body),
                )
                .await
                .map_err(confirm_with("--confirm-ended"))?;
            let license: License = decode(value)?;
            show_one(&license, json, show_licenses)
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

pub(super) async fn requests(
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
        RequestCommand::Show { request_id } => {
            let request: KeyClearRequest = client
                .get(&format!("/admin/v1/key-clear-requests/{request_id}"))
                .await?;
            return show_request(&request, json);
        }
        RequestCommand::Approve {
            request_id,
            reason,
            override_unauthenticated_sender,
        } => {
            client
                .post(
                    &format!("/admin/v1/key-clear-requests/{request_id}/approve"),
                    &Decision {
                        reason: reason.clone(),
                        override_unauthenticated: *override_unauthenticated_sender,
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
                        override_unauthenticated: false,
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
                        sender_auth: SenderAuth::NotChecked,
                        sender_auth_detail: "recorded by hand with the admin CLI".to_owned(),
                    },
                )
                .await?
        }
    };
    show_one(&request, json, show_requests)
}

pub(super) fn page_query(page: &PageArgs) -> String {
    match page.after {
        Some(after) => format!("limit={}&after={after}", page.limit),
        None => format!("limit={}", page.limit),
    }
}

pub(super) async fn operator(
    client: &Client,
    command: &OperatorCommand,
    json: bool,
) -> Result<String, CliError> {
    let issued = |issued: IssuedToken, what: &str| -> Result<String, CliError> {
        if json {
            return json_out(&issued);
        }
        Ok(format!(
            "operator {} ({}) {what}. Its token, shown this once (Solme keeps only a hash):\n{}\n",
            issued.name, issued.role, issued.token
        ))
    };
    match command {
        OperatorCommand::Add { name, role } => {
            let token: IssuedToken = client
                .post(
                    "/admin/v1/operators",
                    &NewOperator {
                        name: name.clone(),
                        role: *role,
                    },
                )
                .await?;
            issued(token, "added")
        }
        OperatorCommand::Rotate { name } => {
            let token: IssuedToken = client
                .post(&format!("/admin/v1/operators/{name}/rotate"), &())
                .await?;
            issued(token, "has a new token; the old one no longer works")
        }
        OperatorCommand::Revoke { name } => {
            let account: OperatorAccount = client
                .post(&format!("/admin/v1/operators/{name}/revoke"), &())
                .await?;
            if json {
                return json_out(&account);
            }
            Ok(format!(
                "operator {} revoked: its token no longer works\n",
                account.name
            ))
        }
        OperatorCommand::List => {
            let list: Vec<OperatorAccount> = client.get("/admin/v1/operators").await?;
            show_list(
                &list,
                json,
                &["NAME", "ROLE", "CREATED (UTC)", "STATUS"],
                |a| {
                    vec![
                        a.name.clone(),
                        a.role.to_string(),
                        a.created_at.format("%Y-%m-%d %H:%M").to_string(),
                        a.revoked_at.map_or_else(
                            || "active".to_owned(),
                            |at| format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                        ),
                    ]
                },
            )
        }
    }
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
}
