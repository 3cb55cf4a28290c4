//! Who is calling the admin API: token generation, the stored form of a token (its
//! SHA-256), what each role may do, the per-address limit on refused tokens, and the
//! admin API's token check that puts them together ([`require_token`]): it
//! authenticates each request, checks its role and audits each refusal.
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
use std::sync::Mutex;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, Duration, Utc};
use shared_proto::admin_api::{AuditAction, AuditEntry, AuditOutcome, Identity, Role};
use shared_proto::ErrorCode;

use crate::error::ApiError;
use crate::routes::with_conn;
use crate::state::AppState;
use crate::store::{audit, operators, sessions};
use crate::tokens::{token_hash, SESSION_PREFIX};

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

/// The method of an admin endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// The HTTP method.
    pub fn method(self) -> actix_web::http::Method {
        use actix_web::http::Method;
        match self {
            Self::Get => Method::GET,
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Patch => Method::PATCH,
            Self::Delete => Method::DELETE,
        }
    }

    /// The method's name, `GET`, `POST`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// The verb of a request's method (`HEAD` counts as `GET`: it reads the same).
    fn of(method: &actix_web::http::Method) -> Option<Self> {
        use actix_web::http::Method;
        [Self::Get, Self::Post, Self::Put, Self::Patch, Self::Delete]
            .into_iter()
            .find(|verb| verb.method() == method)
            .or((method == Method::HEAD).then_some(Self::Get))
    }
}

/// One admin endpoint and what calling it needs. The admin API's list of these
/// (`routes::admin::ENDPOINTS`) is the one place that decides a route's role: the
/// router is built from it, the token check looks requests up in it, and a test
/// compares it with the role table of docs/API.md.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub verb: Verb,
    /// The path under `/admin/v1`, as routed: `/servers/{id}`.
    pub path: &'static str,
    pub need: Need,
}

impl Endpoint {
    /// Whether a request for `rest` (the path under `/admin/v1`) by `verb` is this
    /// endpoint: literal segments equal, each `{…}` one non-empty segment.
    pub fn matches(&self, verb: Verb, rest: &str) -> bool {
        if verb != self.verb {
            return false;
        }
        let mut pattern = self.path.split('/');
        let mut actual = rest.split('/');
        loop {
            match (pattern.next(), actual.next()) {
                (None, None) => return true,
                (Some(p), Some(a)) if p.starts_with('{') && p.ends_with('}') && !a.is_empty() => {}
                (Some(p), Some(a)) if p == a => {}
                _ => return false,
            }
        }
    }
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The API document (`/admin/v1/openapi.json`): no token needed, since it only
    /// describes the API (the same document is published with the source).
    Public,
    /// Any authenticated caller: asking who one is, ending one's own console session;
    /// also a request no endpoint answers (its 404 goes only to a caller with a token).
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
    /// What a request by `method` for `path` (`/admin/v1/…`) needs: that of the first
    /// of `endpoints` it matches, in routing order (a literal segment registered before
    /// a `{…}` one wins, as in the router).
    pub fn of(endpoints: &[Endpoint], method: &actix_web::http::Method, path: &str) -> Self {
        let rest = path.strip_prefix("/admin/v1").unwrap_or(path);
        Verb::of(method)
            .and_then(|verb| endpoints.iter().find(|e| e.matches(verb, rest)))
            .map_or(Self::Own, |endpoint| endpoint.need)
    }

