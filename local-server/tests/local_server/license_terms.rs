//! Each license's terms (seats, valid from/until or perpetual, borrow limit) in
//! `status`, `status --json` and on the manager page; the client API's status keeps
//! its form.

use chrono::{Duration, Utc};
use shared_proto::License;
use test_harness::browser::{chromium_present, rendered_dom};

use crate::helpers::*;

fn licenses() -> Vec<License> {
    let now = Utc::now();
    vec![
        License {
            max_borrow_hours: Some(48),
            ..license("cad", 3)
        },
        License {
            valid_until: Some(now + Duration::days(30)),
            ..license("cam", 2)
        },
        License {
            valid_from: Some(now - Duration::days(60)),
            valid_until: Some(now - Duration::days(1)),
            max_borrow_hours: Some(1),
            ..license("sim", 5)
        },
    ]
}

#[test]
fn status_says_each_licenses_validity_and_borrowability() {
    let local = Local::imported(licenses());
    let status = local.status();
    let terms = status["licenses"].as_array().unwrap();
    let of = |feature: &str| {
        terms
            .iter()
            .find(|t| t["feature"] == feature)
            .unwrap_or_else(|| panic!("{feature} in {status}"))
            .clone()
    };
    let cad = of("cad");
    assert_eq!(
        (
            &cad["seats"],
            &cad["perpetual"],
            &cad["borrowable"],
            &cad["max_borrow_hours"]
        ),
        (&3.into(), &true.into(), &true.into(), &48.into())
    );
    assert_eq!(cad["validity_text"], "perpetual");
    assert_eq!(cad["borrow_text"], "borrowable for up to 48 hours");
    let cam = of("cam");
    assert_eq!(
        (&cam["perpetual"], &cam["borrowable"]),
        (&false.into(), &false.into())
    );
    assert_eq!(cam["borrow_text"], "not borrowable");
    let until = (Utc::now() + Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(cam["validity_text"], format!("until {until}"));
    let sim = of("sim");
    assert!(
        sim["validity_text"].as_str().unwrap().ends_with("(ended)"),
        "{sim}"
    );
    assert_eq!(sim["borrow_text"], "borrowable for up to 1 hour");

    let text = stdout(&local.cli(&["status"]));
    for words in [
        "license terms:",
        "3 seats, perpetual, borrowable for up to 48 hours",
        &format!("2 seats, until {until}, not borrowable"),
        "(ended), borrowable for up to 1 hour",
    ] {
        assert!(text.contains(words), "{words:?} in:\n{text}");
    }
}

#[actix_rt::test]
async fn the_client_api_status_keeps_its_form() -> TestResult {
    let local = Local::serving(licenses(), &[]);
    let (status, body) = call(&client(), "GET", &local.url("/api/v1/status"), None, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("licenses").is_none(), "{body}");
    Ok(())
}

#[test]
fn chromium_shows_the_license_terms() {
    if !chromium_present() {
        return;
    }
    let local = Local::serving(licenses(), &[]);
    let scratch = tempfile::tempdir().unwrap();
    let dom = rendered_dom(&local.url("/"), scratch.path()).unwrap();
    let table = dom
        .split("id=\"terms\"")
        .nth(1)
        .and_then(|rest| rest.split("</tbody>").next())
        .unwrap_or_else(|| panic!("no terms table in {dom}"));
    assert!(table.contains(">up to 48 hours<"), "{table}");
    assert!(table.contains(">not borrowable<"), "{table}");
    assert!(table.contains(">perpetual<"), "{table}");
    assert!(table.contains("(ended)"), "{table}");
}
