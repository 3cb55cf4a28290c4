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
