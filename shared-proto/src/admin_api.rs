//! JSON bodies of the main server's admin API (docs/API.md), shared by the server,
//! its admin CLI and the mail gateway so that they cannot drift apart.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::error::ErrorCode;

crate::text_enum! {
    /// How a local server synchronized.
    pub enum SyncChannel {
        /// Directly over HTTPS.
        Internet => "internet",
        /// Sync data mailed to licensing@, answered through the mail gateway.
        Email => "email",
        /// Sync data uploaded by a signed-in contact in the customer portal.
        Portal => "portal",
    }
}

impl SyncChannel {
    /// Whether sync data comes as a file a person carries (mailed or uploaded): it may
    /// be days old, and the same file presented again gets the license file it was
    /// answered with, not a refusal.
    pub fn carries_files(self) -> bool {
        matches!(self, SyncChannel::Email | SyncChannel::Portal)
    }
}

crate::text_enum! {
    /// Where a key-clear request stands.
    pub enum KeyClearStatus {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
    }
}

crate::text_enum! {
    /// Whether a key-clear request's sender was proved by the receiving mail server's
    /// `Authentication-Results` (SPF, DKIM, DMARC), as the mail gateway read it.
    pub enum SenderAuth {
        /// DMARC passed, or (with no DMARC result) SPF or DKIM passed for the From domain.
        Authenticated => "authenticated",
        /// The trusted header was there and does not prove the From address.
        NotAuthenticated => "not authenticated",
        /// No trusted header to read: the gateway trusts none (no authserv-id set), the
        /// mail server added none, or the request was recorded by hand.
        NotChecked => "not checked",
    }
}

impl Default for SenderAuth {
    /// What a request recorded without a check (by hand, or by an older gateway) is.
    fn default() -> Self {
        SenderAuth::NotChecked
    }
}

impl SenderAuth {
    /// The verdict with what it rests on, for people: `authenticated (dmarc=pass)`,
    /// `not authenticated: spf=fail, dmarc=fail`, `not checked: …`.
    pub fn describe(self, detail: &str) -> String {
        match (self, detail.trim()) {
            (_, "") => self.as_str().to_owned(),
            (SenderAuth::Authenticated, detail) => format!("authenticated ({detail})"),
            (_, detail) => format!("{self}: {detail}"),
        }
    }
}

crate::text_enum! {
    /// What a customer's possible copies do to their syncs (README of the main server,
    /// "Copies of one installation").
    pub enum CopyPolicy {
        /// The id is marked and shown; its syncs are still answered (the default).
        Warn => "warn",
        /// The marked id's syncs are refused with `POSSIBLE_COPY` until an operator
        /// dismisses the mark.
        Refuse => "refuse",
    }
}