    /// The least role this needs, in the words of the role table of docs/API.md,
    /// derived from [`Need::allows`]: `viewer`, `operator` or `admin` (and every role
    /// above it), `gateway or operator` (the gateway identity too), `any role`, or
    /// `none (no token)`.
    pub fn least_role(self) -> &'static str {
        if self == Self::Public {
            return "none (no token)";
        }
        let person = [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|role| self.allows(*role));
        match (person, self.allows(Role::Gateway)) {
            (Some(Role::Viewer), true) => "any role",
            (Some(Role::Viewer), false) => "viewer",
            (Some(Role::Operator), true) => "gateway or operator",
            (Some(Role::Operator), false) => "operator",
            (Some(Role::Admin), true) => "gateway or admin",
            (Some(Role::Admin), false) => "admin",
            (_, true) => "gateway",
            (_, false) => "nobody",
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

/// A list of endpoints and what each needs, for [`require_token`] to look requests up in.
pub trait EndpointList {
    const ENDPOINTS: &'static [Endpoint];
}

/// Longest `Authorization` header looked at.
const MAX_AUTHORIZATION: usize = 600;

/// Authenticates every admin request against the operator accounts or the console
/// sessions (one lookup per request, so a revocation counts at once on every replica),
/// checks the role, and leaves the [`Identity`] and the [`Credential`] in the request
/// for the handlers and the audit log. `L` lists the endpoints with what each needs.
pub async fn require_token<L: EndpointList>(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Decided on the path the router matches (percent-escapes of plain characters
    // decoded), not the raw one: `/admin/v1/%6Fperators` is routed to `/operators`
    // and must need what that needs.
    let need = Need::of(L::ENDPOINTS, req.method(), req.match_info().as_str());
    if need == Need::Public {
        return next.call(req).await;
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::Internal(anyhow::anyhow!("admin API without its state")).into());
    };
    let limiter = req.app_data::<web::Data<FailureLimiter>>().cloned();
    let peer = req.peer_addr().map(|a| a.ip());
    let now = state.clock.now();
    if let (Some(limiter), Some(peer)) = (&limiter, peer) {
        if limiter.is_limited(peer, now) {
            return Err(ApiError::refused(
                ErrorCode::RateLimited,
                "too many refused tokens from this address: wait a minute",
            )
            .into());
        }
    }
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .filter(|h| h.len() <= MAX_AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let caller = match presented.clone() {
        Some(secret) if secret.starts_with(SESSION_PREFIX) => {
            with_conn(&state.db.read, move |conn| {
                sessions::authenticate(conn, now, &secret)
            })
            .await?
            .map(|(identity, secret_hash)| (identity, Credential::Session { secret_hash }))
        }
        Some(token) => with_conn(&state.db.read, move |conn| {
            operators::authenticate(conn, &token)
        })
        .await?
        .map(|identity| {
            let hash = token_hash(presented.as_deref().unwrap_or_default());
            (identity, Credential::Token { token_hash: hash })
        }),
        None => None,
    };
    let path = req.path().to_owned();
    let Some((identity, credential)) = caller else {
        let peer_text = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        log::warn!("admin request refused: missing or wrong token peer={peer_text} path={path}");
        if let (Some(limiter), Some(peer)) = (&limiter, peer) {
            limiter.record_failure(peer, now);
        }
        let what = if presented.is_some() {
            "a token that is not valid"
        } else {
            "no token"
        };
        let detail = format!("{what} from {peer_text} for {} {path}", req.method());
        audit_refusal(
            &state,
            now,
            "unauthenticated",
            AuditAction::AuthRefused,
            ErrorCode::Unauthorized,
            detail,
        )
        .await;
        return Err(ApiError::unauthorized(
            "this needs an operator token or a console session (missing, wrong, expired or \
             ended): send `Authorization: Bearer <token>`",
        )
        .into());
    };
    if !need.allows(identity.role) {
        log::warn!(
            "admin request forbidden: operator={} role={} path={path}",
            identity.name,
            identity.role
        );
        let detail = format!(
            "the {} role may not {} {path} ({})",
            identity.role,
            req.method(),
            need.describe()
        );
        // Known caller, insufficient role: its own action, so the log tells a probe
        // with stolen or guessed tokens apart from an account reaching past its role.
        audit_refusal(
            &state,
            now,
            &identity.name,
            AuditAction::AuthForbidden,
            ErrorCode::Forbidden,
            detail,
        )
        .await;
        return Err(ApiError::refused(
            ErrorCode::Forbidden,
            format!(
                "{} is {}: {}",
                identity.name,
                identity.role,
                need.describe()
            ),
        )
        .into());
    }
    req.extensions_mut().insert(identity);
    req.extensions_mut().insert(credential);
    next.call(req).await
}

/// Audits a request the token check refused: `auth.refused` for a caller not
/// authenticated (actor `unauthenticated`), `auth.forbidden` for an account whose role
/// may not do it (actor: the account). The refusal is answered even when the audit
/// write fails: it is logged then.
async fn audit_refusal(
    state: &AppState,
    now: chrono::DateTime<chrono::Utc>,
    actor: &str,
    action: AuditAction,
    code: ErrorCode,
    detail: String,
) {
    let entry = AuditEntry {
        at: now,
        actor: actor.to_owned(),
        action,
        server_id: None,
        outcome: AuditOutcome::Failed(code),
        detail,
    };
    if let Err(e) = with_conn(&state.db.write, move |conn| {
        audit::record_entry(conn, &entry)
    })
    .await
    {
        log::warn!("could not audit a refused request: {e}");
    }
}

/// A caller the token check let through, as a handler receives it inside its guard.
#[derive(Clone, Debug)]
pub struct Caller {
    pub identity: Identity,
    pub credential: Credential,
}

impl Caller {
    /// The account's name: the actor of the audit entries its request writes.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// The caller [`require_token`] left in the request, if its role allows `need`.
    /// Reaching a handler without one is a bug of the routing (the handler's guard
    /// and its endpoint's need disagree): an internal error, never a way in.
    fn of(req: &HttpRequest, need: Need) -> Result<Self, ApiError> {
        let extensions = req.extensions();
        let (Some(identity), Some(credential)) =
            (extensions.get::<Identity>(), extensions.get::<Credential>())
        else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "an admin route ran without authentication"
            )));
        };
        if !need.allows(identity.role) {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "an admin route needing {need:?} was reached by the {} role",
                identity.role
            )));
        }
        Ok(Self {
            identity: identity.clone(),
            credential: credential.clone(),
        })
    }
}

