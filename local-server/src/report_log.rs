//! The report log: one row per check-out, check-in, expiry, borrow, return, queue wait,
//! refusal and take-back, written by the lease engine in the same transactions as the leases.
//! `local-server report` and the manager page read it ([`crate::report`]).

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::prelude::*;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::{Sqlite, SqliteValue};

use crate::schema::report_log;

shared_proto::text_enum! {
    /// What happened; stored as its word in `report_log.event`, so a row is read back
    /// as an [`Event`] (a word this server does not know fails the read, loudly).
    #[derive(AsExpression, FromSqlRow)]
    #[diesel(sql_type = Text)]
    pub enum Event {
        CheckOut => "checkout",
        CheckIn => "checkin",
        Expiry => "expiry",
        Borrow => "borrow",
        Return => "return",
        /// A queued check-out that was granted (its wait in `wait_ms`).
        QueueGranted => "queue_granted",
        /// A queued check-out that gave up or timed out.
        QueueTimeout => "queue_timeout",
        Refusal => "refusal",
        /// The administrator took a seat back (`take-back`, the manager page): `actor`
        /// and `reason` say who and why.
        TakeBack => "take_back",
    }
}

impl Event {
    /// Whether a lease began or ended (the seats in use may have moved), as opposed to
    /// a check-out that got no seat.
    pub fn moves_seats(self) -> bool {
        !matches!(self, Self::Refusal | Self::QueueTimeout)
    }
}

impl FromSql<Text, Sqlite> for Event {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let word = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(word.parse()?)
    }
}

impl ToSql<Text, Sqlite> for Event {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <str as ToSql<Text, Sqlite>>::to_sql(self.as_str(), out)
    }
}

/// One stored entry.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = report_log)]
pub struct ReportRow {
    pub at: i64,
    pub event: Event,
    pub feature: String,
    pub user: String,
    pub host: String,
    pub lease_id: Option<String>,
    /// The refusal's code (`NO_SEATS`, `OPTIONS_DENIED`, …).
    pub code: Option<String>,
    /// Seats of the feature in use after the event.
    pub in_use: i32,
    pub wait_ms: Option<i64>,
    /// Who caused the event when it was not the client (a take-back's administrator).
    pub actor: Option<String>,
    /// Why, when someone said (a take-back's reason).
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_stored_as_its_word_and_read_back() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        for event in Event::ALL {
            let stored: String = diesel::select(event.into_sql::<Text>())
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(stored, event.as_str());
            let read: Event = diesel::select(stored.into_sql::<Text>())
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(read, *event);
        }
        let unknown = diesel::select("check_out".into_sql::<Text>()).get_result::<Event>(&mut conn);
        assert!(unknown.is_err());
    }
}
