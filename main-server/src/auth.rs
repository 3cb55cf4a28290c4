//! Who is calling the admin API: token generation, the stored form of a token (its
//! SHA-256), what each role may do, and the per-address limit on refused tokens.
//!
//! A token is 32 random bytes in URL-safe base64. The database keeps only the
//! lower-case hex SHA-256 of it (`operators.token_hash`); a presented token is hashed,
//! looked up by that hash on every request (so a revocation takes effect at once on
//! every replica) and the stored hash is compared again in constant time.
//!
//! The web console trades a personal token for a console session (`store/sessions.rs`):
//! its secret is a token with [`SESSION_PREFIX`] in front, stored and checked the same
//! way, so the bearer header says by itself which of the two it carries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use shared_proto::admin_api::Role;

/// Bytes of randomness in a new token (256 bits).
const TOKEN_BYTES: usize = 32;

/// What starts a console session secret (`.` never occurs in a generated token).
pub const SESSION_PREFIX: &str = "session.";

/// How a caller authenticated; the handlers of the session routes need to know.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A personal token, with its stored form.
    Token { token_hash: String },
    /// A console session, with the stored form of its secret.
    Session { secret_hash: String },
}

/// Refused tokens one address may present per minute before it gets `RATE_LIMITED`.
pub const MAX_FAILURES_PER_MINUTE: u32 = 10;
/// Addresses the limiter remembers at most (a flood of addresses cannot exhaust memory).
const MAX_TRACKED_PEERS: usize = 10_000;

/// A fresh random token (URL-safe base64).
pub fn generate() -> anyhow::Result<SecretString> {
    let mut bytes = [0u8; TOKEN_BYTES];
    openssl::rand::rand_bytes(&mut bytes).context("generating a token")?;
    Ok(SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// The stored form of a token: lower-case hex SHA-256.
pub fn token_hash(token: &str) -> String {
    shared_proto::hex::encode(&openssl::sha::sha256(token.as_bytes()))
}

/// Reads a token file (trimmed, bounded in size).
pub fn read_token_file(path: &Path) -> anyhow::Result<SecretString> {
    shared_proto::files::read_secret(path)
        .with_context(|| format!("reading the token file {}", path.display()))
}

/// What a request needs, decided from its method and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The API document (`/admin/v1/openapi.json`): no token needed, since it only
    /// describes the API (the same document is published with the source).
    Public,
    /// Asking who one is, or ending one's own console session: every role.
    Own,
    /// Opening a console session: people (every role but the gateway).
    SignIn,
    /// Reading anything.
    Read,
    /// Changing the registry: customers, ids, licenses, key pairs, decisions.
    Manage,
    /// Managing operator accounts.
    Admin,
    /// The endpoints the mail gateway calls.
    Mail,
}

impl Need {
    /// `path` is the request path, `/admin/v1/…`.
    pub fn of(method: &actix_web::http::Method, path: &str) -> Self {
        use actix_web::http::Method;
        let rest = path.strip_prefix("/admin/v1").unwrap_or(path);
        let is_get = method == Method::GET || method == Method::HEAD;
        if rest == "/openapi.json" && is_get {
            return Self::Public;
        }
        if rest == "/whoami" || rest == "/sessions/current" {
            return Self::Own;
        }
        if rest == "/sessions" {
            return Self::SignIn;
        }
        if rest == "/operators" || rest.starts_with("/operators/") {
            return Self::Admin;
        }
        let mail = match (is_get, rest) {
            (false, "/mail/sync" | "/key-clear-requests" | "/reminders/claim") => true,
            (true, "/key-clear-requests/unnotified") => true,
            (false, r) => {
                (r.starts_with("/key-clear-requests/") && r.ends_with("/notified"))
                    || (r.starts_with("/reminders/") && r.ends_with("/handed"))
            }
            _ => false,
        };
        if mail {
            Self::Mail
        } else if is_get {
            Self::Read
        } else {
            Self::Manage
        }
    }

    /// Whether `role` may do what this needs.
    pub fn allows(self, role: Role) -> bool {
        match (self, role) {
            (Self::Public | Self::Own, _) => true,
            (Self::SignIn, role) => role != Role::Gateway,
            (Self::Mail, Role::Gateway | Role::Operator | Role::Admin) => true,
            (_, Role::Gateway) => false,
            (Self::Read, _) => true,
            (Self::Manage, Role::Operator | Role::Admin) => true,
            (Self::Admin, Role::Admin) => true,
            _ => false,
        }
    }

    /// Plain words for the refusal.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Public => "the API document needs no token",
            Self::Own => "every role may ask who it is",
            Self::SignIn => "the console is for people: the viewer, operator or admin role",
            Self::Read => "reading the registry needs the viewer, operator or admin role",
            Self::Manage => "changing the registry needs the operator or admin role",
            Self::Admin => "managing operators needs the admin role",
            Self::Mail => "the mail endpoints are for the mail gateway, operators and admins",
        }
    }
}