crate::text_enum! {
    /// What an audit entry records.
    pub enum AuditAction {
        /// A sync attempt, by either channel.
        Sync => "sync",
        CustomerCreate => "customer.create",
        CustomerAddEmail => "customer.add_email",
        /// An operator removed a contact address of a customer.
        CustomerRemoveEmail => "customer.remove_email",
        /// An operator renamed a customer.
        CustomerRename => "customer.rename",
        ServerCreate => "server.create",
        LicenseAdd => "license.add",
        LicenseChange => "license.change",
        LicenseRemove => "license.remove",
        /// An operator cleared the key pair of an id (directly or by approving a request).
        KeyClear => "key.clear",
        KeyClearRequestCreate => "key_clear_request.create",
        KeyClearRequestApprove => "key_clear_request.approve",
        KeyClearRequestReject => "key_clear_request.reject",
        /// An operator switched a customer's reminder mails on or off.
        CustomerReminders => "customer.reminders",
        /// The mail gateway took a reminder mail into its outgoing spool.
        ReminderHanded => "reminder.handed",
        /// An admin added an operator account (or service identity).
        OperatorAdd => "operator.add",
        OperatorRevoke => "operator.revoke",
        OperatorRotate => "operator.rotate",
        /// The admin API refused a missing, wrong or revoked token (the caller is not
        /// known: the actor is `unauthenticated`).
        AuthRefused => "auth.refused",
        /// The admin API knew the caller but refused the request: the account's role
        /// may not do it (the actor is the account, the outcome `FORBIDDEN`).
        AuthForbidden => "auth.forbidden",
        /// An operator signed in to the web console (a console session started).
        SessionStart => "session.start",
        /// An operator signed out of the web console (the session was ended).
        SessionEnd => "session.end",
        /// The mail gateway took a customer portal sign-in link into its outgoing
        /// spool (the actor is the gateway; the detail names the contact).
        PortalLinkHanded => "portal.link_handed",
        /// A registered contact signed in to the customer portal with a mailed link
        /// (the actor is the contact's address).
        PortalSignIn => "portal.sign_in",
        /// A contact signed out of the customer portal.
        PortalSignOut => "portal.sign_out",
        /// An operator retired an id: kept in the registry, its syncs refused.
        ServerRetire => "server.retire",
        /// An operator moved an id to another customer.
        ServerMove => "server.move",
        /// Solme saw two sync histories for one key pair and marked the id a possible
        /// copy (the detail carries the evidence; the actor is the sync's).
        PossibleCopy => "server.possible_copy",
        /// An operator looked at a possible copy and cleared the mark.
        PossibleCopyDismiss => "server.possible_copy_dismiss",
        /// An operator set what a customer's possible copies do (warn or refuse).
        CustomerCopyPolicy => "customer.copy_policy",
        /// A local server's installation receipt was recorded (uploaded in the portal
        /// or mailed): the id holds that license file.
        ReceiptRecorded => "server.receipt",
        /// A sync request of the id's bound key pair named a standby server that was
        /// not the one registered (the first, or another): Solme registered it (the
        /// detail carries its fingerprint and the previous one).
        StandbyRegistered => "server.standby_registered",
        /// An operator set how many days a promoted standby of the id may issue seats.
        FailoverPeriodSet => "server.failover_period_set",
    }
}

crate::text_enum! {
    /// Which reminder of the 366-day limit: days before it, or once it has passed.
    /// Declared from the least to the most urgent (`ALL` keeps that order).
    pub enum ReminderThreshold {
        ThirtyDays => "30d",
        SevenDays => "7d",
        OneDay => "1d",
        Passed => "passed",
    }
}

impl ReminderThreshold {
    /// Milliseconds before valid-until from which this reminder is due (`Passed`: due
    /// once valid-until itself is behind, i.e. strictly after it).
    pub fn lead_ms(self) -> i64 {
        const DAY_MS: i64 = 86_400_000;
        match self {
            Self::ThirtyDays => 30 * DAY_MS,
            Self::SevenDays => 7 * DAY_MS,
            Self::OneDay => DAY_MS,
            Self::Passed => 0,
        }
    }

    /// The most urgent reminder due at `now_ms` for a validity ending at
    /// `valid_until_ms`, if any.
    pub fn most_urgent(valid_until_ms: i64, now_ms: i64) -> Option<ReminderThreshold> {
        Self::ALL
            .iter()
            .rev()
            .copied()
            .find(|threshold| match threshold {
                Self::Passed => now_ms > valid_until_ms,
                other => now_ms >= valid_until_ms - other.lead_ms(),
            })
    }