/// What an admin handler needs, stated as the type of its first argument: an
/// extractor that yields the authenticated [`Caller`] only when its role allows
/// [`Guard::NEED`]. The admin API's endpoint list names each endpoint's guard, takes
/// the need from it, and registers the handler through [`guarded`], so a handler
/// without a guard, or with another one than its endpoint's, does not compile.
pub trait Guard: FromRequest {
    const NEED: Need;
}

/// Declares a guard per need: a wrapper of the [`Caller`] (dereferencing to it).
macro_rules! guards {
    ($($(#[$doc:meta])* $name:ident => $need:ident;)*) => {$(
        $(#[$doc])*
        pub struct $name(pub Caller);

        impl Guard for $name {
            const NEED: Need = Need::$need;
        }

        impl std::ops::Deref for $name {
            type Target = Caller;
            fn deref(&self) -> &Caller {
                &self.0
            }
        }

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = std::future::Ready<Result<Self, ApiError>>;

            fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
                std::future::ready(Caller::of(req, Need::$need).map($name))
            }
        }
    )*};
}

guards! {
    /// Any authenticated caller ([`Need::Own`]): asking who one is, ending one's session.
    Anyone => Own;
    /// A person, any role but the gateway ([`Need::SignIn`]): opening a console session.
    Person => SignIn;
    /// Reading the registry ([`Need::Read`]).
    Viewer => Read;
    /// Changing the registry ([`Need::Manage`]).
    Manager => Manage;
    /// Managing operator accounts ([`Need::Admin`]).
    Admin => Admin;
    /// The mail gateway's work, which operators and admins may do too ([`Need::Mail`]).
    Gateway => Mail;
}