/// Counts refused tokens per peer address in one-minute windows.
#[derive(Default)]
pub struct FailureLimiter {
    peers: Mutex<HashMap<IpAddr, (DateTime<Utc>, u32)>>,
}

impl FailureLimiter {
    /// Whether `peer` already used up its refusals of the current minute.
    pub fn is_limited(&self, peer: IpAddr, now: DateTime<Utc>) -> bool {
        let Ok(peers) = self.peers.lock() else {
            return false;
        };
        peers.get(&peer).is_some_and(|(start, count)| {
            now - *start < Duration::minutes(1) && *count >= MAX_FAILURES_PER_MINUTE
        })
    }

    /// Counts one refusal of `peer`.
    pub fn record_failure(&self, peer: IpAddr, now: DateTime<Utc>) {
        let Ok(mut peers) = self.peers.lock() else {
            return;
        };
        if peers.len() >= MAX_TRACKED_PEERS && !peers.contains_key(&peer) {
            peers.retain(|_, (start, _)| now - *start < Duration::minutes(1));
            if peers.len() >= MAX_TRACKED_PEERS {
                peers.clear();
            }
        }
        let entry = peers.entry(peer).or_insert((now, 0));
        if now - entry.0 >= Duration::minutes(1) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::Method;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roles_get_what_they_need() {
        // Each request, written `METHOD path`, with the need it has.
        let needs = [
            ("GET /admin/v1/servers", Need::Read),
            ("POST /admin/v1/servers", Need::Manage),
            ("POST /admin/v1/operators", Need::Admin),
            ("GET /admin/v1/operators", Need::Admin),
            ("POST /admin/v1/mail/sync", Need::Mail),
            ("POST /admin/v1/reminders/claim", Need::Mail),
            ("POST /admin/v1/reminders/x/handed", Need::Mail),
            ("POST /admin/v1/key-clear-requests", Need::Mail),
            ("GET /admin/v1/key-clear-requests/unnotified", Need::Mail),
            ("POST /admin/v1/key-clear-requests/x/notified", Need::Mail),
            ("POST /admin/v1/key-clear-requests/x/approve", Need::Manage),
            ("GET /admin/v1/audit/verify", Need::Read),
            ("GET /admin/v1/audit/head", Need::Read),
            ("GET /admin/v1/whoami", Need::Own),
            ("GET /admin/v1/openapi.json", Need::Public),
            ("POST /admin/v1/openapi.json", Need::Manage),
            ("POST /admin/v1/sessions", Need::SignIn),
            ("DELETE /admin/v1/sessions/current", Need::Own),
        ];
        for (request, need) in needs {
            let (method, path) = request.split_once(' ').unwrap();
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(Need::of(&method, path), need, "{request}");
        }
        // Each need with roles it allows and roles it refuses.
        let check = |need: Need, allowed: &[Role], refused: &[Role]| {
            for &role in allowed {
                assert!(need.allows(role), "{need:?} refuses the {role} role");
            }
            for &role in refused {
                assert!(!need.allows(role), "{need:?} allows the {role} role");
            }
        };
        check(Need::Read, &[Role::Viewer], &[Role::Gateway]);
        check(Need::Manage, &[Role::Operator], &[Role::Viewer]);
        check(Need::Admin, &[Role::Admin], &[Role::Operator]);
        check(Need::Mail, &[Role::Gateway], &[Role::Viewer]);
        check(Need::Own, &[Role::Gateway], &[]);
        check(Need::SignIn, &[Role::Viewer], &[Role::Gateway]);
    }

    #[test]
    fn the_limiter_counts_per_peer_per_minute() {
        let limiter = FailureLimiter::default();
        let peer: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        let now = Utc::now();
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            assert!(!limiter.is_limited(peer, now));
            limiter.record_failure(peer, now);
        }
        assert!(limiter.is_limited(peer, now));
        assert!(!limiter.is_limited(other, now));
        assert!(!limiter.is_limited(peer, now + Duration::seconds(61)));
    }
}
