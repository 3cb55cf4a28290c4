//! The audit log's hash chain: entries edited, deleted, inserted or backdated straight
//! in the database are named by `GET /admin/v1/audit/verify` (and the CLI), a saved
//! signed head catches a rewrite of the whole chain, and two processes writing on one
//! PostgreSQL at once leave a chain that verifies.

use std::process::Command;
use std::time::Duration;

use awc::http::StatusCode;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use futures_util::future::join_all;
use main_server::db::{DbConnection, DbTarget};
use main_server::store::audit_chain::{parse_hash, Canonical};
use serde_json::{json, Value};

use crate::helpers::{
    failed_saying, on_both_backends, spawn_app, spawn_pg_app_and_replica, succeeded, TestApp, BIN,
};

/// A connection of the test's own to the server's database.
pub(crate) fn connect(app: &TestApp) -> DbConnection {
    DbTarget::from_options(app.dir.path(), app.database_url.as_deref())
        .expect("database target")
        .connect_alone()
        .expect("connect to the server's database")
}

/// Runs hand-written statements in one transaction (the sealer never sees them half
/// done).
pub(crate) fn tamper(conn: &mut DbConnection, statements: &[String]) {
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for statement in statements {
            diesel::sql_query(statement).execute(conn)?;
        }
        Ok(())
    })
    .expect("tampering statements");
}

#[derive(QueryableByName)]
struct Sealed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    at: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    entry_hash: String,
}

