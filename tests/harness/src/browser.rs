//! Headless Chromium (the Debian package) for the tests of the web pages.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process::{tool_present, wait_until, Child};

/// Where Debian installs Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether Chromium is installed (see [`tool_present`]: outside CI a test skips).
pub fn chromium_present() -> bool {
    tool_present(
        Path::new(CHROMIUM).is_file(),
        CHROMIUM,
        "apt-get install chromium",
    )
}

/// Chromium, headless and quiet, with a fresh profile in `profile`.
pub fn chromium_command(profile: &Path) -> Command {
    let mut command = Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Makes `command` (a [`chromium_command`]) accept the server certificate in
/// `cert_file` (a main server's `tls-cert.pem`), which no system CA issued. Pinned by
/// its public key: any other certificate Chromium cannot verify is still refused.
pub fn trust_certificate(command: &mut Command, cert_file: &Path) -> Result<()> {
    let pin = crate::tls::spki_pin(cert_file)?;
    command.arg(format!("--ignore-certificate-errors-spki-list={pin}"));
    Ok(())
}

/// The DOM of `url` after its scripts ran (virtual time waits for the page's fetches),
/// with scratch files in `scratch`.
pub fn rendered_dom(url: &str, scratch: &Path) -> Result<String> {
    let mut command = chromium_command(&scratch.join("profile"));
    command
        .arg("--virtual-time-budget=10000")
        .arg("--dump-dom")
        .arg(url);
    let out = scratch.join("dom.html");
    std::fs::remove_file(&out).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    })?;
    // Chromium prints the DOM on stdout (its own noise goes to stderr, discarded).
    let file = std::fs::File::create(&out).context("creating the DOM file")?;
    command.stdout(file);
    let mut child = Child::spawn_with_output("chromium", command)?;
    wait_until("chromium to finish", Duration::from_secs(60), || {
        child.has_exited().then_some(())
    })?;
    std::fs::read_to_string(&out).context("reading the DOM Chromium printed")
}

/// Asserts what every web page of ours is served with: a content security policy that
/// holds each of `directives` and allows nothing `unsafe`, `nosniff`, and no framing.
/// `header` reads a response header (panicking when it is missing); `page` names the
/// page in failures.
pub fn assert_page_headers<'a>(header: impl Fn(&str) -> &'a str, directives: &[&str], page: &str) {
    let csp = header("content-security-policy");
    for directive in directives {
        assert!(csp.contains(directive), "{page}: {csp} lacks {directive}");
    }
    assert!(!csp.contains("unsafe"), "{page}: {csp}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{page}");
    assert_eq!(header("x-frame-options"), "DENY", "{page}");
}
