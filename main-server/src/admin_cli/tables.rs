//! What the CLI prints: aligned tables for people, or JSON with `--json`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::PageArgs;
use shared_proto::admin_api::{
    Customer, KeyClearRequest, KeyClearStatus, License, Reminder, SenderAuth, Server, SyncUsage,
};

use super::client::CliError;

pub(super) fn json_out<T: Serialize>(value: &T) -> Result<String, CliError> {
    let mut text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    text.push('\n');
    Ok(text)
}

/// One item the API answered: its JSON object under `--json` (never a one-element
/// list), else the table `show` prints for it.
pub(super) fn show_one<T: Serialize>(
    item: &T,
    json: bool,
    show: impl Fn(&[T], bool) -> Result<String, CliError>,
) -> Result<String, CliError> {
    if json {
        json_out(item)
    } else {
        show(std::slice::from_ref(item), false)
    }
}

pub(super) fn date(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |d| d.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// A list as JSON, or as a table of `headers` with one row per item.
pub(super) fn show_list<T: Serialize>(
    list: &[T],
    json: bool,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<String, CliError> {
    if json {
        return json_out(&list);
    }
    let rows = list.iter().map(row).collect::<Vec<_>>();
    Ok(table(headers, &rows))
}

pub(super) fn show_customers(list: &[Customer], json: bool) -> Result<String, CliError> {
    show_list(
        list,
        json,
        &["CUSTOMER", "NAME", "CONTACTS", "REMINDERS"],
        |c| {
            vec![
                c.id.to_string(),
                c.name.clone(),
                c.emails.join(", "),
                if c.reminders_enabled { "on" } else { "off" }.to_owned(),
            ]
        },
    )
}

pub(super) fn show_reminders(list: &[Reminder], json: bool) -> Result<String, CliError> {
    if !json && list.is_empty() {
        return Ok("No reminders recorded for this customer.\n".to_owned());
    }
    show_list(
        list,
        json,
        &[
            "SERVER ID",
            "REMINDER",
            "VALID UNTIL",
            "STATE",
            "DUE SINCE",
            "MAILED",
            "TO",
        ],
        |r| {
            vec![
                r.server_id.to_string(),
                r.threshold.to_string(),
                date(Some(r.valid_until)),
                r.state.to_string(),
                date(Some(r.created_at)),
                date(r.handed_at),
                if r.recipients.is_empty() {
                    "-".to_owned()
                } else {
                    r.recipients.join(", ")
                },
            ]
        },
    )
}

pub(super) fn show_servers(list: &[Server], json: bool) -> Result<String, CliError> {
    show_list(
        list,
        json,
        &[
            "SERVER",
            "CUSTOMER",
            "KEY",
            "LAST SYNC",
            "CHANNEL",
            "DAYS LEFT",
        ],
        |s| {
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
                match (s.retired_at, s.days_until_due) {
                    (Some(_), _) => "retired".to_owned(),
                    (None, None) => "never synced".to_owned(),
                    (None, Some(d)) => d.to_string(),
                },
            ]
        },
    )
}

/// A page of ids; a full page ends with how to ask for the next one (tables only: a
/// JSON reader pages with the last id itself).
pub(super) fn show_server_page(
    list: &[Server],
    page: &PageArgs,
    json: bool,
) -> Result<String, CliError> {
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

pub(super) fn show_server(server: &Server, json: bool) -> Result<String, CliError> {
    if json {
        return json_out(server);
    }
    let due = match (server.retired_at, server.days_until_due) {
        (Some(at), _) => format!(
            "RETIRED on {}: its syncs are refused",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        (None, None) => "never synced: issues no licenses until its first sync".to_owned(),
        (None, Some(d)) if d < 0 => format!("OVERDUE by {} days", -d),
        (None, Some(d)) => format!("{d} days left of the 366-day limit"),
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

pub(super) fn show_licenses(list: &[License], json: bool) -> Result<String, CliError> {
    show_list(
        list,
        json,
        &["LICENSE", "FEATURE", "SEATS", "FROM", "UNTIL", "BORROW"],
        |l| {
            vec![
                l.id.to_string(),
                l.feature.clone(),
                l.seats.to_string(),
                date(l.valid_from),
                l.valid_until
                    .map_or_else(|| "perpetual".to_owned(), |d| date(Some(d))),
                l.max_borrow_hours
                    .map_or_else(|| "-".to_owned(), |h| format!("{h} h")),
            ]
        },
    )
}

pub(super) fn show_requests(list: &[KeyClearRequest], json: bool) -> Result<String, CliError> {
    show_list(
        list,
        json,
        &[
            "REQUEST",
            "SERVER",
            "SENDER",
            "SENDER CHECK",
            "STATUS",
            "CREATED",
            "OPERATOR",
            "REASON",
        ],
        |r| {
            vec![
                r.id.to_string(),
                r.server_id.to_string(),
                r.sender.clone(),
                r.sender_auth.to_string(),
                r.status.to_string(),
                date(Some(r.created_at)),
                r.operator.clone().unwrap_or_else(|| "-".into()),
                r.reason.clone().unwrap_or_default(),
            ]
        },
    )
}

/// One request in full: what the sender wrote and what the sender check rests on.
pub(super) fn show_request(request: &KeyClearRequest, json: bool) -> Result<String, CliError> {
    if json {
        return json_out(request);
    }
    let check = request.sender_auth.describe(&request.sender_auth_detail);
    let caution = if request.sender_auth == SenderAuth::Authenticated {
        ""
    } else {
        "\n              approving needs --override-unauthenticated-sender"
    };
    let mut out = format!(
        "request       {}\nserver id     {}\nsender        {}\nsender check  {check}{caution}\n\
         mail          {}\nreceived at   {}\nstatus        {}\n",
        request.id,
        request.server_id,
        request.sender,
        request.message_id,
        date(Some(request.created_at)),
        request.status,
    );
    if request.status != KeyClearStatus::Pending {
        out.push_str(&format!(
            "decided       {} by {}\nreason        {}\n",
            date(request.decided_at),
            request.operator.as_deref().unwrap_or("-"),
            request.reason.as_deref().unwrap_or("-"),
        ));
    }
    out.push_str("\ntext:\n");
    for line in request.text.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    Ok(out)
}

/// One line per sync and feature: what the local server reported with that sync.
pub(super) fn show_usage(
    server_id: uuid::Uuid,
    list: &[SyncUsage],
    json: bool,
) -> Result<String, CliError> {
    if json {
        return json_out(&list);
    }
    let mut rows = Vec::new();
    for sync in list {
        let at = date(Some(sync.synced_at));
        let since = date(sync.usage_since);
        if sync.features.is_empty() {
            rows.push(vec![
                at,
                sync.channel.to_string(),
                since,
                "(no use reported)".to_owned(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
            continue;
        }
        for feature in &sync.features {
            let refusals = if feature.refusals.is_empty() {
                "none".to_owned()
            } else {
                feature
                    .refusals
                    .iter()
                    .map(|(code, n)| format!("{code} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            rows.push(vec![
                at.clone(),
                sync.channel.to_string(),
                since.clone(),
                feature.feature.clone(),
                feature.seats_total.to_string(),
                feature.peak_in_use.to_string(),
                format!("{:.2}", feature.seat_hours),
                refusals,
            ]);
        }
    }
    Ok(format!(
        "Usage reported by license server {server_id}, oldest sync first\n{}",
        table(
            &[
                "SYNCED",
                "CHANNEL",
                "SINCE",
                "FEATURE",
                "SEATS",
                "PEAK",
                "SEAT-HOURS",
                "REFUSALS",
            ],
            &rows,
        )
    ))
}

/// Left-aligned columns separated by two spaces.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
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
    fn tables_align_columns() {
        let text = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(text, "A     BB\nlong  x\n");
        assert!(table(&["A"], &[]).contains("(none)"));
    }
}