    /// Position in [`Self::ALL`]: a larger one is more urgent.
    pub fn urgency(self) -> usize {
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

crate::text_enum! {
    /// Where a reminder stands.
    pub enum ReminderState {
        /// Recorded as due; the mail gateway has not taken it yet.
        Pending => "pending",
        /// The mail gateway wrote the mail into its outgoing spool.
        Handed => "handed",
        /// No longer due before it went out: the id synchronized (a new validity), a
        /// more urgent reminder replaced it, or the customer's reminders were switched off.
        Cancelled => "cancelled",
    }
}

crate::text_enum! {
    /// What an authenticated caller of the admin API may do (each role includes the
    /// one before it, except `gateway`, which may call only the mail endpoints).
    pub enum Role {
        /// Reads everything.
        Viewer => "viewer",
        /// Also manages customers, ids and licenses, clears key pairs and decides
        /// key-clear requests.
        Operator => "operator",
        /// Also manages operators.
        Admin => "admin",
        /// The mail gateway's service identity: the mail endpoints only.
        Gateway => "gateway",
    }
}

/// `POST /admin/v1/operators`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewOperator {
    /// 1 to 64 letters, digits, `.`, `_`, `-` or `@`; never reused.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._@-]{1,64}$"))]
    pub name: String,
    pub role: Role,
}

/// An operator account as listed (never with its token).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OperatorAccount {
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer of adding or rotating an operator: the token, shown this once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    pub name: String,
    pub role: Role,
    pub token: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// `GET /admin/v1/whoami`: the identity the presented token belongs to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

/// `POST /admin/v1/sessions`: a console session opened with a personal token. The
/// secret is sent as `Authorization: Bearer <session>` until `expires_at` or sign-out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Serialize, Deserialize)]
pub struct ConsoleSession {
    pub name: String,
    pub role: Role,
    pub session: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How an audited attempt ended: `OK`, or the code it was refused or failed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    Ok,
    Failed(ErrorCode),
}

impl AuditOutcome {
    /// The stored and shown form: `OK` or the error code (`ID_IN_USE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Failed(code) => code.as_str(),
        }
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditOutcome {
    type Err = crate::text_enum::UnknownWord;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "OK" {
            return Ok(Self::Ok);
        }
        ErrorCode::ALL
            .iter()
            .find(|code| code.as_str() == text)
            .map(|code| Self::Failed(*code))
            .ok_or_else(|| {
                crate::text_enum::UnknownWord::new(
                    text,
                    std::iter::once("OK").chain(ErrorCode::ALL.iter().map(|c| c.as_str())),
                )
            })
    }
}

impl Serialize for AuditOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditOutcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewCustomer {
    /// One line.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    #[serde(default)]
    pub emails: Vec<String>,
    /// Another customer already has this name (compared ignoring case): add this one
    /// anyway. Without it such a request is refused with `CONFIRMATION_REQUIRED`.
    #[serde(default)]
    pub confirm_duplicate_name: bool,
}

/// `PATCH /admin/v1/customers/{id}`: a new name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomerRename {
    /// One line.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// Another customer already has this name (compared ignoring case): rename anyway.
    #[serde(default)]
    pub confirm_duplicate_name: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewEmail {
    pub email: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Customer {
    pub id: Uuid,
    pub name: String,
    pub emails: Vec<String>,
    /// Whether the contacts get reminder mails before the 366-day limit (default on).
    #[serde(default = "switched_on")]
    pub reminders_enabled: bool,
    /// What a possible copy of one of the customer's ids does to its syncs.
    #[serde(default = "CopyPolicy::default_policy")]
    pub copy_policy: CopyPolicy,
}

fn switched_on() -> bool {
    true
}

/// `PUT /admin/v1/customers/{id}/reminders`: switch reminder mails on or off.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemindersSwitch {
    pub enabled: bool,
}

/// A reminder the mail gateway is to send (`POST /admin/v1/reminders/claim`), with
/// everything the mail says.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DueReminder {
    pub id: Uuid,
    pub server_id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: String,
    /// Every registered contact of the customer: each gets the mail.
    pub contacts: Vec<String>,
    pub threshold: ReminderThreshold,
    /// End of the 366-day window this reminder is about.
    pub valid_until: DateTime<Utc>,
    /// Days left until `valid_until` at the claim (negative once passed).
    pub days_left: i64,
}

