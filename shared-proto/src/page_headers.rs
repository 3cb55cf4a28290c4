//! The security headers of the two web pages (the main server's operator console and
//! the local server's manager page). Both are one static page with a separate script
//! and style sheet from their own origin, so they obey one policy: kept here once so
//! that the two cannot drift apart. Plain names and values; each server adds them with
//! its own web framework, together with its own caching rule.

/// Only this origin's script, style sheet and API; nothing inline, no plugins, no
/// framing, no form posts anywhere (the pages' forms are handled by their scripts).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `(name, value)` of the headers every page response carries.
pub const PAGE_HEADERS: [(&str, &str); 4] = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
];

/// HTTP Strict Transport Security for every answer a server gives over HTTPS (the main
/// server's sync listeners and its admin listener): a browser that has seen it once
/// uses only HTTPS for that host for two years. Sent only over HTTPS (browsers ignore
/// it over plain HTTP anyway). Without `includeSubDomains`: the server's name says
/// nothing about the other hosts of the domain it lives in.
pub const STRICT_TRANSPORT_SECURITY: (&str, &str) =
    ("Strict-Transport-Security", "max-age=63072000");
