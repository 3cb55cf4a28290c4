//! OpenAPI schemas of the wire types whose JSON form is written by hand rather than
//! derived: the `text_enum!` words and the audit outcome. The derived ones carry
//! `#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]` where they are declared.
//! Built only with the `openapi` feature, which only the main server enables (it
//! generates the API document); the local server and the mail gateway do without.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

use crate::admin_api::{
    AuditAction, AuditOutcome, AuditProblemKind, CopyPolicy, HoldsState, KeyClearStatus,
    ReminderState, ReminderThreshold, Role, SenderAuth, SyncChannel,
};
use crate::ErrorCode;

/// A string schema that accepts exactly `words`.
fn one_of_words<'a>(description: &str, words: impl Iterator<Item = &'a str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(words))
        .into()
}

/// Implements the schema of `text_enum!` types from their `ALL` words, so the
/// document lists exactly the words the code accepts.
macro_rules! word_schemas {
    ($($name:ident => $description:literal),+ $(,)?) => {$(
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                one_of_words($description, $name::ALL.iter().map(|word| word.as_str()))
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    )+};
}

word_schemas! {
    SyncChannel => "How a local server synchronized.",
    KeyClearStatus => "Where a key-clear request stands.",
    AuditAction => "What an audit entry records.",
    AuditProblemKind => "What the audit chain's verification found wrong.",
    ReminderThreshold => "Which reminder of the 366-day limit: days before it, or once it has passed.",
    ReminderState => "Where a reminder stands.",
    Role => "What an authenticated caller of the admin API may do.",
    SenderAuth => "Whether a key-clear request's sender was proved by the receiving mail server's Authentication-Results.",
    ErrorCode => "Why a request was refused or failed.",
    CopyPolicy => "What a possible copy of an id does to its syncs: warn (answered) or refuse.",
    HoldsState => "Whether an id's local server holds the newest revision.",
}

impl utoipa::PartialSchema for AuditOutcome {
    fn schema() -> RefOr<Schema> {
        one_of_words(
            "How an audited attempt ended: `OK`, or the error code it was refused or failed with.",
            std::iter::once(AuditOutcome::Ok.as_str())
                .chain(ErrorCode::ALL.iter().map(|code| code.as_str())),
        )
    }
}

impl utoipa::ToSchema for AuditOutcome {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AuditOutcome")
    }
}