/// A customer portal sign-in link the mail gateway is to mail
/// (`POST /admin/v1/portal-links/claim`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DuePortalLink {
    pub id: Uuid,
    /// The registered contact who asked for it: the only recipient.
    pub to: String,
    pub customer_name: String,
    /// The link's path and query on the portal's public address
    /// (`/portal/link?token=…`): the gateway puts its configured portal address in
    /// front. It holds the single-use secret: never log it.
    pub path: String,
    /// When the link stops working (15 minutes after it was asked for).
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for DuePortalLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuePortalLink")
            .field("id", &self.id)
            .field("to", &self.to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A recorded reminder (`GET /admin/v1/customers/{id}/reminders`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reminder {
    pub id: Uuid,
    pub server_id: Uuid,
    pub threshold: ReminderThreshold,
    pub valid_until: DateTime<Utc>,
    pub state: ReminderState,
    pub created_at: DateTime<Utc>,
    pub handed_at: Option<DateTime<Utc>>,
    /// The addresses it went to (recorded when handed over).
    pub recipients: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewServer {
    pub customer_id: Uuid,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct License {
    pub id: Uuid,
    pub feature: String,
    pub seats: u32,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    /// Longest borrow for offline use, in hours; null: not borrowable.
    #[serde(default)]
    pub max_borrow_hours: Option<u32>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Server {
    pub server_id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: String,
    /// Moves on every license change.
    pub revision: i64,
    /// Sequence of the last license file issued (0 = none yet).
    pub sequence: i64,
    pub bound_fingerprint: Option<String>,
    pub bound_at: Option<DateTime<Utc>>,
    /// When the id was retired (its syncs refused with `SERVER_RETIRED`); null while
    /// in service. A retired id is kept and never allocated again.
    #[serde(default)]
    pub retired_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_sync_channel: Option<SyncChannel>,
    /// End of the 366-day window of the last license file.
    pub valid_until: Option<DateTime<Utc>>,
    /// Whole days until `valid_until` (negative when overdue; null when never synced).
    pub days_until_due: Option<i64>,
    pub licenses: Vec<License>,
    /// Since when Solme suspects two installations share the id's key pair (a copied
    /// data directory); null when not marked. The evidence is in the audit log
    /// (`server.possible_copy`); `POST …/possible-copy/dismiss` clears it.
    #[serde(default)]
    pub possible_copy_since: Option<DateTime<Utc>>,
    /// What a possible copy does to the id's syncs: the customer's policy.
    #[serde(default = "CopyPolicy::default_policy")]
    pub copy_policy: CopyPolicy,
    /// Whether the local server holds the newest revision (`GET /servers/{id}` only;
    /// absent from lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<Holds>,
    /// When the id is marked a possible copy: why, in words, and the requests that
    /// show it (`GET /servers/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub possible_copy: Option<PossibleCopy>,
    /// Fingerprint of the standby server the id's key pair last named in a sync
    /// request (kept when later requests name none: the last one registered); null
    /// when none was, or since the key pair was cleared.
    #[serde(default)]
    pub standby_fingerprint: Option<String>,
    /// When that standby was registered (first named, or named instead of another).
    #[serde(default)]
    pub standby_registered_at: Option<DateTime<Utc>>,
    /// Days a promoted standby of the id may issue seats while its primary is down
    /// (1–90, default 14): carried in the license files that name a standby.
    #[serde(default = "default_failover_days")]
    pub failover_days: u32,
}

/// The failover period of an id nobody set one for.
pub const DEFAULT_FAILOVER_DAYS: u32 = 14;
/// The longest failover period Solme grants.
pub const MAX_FAILOVER_DAYS: u32 = 90;

fn default_failover_days() -> u32 {
    DEFAULT_FAILOVER_DAYS
}

/// `PUT /admin/v1/servers/{id}/failover-period`: how many days (1–90) a promoted
/// standby of the id may issue seats while its primary is down.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverPeriodSetting {
    pub days: u32,
}

/// Why an id is marked a possible copy: its key pair's newest requests, ordered by
/// when they were made, some going back (a request counter not above the one before,
/// or an older license file held).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PossibleCopy {
    pub since: DateTime<Utc>,
    /// The mark in words, for the operator deciding it.
    pub explanation: String,
    /// The newest requests of the bound key pair (at most 8), oldest first.
    pub requests: Vec<SeenRequest>,
}

/// One sync request as the history of copies keeps it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeenRequest {
    /// When the installation made it (its own clock).
    pub made_at: DateTime<Utc>,
    pub channel: SyncChannel,
    /// The installation's count of its requests (null: not sent).
    pub request_counter: Option<i64>,
    /// The license file it held (null: none, or not said).
    pub held_sequence: Option<i64>,
    /// The license file it was answered with.
    pub answered_sequence: i64,
    /// Whether it went back against the request made before it.
    pub went_back: bool,
}

/// What the id's local server holds against what Solme has: the revision now, the
/// revision of the last license file issued, and what the installation last said it
/// held (`held_sequence` of its newest request).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holds {
    /// The id's license revision now (moves with every license change).
    pub revision: i64,
    /// The revision the last license file issued carries; null when none was issued,
    /// or it was issued before Solme recorded it.
    pub issued_revision: Option<i64>,
    /// Sequence of the last license file issued (0: none yet).
    pub issued_sequence: i64,
    /// How the last file went out: by the sync's channel (`https` hands it over in
    /// the answer; `mail` and `portal` leave the import to a person).
    pub issued_via: Option<SyncChannel>,
    /// The license file the installation said it held in its newest request (null:
    /// none held, or not said).
    pub held_sequence: Option<i64>,
    /// When that newest request was made.
    pub held_reported_at: Option<DateTime<Utc>>,
    pub state: HoldsState,
    /// The state in words, e.g. "revision 7, the server holds 5: changes not yet
    /// synced".
    pub summary: String,
}

crate::text_enum! {
    /// Whether the local server has the newest revision.
    pub enum HoldsState {
        /// No license file was issued yet.
        NeverSynced => "never_synced",
        /// The last file issued carries the revision now, and the server confirmed
        /// holding it (a receipt, or a later sync request).
        UpToDate => "up_to_date",
        /// The last file issued carries the revision now, not confirmed installed yet:
        /// handed over in the answer to a sync over the internet, or sent by email or
        /// the portal for a person to import.
        IssuedNotConfirmed => "issued_not_confirmed",
        /// Licenses changed after the last file was issued: the next sync brings them.
        ChangesNotSynced => "changes_not_synced",
        /// The revision of the last file is not recorded.
        Unknown => "unknown",
    }
}

/// `GET /admin/v1/customers/{id}`: one customer with its ids.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub customer: Customer,
    /// The customer's license server ids (retired ones included), by id: the first
    /// 100 of `servers_total`; `GET /servers?customer_id=…&after=…` pages on.
    pub servers: Vec<Server>,
    pub servers_total: i64,
}

