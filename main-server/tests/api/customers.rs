//! Customers as operators change them: renaming, removing a contact, and the checks
//! that catch slips (one address on two customers, a customer's last contact, a
//! second customer of the same name), each change in the audit log.

use awc::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_refused, assert_refused_saying, on_both_backends, TestApp};

async fn add_customer(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.post("/admin/v1/customers", body).await
}

async fn created(app: &TestApp, name: &str, emails: &[&str]) -> String {
    let (status, customer) = add_customer(app, json!({"name": name, "emails": emails})).await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    customer["id"].as_str().expect("id").to_owned()
}

async fn patch(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.admin(Method::PATCH, path, Some(body), Some(&app.token))
        .await
}

async fn delete(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.admin(Method::DELETE, path, None, Some(&app.token))
        .await
}

async fn customer(app: &TestApp, id: &str) -> Value {
    let (_, list) = app.get("/admin/v1/customers?limit=1000").await;
    list.as_array()
        .and_then(|l| l.iter().find(|c| c["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no customer {id}: {list}"))
}

#[actix_rt::test]
async fn a_customer_is_renamed_and_the_audit_names_both_names() {
    let app = crate::helpers::spawn_app().await;
    let id = created(&app, "Acme", &["ops@acme.example"]).await;
    let (status, renamed) = patch(
        &app,
        &format!("/admin/v1/customers/{id}"),
        json!({"name": " Acme Corporation "}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Acme Corporation");
    assert_eq!(renamed["emails"], json!(["ops@acme.example"]));
    assert_eq!(customer(&app, &id).await["name"], "Acme Corporation");
    assert_eq!(
        app.audit_count("customer.rename", "from Acme to Acme Corporation")
            .await,
        1
    );

    // The same name again changes nothing and writes nothing.
    let (status, _) = patch(
        &app,
        &format!("/admin/v1/customers/{id}"),
        json!({"name": "Acme Corporation"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.audit_count("customer.rename", "").await, 1);

    for (body, code) in [
        (json!({"name": ""}), "MALFORMED"),
        (json!({"name": "two\nlines"}), "MALFORMED"),
    ] {
        let (status, refused) = patch(&app, &format!("/admin/v1/customers/{id}"), body).await;
        assert_refused(status, &refused, StatusCode::BAD_REQUEST, code);
    }
    let (status, refused) = patch(
        &app,
        &format!("/admin/v1/customers/{}", uuid::Uuid::new_v4()),
        json!({"name": "Nobody"}),
    )
    .await;
    assert_refused(status, &refused, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[actix_rt::test]
async fn a_second_customer_of_a_name_needs_a_confirmation() {
    let app = crate::helpers::spawn_app().await;
    let acme = created(&app, "Acme", &["ops@acme.example"]).await;

    let (status, refused) = add_customer(&app, json!({"name": "ACME", "emails": []})).await;
    assert_refused_saying(
        status,
        &refused,
        StatusCode::CONFLICT,
        "CONFIRMATION_REQUIRED",
        &format!("a customer named ACME exists already ({acme})"),
    );
    let (_, list) = app.get("/admin/v1/customers").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    let (status, second) = add_customer(
        &app,
        json!({"name": "ACME", "emails": [], "confirm_duplicate_name": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second = second["id"].as_str().expect("id").to_owned();

    // Renaming onto another customer's name asks too; a change of case of its own
    // name does not.
    let globex = created(&app, "Globex", &[]).await;
    let (status, refused) = patch(
        &app,
        &format!("/admin/v1/customers/{globex}"),
        json!({"name": "acme"}),
    )
    .await;
    assert_refused(
        status,
        &refused,
        StatusCode::CONFLICT,
        "CONFIRMATION_REQUIRED",
    );
    assert_eq!(customer(&app, &globex).await["name"], "Globex");
    let (status, renamed) = patch(
        &app,
        &format!("/admin/v1/customers/{globex}"),
        json!({"name": "acme", "confirm_duplicate_name": true}),
    )
    .await;
    assert_eq!(
        (status, &renamed["name"]),
        (StatusCode::OK, &json!("acme")),
        "{renamed}"
    );
    let (status, renamed) = patch(
        &app,
        &format!("/admin/v1/customers/{second}"),
        json!({"name": "Acme"}),
    )
    .await;
    assert_refused(
        status,
        &renamed,
        StatusCode::CONFLICT,
        "CONFIRMATION_REQUIRED",
    );
    let globex_only = created(&app, "Initech", &[]).await;
    let (status, renamed) = patch(
        &app,
        &format!("/admin/v1/customers/{globex_only}"),
        json!({"name": "INITECH"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
}

#[actix_rt::test]
async fn one_contact_address_belongs_to_one_customer() {
    let app = crate::helpers::spawn_app().await;
    let acme = created(&app, "Acme", &["ops@acme.example"]).await;
    let globex = created(&app, "Globex", &["it@globex.example"]).await;

    let (status, refused) = add_customer(
        &app,
        json!({"name": "Initech", "emails": ["it@initech.example", "OPS@acme.example"]}),
    )
    .await;
    assert_refused_saying(
        status,
        &refused,
        StatusCode::CONFLICT,
        "CONTACT_IN_USE",
        &format!("ops@acme.example is already a contact address of Acme ({acme})"),
    );
    let (_, list) = app.get("/admin/v1/customers").await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(2),
        "nothing added: {list}"
    );

    let (status, refused) = app
        .post(
            &format!("/admin/v1/customers/{globex}/emails"),
            json!({"email": " Ops@Acme.Example "}),
        )
        .await;
    assert_refused(status, &refused, StatusCode::CONFLICT, "CONTACT_IN_USE");
    assert_eq!(
        customer(&app, &globex).await["emails"],
        json!(["it@globex.example"])
    );
    // Adding it to its own customer again is still a no-op, not a refusal.
    let (status, same) = app
        .post(
            &format!("/admin/v1/customers/{acme}/emails"),
            json!({"email": "ops@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(app.audit_count("customer.add_email", "").await, 0);
}

/// Many customers add the same address at once: the database's unique key lets
/// exactly one have it.
async fn one_of_concurrent_adds_gets_the_address(app: &TestApp) {
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(created(app, &format!("Customer {n}"), &[]).await);
    }
    let paths: Vec<String> = ids
        .iter()
        .map(|id| format!("/admin/v1/customers/{id}/emails"))
        .collect();
    let adds = paths
        .iter()
        .map(|path| app.post(path, json!({"email": "shared@example.com"})));
    let answers = futures_util::future::join_all(adds).await;
    let won = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_refused(*status, body, StatusCode::CONFLICT, "CONTACT_IN_USE");
    }
    assert_eq!(won, 1, "{answers:?}");
    let (_, list) = app.get("/admin/v1/customers").await;
    let holders = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|c| c["emails"] == json!(["shared@example.com"]))
        .count();
    assert_eq!(holders, 1, "{list}");
    assert_eq!(
        app.audit_count("customer.add_email", "shared@example.com")
            .await,
        1
    );
}

on_both_backends!(
    one_of_concurrent_adds_gets_the_address,
    concurrent_adds_of_one_address_give_it_to_one_customer,
    concurrent_adds_of_one_address_give_it_to_one_customer_postgres
);

#[actix_rt::test]
async fn a_contact_is_removed_but_never_the_last() {
    let app = crate::helpers::spawn_app().await;
    let id = created(
        &app,
        "Acme",
        &["ops@acme.example", "it+licensing@acme.example"],
    )
    .await;

    let (status, refused) = delete(
        &app,
        &format!("/admin/v1/customers/{id}/emails/nobody@acme.example"),
    )
    .await;
    assert_refused(status, &refused, StatusCode::NOT_FOUND, "NOT_FOUND");

    // Percent-encoded and in another case, as the console and the CLI send it.
    let (status, left) = delete(
        &app,
        &format!("/admin/v1/customers/{id}/emails/IT%2Blicensing%40acme.example"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert_eq!(left["emails"], json!(["ops@acme.example"]));
    assert_eq!(
        app.audit_count(
            "customer.remove_email",
            &format!("customer {id}, contact it+licensing@acme.example removed")
        )
        .await,
        1
    );

    let (status, refused) = delete(
        &app,
        &format!("/admin/v1/customers/{id}/emails/ops@acme.example"),
    )
    .await;
    assert_refused_saying(
        status,
        &refused,
        StatusCode::CONFLICT,
        "LAST_CONTACT",
        "ops@acme.example is the last contact address of Acme",
    );
    assert_eq!(
        customer(&app, &id).await["emails"],
        json!(["ops@acme.example"])
    );
    assert_eq!(app.audit_count("customer.remove_email", "").await, 1);

    // The address removed is free for another customer.
    let (status, other) = add_customer(
        &app,
        json!({"name": "Globex", "emails": ["it+licensing@acme.example"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
}

/// Two removals at once of a customer's two contacts: one of them stays.
async fn concurrent_removals_keep_one_contact(app: &TestApp) {
    for round in 0..5 {
        let first = format!("a{round}@acme.example");
        let second = format!("b{round}@acme.example");
        let id = created(app, &format!("Acme {round}"), &[&first, &second]).await;
        let paths = [
            format!("/admin/v1/customers/{id}/emails/{first}"),
            format!("/admin/v1/customers/{id}/emails/{second}"),
        ];
        let (one, two) =
            futures_util::future::join(delete(app, &paths[0]), delete(app, &paths[1])).await;
        let mut statuses = [one.0, two.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{one:?} {two:?}"
        );
        let left = customer(app, &id).await["emails"].clone();
        assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
    }
}

on_both_backends!(
    concurrent_removals_keep_one_contact,
    concurrent_removals_keep_a_customers_last_contact,
    concurrent_removals_keep_a_customers_last_contact_postgres
);

#[actix_rt::test]
async fn a_licenses_borrow_limit_is_set_and_cleared() {
    let app = crate::helpers::spawn_app().await;
    let (_, server_id) = app.register().await;
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    let license_id = server["licenses"][0]["id"].as_str().expect("id").to_owned();
    let revision = server["revision"].as_i64().expect("revision");
    let path = format!("/admin/v1/servers/{server_id}/licenses/{license_id}");
    let (status, changed) = patch(&app, &path, json!({"max_borrow_hours": 72})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["max_borrow_hours"], 72);
    assert_eq!(changed["seats"], 10, "the other terms stay: {changed}");
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(server["licenses"][0]["max_borrow_hours"], 72);
    assert_eq!(server["revision"], revision + 1);
    assert_eq!(
        app.audit_count("license.change", "borrowable for up to 72 hours")
            .await,
        1
    );
    for hours in [0, 8_785] {
        let (status, refused) = patch(&app, &path, json!({"max_borrow_hours": hours})).await;
        assert_refused(status, &refused, StatusCode::BAD_REQUEST, "MALFORMED");
    }
    let (status, changed) = patch(&app, &path, json!({"max_borrow_hours": null})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed["max_borrow_hours"].is_null(), "{changed}");
    assert_eq!(app.audit_count("license.change", "not borrowable").await, 1);
}

/// The names of a page of customers (the answer must be one).
fn names(status: StatusCode, page: &Value) -> Vec<String> {
    assert_eq!(status, StatusCode::OK, "{page}");
    page.as_array()
        .unwrap_or_else(|| panic!("no list: {page}"))
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

async fn the_customer_list_pages_and_searches(app: &TestApp) {
    let mut made = Vec::new();
    for name in [
        "beta",
        "Acme Corp",
        "acme",
        "ACME-2",
        "Beta",
        "Zeta",
        "Ärzte AG",
        "a_b",
    ] {
        let (status, customer) =
            add_customer(app, json!({"name": name, "confirm_duplicate_name": true})).await;
        assert_eq!(status, StatusCode::CREATED, "{customer}");
        made.push((
            name.to_owned(),
            customer["id"].as_str().expect("id").to_owned(),
        ));
    }
    // By name ignoring case, byte by byte (space before `-`, `_` after letters'
    // capitals but before small ones), then id; the non-ASCII name last on both
    // backends.
    made.sort_by_key(|(name, id)| (name.to_lowercase(), id.clone()));
    let expected: Vec<String> = made.iter().map(|(name, _)| name.clone()).collect();
    let (status, all) = app.get("/admin/v1/customers").await;
    assert_eq!(names(status, &all), expected);

    // Page by page, two at a time: the same customers in the same order.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/admin/v1/customers?limit=2&after={after}"),
            None => "/admin/v1/customers?limit=2".to_owned(),
        };
        let (status, page) = app.get(&path).await;
        let page_names = names(status, &page);
        assert!(page_names.len() <= 2, "{page}");
        paged.extend(page_names);
        match page.as_array().and_then(|p| p.last()) {
            Some(last) if page.as_array().is_some_and(|p| p.len() == 2) => {
                after = Some(last["id"].as_str().expect("id").to_owned());
            }
            _ => break,
        }
    }
    assert_eq!(paged, expected);

    // A name search: a prefix, ignoring case; `%` and `_` are letters, not patterns.
    for (search, found) in [
        ("acm", vec!["acme", "Acme Corp", "ACME-2"]),
        ("ACME%20", vec!["Acme Corp"]),
        ("acme-", vec!["ACME-2"]),
        ("%20acme", vec!["acme", "Acme Corp", "ACME-2"]),
        ("%20%20%20", expected.iter().map(String::as_str).collect()),
        ("a_", vec!["a_b"]),
        ("a%25", vec![]),
        ("corp", vec![]),
        ("%C3%84r", vec!["Ärzte AG"]),
        ("", expected.iter().map(String::as_str).collect()),
    ] {
        let (status, page) = app.get(&format!("/admin/v1/customers?name={search}")).await;
        assert_eq!(names(status, &page), found, "search {search:?}");
    }
    // Searching and paging together.
    let (status, first) = app.get("/admin/v1/customers?name=BETA&limit=1").await;
    assert_eq!(names(status, &first).len(), 1, "{first}");
    let last = first[0]["id"].as_str().expect("id").to_owned();
    let (status, second) = app
        .get(&format!(
            "/admin/v1/customers?name=beta&limit=5&after={last}"
        ))
        .await;
    let both: Vec<String> = names(status, &first)
        .into_iter()
        .chain(names(status, &second))
        .collect();
    let betas: Vec<String> = expected
        .iter()
        .filter(|name| name.eq_ignore_ascii_case("beta"))
        .cloned()
        .collect();
    assert_eq!(both, betas);

    // Bad queries are refused, saying what is wrong.
    let long = "x".repeat(201);
    for (query, part) in [
        ("limit=0", "at least 1"),
        ("limit=1001", "at most 1000"),
        (
            "limit=many",
            "\"many\" is no number of customers (1 to 1000)",
        ),
        ("limit=-1", "is no number"),
        ("after=nobody", "\"nobody\" is no customer id"),
        ("colour=blue", "colour"),
        ("name=two%0Alines", "one line"),
        (&format!("name={long}"), "at most 200"),
    ] {
        let (status, refused) = app.get(&format!("/admin/v1/customers?{query}")).await;
        assert_refused_saying(status, &refused, StatusCode::BAD_REQUEST, "MALFORMED", part);
    }
    let unknown = uuid::Uuid::new_v4();
    let (status, refused) = app
        .get(&format!("/admin/v1/customers?after={unknown}"))
        .await;
    assert_refused_saying(
        status,
        &refused,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &unknown.to_string(),
    );
}

on_both_backends!(
    the_customer_list_pages_and_searches,
    the_customer_list_pages_and_searches_on_sqlite,
    the_customer_list_pages_and_searches_on_postgres
);
