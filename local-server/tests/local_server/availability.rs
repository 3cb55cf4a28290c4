//! Whether a feature can be checked out, as `status`, `status --json`, the manager API
//! and the manager page say it: available, all in use, or over the license after a
//! license file lowered the seats below those in use.

use chrono::Utc;
use test_harness::browser::{chromium_present, rendered_dom};

use crate::helpers::*;

#[actix_rt::test]
async fn all_in_use_and_over_the_license_are_told_apart_from_available() {
    let local = Local::serving(vec![license("cad", 2)], &[]);
    let http = client();
    let feature = |status: &serde_json::Value| status["features"][0].clone();

    let status = local.status();
    assert_eq!(feature(&status)["availability"], "available", "{status}");
    checked_out(&http, &local, "cad").await;
    checked_out(&http, &local, "cad").await;
    let status = local.status();
    let cad = feature(&status);
    assert_eq!(cad["availability"], "all_in_use", "{cad}");
    assert!(cad.get("return_before_new").is_none(), "{cad}");
    assert_eq!(cad["free"], 0, "{cad}");
    let text = stdout(&local.cli(&["status"]));
    assert!(
        text.contains("2 seats,") && text.contains("all in use"),
        "{text}"
    );

    // A new license file gives one seat while two are in use.
    assert_success(&local.import(&local.license_file(2, Utc::now(), vec![license("cad", 1)])));
    let status = local.status();
    let cad = feature(&status);
    assert_eq!(cad["availability"], "over_license", "{cad}");
    assert_eq!(cad["return_before_new"], 2, "{cad}");
    assert_eq!(
        (cad["seats_total"].clone(), cad["in_use"].clone()),
        (1.into(), 2.into())
    );
    let over = "over the license: no new check-outs until 2 are returned";
    let text = stdout(&local.cli(&["status"]));
    assert!(
        text.contains(" 1 seat,") && !text.contains("1 seats"),
        "{text}"
    );
    assert!(text.contains(over), "{text}");

    // The manager API the page reads.
    let (code, page_status) = manager_call(&http, &local, "GET", "status", None).await;
    assert_eq!(code, 200);
    assert_eq!(feature(&page_status)["availability"], "over_license");
    assert_eq!(feature(&page_status)["availability_text"], over);

    // The page as a browser shows it.
    if chromium_present() {
        let scratch = tempfile::tempdir().unwrap();
        let dom = rendered_dom(&local.url("/"), scratch.path()).unwrap();
        assert!(dom.contains(over), "{dom}");
        assert!(!dom.contains(">available<"), "{dom}");
    }
}