/// `GET /admin/v1/clock`: the time the main server runs on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerClock {
    /// The server's time now (the simulated one when it runs on a simulated clock).
    pub now: DateTime<Utc>,
    /// Whether the server runs on a simulated clock (a test or demonstration
    /// installation): every date it writes follows that clock.
    pub simulated: bool,
    /// How far the server's clock is from the machine's, in seconds (0 when real).
    pub offset_seconds: i64,
}

impl CopyPolicy {
    /// `warn`: a possible copy is shown, its syncs still answered.
    pub const fn default_policy() -> Self {
        Self::Warn
    }
}

/// `PUT /admin/v1/customers/{id}/copy-policy`: what a possible copy of one of the
/// customer's ids does to its syncs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyPolicySetting {
    pub policy: CopyPolicy,
}

/// The customer's copy policy, as set.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomerCopyPolicy {
    pub customer_id: Uuid,
    pub policy: CopyPolicy,
}

/// `POST /admin/v1/servers/{id}/possible-copy/dismiss`: an operator's decision that a
/// possible copy is none (a restored backup, a lost mail) or has been dealt with.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PossibleCopyDismissal {
    /// Why, for the audit log (at most 2000 bytes, one line).
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a dismissal did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PossibleCopyDismissed {
    pub server_id: Uuid,
    /// Since when the id was marked; null when it was not marked (nothing changed).
    pub was_marked_since: Option<DateTime<Utc>>,
}

