//! Direct synchronization against a real main server.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::helpers::*;
use shared_proto::clock::CLOCK_OFFSET_ENV;
use shared_proto::exit;

#[actix_rt::test]
async fn internet_sync_grants_seats_and_restores_service_after_366_days() -> TestResult {
    let Some((mut main, mut local)) = Main::start_with_local("cad", 2) else {
        return Ok(());
    };
    let http = client();
    let id = local.id;
    local.serve(&[], &[]);
    assert_eq!(
        check_out(&http, &local, "cad").await.1["code"],
        "NOT_SYNCHRONIZED"
    );

    let out = local.cli(&["sync"]);
    assert_stdout(&out, 0, &format!("Synchronized through {}", main.sync[0]));
    assert_stdout(&out, 0, "added    cad: 2 seats");
    // serve picks the new licenses up without a restart.
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    assert_eq!(check_out(&http, &local, "cad").await.1["code"], "NO_SEATS");
    let status = local.status();
    assert_eq!(status["state"], "synchronized");
    assert_eq!(status["last_sync_channel"], "internet");
    assert_eq!(status["days_left"], 366);
    assert_eq!(status["features"][0]["in_use"], 2);

    // A change on the main server arrives with the next sync.
    let (s, server) = main.admin("GET", &format!("/admin/v1/servers/{id}"), None);
    assert_eq!(s, 200);
    let license_id = server["licenses"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = main.admin(
        "PATCH",
        &format!("/admin/v1/servers/{id}/licenses/{license_id}"),
        Some(json!({"seats": 3})),
    );
    assert_eq!(s, 200);
    assert_stdout(&local.cli(&["sync"]), 0, "changed  cad: 2 -> 3 seats");
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);

    // 367 days later both clocks have moved: no leases until a sync.
    let later = [(CLOCK_OFFSET_ENV, "367d")];
    local.serve(&[], &later);
    assert_eq!(
        check_out(&http, &local, "cad").await.1["code"],
        "SYNC_EXPIRED"
    );
    main.restart_with_clock(Some("367d"));
    let out = local.cli_env(&["sync"], &later);
    assert_success(&out);
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    let status = local.status_env(&later);
    assert_eq!(status["state"], "synchronized");
    Ok(())
}

#[actix_rt::test]
async fn a_closed_first_endpoint_falls_back_to_the_second() -> TestResult {
    let Some(main) = Main::start() else {
        return Ok(());
    };
    let id = main.new_server("cad", 1);
    let closed = format!("https://127.0.0.1:{}", closed_port().unwrap());
    let local = Local::for_main(&main, id, &[closed.clone(), main.sync[1].clone()], &[]);
    let out = local.cli(&["sync"]);
    assert_stdout(&out, 0, &format!("Synchronized through {}", main.sync[1]));

    // Both closed: a temporary failure (exit 75), recorded for status.
    let other = format!("https://127.0.0.1:{}", closed_port().unwrap());
    let dead = Local::for_main(&main, id, &[closed, other], &[]);
    assert_stderr(&dead.cli(&["sync"]), i32::from(exit::TEMPORARY), "diagnose");
    let status = dead.status();
    assert_eq!(status["consecutive_failures"], 1);
    assert!(status["last_attempt_error"]
        .as_str()
        .unwrap()
        .contains("could not be reached"));
    Ok(())
}

