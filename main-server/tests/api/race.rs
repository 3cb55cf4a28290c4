//! The binding race: many first syncs with different keys at once bind exactly one.

use awc::http::StatusCode;
use futures_util::future::join_all;

use crate::helpers::{spawn_app, spawn_pg_app, spawn_pg_app_and_replica, Answer, Local, TestApp};

const CONTENDERS: usize = 16;

/// Fires `CONTENDERS` first syncs at once, spread over `urls`; returns (ok, in use).
async fn race(app: &TestApp, urls: &[String]) -> (usize, usize) {
    let (_, server_id) = app.register().await;
    let locals: Vec<Local> = (0..CONTENDERS).map(|_| Local::new(server_id)).collect();
    let texts: Vec<String> = locals.iter().map(Local::sync_data).collect();
    let answers = join_all(
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| app.post_sync_to(&urls[i % urls.len()], text)),
    )
    .await;
    let ok = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    let in_use = answers.iter().filter(|a| a.code() == "ID_IN_USE").count();
    let Some(winner) = answers.iter().position(|a| a.status == StatusCode::OK) else {
        panic!(
            "no sync won the race: {:?}",
            answers.iter().map(Answer::code).collect::<Vec<_>>()
        );
    };
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(
        shown["bound_fingerprint"],
        locals[winner].identity.fingerprint().to_string(),
        "the bound key is not the one that got the license file"
    );
    (ok, in_use)
}

#[actix_rt::test]
async fn concurrent_first_syncs_bind_exactly_one_key_on_sqlite() {
    let app = spawn_app().await;
    let urls = vec![app.sync_url(0), app.sync_url(1)];
    let (ok, in_use) = race(&app, &urls).await;
    assert_eq!((ok, in_use), (1, CONTENDERS - 1));
}

#[actix_rt::test]
async fn concurrent_first_syncs_bind_exactly_one_key_across_two_postgres_servers() {
    let Some((app, second)) = spawn_pg_app_and_replica().await else {
        return;
    };
    let urls = [app.sync_url(0), second.sync_url()];
    for _ in 0..3 {
        let (ok, in_use) = race(&app, &urls).await;
        assert_eq!((ok, in_use), (1, CONTENDERS - 1));
    }
}

/// Many copies of one sync at once (the SQLite writer commits them in one group, each
/// in its own savepoint): exactly one is answered, the others are replays, and the
/// refused ones leave nothing behind (the sequence moved once).
#[actix_rt::test]
async fn concurrent_copies_of_one_sync_are_answered_once() {
    let app = spawn_app().await;
    let (_, local) = app.register_local().await;
    let text = local.sync_data();
    let urls = [app.sync_url(0), app.sync_url(1)];
    let answers = join_all((0..CONTENDERS).map(|i| app.post_sync_to(&urls[i % 2], &text))).await;
    let ok: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .collect();
    let replayed = answers
        .iter()
        .filter(|a| a.code() == "REPLAYED_REQUEST")
        .count();
    assert_eq!((ok.len(), replayed), (1, CONTENDERS - 1));
    let file = local.open(&app, &ok[0].body);
    // A fresh sync afterwards gets the next sequence: the refused copies moved nothing.
    let next = app.post_sync(&local.sync_data()).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_eq!(local.open(&app, &next.body).sequence, file.sequence + 1);
}

/// Retries of one mail delivered at once (the gateway's own retries, or two gateways):
/// every one gets the same license file, none a `REPLAYED_REQUEST`, and the sequence
/// moves once. On PostgreSQL the copies really run in parallel.
async fn concurrent_retries_of_one_mail_get_the_same_answer(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let body = serde_json::json!({"sender": "ops@acme.example", "sync_data": local.sync_data()});
    let answers =
        join_all((0..CONTENDERS).map(|_| app.post("/admin/v1/mail/sync", body.clone()))).await;
    for (status, answer) in &answers {
        assert_eq!(*status, StatusCode::OK, "{answer}");
        assert_eq!(answer["license_file"], answers[0].1["license_file"]);
    }
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(shown["sequence"], 1, "{shown}");
}

#[actix_rt::test]
async fn concurrent_retries_of_one_mail_get_the_same_answer_on_sqlite() {
    concurrent_retries_of_one_mail_get_the_same_answer(&spawn_app().await).await;
}

#[actix_rt::test]
async fn concurrent_retries_of_one_mail_get_the_same_answer_on_postgres() {
    let Some(app) = spawn_pg_app().await else {
        return;
    };
    for _ in 0..3 {
        concurrent_retries_of_one_mail_get_the_same_answer(&app).await;
    }
}