/// `POST /admin/v1/servers/{id}/retire`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerRetire {
    /// One line, recorded in the audit log.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2_000))]
    pub reason: String,
    /// Retire it although a key pair is bound (an installation may still be using
    /// the id). Without it such a request is refused with `CONFIRMATION_REQUIRED`.
    #[serde(default)]
    pub force: bool,
}

/// `POST /admin/v1/servers/{id}/move`: the customer the id belongs to from now on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerMove {
    pub customer_id: Uuid,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewLicense {
    /// 1 to 128 letters, digits, `-`, `_` and `.` (the name client programs ask for).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$")
    )]
    pub feature: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub seats: u32,
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Longest borrow for offline use, in hours (at most 366 days); absent: not borrowable.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 8_784))]
    pub max_borrow_hours: Option<u32>,
    /// `valid_until` is already past: add the license anyway (e.g. to record an ended
    /// contract). Without it such a request is refused with `CONFIRMATION_REQUIRED`.
    #[serde(default)]
    pub confirm_ended: bool,
}

/// PATCH body: an absent field keeps its value, `null` clears a date or the borrow limit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LicenseChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub seats: Option<u32>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_from: Option<Option<DateTime<Utc>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_until: Option<Option<DateTime<Utc>>>,
    /// Longest borrow for offline use, in hours (1 to 8784); `null`: not borrowable.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 8_784))]
    pub max_borrow_hours: Option<Option<u32>>,
    /// The new `valid_until` is already past: end the license anyway. Without it such
    /// a change is refused with `CONFIRMATION_REQUIRED`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm_ended: bool,
}

/// Tells "field present with null" (`Some(None)`) from "field absent" (`None`, by
/// `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyClear {
    /// One line, recorded in the audit log.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2_000))]
    pub reason: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailSync {
    pub sender: String,
    pub sync_data: String,
}

/// A successful sync: the license file and what it grants. The mail sync answers with it
/// (the gateway's reply is made from it); the main server also keeps it, to answer the
/// same email request again the same way.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncAnswer {
    pub license_file: String,
    pub server_id: Uuid,
    pub valid_until: DateTime<Utc>,
    pub licenses: Vec<License>,
    /// The usage summary the sync data carried (for the reply's usage line; answers
    /// kept before it existed have none).
    #[serde(default)]
    pub usage: Vec<crate::messages::FeatureUsage>,
}