fn sealed_at(conn: &mut DbConnection, chain_seq: i64) -> Sealed {
    diesel::sql_query(format!(
        "SELECT id, at, entry_hash FROM audit_log WHERE chain_seq = {chain_seq}"
    ))
    .get_result(conn)
    .expect("a sealed entry at that position")
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count_entries(conn: &mut DbConnection) -> u64 {
    let count: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM audit_log")
        .get_result(conn)
        .expect("count");
    u64::try_from(count.n).expect("a count")
}

/// A full walk of the chain (with a saved head to check).
async fn verify(app: &TestApp, head: Option<&str>) -> Value {
    let path = match head {
        Some(head) => format!("/admin/v1/audit/verify?full=true&head={head}"),
        None => "/admin/v1/audit/verify?full=true".to_owned(),
    };
    let (status, report) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

/// Asserts the report names a problem of `kind` at `chain_seq` (and entry `id`).
fn assert_problem(report: &Value, kind: &str, chain_seq: i64, id: Option<i64>) {
    assert_eq!(report["intact"], false, "{report}");
    let problem = &report["problem"];
    assert_eq!(problem["kind"], kind, "{report}");
    assert_eq!(problem["chain_seq"], chain_seq, "{report}");
    assert_eq!(problem["entry_id"], json!(id), "{report}");
    let message = problem["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("position {chain_seq}")),
        "{message}"
    );
}

fn seen_head_file(app: &TestApp) -> std::path::PathBuf {
    app.dir.path().join("last-audit-head.json")
}

/// Waits until the server's copy of the chain's head has reached position `seq`.
async fn wait_for_seen_head(app: &TestApp, seq: i64) {
    test_harness::wait_until_async("the seen head", Duration::from_secs(20), || async {
        let text = std::fs::read(seen_head_file(app)).ok()?;
        let head: Value = serde_json::from_slice(&text).ok()?;
        (head["chain_seq"] == seq).then_some(())
    })
    .await
    .expect("the server keeps the head it saw");
}

/// Audit entries of several kinds: customers, ids, licenses, a sync.
async fn some_entries(app: &TestApp) {
    app.register().await;
    let (status, globex) = app
        .post(
            "/admin/v1/customers",
            json!({"name": "Globex", "emails": ["it@globex.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{globex}");
    let (_, local) = app.register_local().await;
    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// Backdated, then changed, removed and inserted entries, each earlier in the chain
/// than the one before, so that each becomes the first problem.
async fn verify_names_each_tampered_entry(app: &TestApp) {
    some_entries(app).await;
    let report = verify(app, None).await;
    assert_eq!(report["intact"], true, "{report}");
    let mut conn = connect(app);
    let total = count_entries(&mut conn);
    assert!(total >= 7, "{total} entries");
    assert_eq!(report["checked"], total, "{report}");
    assert_eq!(report["head_seq"], total, "{report}");
    assert_eq!(report["unsealed"], 0, "{report}");
    assert!(report["problem"].is_null(), "{report}");

    // An entry written straight into the table, dated a day back: the sealer seals it
    // (it cannot tell), and verify sees it dated well before the entry ahead of it.
    let day_ago = chrono::Utc::now().timestamp_millis() - 86_400_000;
    tamper(
        &mut conn,
        &[format!(
            "INSERT INTO audit_log (at, actor, action, server_id, outcome, detail) \
             VALUES ({day_ago}, 'admin', 'license.remove', NULL, 'OK', 'backdated')"
        )],
    );
    let report = verify(app, None).await;
    let backdated = i64::try_from(total).expect("position") + 1;
    let row = sealed_at(&mut conn, backdated);
    assert_problem(&report, "backdated", backdated, Some(row.id));

    // A detail edited after sealing.
    let row = sealed_at(&mut conn, 6);
    tamper(
        &mut conn,
        &[format!(
            "UPDATE audit_log SET detail = 'nothing happened' WHERE id = {}",
            row.id
        )],
    );
    assert_problem(&verify(app, None).await, "changed", 6, Some(row.id));

    // An entry deleted.
    let row = sealed_at(&mut conn, 4);
    tamper(
        &mut conn,
        &[format!("DELETE FROM audit_log WHERE id = {}", row.id)],
    );
    let report = verify(app, None).await;
    assert_problem(&report, "removed", 4, None);
    assert_eq!(report["checked"], 3, "{report}");

    // A forged entry at position 2, with a correct hash and link to position 1; the
    // later entries moved up one place, as a careful forger would.
    let first = sealed_at(&mut conn, 1);
    let first_hash = parse_hash(&first.entry_hash).expect("stored hash");
    let forged_id = 1_000_000;
    let forged = Canonical {
        chain_seq: 2,
        id: forged_id,
        at: first.at,
        actor: "admin",
        action: "license.add",
        server_id: None,
        outcome: "OK",
        detail: "seats 1000",
        prev_hash: &first_hash,
    };
    let forged_hash = shared_proto::hex::encode(&forged.hash());
    tamper(
        &mut conn,
        &[
            "UPDATE audit_log SET chain_seq = chain_seq + 1000000 WHERE chain_seq >= 2".into(),
            "UPDATE audit_log SET chain_seq = chain_seq - 999999 WHERE chain_seq >= 1000000"
                .into(),
            format!(
                "INSERT INTO audit_log \
                 (id, at, actor, action, server_id, outcome, detail, chain_seq, entry_hash, prev_hash) \
                 VALUES ({forged_id}, {}, 'admin', 'license.add', NULL, 'OK', 'seats 1000', 2, \
                 '{forged_hash}', '{}')",
                first.at, first.entry_hash
            ),
        ],
    );
    let report = verify(app, None).await;
    assert_problem(&report, "inserted", 2, Some(forged_id));
    assert_eq!(report["checked"], 2, "{report}");

    // A forged entry at a position the chain cannot have, ahead of the first.
    tamper(
        &mut conn,
        &[format!(
            "INSERT INTO audit_log \
             (id, at, actor, action, server_id, outcome, detail, chain_seq, entry_hash, prev_hash) \
             VALUES ({}, {}, 'admin', 'license.add', NULL, 'OK', 'seats 5', 0, '{forged_hash}', '{}')",
            forged_id + 1,
            first.at,
            first.entry_hash
        )],
    );
    let report = verify(app, None).await;
    assert_problem(&report, "inserted", 0, Some(forged_id + 1));
    assert_eq!(report["checked"], 0, "{report}");
}

on_both_backends!(
    verify_names_each_tampered_entry,
    verify_names_each_tampered_entry_on_sqlite,
    verify_names_each_tampered_entry_on_postgres
);

/// A chain rewritten from its start and sealed again verifies on its own; the head
/// saved before the rewrite does not.
async fn a_saved_head_catches_a_rewritten_chain(app: &TestApp) {
    some_entries(app).await;
    let (status, head) = app.get("/admin/v1/audit/head").await;
    assert_eq!(status, StatusCode::OK, "{head}");
    let signed = head["signed"].as_str().expect("signed head").to_owned();
    let seq = head["head"]["chain_seq"].as_i64().expect("position");
    assert!(seq >= 7, "{head}");
    let mut conn = connect(app);
    assert_eq!(
        head["head"]["entry_hash"],
        sealed_at(&mut conn, seq).entry_hash
    );
    let report = verify(app, Some(&signed)).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["saved_head"], head["head"], "{report}");

    wait_for_seen_head(app, seq).await;

    tamper(
        &mut conn,
        &[
            "UPDATE audit_log SET detail = 'rewritten' WHERE chain_seq = 1".into(),
            "UPDATE audit_log SET chain_seq = NULL, entry_hash = NULL, prev_hash = NULL".into(),
        ],
    );
    // The resealed chain is whole, but neither the server's own copy of its head nor
    // the operator's saved head is in it any more.
    let report = verify(app, None).await;
    let id = sealed_at(&mut conn, seq).id;
    assert_problem(&report, "rewritten", seq, Some(id));
    let message = report["problem"]["message"].as_str().expect("message");
    assert!(
        message.contains("the head this server saw last"),
        "{message}"
    );
    let report = verify(app, Some(&signed)).await;
    assert_problem(&report, "rewritten", seq, Some(id));
    let message = report["problem"]["message"].as_str().expect("message");
    assert!(message.contains("the saved head"), "{message}");

    // Without the server's copy (a restored backup, a new data directory) and with the
    // database's record of the last verification reset by whoever rewrote the chain,
    // the chain verifies on its own; the saved head still catches the rewrite.
    std::fs::remove_file(seen_head_file(app)).expect("remove the seen head");
    tamper(
        &mut conn,
        &[
            "UPDATE audit_verified SET verified_seq = 0, broken_seq = NULL, \
           broken_message = NULL, broken_at = NULL"
                .into(),
        ],
    );
    wait_for_seen_head(app, seq).await;
    let report = verify(app, None).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_problem(
        &verify(app, Some(&signed)).await,
        "rewritten",
        seq,
        Some(id),
    );

    // A head not signed with this server's key, or no head at all, is refused.
    let other = shared_proto::SolmeSigningKey::generate().expect("key");
    let foreign = shared_proto::audit_head::AuditHead {
        chain_seq: 1,
        entry_hash: "00".repeat(32),
        at: None,
        signed_at: chrono::Utc::now(),
    }
    .sign(&other)
    .expect("sign");
    let (status, body) = app
        .get(&format!("/admin/v1/audit/verify?head={foreign}"))
        .await;
    crate::helpers::assert_refused(status, &body, StatusCode::BAD_REQUEST, "BAD_SIGNATURE");
    let (status, body) = app.get("/admin/v1/audit/verify?head=hello").await;
    crate::helpers::assert_refused(status, &body, StatusCode::BAD_REQUEST, "MALFORMED");
}

/// Entries removed from the end of the chain leave it whole; the head the server
/// keeps in its data directory is past its end.
async fn removing_the_newest_entries_is_found(app: &TestApp) {
    some_entries(app).await;
    let report = verify(app, None).await;
    assert_eq!(report["intact"], true, "{report}");
    let seq = report["head_seq"].as_i64().expect("position");
    wait_for_seen_head(app, seq).await;
    let mut conn = connect(app);
    tamper(
        &mut conn,
        &[format!(
            "DELETE FROM audit_log WHERE chain_seq >= {}",
            seq - 1
        )],
    );
    let report = verify(app, None).await;
    assert_problem(&report, "rewritten", seq, None);
    assert_eq!(report["head_seq"], seq - 2, "{report}");
    let message = report["problem"]["message"].as_str().expect("message");
    assert!(message.contains("removed from its end"), "{message}");
}

on_both_backends!(
    removing_the_newest_entries_is_found,
    removing_the_newest_entries_is_found_on_sqlite,
    removing_the_newest_entries_is_found_on_postgres
);
on_both_backends!(
    a_saved_head_catches_a_rewritten_chain,
    a_saved_head_catches_a_rewritten_chain_on_sqlite,
    a_saved_head_catches_a_rewritten_chain_on_postgres
);

/// Two processes on one PostgreSQL, each sealing every second while both write
/// (syncs through the database function, admin actions): afterwards every entry is in
/// the chain and it verifies.
#[actix_rt::test]
async fn two_servers_writing_on_one_postgres_leave_a_chain_that_verifies() {
    let Some((app, second)) = spawn_pg_app_and_replica().await else {
        return;
    };
    let urls = [app.sync_url(0), second.sync_url()];

    let mut locals = Vec::new();
    for _ in 0..6 {
        locals.push(app.register_local().await.1);
    }
    let syncing = join_all(locals.iter().enumerate().map(|(i, local)| {
        let urls = &urls;
        let app = &app;
        async move {
            for round in 0..5 {
                let answer = app
                    .post_sync_to(&urls[(i + round) % 2], &local.sync_data())
                    .await;
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            }
        }
    }));
    let registering = async {
        for _ in 0..5 {
            app.register().await;
        }
    };
    futures_util::future::join(syncing, registering).await;

    let mut conn = connect(&app);
    let total = count_entries(&mut conn);
    // Registering: the customer once (three entries with its first id and license),
    // then an id and a license each time.
    let registered = (3 + 5 * 2) + (5 * 2);
    assert!(total >= registered + 6 * 5, "{total} entries");
    // The other process may be sealing the last ones at the moment verify asks.
    let report =
        test_harness::wait_until_async("every entry sealed", Duration::from_secs(20), || async {
            let report = verify(&app, None).await;
            (report["unsealed"] == 0).then_some(report)
        })
        .await
        .expect("all sealed");
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["checked"], total, "{report}");
}

fn admin(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .arg("audit")
        .args(args)
        .env_remove("MAIN_SERVER_ADMIN_URL")
        .env_remove("MAIN_SERVER_TOKEN_FILE")
        .env_remove("MAIN_SERVER_AUDIT_HEAD")
        .output()
        .expect("run admin")
}

/// `admin audit head` prints a head to keep; `admin audit verify [--head FILE]` exits
/// 0 on an intact chain and 1, naming the entry, on a broken one.
#[actix_rt::test]
async fn the_cli_verifies_the_chain_and_a_saved_head() {
    let app = spawn_app().await;
    some_entries(&app).await;
    let dir = app.data_dir();

    let out = admin(&dir, &["head"]);
    succeeded(&out);
    let head_text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        head_text.starts_with("Audit chain head: position "),
        "{head_text}"
    );
    assert!(head_text.contains("solme-audit-head-v1."), "{head_text}");
    let saved = dir.join("saved-head.txt");
    std::fs::write(&saved, &head_text).expect("save the head");

    let out = admin(&dir, &["verify", "--head", saved.to_str().expect("path")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("The audit chain is intact: "), "{text}");
    assert!(text.contains("The saved head (position "), "{text}");

    // The `--json` form of the head is a saved head too.
    let out = admin(&dir, &["head", "--json"]);
    succeeded(&out);
    let saved_json = dir.join("saved-head.json");
    std::fs::write(&saved_json, &out.stdout).expect("save the head");
    let out = admin(
        &dir,
        &[
            "verify",
            "--json",
            "--head",
            saved_json.to_str().expect("path"),
        ],
    );
    succeeded(&out);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["intact"], true, "{report}");
    assert!(
        report["saved_head"]["chain_seq"].as_u64().is_some(),
        "{report}"
    );

    let mut conn = connect(&app);
    let row = sealed_at(&mut conn, 3);
    tamper(
        &mut conn,
        &[format!(
            "UPDATE audit_log SET actor = 'someone else' WHERE id = {}",
            row.id
        )],
    );
    let out = admin(&dir, &["verify", "--full"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.lines().next(),
        Some(
            format!(
                "The audit chain is BROKEN (changed): the entry at position 3 (id {}) was \
                 changed after it was sealed: its content no longer matches its hash.",
                row.id
            )
            .as_str()
        ),
        "{text}"
    );

    let not_a_head = dir.join("not-a-head.txt");
    std::fs::write(&not_a_head, "hello").expect("write");
    let out = admin(
        &dir,
        &["verify", "--head", not_a_head.to_str().expect("path")],
    );
    failed_saying(&out, 1, "holds no saved audit head");
}

/// A walk from the last verified head (the default).
async fn verify_new(app: &TestApp) -> Value {
    let (status, report) = app.get("/admin/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

/// `verify` walks only what was sealed since the last intact walk and says how many
/// entries that was; an entry edited behind that head is found by a full walk, which
/// the audit view's status then shows, and every walk is full until the chain is whole.
async fn verify_walks_only_what_is_new(app: &TestApp) {
    some_entries(app).await;
    let first = verify_new(app).await;
    let mut conn = connect(app);
    let total = count_entries(&mut conn);
    assert_eq!(first["intact"], true, "{first}");
    assert_eq!(
        first["incremental"], false,
        "nothing verified before: {first}"
    );
    assert_eq!(first["checked"], total, "{first}");
    let (_, entries) = app.get("/admin/v1/audit/entries?limit=1").await;
    assert_eq!(entries["chain"]["verified_seq"], total, "{entries}");
    assert!(entries["chain"]["verified_at"].is_string(), "{entries}");
    assert!(entries["chain"]["broken"].is_null(), "{entries}");

    // Two new entries: the next walk checks those two only.
    app.register().await;
    let grown = count_entries(&mut conn);
    assert_eq!(grown, total + 2);
    let second = verify_new(app).await;
    assert_eq!(second["intact"], true, "{second}");
    assert_eq!(second["incremental"], true, "{second}");
    assert_eq!(second["started_after"], total, "{second}");
    assert_eq!(second["checked"], 2, "{second}");
    assert_eq!(second["head_seq"], grown, "{second}");
    let third = verify_new(app).await;
    assert_eq!(third["checked"], 0, "{third}");

    // An entry edited behind the verified head: the walk of what is new does not see
    // it; the full walk does.
    let row = sealed_at(&mut conn, 3);
    tamper(
        &mut conn,
        &[format!(
            "UPDATE audit_log SET detail = 'nothing happened' WHERE id = {}",
            row.id
        )],
    );
    let quick = verify_new(app).await;
    assert_eq!(quick["intact"], true, "{quick}");
    assert_eq!(quick["checked"], 0, "{quick}");
    let full = verify(app, None).await;
    assert_eq!(full["incremental"], false, "{full}");
    assert_problem(&full, "changed", 3, Some(row.id));
    let (_, entries) = app.get("/admin/v1/audit/entries?limit=1").await;
    assert_eq!(entries["chain"]["broken"]["chain_seq"], 3, "{entries}");
    assert_eq!(entries["chain"]["verified_seq"], grown, "{entries}");
    // Once a break is known, every walk is a full one: none reports the chain intact.
    let after = verify_new(app).await;
    assert_eq!(after["incremental"], false, "{after}");
    assert_problem(&after, "changed", 3, Some(row.id));
}

on_both_backends!(
    verify_walks_only_what_is_new,
    verify_walks_only_what_is_new_on_sqlite,
    verify_walks_only_what_is_new_on_postgres
);

/// The walk from the last verified head refuses to build on a head whose entry now has
/// another hash (a chain rewritten and sealed again from before that head).
async fn a_rewritten_verified_head_is_found(app: &TestApp) {
    some_entries(app).await;
    let first = verify_new(app).await;
    assert_eq!(first["intact"], true, "{first}");
    let seq = first["head_seq"].as_i64().expect("position");
    let mut conn = connect(app);
    tamper(
        &mut conn,
        &[format!(
            "UPDATE audit_log SET entry_hash = '{}' WHERE chain_seq = {seq}",
            "ab".repeat(32)
        )],
    );
    let report = verify_new(app).await;
    assert_eq!(report["incremental"], true, "{report}");
    assert_problem(&report, "rewritten", seq, None);
    let message = report["problem"]["message"].as_str().expect("message");
    assert!(
        message.contains("where the last verification ended"),
        "{message}"
    );
}

on_both_backends!(
    a_rewritten_verified_head_is_found,
    a_rewritten_verified_head_is_found_on_sqlite,
    a_rewritten_verified_head_is_found_on_postgres
);
