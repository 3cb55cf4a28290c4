//! What the CLI prints: aligned tables for people, or JSON with `--json`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::PageArgs;
use shared_proto::admin_api::{
    CopyPolicy, Customer, CustomerDetail, KeyClearRequest, KeyClearRequestDetail, KeyClearStatus,
    License, PossibleCopy, Reminder, SenderAuth, Server, SyncUsage,
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
        &[
            "CUSTOMER",
            "NAME",
            "CONTACTS",
            "REMINDERS",
            "POSSIBLE COPIES",
        ],
        |c| {
            vec![
                c.id.to_string(),
                c.name.clone(),
                c.emails.join(", "),
                if c.reminders_enabled { "on" } else { "off" }.to_owned(),
                c.copy_policy.to_string(),
            ]
        },
    )
}

/// One page of customers, saying how to ask for the next when it is full.
pub(super) fn show_customer_page(
    list: &[Customer],
    page: &PageArgs,
    json: bool,
) -> Result<String, CliError> {
    let mut text = show_customers(list, json)?;
    if !json && list.len() >= page.limit as usize {
        if let Some(last) = list.last() {
            text.push_str(&format!(
                "(more customers may follow: run again with --after {})\n",
                last.id
            ));
        }
    }
    Ok(text)
}

/// What a customer's copy policy does, in words.
pub(super) fn copy_policy_words(policy: CopyPolicy) -> &'static str {
    match policy {
        CopyPolicy::Warn => "warn: a marked id is shown, its syncs still answered",
        CopyPolicy::Refuse => "refuse: a marked id's syncs are refused until the mark is dismissed",
    }
}

/// One customer in full: contacts, switches, and its ids.
pub(super) fn show_customer_detail(
    detail: &CustomerDetail,
    json: bool,
) -> Result<String, CliError> {
    if json {
        return json_out(detail);
    }
    let c = &detail.customer;
    let mut out = format!(
        "customer         {}\nname             {}\ncontacts         {}\nreminder mails   {}\n\
         possible copies  {}\n\nlicense server ids ({} in all):\n",
        c.id,
        c.name,
        if c.emails.is_empty() {
            "none".to_owned()
        } else {
            c.emails.join(", ")
        },
        if c.reminders_enabled { "on" } else { "off" },
        copy_policy_words(c.copy_policy),
        detail.servers_total,
    );
    out.push_str(&show_servers(&detail.servers, false)?);
    let shown = i64::try_from(detail.servers.len()).unwrap_or(i64::MAX);
    if let (true, Some(last)) = (shown < detail.servers_total, detail.servers.last()) {
        out.push_str(&format!(
            "(the first {shown} by id: `server list --customer {} --after {}` shows more)\n",
            c.id, last.server_id
        ));
    }
    Ok(out)
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
            "MARK",
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
                if s.possible_copy_since.is_some() {
                    "POSSIBLE COPY"
                } else {
                    "-"
                }
                .to_owned(),
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
    let holds = server
        .holds
        .as_ref()
        .map_or_else(|| "-".to_owned(), |h| h.summary.clone());
    let copy = match server.possible_copy_since {
        Some(since) => format!(
            "POSSIBLE COPY since {} (customer's policy: {})",
            since.format("%Y-%m-%d %H:%M UTC"),
            copy_policy_words(server.copy_policy)
        ),
        None => format!(
            "not marked (customer's policy: {})",
            copy_policy_words(server.copy_policy)
        ),
    };
    let standby = match (&server.standby_fingerprint, server.standby_registered_at) {
        (Some(fingerprint), at) => format!("{fingerprint}, registered {}", date(at)),
        (None, _) => "none registered".to_owned(),
    };
    let mut out = format!(
        "server id     {}\ncustomer      {} ({})\nrevision      {}\nserver holds  {holds}\nsequence      {}\n\
         key pair      {}\nbound at      {}\nlast sync     {} via {}\nvalid until   {}\ndue           {due}\n\
         copies        {copy}\nstandby       {standby}\nfailover      {}\n\nlicenses:\n",
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
        days_words(server.failover_days),
    );
    out.push_str(&show_licenses(&server.licenses, false)?);
    if let Some(copy) = &server.possible_copy {
        out.push('\n');
        out.push_str(&show_possible_copy(copy));
    }
    Ok(out)
}

/// A number of days in words ("1 day", "14 days").
pub(super) fn days_words(days: u32) -> String {
    if days == 1 {
        "1 day".to_owned()
    } else {
        format!("{days} days")
    }
}

/// Why an id is marked a possible copy: the explanation and the requests showing it.
pub(super) fn show_possible_copy(copy: &PossibleCopy) -> String {
    let rows: Vec<Vec<String>> = copy
        .requests
        .iter()
        .map(|r| {
            vec![
                date(Some(r.made_at)),
                r.channel.to_string(),
                r.request_counter
                    .map_or_else(|| "not sent".to_owned(), |c| c.to_string()),
                r.held_sequence
                    .map_or_else(|| "none".to_owned(), |s| format!("file {s}")),
                format!("file {}", r.answered_sequence),
                if r.went_back { "went back" } else { "" }.to_owned(),
            ]
        })
        .collect();
    format!(
        "possible copy, marked since {}:\n{}\n\n{}",
        copy.since.format("%Y-%m-%d %H:%M UTC"),
        copy.explanation,
        table(
            &["MADE", "CHANNEL", "COUNT", "HELD", "ANSWERED WITH", ""],
            &rows
        )
    )
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

/// One request in full: what the sender wrote and what the sender check rests on,
/// then what deciding it needs.
pub(super) fn show_request_detail(
    detail: &KeyClearRequestDetail,
    json: bool,
) -> Result<String, CliError> {
    if json {
        return json_out(detail);
    }
    let mut out = show_request(&detail.request, false)?;
    let issuing = match (detail.valid_until, detail.days_until_due) {
        (Some(until), Some(days)) if days >= 0 => format!(
            "{} ({days} days from now): the installation holding the last license file \
             issues seats until then, cleared or not",
            until.format("%Y-%m-%d")
        ),
        (Some(until), _) => format!("{} (ended)", until.format("%Y-%m-%d")),
        (None, _) => "no license file issued".to_owned(),
    };
    out.push_str(&format!(
        "\nto weigh:\ncustomer        {} ({})\nkey pair now    {}\nlast sync       {}\n\
         keeps issuing   {issuing}\nother contacts  {}\n",
        detail.customer_name,
        detail.customer_id,
        detail
            .bound_fingerprint
            .as_deref()
            .unwrap_or("none bound (cleared already, or never synced)"),
        match (detail.last_sync_at, detail.last_sync_channel) {
            (Some(at), Some(channel)) => format!("{} by {channel}", date(Some(at))),
            (Some(at), None) => date(Some(at)),
            (None, _) => "never".to_owned(),
        },
        if detail.other_contacts.is_empty() {
            "none: the sender is the only contact".to_owned()
        } else {
            detail.other_contacts.join(", ")
        },
    ));
    if let Some(since) = detail.possible_copy_since {
        out.push_str(&format!(
            "possible copy   marked since {}\n",
            since.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if let Some(at) = detail.retired_at {
        out.push_str(&format!("retired         {}\n", date(Some(at))));
    }
    Ok(out)
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
