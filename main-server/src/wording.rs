//! Words the main server's answers share with the customer.

/// The setting that names Solme's licensing address in the main server's answers (the
/// address the mail gateway receives at), when it is not the default.
pub const LICENSING_ADDRESS_ENV: &str = "MAIN_SERVER_LICENSING_ADDRESS";

/// The full licensing address an answer names where it tells the customer to write.
pub fn licensing_address() -> String {
    shared_proto::licensing_address::from_setting(LICENSING_ADDRESS_ENV)
}
