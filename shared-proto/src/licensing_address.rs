//! Solme's licensing address, which every text that tells a customer to mail Solme
//! names in full. Each program reads it from its own setting (an environment variable)
//! and falls back to the default.

/// Solme's licensing address, where customers mail sync data and questions, when a
/// program is not told another one.
pub const DEFAULT: &str = "licensing@solme.example";

/// The address the environment variable `setting` names when it holds a plausible
/// address (one `@`, a dotted domain, printable, at most 254 characters), else
/// [`DEFAULT`].
pub fn from_setting(setting: &str) -> String {
    std::env::var(setting)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| plausible(value))
        .unwrap_or_else(|| DEFAULT.to_owned())
}

fn plausible(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    value.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && value.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::plausible;

    #[test]
    fn only_a_whole_address_is_taken() {
        assert!(plausible("licensing@reseller.example"));
        for bad in [
            "licensing@",
            "@solme.example",
            "a@b",
            "a b@c.example",
            "a@b@c.example",
        ] {
            assert!(!plausible(bad), "{bad}");
        }
    }
}
