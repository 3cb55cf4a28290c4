//! How counts are said to people, in one place for every report that says them (status,
//! the import's changes). A leaf: it imports nothing of the crate.

/// "1 is" / "3 are".
pub fn plural_returned(n: u32) -> String {
    if n == 1 {
        "1 is".to_owned()
    } else {
        format!("{n} are")
    }
}

/// "1 seat" / "2 seats".
pub fn seats_text(n: u32) -> String {
    if n == 1 {
        "1 seat".to_owned()
    } else {
        format!("{n} seats")
    }
}

/// The setting that names another licensing address (for example a reseller's).
pub const LICENSING_ADDRESS_ENV: &str = "LOCAL_SERVER_LICENSING_ADDRESS";

/// The full licensing address every text that tells the customer to mail Solme names:
/// [`LICENSING_ADDRESS_ENV`] when it holds a plausible address, else Solme's own.
pub fn licensing_address() -> String {
    shared_proto::licensing_address::from_setting(LICENSING_ADDRESS_ENV)
}

/// The two ways of synchronizing, as every text of the local server says them (the
/// manager page's script uses the same words).
pub const OVER_THE_INTERNET: &str = "over the internet";
pub const BY_EMAIL: &str = "by email";
/// How a standby got its copy of the primary's license file.
pub const FROM_THE_PRIMARY: &str = "copied from the primary";

/// The date and time as the command line and the manager page say them:
/// `2027-01-31 14:05 UTC`.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M UTC";

/// A day as the command line and the manager page say it: `2027-01-31`.
pub const DAY_FORMAT: &str = "%Y-%m-%d";

/// `at` in [`TIME_FORMAT`].
pub fn time_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format(TIME_FORMAT).to_string()
}

/// `at` in [`DAY_FORMAT`].
pub fn day_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format(DAY_FORMAT).to_string()
}

/// A span of time as people say it, to the largest unit that matters: `45 seconds`,
/// `3 minutes`, `2 hours 5 minutes`, `13 days 22 hours`.
pub fn duration_text(span: chrono::Duration) -> String {
    let unit = |n: i64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let seconds = span.num_seconds().max(0);
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => unit(seconds, "second"),
        (0, 0, m) => unit(m, "minute"),
        (0, h, 0) => unit(h, "hour"),
        (0, h, m) => format!("{} {}", unit(h, "hour"), unit(m, "minute")),
        (d, 0, _) => unit(d, "day"),
        (d, h, _) => format!("{} {}", unit(d, "day"), unit(h, "hour")),
    }
}