/// The guard of the one endpoint that needs no token ([`Need::Public`]): no caller.
pub struct Public;

impl Guard for Public {
    const NEED: Need = Need::Public;
}

impl FromRequest for Public {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(_: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(Public))
    }
}

/// The type of a handler's first argument (`Args` is the tuple of its arguments, as
/// actix-web's [`actix_web::Handler`] sees them).
pub trait FirstArgument {
    type First;
}

macro_rules! first_argument {
    ($($rest:ident),*) => {
        impl<A, $($rest),*> FirstArgument for (A, $($rest,)*) {
            type First = A;
        }
    };
}

first_argument!();
first_argument!(B);
first_argument!(B, C);
first_argument!(B, C, D);
first_argument!(B, C, D, E);
first_argument!(B, C, D, E, F);
first_argument!(B, C, D, E, F, G);

/// `handler`, if its first argument is the guard `G`; what the admin API's endpoint
/// list registers each handler through, with the guard it declares for the endpoint.
/// A handler that states no need, or another one, is refused by the compiler:
///
/// ```compile_fail
/// use main_server::auth::{guarded, Viewer};
/// async fn unguarded() -> &'static str { "open" }
/// guarded::<Viewer, _, _>(unguarded);
/// ```
///
/// ```compile_fail
/// use main_server::auth::{guarded, Manager, Viewer};
/// async fn change(_: Manager) -> &'static str { "changed" }
/// guarded::<Viewer, _, _>(change);
/// ```
///
/// ```
/// use main_server::auth::{guarded, Viewer};
/// async fn read(_: Viewer) -> &'static str { "read" }
/// guarded::<Viewer, _, _>(read);
/// ```
pub fn guarded<G, Args, F>(handler: F) -> F
where
    G: Guard,
    F: actix_web::Handler<Args>,
    Args: FirstArgument<First = G>,
{
    handler
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

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roles_get_what_they_need() {
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
    fn the_least_role_says_what_a_need_allows() {
        let needs = [
            Need::Public,
            Need::Own,
            Need::SignIn,
            Need::Read,
            Need::Manage,
            Need::Admin,
            Need::Mail,
        ];
        for need in needs {
            // The words name only the least person role, so each role must include
            // the one before it.
            assert!(
                !need.allows(Role::Viewer) || need.allows(Role::Operator),
                "{need:?}"
            );
            assert!(
                !need.allows(Role::Operator) || need.allows(Role::Admin),
                "{need:?}"
            );
            let words = need.least_role();
            let allowed: Vec<Role> = Role::ALL
                .iter()
                .copied()
                .filter(|role| need.allows(*role))
                .collect();
            let expected: &[Role] = match words {
                "none (no token)" | "any role" => Role::ALL,
                "viewer" => &[Role::Viewer, Role::Operator, Role::Admin],
                "operator" => &[Role::Operator, Role::Admin],
                "admin" => &[Role::Admin],
                "gateway or operator" => &[Role::Operator, Role::Admin, Role::Gateway],
                other => panic!("{need:?}: unexpected words {other}"),
            };
            assert_eq!(allowed, expected, "{need:?} is `{words}`");
        }
    }

    #[test]
    fn endpoint_paths_match_by_segment() {
        let endpoint = Endpoint {
            verb: Verb::Post,
            path: "/servers/{id}/licenses",
            need: Need::Manage,
        };
        assert!(endpoint.matches(Verb::Post, "/servers/abc/licenses"));
        assert!(!endpoint.matches(Verb::Get, "/servers/abc/licenses"));
        assert!(!endpoint.matches(Verb::Post, "/servers//licenses"));
        assert!(!endpoint.matches(Verb::Post, "/servers/a/b/licenses"));
        assert!(!endpoint.matches(Verb::Post, "/servers/abc/licenses/"));
        assert!(!endpoint.matches(Verb::Post, "/servers/abc"));
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
