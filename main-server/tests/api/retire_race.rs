//! A retire that commits while grouped syncs of the same id are on their way
//! (PostgreSQL): the sync function reads the retirement after the id's row lock, so
//! every sync that was waiting for that lock is refused, none slips through.

use awc::http::StatusCode;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use futures_util::future::join_all;
use std::time::Duration;

use crate::helpers::{spawn_pg_app, Answer};

const CONTENDERS: usize = 12;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How many of the server's sync-function calls wait for a lock right now.
fn syncs_waiting_for_a_lock(watcher: &mut PgConnection) -> i64 {
    diesel::sql_query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND query LIKE '%solme_issue_syncs%'",
    )
    .get_result::<Count>(watcher)
    .expect("read pg_stat_activity")
    .n
}

#[actix_rt::test]
async fn syncs_waiting_while_a_retire_commits_are_all_refused_on_postgres() {
    let Some(app) = spawn_pg_app().await else {
        return;
    };
    let url = app.database_url.clone().expect("a PostgreSQL URL");
    for round in 0..3 {
        let (server_id, local) = app.register_local().await;
        let first = app.post_sync(&local.sync_data()).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);

        // The retire's transaction: the id's row updated, not committed yet. (The same
        // UPDATE as `server retire`, held open so the syncs come in the moment before
        // its commit.)
        let mut retirer = PgConnection::establish(&url).expect("connect");
        let mut watcher = PgConnection::establish(&url).expect("connect");
        diesel::sql_query("BEGIN").execute(&mut retirer).unwrap();
        let changed = diesel::sql_query(
            "UPDATE servers SET retired_at = $1 WHERE id = $2 AND retired_at IS NULL",
        )
        .bind::<BigInt, _>(chrono::Utc::now().timestamp_millis())
        .bind::<Text, _>(server_id.to_string())
        .execute(&mut retirer)
        .unwrap();
        assert_eq!(changed, 1);

        let texts: Vec<String> = (0..CONTENDERS).map(|_| local.sync_data()).collect();
        let urls = [app.sync_url(0), app.sync_url(1)];
        let syncs = join_all(
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| app.post_sync_to(&urls[i % urls.len()], text)),
        );
        let commit = async {
            test_harness::wait_until_async(
                "a grouped sync to wait for the id's row lock",
                Duration::from_secs(30),
                || {
                    let waiting = syncs_waiting_for_a_lock(&mut watcher);
                    async move { (waiting >= 1).then_some(()) }
                },
            )
            .await
            .expect("the syncs reach the row lock");
            diesel::sql_query("COMMIT").execute(&mut retirer).unwrap();
        };
        let (answers, ()) = tokio::join!(syncs, commit);

        let codes: Vec<String> = answers.iter().map(Answer::code).collect();
        assert!(
            answers
                .iter()
                .all(|a| a.status == StatusCode::FORBIDDEN && a.code() == "SERVER_RETIRED"),
            "round {round}: a sync got past the retire: {codes:?}"
        );
        assert!(
            answers[0].body.contains("was retired by Solme on"),
            "{}",
            answers[0].body
        );
        let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
        assert_eq!(
            shown["sequence"], 1,
            "nothing issued after the retire: {shown}"
        );
    }
}