/// The usage summary one accepted sync carried (`GET /admin/v1/servers/{id}/usage`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncUsage {
    /// The sequence number of the license file the sync was answered with.
    pub sequence: i64,
    pub synced_at: DateTime<Utc>,
    pub channel: SyncChannel,
    /// Start of the summary's period (the previous sync), when the local server said.
    pub usage_since: Option<DateTime<Utc>>,
    pub features: Vec<crate::messages::FeatureUsage>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewKeyClearRequest {
    pub server_id: Uuid,
    pub sender: String,
    pub message_id: String,
    #[serde(default)]
    pub text: String,
    /// The gateway's verdict on the sender (absent: `not checked`).
    #[serde(default)]
    pub sender_auth: SenderAuth,
    /// What the verdict rests on, e.g. `spf=fail, dmarc=fail` (at most 500 characters).
    #[serde(default)]
    pub sender_auth_detail: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyClearRequest {
    pub id: Uuid,
    pub server_id: Uuid,
    pub sender: String,
    pub message_id: String,
    pub text: String,
    /// Whether the sender was authenticated; approving needs an override otherwise.
    #[serde(default)]
    pub sender_auth: SenderAuth,
    #[serde(default)]
    pub sender_auth_detail: String,
    pub status: KeyClearStatus,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub operator: Option<String>,
    pub reason: Option<String>,
}

/// `GET /admin/v1/key-clear-requests/{id}`: the request with what an operator needs to
/// decide it: the id's customer, its key pair now, its last sync, how long the bound
/// installation keeps issuing after a clear, and the customer's other contacts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyClearRequestDetail {
    #[serde(flatten)]
    pub request: KeyClearRequest,
    pub customer_id: Uuid,
    pub customer_name: String,
    /// Fingerprint of the key pair bound now (null: none, e.g. already cleared).
    pub bound_fingerprint: Option<String>,
    pub bound_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_sync_channel: Option<SyncChannel>,
    /// Until when the installation holding the last license file keeps issuing seats,
    /// with or without a clear (a clear stops its syncs, not its file).
    pub valid_until: Option<DateTime<Utc>>,
    /// Whole days until `valid_until` (negative once passed).
    pub days_until_due: Option<i64>,
    /// Since when Solme suspects a copy of the installation (null: not marked).
    pub possible_copy_since: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    /// The customer's registered contacts other than the sender: whom to ask whether
    /// the request is genuine (every contact is told of the decision).
    pub other_contacts: Vec<String>,
}

/// A decided key-clear request whose notice is due
/// (`GET /admin/v1/key-clear-requests/unnotified`), with everyone to tell.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DecidedKeyClearRequest {
    #[serde(flatten)]
    pub request: KeyClearRequest,
    /// Every registered contact of the customer owning the id: each gets the notice,
    /// so that a forged request cannot pass unnoticed.
    #[serde(default)]
    pub contacts: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Decision {
    #[serde(default)]
    pub reason: Option<String>,
    /// Approve although the sender was not authenticated (audited).
    #[serde(default)]
    pub override_unauthenticated: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub server_id: Option<Uuid>,
    pub outcome: AuditOutcome,
    pub detail: String,
}

crate::text_enum! {
    /// What `GET /admin/v1/audit/verify` found wrong with the audit chain.
    pub enum AuditProblemKind {
        /// A sealed entry's content no longer matches its hash (edited, or forged
        /// with a wrong hash).
        Changed => "changed",
        /// Positions are missing: entries were deleted.
        Removed => "removed",
        /// An entry sits where the chain has no place for it: the entry after it still
        /// links to the one before it.
        Inserted => "inserted",
        /// An entry does not link to the one before it (entries reordered or rewritten).
        Unlinked => "unlinked",
        /// An entry is dated well before the entry sealed ahead of it: written into the
        /// database outside the server and sealed afterwards.
        Backdated => "backdated",
        /// The saved head's entry is gone or has another hash: the chain was rewritten.
        Rewritten => "rewritten",
    }
}

/// The first problem found, naming the entry.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProblem {
    pub kind: AuditProblemKind,
    /// Position in the chain of the entry named.
    pub chain_seq: u64,
    /// Its row id in `audit_log`, when the entry is still there.
    pub entry_id: Option<i64>,
    /// The finding in plain words.
    pub message: String,
}

/// The answer of `GET /admin/v1/audit/verify`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    /// Whether every check passed.
    pub intact: bool,
    /// Sealed entries walked (up to the first problem).
    pub checked: u64,
    /// The chain's newest position and hash when the walk ended (0 and 64 zeros for
    /// the empty chain).
    pub head_seq: u64,
    pub head_hash: String,
    /// Entries written but not sealed yet (they are sealed within seconds).
    pub unsealed: u64,
    /// The saved head that was checked (given as `?head=`), when one was.
    pub saved_head: Option<crate::audit_head::AuditHead>,
    pub problem: Option<AuditProblem>,
}

