//! The audit log's pages, filters, search and exports (`GET /admin/v1/audit/entries`,
//! `GET /admin/v1/audit/export`): every filter alone and together, paging both ways
//! that stays put while entries are written, a search that says where it stopped,
//! exports that hold every matching entry, and bad input refused with words.

use std::collections::BTreeSet;

use awc::http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::audit_chain::{connect, tamper};
use crate::helpers::{assert_refused, on_both_backends, TestApp};

/// Status, headers and body text of a GET on the admin API.
async fn get_raw(app: &TestApp, path: &str) -> (StatusCode, awc::http::header::HeaderMap, String) {
    let mut response = app
        .http
        .get(format!("{}{path}", app.admin_base()))
        .insert_header(("Authorization", format!("Bearer {}", app.token)))
        .send()
        .await
        .expect("request");
    let body = response.body().limit(1 << 26).await.expect("body");
    (
        response.status(),
        response.headers().clone(),
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

fn header<'a>(headers: &'a awc::http::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn page(app: &TestApp, query: &str) -> Value {
    let (status, page) = app.get(&format!("/admin/v1/audit/entries?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

fn entries(page: &Value) -> &Vec<Value> {
    page["entries"].as_array().expect("entries")
}

/// The entry numbers of every page of `query`, walked with `older` (`limit` each).
async fn walk(app: &TestApp, query: &str, limit: u32) -> Vec<i64> {
    let mut numbers = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..1000 {
        let cursor = before
            .as_deref()
            .map(|c| format!("&before={c}"))
            .unwrap_or_default();
        let page = page(app, &format!("{query}&limit={limit}{cursor}")).await;
        assert!(entries(&page).len() <= limit as usize, "{page}");
        numbers.extend(
            entries(&page)
                .iter()
                .map(|e| e["entry"].as_i64().expect("entry")),
        );
        match page["older"].as_str() {
            Some(older) => before = Some(older.to_owned()),
            None => return numbers,
        }
    }
    panic!("the pages never ended");
}

/// Entries of two customers, a refused token, then (ten days later) a rename.
struct Setup {
    acme: Uuid,
    acme_ids: [Uuid; 2],
    globex: Uuid,
    globex_id: Uuid,
    later: chrono::DateTime<chrono::Utc>,
}

async fn setup(app: &TestApp) -> Setup {
    let (acme, first) = app.register().await;
    let (_, second) = app.register().await;
    let (status, globex) = app
        .post(
            "/admin/v1/customers",
            json!({"name": "Globex", "emails": ["it@globex.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{globex}");
    let globex: Uuid = globex["id"].as_str().expect("id").parse().expect("uuid");
    let (status, server) = app
        .post("/admin/v1/servers", json!({"customer_id": globex}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{server}");
    let globex_id: Uuid = server["server_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let (status, _) = app
        .admin(
            awc::http::Method::GET,
            "/admin/v1/customers",
            None,
            Some("not-a-token"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.clock.advance(chrono::Duration::days(10));
    let later = app.clock.now() - chrono::Duration::hours(1);
    let (status, renamed) = app
        .admin(
            awc::http::Method::PATCH,
            &format!("/admin/v1/customers/{globex}"),
            Some(json!({"name": "Globex Corporation"})),
            Some(&app.token.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    Setup {
        acme,
        acme_ids: [first, second],
        globex,
        globex_id,
        later,
    }
}

fn all_have(page: &Value, field: &str, value: &Value) {
    assert!(!entries(page).is_empty(), "{page}");
    for entry in entries(page) {
        assert_eq!(&entry[field], value, "{page}");
    }
}

fn actions(page: &Value) -> BTreeSet<String> {
    entries(page)
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

async fn every_filter_alone_and_together(app: &TestApp) {
    let s = setup(app).await;
    let everything = page(app, "limit=1000").await;
    let total = entries(&everything).len();
    assert!(total >= 9, "{everything}");
    assert!(everything["older"].is_null(), "{everything}");
    assert!(everything["newer"].is_null(), "{everything}");
    // Newest first: by time, then entry number.
    let keys: Vec<(String, i64)> = entries(&everything)
        .iter()
        .map(|e| {
            (
                e["at"].as_str().expect("at").to_owned(),
                e["entry"].as_i64().expect("n"),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted);

    // An id: its creation and its license.
    let id = s.acme_ids[1];
    let of_id = page(app, &format!("server_id={id}")).await;
    all_have(&of_id, "server_id", &json!(id));
    assert_eq!(
        actions(&of_id),
        BTreeSet::from(["server.create".to_owned(), "license.add".to_owned()])
    );

    // A customer: its ids' entries and its own (creation, rename), nobody else's.
    let of_globex = page(app, &format!("customer_id={}", s.globex)).await;
    assert_eq!(
        actions(&of_globex),
        BTreeSet::from([
            "customer.create".to_owned(),
            "customer.rename".to_owned(),
            "server.create".to_owned()
        ]),
        "{of_globex}"
    );
    for entry in entries(&of_globex) {
        assert!(
            entry["server_id"] == json!(s.globex_id)
                || entry["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(&format!("customer {}", s.globex))),
            "{entry}"
        );
    }
    let of_acme = page(app, &format!("customer_id={}", s.acme)).await;
    assert_eq!(
        entries(&of_acme).len(),
        // Its creation, two ids with a license each.
        1 + 4,
        "{of_acme}"
    );
    assert!(!actions(&of_acme).contains("customer.rename"), "{of_acme}");

    // Actor, action, outcome.
    let refused = page(app, "actor=unauthenticated").await;
    all_have(&refused, "action", &json!("auth.refused"));
    let by_admin = page(app, "actor=admin&limit=1000").await;
    all_have(&by_admin, "actor", &json!("admin"));
    let licenses = page(app, "action=license.add").await;
    all_have(&licenses, "action", &json!("license.add"));
    assert_eq!(entries(&licenses).len(), 2, "{licenses}");
    let failed = page(app, "outcome=failed").await;
    all_have(&failed, "outcome", &json!("UNAUTHORIZED"));
    let unauthorized = page(app, "outcome=UNAUTHORIZED").await;
    assert_eq!(entries(&unauthorized), entries(&failed));
    let ok = page(app, "outcome=OK&limit=1000").await;
    all_have(&ok, "outcome", &json!("OK"));
    assert_eq!(entries(&ok).len() + entries(&failed).len(), total);

    // Time: from (inclusive) and to (exclusive); a date means its midnight UTC.
    let later = s.later.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let recent = page(app, &format!("from={}", urlencode(&later))).await;
    assert_eq!(
        actions(&recent),
        BTreeSet::from(["customer.rename".to_owned()])
    );
    let before_it = page(app, &format!("to={}&limit=1000", urlencode(&later))).await;
    assert_eq!(entries(&before_it).len(), total - 1);
    // The day after the newest entry (made an hour after `later`, perhaps on the next
    // day when the test runs shortly after midnight).
    let tomorrow = (s.later + chrono::Duration::days(2)).format("%Y-%m-%d");
    let by_date = page(app, &format!("from=2000-01-01&to={tomorrow}&limit=1000")).await;
    assert_eq!(entries(&by_date).len(), total);

    // Free text in the detail, in any case; nothing matches a made-up word.
    let found = page(app, "q=RENAMED%20FROM%20globex").await;
    assert_eq!(
        actions(&found),
        BTreeSet::from(["customer.rename".to_owned()])
    );
    assert_eq!(found["search"]["complete"], true, "{found}");
    let percent = page(app, "q=100%25").await;
    assert!(
        entries(&percent).is_empty(),
        "a % is a character, not a wildcard"
    );
    assert!(entries(&page(app, "q=zebra").await).is_empty());

    // Filters together narrow each other.
    let both = page(
        app,
        &format!("customer_id={}&action=server.create&actor=admin", s.globex),
    )
    .await;
    assert_eq!(entries(&both).len(), 1, "{both}");
    assert_eq!(entries(&both)[0]["server_id"], json!(s.globex_id));
    let none = page(
        app,
        &format!("server_id={}&action=customer.rename", s.acme_ids[0]),
    )
    .await;
    assert!(entries(&none).is_empty(), "{none}");
    // Empty fields of a form mean "any".
    let blank = page(app, "server_id=&actor=&q=&limit=1000").await;
    assert_eq!(entries(&blank).len(), total);
    // The page carries the chain's verification status.
    assert!(everything["chain"]["head_seq"].is_u64(), "{everything}");
}

on_both_backends!(
    every_filter_alone_and_together,
    every_filter_alone_and_together_on_sqlite,
    every_filter_alone_and_together_on_postgres
);

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// Pages walked with `older` hold every entry once, in order; a page asked again with
/// the same cursor after new entries were written is the same page; `newer` leads back.
async fn paging_is_stable_while_entries_are_written(app: &TestApp) {
    setup(app).await;
    let all: Vec<i64> = entries(&page(app, "limit=1000").await)
        .iter()
        .map(|e| e["entry"].as_i64().expect("entry"))
        .collect();
    assert_eq!(walk(app, "", 3).await, all);
    assert_eq!(walk(app, "", 1).await, all);

    let first = page(app, "limit=3").await;
    let older = first["older"].as_str().expect("older").to_owned();
    let second = page(app, &format!("limit=3&before={older}")).await;
    let numbers: Vec<i64> = entries(&second)
        .iter()
        .map(|e| e["entry"].as_i64().expect("entry"))
        .collect();
    assert_eq!(numbers, all[3..6]);

    // New entries: the newest page changes, the pages behind a cursor do not.
    app.register().await;
    let again = page(app, &format!("limit=3&before={older}")).await;
    assert_eq!(entries(&again), entries(&second));
    assert_ne!(entries(&page(app, "limit=3").await), entries(&first));
    // From the second page, `newer` gives back the first as it was.
    let newer = second["newer"].as_str().expect("newer");
    let back = page(app, &format!("limit=3&after={newer}")).await;
    assert_eq!(entries(&back), entries(&first));
    assert!(
        back["newer"].is_string(),
        "newer entries were written since: {back}"
    );
    assert!(back["older"].is_string(), "{back}");
    // Going forward reaches the newest page, which has no newer one.
    let mut after = back["newer"].as_str().map(str::to_owned);
    let mut newest = back;
    while let Some(cursor) = after {
        newest = page(app, &format!("limit=3&after={cursor}")).await;
        after = newest["newer"].as_str().map(str::to_owned);
    }
    assert_eq!(
        entries(&newest)[0],
        entries(&page(app, "limit=1").await)[0],
        "{newest}"
    );
}

on_both_backends!(
    paging_is_stable_while_entries_are_written,
    paging_is_stable_while_entries_are_written_on_sqlite,
    paging_is_stable_while_entries_are_written_on_postgres
);

/// A search looks at no more than 50,000 entries for a page and says where it
/// stopped; following the cursor finds what lies beyond.
async fn a_search_says_where_it_stopped(app: &TestApp) {
    app.register().await;
    let mut conn = connect(app);
    // An old entry with a rare word, then 50,010 ordinary ones after it.
    let old = chrono::Utc::now().timestamp_millis() - 3_600_000;
    tamper(
        &mut conn,
        &[
            format!(
                "INSERT INTO audit_log (at, actor, action, server_id, outcome, detail) \
                 VALUES ({old}, 'admin', 'license.add', NULL, 'OK', 'seats for the Zanzibar office')"
            ),
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50010) \
                 INSERT INTO audit_log (at, actor, action, server_id, outcome, detail) \
                 SELECT {old} + 1000 + i, 'admin', 'license.change', NULL, 'OK', 'seats 5' FROM n"
            ),
        ],
    );
    let first = page(app, "q=zanzibar").await;
    assert!(entries(&first).is_empty(), "{first}");
    assert_eq!(first["search"]["complete"], false, "{first}");
    assert_eq!(first["search"]["limit"], 50_000, "{first}");
    assert!(first["search"]["stopped_at"].is_string(), "{first}");
    let older = first["older"].as_str().expect("the search continues");
    let next = page(app, &format!("q=zanzibar&before={older}")).await;
    assert_eq!(entries(&next).len(), 1, "{next}");
    assert_eq!(next["search"]["complete"], true, "{next}");
    assert!(next["older"].is_null(), "{next}");
    // A filter narrows what the search looks at: then it reaches the old entry at once.
    let narrowed = page(app, "q=zanzibar&action=license.add").await;
    assert_eq!(entries(&narrowed).len(), 1, "{narrowed}");
    assert_eq!(narrowed["search"]["complete"], true, "{narrowed}");
    // The export searches every entry.
    let (status, _, csv) = get_raw(app, "/admin/v1/audit/export?format=csv&q=zanzibar").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    // Every one of the 50,000 and more entries is exported, none cut.
    let (status, _, csv) = get_raw(
        app,
        "/admin/v1/audit/export?format=csv&action=license.change",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.lines().count(), 1 + 50_010);
}

on_both_backends!(
    a_search_says_where_it_stopped,
    a_search_says_where_it_stopped_on_sqlite,
    a_search_says_where_it_stopped_on_postgres
);

/// CSV and JSON exports hold exactly the entries of the pages, newest first, as a
/// download; a detail a spreadsheet would read as a formula is defused.
async fn exports_hold_every_matching_entry(app: &TestApp) {
    let s = setup(app).await;
    let all = page(app, "limit=1000").await;

    let (status, headers, json_text) = get_raw(app, "/admin/v1/audit/export?format=json").await;
    assert_eq!(status, StatusCode::OK, "{json_text}");
    assert_eq!(header(&headers, "content-type"), "application/json");
    let disposition = header(&headers, "content-disposition");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains(".json"), "{disposition}");
    let exported: Value = serde_json::from_str(&json_text).expect("a JSON array");
    assert_eq!(exported.as_array().expect("array"), entries(&all));

    let (status, headers, csv) = get_raw(app, "/admin/v1/audit/export?format=csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type").starts_with("text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "entry,chain position,time (UTC),actor,action,license server id,outcome,detail"
    );
    assert_eq!(lines.len(), 1 + entries(&all).len());
    for (line, entry) in lines[1..].iter().zip(entries(&all)) {
        assert!(
            line.starts_with(&format!("{},", entry["entry"])),
            "{line} / {entry}"
        );
    }

    // Filters apply to exports.
    let (_, _, csv) = get_raw(
        app,
        &format!("/admin/v1/audit/export?format=csv&customer_id={}", s.globex),
    )
    .await;
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    let (_, _, json_text) = get_raw(app, "/admin/v1/audit/export?format=json&actor=nobody").await;
    assert_eq!(
        serde_json::from_str::<Value>(&json_text).expect("JSON"),
        json!([])
    );

    // A detail with a comma, a quote, a line break, and one starting with `=`.
    let mut conn = connect(app);
    tamper(
        &mut conn,
        &[format!(
            "INSERT INTO audit_log (at, actor, action, server_id, outcome, detail) VALUES \
             ({}, '=cmd()', 'license.add', NULL, 'OK', 'a, \"b\"\nc')",
            chrono::Utc::now().timestamp_millis() + 86_400_000 * 30
        )],
    );
    let (_, _, csv) = get_raw(app, "/admin/v1/audit/export?format=csv&action=license.add").await;
    let newest = csv.split("\r\n").nth(1).expect("a line");
    assert!(
        newest.contains(",'=cmd(),license.add,,OK,\"a, \"\"b\"\"\nc\""),
        "{newest}"
    );
}

on_both_backends!(
    exports_hold_every_matching_entry,
    exports_hold_every_matching_entry_on_sqlite,
    exports_hold_every_matching_entry_on_postgres
);

/// Every bad filter, cursor, limit and format is refused with `MALFORMED` and words
/// naming it.
async fn bad_input_is_refused_in_words(app: &TestApp) {
    let too_long = "x".repeat(201);
    let cases = [
        ("server_id=nope", "not an id"),
        ("customer_id=42", "customer filter"),
        ("action=key.steal", "no action of the audit log"),
        ("outcome=maybe", "give OK, failed"),
        ("from=yesterday", "not a date"),
        ("to=2027-02-30", "not a date"),
        ("from=2027-02-01&to=2027-01-01", "the time range is empty"),
        ("limit=0", "not a number from 1 to 1000"),
        ("limit=5000", "not a number from 1 to 1000"),
        ("limit=lots", "not a number from 1 to 1000"),
        ("before=abc", "not one this server gave"),
        ("after=1.x", "not one this server gave"),
        ("before=1.1&after=1.2", "not both"),
        ("q=a%00b", "control character"),
        ("actor=a%0Ab", "control character"),
        (&format!("q={too_long}"), "longer than 200 characters"),
    ];
    for (query, words) in cases {
        let (status, body) = app.get(&format!("/admin/v1/audit/entries?{query}")).await;
        assert_refused(status, &body, StatusCode::BAD_REQUEST, "MALFORMED");
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(words), "{query}: {message}");
    }
    let (status, body) = app.get("/admin/v1/audit/entries?colour=red").await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "MALFORMED");
    for (query, words) in [
        ("format=xml", "give csv or json"),
        ("actor=x", "format=csv or format=json"),
        ("format=csv&actor=x&from=nope", "not a date"),
        ("format=json&before=x", "not one this server gave"),
    ] {
        let (status, body) = app.get(&format!("/admin/v1/audit/export?{query}")).await;
        assert_refused(status, &body, StatusCode::BAD_REQUEST, "MALFORMED");
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(words), "{query}: {message}");
    }
}

on_both_backends!(
    bad_input_is_refused_in_words,
    bad_input_is_refused_in_words_on_sqlite,
    bad_input_is_refused_in_words_on_postgres
);

fn admin_audit(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::helpers::BIN)
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .arg("audit")
        .args(args)
        .env_remove("MAIN_SERVER_ADMIN_URL")
        .env_remove("MAIN_SERVER_TOKEN_FILE")
        .output()
        .expect("run admin")
}

/// `admin audit list`: a page as a table with the flag for the next, the filters, CSV
/// and JSON of every matching entry (to standard output or a file), and a time range
/// the wrong way round as a usage mistake.
#[actix_rt::test]
async fn the_cli_lists_filters_and_exports_the_audit_log() {
    let app = crate::helpers::spawn_app().await;
    let s = setup(&app).await;
    let dir = app.data_dir();

    let out = admin_audit(&dir, &["list", "--limit", "2"]);
    let table = crate::helpers::succeeded(&out);
    assert!(table.starts_with("ENTRY"), "{table}");
    let rows = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .count()
    };
    assert_eq!(rows(&table), 2, "{table}");
    let older = table
        .lines()
        .find_map(|l| l.strip_prefix("Older entries: --before "))
        .expect("the next page's flag");
    assert!(table.contains("Hash chain: not verified yet"), "{table}");
    let out = admin_audit(&dir, &["list", "--limit", "2", "--before", older]);
    let next = crate::helpers::succeeded(&out);
    assert!(next.contains("Newer entries: --after "), "{next}");

    // Filters: the id's entries, as CSV: the same as the API's export.
    let id = s.acme_ids[0].to_string();
    let out = admin_audit(
        &dir,
        &[
            "list", "--server", &id, "--actor", "admin", "--format", "csv",
        ],
    );
    let csv = crate::helpers::succeeded(&out);
    let (_, _, exported) = get_raw(
        &app,
        &format!("/admin/v1/audit/export?format=csv&server_id={id}&actor=admin"),
    )
    .await;
    assert_eq!(csv, exported);
    assert_eq!(csv.lines().count(), 1 + 2, "{csv}");

    // A time range, as JSON into a file.
    let file = dir.join("recent.json");
    let from = s.later.to_rfc3339();
    let out = admin_audit(
        &dir,
        &[
            "list",
            "--from",
            &from,
            "--to",
            "2100-01-01",
            "--format",
            "json",
            "--output",
            file.to_str().expect("path"),
        ],
    );
    let said = crate::helpers::succeeded(&out);
    assert!(said.starts_with("1 entries written to "), "{said}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("the file")).expect("JSON");
    assert_eq!(written[0]["action"], "customer.rename", "{written}");
    assert!(!dir.join("recent.json.partial").exists());

    // The page as JSON under --json.
    let out = admin_audit(&dir, &["list", "--json", "--action", "license.add"]);
    let page: Value = serde_json::from_str(&crate::helpers::succeeded(&out)).expect("JSON");
    assert_eq!(entries(&page).len(), 2, "{page}");

    // Usage mistakes exit 2 with the expected form; a filter the server refuses exits 1.
    let out = admin_audit(
        &dir,
        &["list", "--from", "2027-02-01", "--to", "2027-01-01"],
    );
    crate::helpers::failed_saying(
        &out,
        2,
        "--from (2027-02-01 00:00:00 UTC) must be before --to",
    );
    let out = admin_audit(&dir, &["list", "--from", "2027-02-30"]);
    crate::helpers::failed_saying(&out, 2, "expected YYYY-MM-DD");
    let out = admin_audit(&dir, &["list", "--action", "key.steal"]);
    crate::helpers::failed_saying(&out, 1, "no action of the audit log");

    // verify: the first walk is whole, the next only what is new; --full walks all.
    let out = admin_audit(&dir, &["verify"]);
    let text = crate::helpers::succeeded(&out);
    assert!(text.starts_with("The audit chain is intact: "), "{text}");
    app.register().await;
    let out = admin_audit(&dir, &["verify"]);
    let text = crate::helpers::succeeded(&out);
    assert!(
        text.contains("2 new entries checked after position "),
        "{text}"
    );
    let out = admin_audit(&dir, &["verify", "--full"]);
    let text = crate::helpers::succeeded(&out);
    assert!(!text.contains("new entries checked"), "{text}");
    let out = admin_audit(&dir, &["list", "--limit", "1"]);
    let text = crate::helpers::succeeded(&out);
    assert!(
        text.contains("Hash chain: verified intact up to position "),
        "{text}"
    );
}
