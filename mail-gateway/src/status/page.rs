//! The status page an operator reads at a glance: what the counters mean beside their
//! numbers, what waits, the recent mails, and a simulated clock when there is one. Plain
//! HTML with its own style sheet (`/assets/status.css`); no script, every text escaped.

use chrono::{DateTime, Utc};
use quick_xml::escape::escape;

use super::counters::Status;
use super::recent::RecentMail;

/// The style sheet, in the look of the manager page and the console.
pub const STYLE: &str = include_str!("status.css");

/// Dates on the page (and in the gateway's mails): `2027-01-31 14:05 UTC`.
pub fn time_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A counter tile: the number, its name and what it counts.
fn tile(value: u64, name: &str, meaning: &str, tone: &str) -> String {
    format!(
        "<div class=\"tile {tone}\"><div class=\"value\">{value}</div>\
         <div class=\"name\">{name}</div><p class=\"meaning\">{meaning}</p></div>"
    )
}

/// The page for `status` and `recent`, at `now` (the gateway's clock).
pub fn render(status: &Status, recent: &[RecentMail], now: DateTime<Utc>) -> String {
    let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let problem = if status.failed > 0 { "bad" } else { "" };
    let waiting = if status.queued + status.outgoing > 0 {
        "warn"
    } else {
        ""
    };
    let counters = [
        tile(
            status.received,
            "Received",
            "Mails to the licensing address taken in since the gateway started, \
             answered or not.",
            "",
        ),
        tile(
            status.answered,
            "Answered",
            "Replies handed to the mail server since start: license files, \
             acknowledgements and explanations (one per mail answered; reminders and \
             sign-in links count here too).",
            "ok",
        ),
        tile(
            status.dropped,
            "Left unanswered",
            "On purpose: automatic mail (bounces, out-of-office) and duplicates of a \
             mail already answered.",
            "",
        ),
        tile(
            status.failed,
            "Given up",
            "Mails and replies given up on after their retries since start; they are \
             kept in spool/failed/ for you to look at.",
            problem,
        ),
    ]
    .concat();
    let queue = [
        tile(
            to_u64(status.queued),
            "Waiting to be read",
            "Received mails the gateway has not answered yet.",
            waiting,
        ),
        tile(
            to_u64(status.outgoing),
            "Replies waiting",
            "Replies composed but not yet accepted by the mail server.",
            waiting,
        ),
        tile(
            to_u64(status.failed_in_spool),
            "In spool/failed/",
            "Everything ever given up on and still kept there.",
            if status.failed_in_spool > 0 {
                "warn"
            } else {
                ""
            },
        ),
        tile(
            status.retries,
            "Retried attempts",
            "Attempts that failed for a while (the main server or the mail server \
             away) and were tried again.",
            "",
        ),
    ]
    .concat();
    let rows: String = recent
        .iter()
        .map(|mail| {
            format!(
                "<tr class=\"state-{state:?}\"><td>{at}</td><td>{address}</td><td>{what}</td><td>{state_words}</td></tr>",
                state = mail.state,
                at = escape(time_text(mail.at)),
                address = escape(mail.address.as_deref().unwrap_or("(no sender)")),
                what = escape(mail.reply_words().unwrap_or("–")),
                state_words = escape(mail.state.words()),
            )
        })
        .collect();
    let mails = if recent.is_empty() {
        "<p class=\"muted\">No mail yet.</p>".to_owned()
    } else {
        format!(
            "<div class=\"table-scroll\"><table><thead><tr><th>When</th><th>Address</th>\
             <th>Reply</th><th>State</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    let clock = status
        .clock
        .as_deref()
        .map(|clock| {
            format!(
                "<p class=\"banner banner-warn\" role=\"status\">This gateway runs on a \
                 simulated clock: its date is {} ({}).</p>",
                escape(time_text(now)),
                escape(clock)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <title>Solme mail gateway</title>\
         <link rel=\"stylesheet\" href=\"/assets/status.css\"></head><body>\
         <header class=\"topbar\"><div class=\"brand\">Solme mail gateway</div>\
         <div class=\"since\">running since {since}</div></header>{clock}\
         <main class=\"layout\">\
         <section class=\"panel wide\" aria-labelledby=\"counts\"><h2 id=\"counts\">Since the gateway started</h2>\
         <div class=\"tiles\">{counters}</div></section>\
         <section class=\"panel wide\" aria-labelledby=\"now\"><h2 id=\"now\">Now</h2>\
         <div class=\"tiles\">{queue}</div></section>\
         <section class=\"panel wide\" aria-labelledby=\"mails\"><h2 id=\"mails\">Recent mails</h2>\
         <p class=\"muted small\">The newest {n} mails and replies in the spool, newest first.</p>\
         {mails}</section>\
         <p class=\"muted small footer\">Shown at {shown}; the page reloads every 10 seconds. \
         For programs: <a href=\"/status.json\">/status.json</a> (or this address with \
         <code>Accept: application/json</code>) and <a href=\"/metrics\">/metrics</a>.</p>\
         </main></body></html>\n",
        since = escape(time_text(status.started_at)),
        n = super::recent::RECENT_MAILS,
        shown = escape(time_text(now)),
    )
}