#[actix_rt::test]
async fn sync_by_file_through_the_main_servers_mail_api() -> TestResult {
    let Some((main, mut local)) = Main::start_with_local("cad", 2) else {
        return Ok(());
    };
    let http = client();
    local.serve(&[], &[]);
    let path = local.data_dir().join("sync-data.txt");
    assert_success(&local.cli(&["export-sync-data", path.to_str().unwrap()]));
    let sync_data = std::fs::read_to_string(&path)?;
    let (s, answer) = main.admin(
        "POST",
        "/admin/v1/mail/sync",
        Some(json!({"sender": "ops@acme.example", "sync_data": sync_data})),
    );
    assert_eq!(s, 200, "{answer}");
    let out = local.import(answer["license_file"].as_str().unwrap());
    assert_stdout(&out, 0, "added    cad: 2 seats");
    assert_eq!(local.status()["last_sync_channel"], "file");
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    // The same file again is refused: it is not newer.
    let out = local.import(answer["license_file"].as_str().unwrap());
    assert!(
        stderr(&out).contains("OLDER_LICENSE_FILE"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[actix_rt::test]
async fn a_reinstalled_server_is_refused_until_the_key_pair_is_cleared() -> TestResult {
    let Some((main, local)) = Main::start_with_local("cad", 1) else {
        return Ok(());
    };
    let id = local.id;
    assert_success(&local.cli(&["sync"]));
    // Reinstall over the same directory: new key pair.
    let endpoints = [main.sync[0].as_str(), main.sync[1].as_str()];
    assert_success(&local.init(&endpoints, main.dir.path(), &["--force"]));
    let out = local.cli(&["sync"]);
    assert_stderr(&out, 1, "ID_IN_USE");
    assert!(stderr(&out).contains("licensing@"), "{}", stderr(&out));
    let (s, _) = main.admin(
        "POST",
        &format!("/admin/v1/servers/{id}/key-clear"),
        Some(json!({"reason": "reinstalled"})),
    );
    assert_eq!(s, 200);
    assert_success(&local.cli(&["sync"]));
    Ok(())
}

#[actix_rt::test]
async fn the_scheduler_syncs_when_due_and_backs_off_on_failure() -> TestResult {
    let Some((mut main, mut local)) = Main::start_with_local("cad", 1) else {
        return Ok(());
    };
    let http = client();
    assert_success(&local.cli(&["auto-sync", "daily"]));
    local.serve(&["--scheduler-tick-ms", "50"], &[]);
    let status = test_harness::wait_until_async(
        "the automatic sync",
        std::time::Duration::from_secs(20),
        || {
            let local = &local;
            async move {
                let s = local.status();
                // The next run is planned just after the sync commits.
                let planned = s["next_auto_sync_at"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                    .is_some_and(|t| t > Utc::now() + chrono::Duration::hours(1));
                (s["state"] == "synchronized" && planned).then_some(s)
            }
        },
    )
    .await?;
    let next: DateTime<Utc> = status["next_auto_sync_at"].as_str().unwrap().parse()?;
    assert!(
        (next - Utc::now() - chrono::Duration::days(1))
            .num_minutes()
            .abs()
            < 5,
        "{next}"
    );
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);

    // A day later the main server is down: the attempt fails and is retried soon.
    main.stop();
    let later = [(CLOCK_OFFSET_ENV, "1d1h")];
    local.serve(&["--scheduler-tick-ms", "50"], &later);
    let status = test_harness::wait_until_async(
        "a failed automatic sync",
        std::time::Duration::from_secs(20),
        || {
            let local = &local;
            async move {
                let s = local.status_env(&later);
                let time = |k: &str| s[k].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok());
                let replanned = time("next_auto_sync_at") > time("now");
                (s["consecutive_failures"].as_i64() >= Some(1) && replanned).then_some(s)
            }
        },
    )
    .await?;
    let now: DateTime<Utc> = status["now"].as_str().unwrap().parse()?;
    let next: DateTime<Utc> = status["next_auto_sync_at"].as_str().unwrap().parse()?;
    let wait = next - now;
    assert!(
        wait > chrono::Duration::zero() && wait <= chrono::Duration::minutes(2),
        "retry in {wait}"
    );
    Ok(())
}

#[actix_rt::test]
async fn a_direct_sync_clears_a_rollback_left_by_a_clock_that_was_ahead() -> TestResult {
    let Some((mut main, mut local)) = Main::start_with_local("cad", 2) else {
        return Ok(());
    };
    let http = client();
    // Both clocks wrongly two hours ahead: the sync works and records that time.
    let ahead = [(CLOCK_OFFSET_ENV, "2h")];
    main.restart_with_clock(Some("2h"));
    assert_success(&local.cli_env(&["sync"], &ahead));
    // Clocks corrected: the server now sees a rollback.
    main.restart();
    local.serve(&[], &[]);
    let (s, body) = check_out(&http, &local, "cad").await;
    assert_eq!((s, body["code"].as_str()), (403, Some("CLOCK_ROLLBACK")));
    assert!(
        body["message"].as_str().unwrap().contains("synchronize"),
        "{body}"
    );
    assert_eq!(local.status()["state"], "clock_rollback");
    // A direct sync whose answer agrees with the local clock sets the mark back, and the
    // running serve follows.
    assert_success(&local.cli(&["sync"]));
    assert_eq!(local.status()["state"], "synchronized");
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    Ok(())
}
