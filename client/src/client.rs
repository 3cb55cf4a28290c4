//! The asynchronous client: requests to the license servers, tried in order on
//! connection failure and again with back-off, and the typed calls made of them
//! (check out with its queue wait, heartbeat, check in, features, public key).
//!
//! It runs on actix-rt (any tokio `LocalSet`): awc, the HTTP client the rest of the
//! workspace uses, is single-threaded. The blocking interface ([`crate::blocking`])
//! runs this same client on a thread of its own.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::http::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared_proto::{ApiError, ErrorCode};
use url::Url;

use crate::backoff::{wait_within, Backoff};
use crate::error::Error;
use crate::wire::{CheckOutBody, Feature, Grant, PublicKey, QueueTicket};

/// Who asks for seats: kept with every lease, in the server's report log, and matched
/// by its options file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The program (at most 256 characters).
    pub client: String,
    /// Who runs it (at most 64 printable characters without spaces).
    pub user: String,
    /// The machine it runs on (same limits as `user`).
    pub host: String,
}

impl Identity {
    /// `client` run by the current user (`USER`, else `LOGNAME`) on this machine (its
    /// host name); a name that cannot be found is `unknown`, as the server records it.
    pub fn from_environment(client: &str) -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_default();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        Self {
            client: client.chars().take(256).collect(),
            user: name_for_server(&user),
            host: name_for_server(&host),
        }
    }
}

/// A user or host name as the server accepts it: printable, no spaces, 64 characters.
fn name_for_server(name: &str) -> String {
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .take(64)
        .collect();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// What a check-out asks for beyond the feature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Wait up to this long in the feature's queue when no seat is free (at most an
    /// hour; whole seconds, rounded up). `None`: refused at once with `NO_SEATS`.
    pub wait: Option<Duration>,
    /// Borrow the seat for offline use for this many hours: no heartbeats, a signed
    /// token, and the seat stays out when the lease is dropped.
    pub borrow_hours: Option<u32>,
}

/// Everything a client is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The license servers, in the order they are tried (primary, then standby).
    pub servers: Vec<Url>,
    pub identity: Identity,
    pub backoff: Backoff,
    /// Longest a connection may take to open before the next server is tried.
    pub connect_timeout: Duration,
    /// Longest an answer may take (a queue wait adds the time the server holds it).
    pub request_timeout: Duration,
}

impl Settings {
    /// The default timeouts and back-off for `servers` (at least one, `http` or
    /// `https`).
    pub fn new(servers: Vec<Url>, identity: Identity) -> Result<Self, Error> {
        if servers.is_empty() {
            return Err(Error::Usage("no license server given".into()));
        }
        if let Some(url) = servers
            .iter()
            .find(|u| !matches!(u.scheme(), "http" | "https"))
        {
            return Err(Error::Usage(format!(
                "{url} is not a license server address: it must start with http:// or https://"
            )));
        }
        Ok(Self {
            servers,
            identity,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(15),
        })
    }
}

/// The asynchronous client. Cheap to clone (the clones share connections); not
/// `Send`: use it on the actix-rt runtime it was made on.
#[derive(Clone)]
pub struct Client {
    inner: Rc<Inner>,
}

struct Inner {
    settings: Settings,
    http: awc::Client,
    /// The highest pair epoch a grant carried (see [`Client::pair_epoch`]).
    pair_epoch: Cell<Option<i64>>,
}

/// A request, sent as often as it takes.
struct Request {
    method: Method,
    path: String,
    body: Option<Value>,
    timeout: Duration,
}

/// An HTTP answer of any status.
struct Reply {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<Duration>,
}

/// Most bytes read from an answer (the features list of a large server fits).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The highest pair epoch a server accepts from a client.
const MAX_PAIR_EPOCH: i64 = i64::MAX / 2;

/// The longest a server holds a queued request (its `--queue-poll-seconds` limit).
const MAX_HOLD: Duration = Duration::from_secs(300);

impl Client {
    /// A client of `servers` (tried in that order) with the default settings.
    pub fn new(servers: Vec<Url>, identity: Identity) -> Result<Self, Error> {
        Ok(Self::with_settings(Settings::new(servers, identity)?))
    }

