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

/// Solme's licensing address, where customers mail sync data and questions, when the
/// installation is not told another one.
pub const DEFAULT_LICENSING_ADDRESS: &str = "licensing@solme.example";

/// The setting that names another licensing address (for example a reseller's).
pub const LICENSING_ADDRESS_ENV: &str = "LOCAL_SERVER_LICENSING_ADDRESS";

/// The full licensing address every text that tells the customer to mail Solme names:
/// [`LICENSING_ADDRESS_ENV`] when it holds a plausible address (one `@`, printable, at
/// most 254 characters), else [`DEFAULT_LICENSING_ADDRESS`].
pub fn licensing_address() -> String {
    std::env::var(LICENSING_ADDRESS_ENV)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| plausible_address(value))
        .unwrap_or_else(|| DEFAULT_LICENSING_ADDRESS.to_owned())
}

fn plausible_address(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    value.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && value.chars().all(|c| c.is_ascii_graphic())
}

/// The two ways of synchronizing, as every text of the local server says them (the
/// manager page's script uses the same words).
pub const OVER_THE_INTERNET: &str = "over the internet";
pub const BY_EMAIL: &str = "by email";

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

#[cfg(test)]
mod tests {
    use super::plausible_address;

    #[test]
    fn only_plausible_addresses_are_taken() {
        assert!(plausible_address("licensing@solme.example"));
        for bad in [
            "",
            "licensing@",
            "@solme.example",
            "a@b@c.example",
            "a b@c.example",
            "x@localhost",
        ] {
            assert!(!plausible_address(bad), "{bad}");
        }
    }
}
