//! Copies of one installation, across the real programs: a synchronized local server's
//! data directory copied (`cp -a`) and both copies synchronizing alternately with the
//! main server is flagged as a possible copy (shown by the admin API, with an audit
//! entry of the evidence), and under the customer's `refuse` policy the next sync is
//! refused with `POSSIBLE_COPY`. A mail reply never imported (sync data exported twice)
//! and a backup restored once are histories of one installation: not flagged. Runs on
//! SQLite, and on PostgreSQL with two main-server processes when
//! `SOLME_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[macro_use]
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::World;
use test_harness::LocalServer;
use uuid::Uuid;

journeys!(
    a_copied_data_directory_syncing_alternately_is_flagged_and_refused_under_refuse,
    a_mail_reply_never_imported_is_not_flagged,
    a_backup_restored_once_is_not_flagged,
);

/// `cp -a FROM TO`: a copy as an administrator makes one (modes, times and all).
fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// What the admin API shows of the id: since when it is marked (null when not).
fn marked_since(world: &World, id: Uuid) -> Value {
    world.admin().show(id).unwrap()["possible_copy_since"].clone()
}

/// The audit entries that marked `id` a possible copy.
fn copy_entries(world: &World, id: Uuid) -> Vec<Value> {
    world
        .admin()
        .audit()
        .unwrap()
        .into_iter()
        .filter(|e| e["action"] == "server.possible_copy" && e["server_id"] == id.to_string())
        .collect()
}

fn set_policy(world: &World, policy: &str) {
    world
        .admin()
        .send(
            "PUT",
            &format!("/admin/v1/customers/{}/copy-policy", world.customer()),
            json!({ "policy": policy }),
        )
        .unwrap()
        .unwrap();
}

fn assert_not_flagged(world: &World, id: Uuid, history: &str) {
    assert_eq!(
        marked_since(world, id),
        Value::Null,
        "{history} flagged the id as a possible copy: {:?}",
        copy_entries(world, id)
    );
    assert!(copy_entries(world, id).is_empty(), "{history}");
}

fn a_copied_data_directory_syncing_alternately_is_flagged_and_refused_under_refuse(world: World) {
    let (id, original) = world.local_server(3);
    original.succeed("sync", &[]).unwrap();
    let copy_dir_path = world.dir().join("the-copy");
    copy_dir(&original.dir, &copy_dir_path);
    let copy = LocalServer::existing(&copy_dir_path, id);

    // Alternately, as two machines would on their own schedules. Under the default
    // policy (warn) every sync is still answered.
    let mut flagged_after = None;
    for round in 1..=3 {
        original.succeed("sync", &[]).unwrap();
        copy.succeed("sync", &[]).unwrap();
        if marked_since(&world, id) != Value::Null {
            flagged_after = Some(round);
            break;
        }
    }
    // The copy's first sync goes back once (it could be a restored backup); its second
    // goes back again: two histories.
    assert_eq!(flagged_after, Some(2), "flagged at the copy's second sync");
    let entries = copy_entries(&world, id);
    assert_eq!(entries.len(), 1, "one audit entry: {entries:?}");
    let detail = entries[0]["detail"].as_str().unwrap();
    support::assert_mentions(
        detail,
        &[
            "two installations seem to synchronize with key",
            "went back 2 times",
            "counter",
        ],
    );
    let shown = world.admin().show(id).unwrap();
    assert!(shown["possible_copy"]["explanation"].is_string(), "{shown}");
    let requests = shown["possible_copy"]["requests"].as_array().unwrap();
    assert!(
        requests.iter().filter(|r| r["went_back"] == true).count() >= 2,
        "the requests going back are marked: {shown}"
    );

    // Warn: still answered. Refuse: the next sync of either copy is refused.
    original.succeed("sync", &[]).unwrap();
    set_policy(&world, "refuse");
    for installation in [&original, &copy] {
        let out = installation.cli("sync", &[]).unwrap();
        assert_ne!(out.code, 0, "refused under refuse: {}", out.text());
        support::assert_mentions(&out.text(), &["POSSIBLE_COPY", &id.to_string()]);
    }
    // The refusals are audited as refused syncs.
    let audit = world.admin().audit().unwrap();
    assert!(
        audit.iter().any(|e| e["action"] == "sync"
            && e["server_id"] == id.to_string()
            && e["outcome"] == "POSSIBLE_COPY"),
        "the refused sync is audited"
    );

    // An operator's decision clears it: the installation kept syncs again.
    world
        .admin()
        .send(
            "POST",
            &format!("/admin/v1/servers/{id}/possible-copy/dismiss"),
            json!({"reason": "the copy was deleted"}),
        )
        .unwrap()
        .unwrap();
    original.succeed("sync", &[]).unwrap();
    assert_eq!(marked_since(&world, id), Value::Null);
}

/// Sync data exported and mailed, its reply never imported, exported and mailed
/// again, then a direct sync: one installation whose replies got lost.
fn a_mail_reply_never_imported_is_not_flagged(world: World) {
    set_policy(&world, "refuse");
    let (id, local) = world.local_server(3);
    local.succeed("sync", &[]).unwrap();
    for n in 1..=2 {
        let file = local.dir.join(format!("sync-data-{n}.txt"));
        local
            .succeed("export-sync-data", &[&file.to_string_lossy()])
            .unwrap();
        let sync_data = std::fs::read_to_string(&file).unwrap();
        // What the mail gateway hands the main server for a mail from the contact;
        // the reply (a license file) is never imported.
        let answer = world
            .admin()
            .send(
                "POST",
                "/admin/v1/mail/sync",
                json!({"sender": support::CONTACT, "sync_data": sync_data}),
            )
            .unwrap();
        let answer = answer.unwrap_or_else(|refusal| panic!("mail sync {n}: {refusal:?}"));
        assert!(answer["license_file"].is_string(), "{answer}");
    }
    // The same file still held, the counter moved on: answered, under refuse too.
    local.succeed("sync", &[]).unwrap();
    local.succeed("sync", &[]).unwrap();
    assert_not_flagged(&world, id, "a lost mail reply");
}

/// A backup of the data directory taken after the first sync, two more syncs, the
/// backup copied back once, then normal syncs.
fn a_backup_restored_once_is_not_flagged(world: World) {
    set_policy(&world, "refuse");
    let (id, local) = world.local_server(3);
    local.succeed("sync", &[]).unwrap();
    let backup = world.dir().join("backup");
    copy_dir(&local.dir, &backup);
    local.succeed("sync", &[]).unwrap();
    local.succeed("sync", &[]).unwrap();

    std::fs::remove_dir_all(&local.dir).unwrap();
    copy_dir(&backup, &local.dir);
    // The restored data goes back once, then grows again: answered, under refuse too.
    for _ in 0..3 {
        local.succeed("sync", &[]).unwrap();
    }
    assert_not_flagged(&world, id, "a backup restored once");
}