    pub fn with_settings(settings: Settings) -> Self {
        let connector = awc::Connector::new().timeout(settings.connect_timeout);
        let http = awc::Client::builder()
            .connector(connector)
            // Each request sets its own timeout (a queue wait is held longer).
            .disable_timeout()
            .finish();
        Self {
            inner: Rc::new(Inner {
                settings,
                http,
                pair_epoch: Cell::new(None),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The highest pair epoch the servers' grants carried so far (`None`: no server
    /// of a pair has answered). It goes with every check-out and heartbeat, so that a
    /// primary reached by a client of its promoted standby stops issuing.
    pub fn pair_epoch(&self) -> Option<i64> {
        self.inner.pair_epoch.get()
    }

    /// Reads a grant and keeps its pair epoch when it is the highest seen. An epoch out
    /// of the servers' bounds is not kept (a server would refuse the requests sending it).
    fn grant(&self, server: usize, reply: &Reply) -> Result<Grant, Error> {
        let grant: Grant = self.parse(server, reply)?;
        if let Some(epoch) = grant
            .pair_epoch
            .filter(|e| (0..=MAX_PAIR_EPOCH).contains(e))
        {
            if self.pair_epoch().is_none_or(|seen| seen < epoch) {
                log::debug!("pair epoch {epoch} seen server={}", self.server(server));
                self.inner.pair_epoch.set(Some(epoch));
            }
        }
        Ok(grant)
    }

    /// The address of the server at `index` of the list.
    pub(crate) fn server(&self, index: usize) -> &str {
        self.inner
            .settings
            .servers
            .get(index)
            .map_or("(no server)", Url::as_str)
    }

    /// The check-out itself, queue wait included: the grant and the index of the server
    /// that gave it.
    pub(crate) async fn check_out_grant(
        &self,
        feature: &str,
        options: &Options,
    ) -> Result<(usize, Grant), Error> {
        let identity = &self.inner.settings.identity;
        let wait_ends = options.wait.map(|wait| Instant::now() + wait);
        loop {
            let wait = wait_ends.map(|end| end.saturating_duration_since(Instant::now()));
            let wait_seconds = wait.map(|w| w.as_secs() + u64::from(w.subsec_nanos() > 0));
            let body = CheckOutBody {
                feature,
                client: &identity.client,
                user: &identity.user,
                host: &identity.host,
                wait_seconds: wait_seconds.filter(|&s| s > 0),
                borrow_hours: options.borrow_hours,
                pair_epoch: self.pair_epoch(),
            };
            let request = Request {
                method: Method::POST,
                path: "/api/v1/leases".into(),
                body: Some(json_of(&body)?),
                timeout: self.held_timeout(wait.unwrap_or_default()),
            };
            let (server, reply) = self.request(&self.all_servers(), &request, None).await?;
            let ticket: QueueTicket = match reply.status {
                202 => self.parse(server, &reply)?,
                _ => return Ok((server, self.grant(server, &reply)?)),
            };
            match self.wait_in_queue(server, ticket).await {
                // The server no longer knows the ticket (it restarted): ask again for
                // what is left of the wait.
                Err(Error::Refused {
                    code: ErrorCode::NotFound,
                    ..
                }) if wait_ends.is_some_and(|end| end > Instant::now()) => continue,
                other => return other.map(|grant| (server, grant)),
            }
        }
    }

    /// Polls `server` with `ticket` until it answers with a seat or a refusal.
    async fn wait_in_queue(&self, server: usize, mut ticket: QueueTicket) -> Result<Grant, Error> {
        loop {
            log::debug!(
                "waiting for a seat position={} server={}",
                ticket.position,
                self.server(server)
            );
            let window = Duration::from_secs(ticket.poll_within_seconds.max(1));
            let request = Request {
                method: Method::GET,
                path: format!("/api/v1/queue/{}", ticket.ticket),
                body: None,
                timeout: self.held_timeout(window),
            };
            // The place is kept for two windows without a poll: retry within them.
            let deadline = Instant::now() + 2 * window;
            let (_, reply) = self.request(&[server], &request, Some(deadline)).await?;
            match reply.status {
                202 => ticket = self.parse(server, &reply)?,
                _ => return self.grant(server, &reply),
            }
        }
    }

    /// Renews lease `id` at the server that holds it, trying until `deadline` (when the
    /// lease runs out there anyway).
    pub(crate) async fn heartbeat(
        &self,
        server: usize,
        id: uuid::Uuid,
        deadline: Instant,
    ) -> Result<Grant, Error> {
        // The epoch rides in the query: the heartbeat has no body, and a server that
        // knows nothing of pairs ignores the query.
        let path = match self.pair_epoch() {
            Some(epoch) => format!("/api/v1/leases/{id}/heartbeat?pair_epoch={epoch}"),
            None => format!("/api/v1/leases/{id}/heartbeat"),
        };
        let request = Request {
            method: Method::POST,
            path,
            body: None,
            timeout: self.inner.settings.request_timeout,
        };
        let (_, reply) = self.request(&[server], &request, Some(deadline)).await?;
        self.grant(server, &reply)
    }

    /// Returns lease `id` to the server at `server`. A lease the server does not know
    /// holds no seat there: that counts as returned.
    pub(crate) async fn check_in_at(&self, server: usize, id: uuid::Uuid) -> Result<(), Error> {
        match self.check_in_request(&[server], id).await {
            Err(Error::Refused {
                code: ErrorCode::LeaseUnknown,
                ..
            }) => Ok(()),
            other => other,
        }
    }

    /// Returns lease `id` (from a script that kept only the id): asks each server in
    /// order until one knows the lease; `LEASE_UNKNOWN` when none does.
    pub async fn check_in(&self, id: uuid::Uuid) -> Result<(), Error> {
        let mut unknown = None;
        for server in self.all_servers() {
            match self.check_in_request(&[server], id).await {
                Err(
                    err @ Error::Refused {
                        code: ErrorCode::LeaseUnknown,
                        ..
                    },
                ) => {
                    unknown = Some(err);
                }
                // A server that did not answer may be the one holding it.
                Err(err @ Error::Unreachable { .. }) => {
                    unknown.get_or_insert(err);
                }
                other => return other,
            }
        }
        Err(unknown.unwrap_or(Error::Stopped))
    }

    async fn check_in_request(&self, servers: &[usize], id: uuid::Uuid) -> Result<(), Error> {
        let request = Request {
            method: Method::DELETE,
            path: format!("/api/v1/leases/{id}"),
            body: None,
            timeout: self.inner.settings.request_timeout,
        };
        // A check-in is tried briefly: a program that ends must not hang on a server
        // that is gone, and the seat comes back when the lease runs out anyway.
        let deadline = Instant::now() + self.inner.settings.request_timeout;
        let (server, reply) = self.request(servers, &request, Some(deadline)).await?;
        if reply.status == 204 || (200..300).contains(&reply.status) {
            Ok(())
        } else {
            Err(self.refusal(server, &reply))
        }
    }

    /// `GET /api/v1/features` of the first server that answers.
    pub async fn features(&self) -> Result<Vec<Feature>, Error> {
        let request = Request {
            method: Method::GET,
            path: "/api/v1/features".into(),
            body: None,
            timeout: self.inner.settings.request_timeout,
        };
        let (server, reply) = self.request(&self.all_servers(), &request, None).await?;
        self.parse(server, &reply)
    }

    /// The raw Ed25519 key of the first server that answers, which verifies its borrow
    /// tokens ([`crate::verify_borrow_token`]).
    pub async fn public_key(&self) -> Result<[u8; 32], Error> {
        use base64::Engine;
        let request = Request {
            method: Method::GET,
            path: "/api/v1/public-key".into(),
            body: None,
            timeout: self.inner.settings.request_timeout,
        };
        let (server, reply) = self.request(&self.all_servers(), &request, None).await?;
        let key: PublicKey = self.parse(server, &reply)?;
        let protocol = |detail: &str| Error::Protocol {
            server: self.server(server).to_string(),
            detail: detail.into(),
        };
        if key.algorithm != "Ed25519" {
            return Err(protocol("the public key is not an Ed25519 key"));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key.public_key.trim())
            .map_err(|_| protocol("the public key is not base64"))?;
        raw.try_into()
            .map_err(|_| protocol("the public key is not 32 bytes long"))
    }

    fn all_servers(&self) -> Vec<usize> {
        (0..self.inner.settings.servers.len()).collect()
    }

    /// The timeout of a request the server may hold for up to `hold`.
    fn held_timeout(&self, hold: Duration) -> Duration {
        self.inner.settings.request_timeout + hold.min(MAX_HOLD)
    }

    /// Sends `request` to `servers` in order until one answers; a round in which none
    /// answered, or one answered with a temporary failure (5xx), is tried again after a
    /// back-off, until `deadline` (default: the back-off's `give_up_after`). Returns
    /// the index of the server that answered and its answer (2xx, or a refusal as an
    /// error).
    async fn request(
        &self,
        servers: &[usize],
        request: &Request,
        deadline: Option<Instant>,
    ) -> Result<(usize, Reply), Error> {
        let backoff = self.inner.settings.backoff;
        let deadline = deadline.unwrap_or_else(|| Instant::now() + backoff.give_up_after);
        let mut last = String::new();
        for attempt in 0u32.. {
            let mut retry_after = None;
            for &server in servers {
                match self.send_once(server, request).await {
                    Ok(reply) if reply.status >= 500 => {
                        last = self.refusal(server, &reply).to_string();
                        retry_after = reply.retry_after;
                        // A server that answers is up: wait for it rather than moving
                        // the client to the standby.
                        break;
                    }
                    Ok(reply) if (200..300).contains(&reply.status) => return Ok((server, reply)),
                    Ok(reply) => {
                        let refusal = self.refusal(server, &reply);
                        // A server of a pair that does not issue now (a standby not
                        // promoted, a primary whose standby was): the next one may.
                        if refusal.is_other_server_turn() {
                            log::debug!(
                                "not this server's turn server={} {refusal}",
                                self.server(server)
                            );
                            last = refusal.to_string();
                            continue;
                        }
                        return Err(refusal);
                    }
                    Err(cause) => {
                        log::debug!("no answer server={} {cause}", self.server(server));
                        last = format!("{}: {cause}", self.server(server));
                    }
                }
            }
            // Retry-After is a floor, and the jitter is added on top of it so that the
            // clients it was sent to do not all come back at that same second.
            let delay = retry_after.unwrap_or_default().min(backoff.cap) + backoff.delay(attempt);
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(delay) = wait_within(delay, remaining) else {
                break;
            };
            tokio::time::sleep(delay).await;
        }
        let tried: Vec<String> = servers
            .iter()
            .map(|&i| self.server(i).to_string())
            .collect();
        Err(Error::Unreachable {
            tried: tried.join(", "),
            last,
        })
    }

    /// One attempt at one server: its answer, or why there was none.
    async fn send_once(&self, server: usize, request: &Request) -> Result<Reply, String> {
        let base = self.server(server).trim_end_matches('/');
        let url = format!("{base}{}", request.path);
        let builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .timeout(request.timeout);
        let sent = match &request.body {
            Some(body) => builder.send_json(body).await,
            None => builder.send().await,
        };
        let mut response = sent.map_err(|err| transport_text(&err))?;
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .body()
            .limit(MAX_ANSWER)
            .await
            .map_err(|err| format!("the answer was cut off ({err})"))?;
        Ok(Reply {
            status: response.status().as_u16(),
            body: body.to_vec(),
            retry_after,
        })
    }

    fn parse<T: DeserializeOwned>(&self, server: usize, reply: &Reply) -> Result<T, Error> {
        serde_json::from_slice(&reply.body).map_err(|err| Error::Protocol {
            server: self.server(server).to_string(),
            detail: format!("status {}: {err}", reply.status),
        })
    }

    /// The refusal an error answer carries.
    fn refusal(&self, server: usize, reply: &Reply) -> Error {
        let server = self.server(server).to_string();
        match serde_json::from_slice::<ApiError>(&reply.body) {
            Ok(ApiError { code, message }) => Error::Refused {
                code,
                message,
                server,
            },
            Err(_) => Error::Protocol {
                server,
                detail: format!("status {} without an error code", reply.status),
            },
        }
    }
}

fn json_of(body: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(body)
        .map_err(|err| Error::Usage(format!("cannot encode a request: {err}")))
}

/// Why a request got no answer, in words (awc's errors name its internals).
fn transport_text(err: &awc::error::SendRequestError) -> String {
    use awc::error::{ConnectError, SendRequestError};
    match err {
        SendRequestError::Connect(ConnectError::Io(io)) => format!("cannot connect: {io}"),
        SendRequestError::Connect(ConnectError::Timeout) => "connecting timed out".into(),
        SendRequestError::Connect(ConnectError::Resolver(_) | ConnectError::NoRecords) => {
            "the host name was not found".into()
        }
        SendRequestError::Connect(other) => format!("cannot connect: {other}"),
        SendRequestError::Timeout => "no answer in time".into(),
        SendRequestError::Send(io) => format!("the connection broke: {io}"),
        SendRequestError::Response(_) => "the connection broke before an answer came".into(),
        other => format!("the request failed: {other}"),
    }
}
