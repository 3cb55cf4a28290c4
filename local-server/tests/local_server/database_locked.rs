//! Another program holding the database locked never stalls the client API: returns
//! and listings are answered, check-outs are answered `UNAVAILABLE` (try again) within
//! the configured wait, and everything works again once the lock is gone.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use futures_util::future::join_all;

use crate::helpers::*;

#[actix_rt::test]
async fn check_outs_are_answered_while_another_process_holds_the_database() -> TestResult {
    let mut local = Local::serving(vec![license("cad", 20)], &["--db-wait-ms", "500"]);
    let http = client();
    let first = checked_out(&http, &local, "cad").await;

    // This test process is the other program: it takes the write lock and keeps it.
    let db = local.data_dir().join("local.db");
    let mut holder = SqliteConnection::establish(db.to_str().unwrap())?;
    holder.batch_execute("BEGIN IMMEDIATE")?;

    // Sixteen at once. Waiting on SQLite under the engine's lock would answer them one
    // busy timeout (10 s) after the other, past this client's 30 s limit.
    let answers = join_all((0..16).map(|_| check_out(&http, &local, "cad"))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["code"], "UNAVAILABLE");
    }
    let resp = http
        .post(local.url("/api/v1/leases"))
        .send_json(&serde_json::json!({"feature": "cad", "client": "c"}))
        .await?;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(
        resp.headers().get("Retry-After").unwrap().to_str()?,
        shared_proto::error::RETRY_AFTER_SECONDS.to_string()
    );

    assert_eq!(
        in_use(&http, &local, "cad").await,
        1,
        "refused check-outs took nothing"
    );
    let lease = first["lease_id"].as_str().unwrap();
    let (status, _) = check_in(&http, &local, lease).await;
    assert_eq!(status, 204, "a return is answered at once");
    assert_eq!(in_use(&http, &local, "cad").await, 0);

    holder.batch_execute("COMMIT")?;
    checked_out(&http, &local, "cad").await;
    // The return waited for the lock and is stored now: after a restart only the new
    // lease is live.
    test_harness::wait_until_async(
        "the return to be stored",
        Duration::from_secs(10),
        || async {
            let rows: i64 = {
                use diesel::prelude::*;
                let mut conn = SqliteConnection::establish(db.to_str().unwrap()).ok()?;
                local_server::schema::leases::table
                    .count()
                    .get_result(&mut conn)
                    .ok()?
            };
            (rows == 1).then_some(())
        },
    )
    .await
    .unwrap();
    local.serve(&[], &[]);
    assert_eq!(in_use(&http, &local, "cad").await, 1);
    Ok(())
}
