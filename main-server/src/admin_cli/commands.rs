//! Each `main-server admin` subcommand: the request it sends and what it prints.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::{
    AdminArgs, AdminCommand, CustomerCommand, KeyCommand, LicenseCommand, OperatorCommand,
    PageArgs, ReminderCommand, RequestCommand, ServerCommand, Switch,
};
use shared_proto::admin_api::{
    CopyPolicySetting, CustomerCopyPolicy, CustomerDetail, FailoverPeriodSetting,
    KeyClearRequestDetail, PossibleCopyDismissal, PossibleCopyDismissed,
};
use shared_proto::admin_api::{
    Customer, CustomerRename, Decision, IssuedToken, KeyClear, KeyClearRequest, License,
    LicenseChange, MailSync, NewCustomer, NewEmail, NewKeyClearRequest, NewLicense, NewOperator,
    NewServer, OperatorAccount, Reminder, RemindersSwitch, SenderAuth, Server, ServerMove,
    ServerRetire, SyncAnswer, SyncUsage,
};
use shared_proto::ErrorCode;

use super::client::{decode, CliError, Client};
use super::tables::{
    copy_policy_words, days_words, show_customer_detail, show_possible_copy, show_request_detail,
};
use super::tables::{
    json_out, show_customer_page, show_customers, show_licenses, show_list, show_one,
    show_reminders, show_requests, show_server, show_server_page, show_usage,
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
/// Also a query parameter's value so escaped (no `&`, `=`, `+` or `#` left in it).
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
            CustomerCommand::List { name, page } => {
                let search = match name.as_deref().map(str::trim) {
                    Some(name) if !name.is_empty() => format!("&name={}", path_segment(name)),
                    _ => String::new(),
                };
                let list: Vec<Customer> = client
                    .get(&format!("/admin/v1/customers?{}{search}", page_query(page)))
                    .await?;
                show_customer_page(&list, page, json)
            }
            CustomerCommand::Show { customer_id } => {
                let detail: CustomerDetail = client
                    .get(&format!("/admin/v1/customers/{customer_id}"))
                    .await?;
                show_customer_detail(&detail, json)
            }
            CustomerCommand::CopyPolicy {
                customer_id,
                policy,
            } => {
                let value = client
                    .send(
                        awc::http::Method::PUT,
                        &format!("/admin/v1/customers/{customer_id}/copy-policy"),
                        Some(&CopyPolicySetting { policy: *policy }),
                    )
                    .await?;
                let set: CustomerCopyPolicy = decode(value)?;
                if json {
                    return json_out(&set);
                }
                Ok(format!(
                    "Possible copies of the ids of customer {}: {}.\n",
                    set.customer_id,
                    copy_policy_words(set.policy)
                ))
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
            ServerCommand::List { customer_id, page } => {
                let only = customer_id.map_or_else(String::new, |c| format!("customer_id={c}&"));
                let list: Vec<Server> = client
                    .get(&format!("/admin/v1/servers?{only}{}", page_query(page)))
                    .await?;
                show_server_page(&list, page, json)
            }
            ServerCommand::PossibleCopy { server_id } => {
                let server: Server = client
                    .get(&format!("/admin/v1/servers/{server_id}"))
                    .await?;
                if json {
                    return json_out(&server.possible_copy);
                }
                Ok(match &server.possible_copy {
                    Some(copy) => show_possible_copy(copy),
                    None => format!(
                        "{server_id} is not marked a possible copy (customer's policy: {}).\n",
                        copy_policy_words(server.copy_policy)
                    ),
                })
            }
            ServerCommand::DismissCopy { server_id, reason } => {
                let dismissed: PossibleCopyDismissed = client
                    .post(
                        &format!("/admin/v1/servers/{server_id}/possible-copy/dismiss"),
                        &PossibleCopyDismissal {
                            reason: reason.clone(),
                        },
                    )
                    .await?;
                if json {
                    return json_out(&dismissed);
                }
                Ok(match dismissed.was_marked_since {
                    Some(since) => format!(
                        "The possible-copy mark of {server_id} (since {}) is dismissed; its \
                         history of requests is forgotten.\n",
                        since.format("%Y-%m-%d %H:%M UTC")
                    ),
                    None => {
                        format!("{server_id} was not marked a possible copy: nothing changed.\n")
                    }
                })
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
            ServerCommand::FailoverPeriod { server_id, days } => {
                let value = client
                    .send(
                        awc::http::Method::PUT,
                        &format!("/admin/v1/servers/{server_id}/failover-period"),
                        Some(&FailoverPeriodSetting { days: *days }),
                    )
                    .await?;
                let server: Server = decode(value)?;
                if json {
                    return json_out(&server);
                }
                Ok(format!(
                    "The failover period of {} is {}: a promoted standby server of it may \
                     issue seats that long while its primary is down. The license files \
                     naming a standby carry it from the id's next sync on.\n",
                    server.server_id,
                    days_words(server.failover_days)
                ))
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
        AdminCommand::Audit(audit_args) => super::audit::run(client, audit_args, json).await,
    }
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
            let detail: KeyClearRequestDetail = client
                .get(&format!("/admin/v1/key-clear-requests/{request_id}"))
                .await?;
            return show_request_detail(&detail, json);
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