/// The answer of `GET /admin/v1/audit/head`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAuditHead {
    pub head: crate::audit_head::AuditHead,
    /// The head signed with Solme's key (`solme-audit-head-v1.…`): the text to keep.
    pub signed: String,
}

/// `DATA_DIR/listening.json` of a running `serve`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Listening {
    pub sync: Vec<std::net::SocketAddr>,
    /// Written as the base URL, e.g. `"https://127.0.0.1:8081"`.
    pub admin: AdminUrl,
}

/// Where the admin API listens and whether it speaks TLS: `https://ADDR`, or
/// `http://ADDR` for a server started with `--admin-plain-http`. A bare `ADDR` (a
/// listening.json written before the admin API had TLS) reads as `http://ADDR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdminUrl {
    pub tls: bool,
    pub addr: std::net::SocketAddr,
}

impl std::fmt::Display for AdminUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.addr)
    }
}

impl std::str::FromStr for AdminUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (tls, rest) = match text.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            Some((scheme, _)) => return Err(format!("unknown admin URL scheme {scheme:?}")),
            None => (false, text),
        };
        let addr = rest
            .trim_end_matches('/')
            .parse()
            .map_err(|_| format!("{text:?} is not an admin address (scheme://IP:PORT)"))?;
        Ok(Self { tls, addr })
    }
}

impl TryFrom<String> for AdminUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<AdminUrl> for String {
    fn from(url: AdminUrl) -> Self {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_url_says_its_scheme_and_older_files_read_as_http() {
        let listening = Listening {
            sync: vec![],
            admin: "https://127.0.0.1:8081".parse().unwrap(),
        };
        let json = serde_json::to_string(&listening).unwrap();
        assert_eq!(json, r#"{"sync":[],"admin":"https://127.0.0.1:8081"}"#);
        let old: Listening =
            serde_json::from_str(r#"{"sync":[],"admin":"127.0.0.1:8081"}"#).unwrap();
        assert_eq!(old.admin.to_string(), "http://127.0.0.1:8081");
        assert!("ftp://127.0.0.1:1".parse::<AdminUrl>().is_err());
    }

    #[test]
    fn audit_outcomes_read_as_they_are_stored() {
        let outcomes = [AuditOutcome::Ok, AuditOutcome::Failed(ErrorCode::IdInUse)];
        for outcome in outcomes {
            assert_eq!(outcome.as_str().parse::<AuditOutcome>(), Ok(outcome));
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(
                serde_json::from_str::<AuditOutcome>(&json).unwrap(),
                outcome
            );
        }
        assert_eq!(
            AuditOutcome::Failed(ErrorCode::Internal).to_string(),
            "INTERNAL"
        );
        assert!("ok".parse::<AuditOutcome>().is_err());
        assert_eq!(AuditAction::KeyClear.to_string(), "key.clear");
    }

    #[test]
    fn the_most_urgent_reminder_reached_is_due() {
        const DAY: i64 = 86_400_000;
        let until = 1_000 * DAY;
        let due = |days_before: i64| ReminderThreshold::most_urgent(until, until - days_before);
        assert_eq!(due(31 * DAY), None);
        assert_eq!(due(30 * DAY), Some(ReminderThreshold::ThirtyDays));
        assert_eq!(due(8 * DAY), Some(ReminderThreshold::ThirtyDays));
        assert_eq!(due(7 * DAY), Some(ReminderThreshold::SevenDays));
        assert_eq!(due(DAY), Some(ReminderThreshold::OneDay));
        assert_eq!(due(0), Some(ReminderThreshold::OneDay));
        assert_eq!(due(-1), Some(ReminderThreshold::Passed));
        assert!(ReminderThreshold::Passed.urgency() > ReminderThreshold::OneDay.urgency());
        assert_eq!("30d".parse(), Ok(ReminderThreshold::ThirtyDays));
    }
}
