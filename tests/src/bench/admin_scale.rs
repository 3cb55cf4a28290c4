//! `solme-bench --parts admin-scale`: the operators' views at scale. A throw-away
//! PostgreSQL is filled in SQL (`generate_series`, one statement per table: no round
//! trip per row) with customers, ids (one license each), pending key-clear requests
//! and audit entries (sealed, so the sealer has nothing to catch up; the stored
//! verified head at the newest one); then every console view and admin list is asked
//! for through the admin API, as the console asks, and its latency printed as p50/p99.
//!
//! Fill: the audit log's secondary indexes are dropped before its rows go in and made
//! again afterwards (as a restore would), then `ANALYZE`; the time of each step is
//! printed. The filled hashes are placeholders: only a walk over the filled part would
//! notice (the incremental verify measured here starts after it).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use test_harness::programs::Admin;

/// How much to fill.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub ids: u64,
    pub customers: u64,
    pub audit_entries: u64,
    /// Requests per view.
    pub requests: usize,
}

/// A UUID of the fill: `prefix` names the table, `n` the row.
fn uuid_sql(prefix: &str, n: &str) -> String {
    format!("'{prefix}-0000-4000-8000-' || lpad(to_hex({n}), 12, '0')")
}

/// The fill's id `n` of a table, as the API shows it.
fn uuid_of(prefix: &str, n: u64) -> String {
    format!("{prefix}-0000-4000-8000-{n:012x}")
}

const CUSTOMER: &str = "00000000";
const SERVER: &str = "10000000";
const LICENSE: &str = "20000000";
const REQUEST: &str = "30000000";

#[derive(QueryableByName)]
struct IndexDef {
    #[diesel(sql_type = diesel::sql_types::Text)]
    indexname: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    indexdef: String,
}

fn step(label: &str, conn: &mut PgConnection, sql: &str) -> Result<Duration> {
    let began = Instant::now();
    conn.batch_execute(sql)
        .with_context(|| format!("filling: {label}"))?;
    let took = began.elapsed();
    println!("   {label}: {:.1} s", took.as_secs_f64());
    Ok(took)
}

/// Fills the database at `url` (migrated by a main server already); returns the time.
pub fn fill(url: &str, sizes: Sizes) -> Result<Duration> {
    let mut conn = PgConnection::establish(url).context("connecting to PostgreSQL")?;
    let began = Instant::now();
    conn.batch_execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB';")
        .context("setting up the fill")?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let year_ms: i64 = 365 * 86_400_000;
    let (ids, customers, entries) = (sizes.ids, sizes.customers, sizes.audit_entries);
    let customer = uuid_sql(CUSTOMER, "i");
    step(
        "customers and their contacts",
        &mut conn,
        &format!(
            "INSERT INTO customers (id, name, created_at) \
             SELECT {customer}, 'Customer ' || i, {start} FROM generate_series(1::bigint, {customers}) i; \
             INSERT INTO customer_emails (customer_id, email) \
             SELECT {customer}, 'it@customer' || i || '.example' FROM generate_series(1::bigint, {customers}) i;",
            start = now_ms - year_ms
        ),
    )?;
    let server = uuid_sql(SERVER, "j");
    let owner =
        uuid_sql(CUSTOMER, "1 + j % {customers}").replace("{customers}", &customers.to_string());
    step(
        "ids with one license each",
        &mut conn,
        &format!(
            "INSERT INTO servers (id, customer_id, revision, sequence, bound_fingerprint, bound_at, \
                 last_sync_at, last_sync_channel, valid_until, created_at) \
             SELECT {server}, {owner}, 3, 5, md5(j::text) || md5((j + 1)::text), {start}, \
                 {now} - (j % 200) * 86400000, 'internet', {now} + ((j % 400) - 30) * 86400000, {start} \
             FROM generate_series(1::bigint, {ids}) j; \
             INSERT INTO licenses (id, server_id, feature, seats, created_at) \
             SELECT {license}, {server}, 'cad', 10, {start} FROM generate_series(1::bigint, {ids}) j;",
            license = uuid_sql(LICENSE, "j"),
            start = now_ms - year_ms,
            now = now_ms
        ),
    )?;
    let requests = 1_000.min(ids);
    step(
        "pending key-clear requests",
        &mut conn,
        &format!(
            "INSERT INTO key_clear_requests (id, server_id, sender, message_id, text, status, created_at, \
                 sender_auth, sender_auth_detail) \
             SELECT {request}, {server}, 'it@customer' || j || '.example', '<kc' || j || '@mail.example>', \
                 'Please clear the key pair: the old machine is gone.', 'pending', {now} - j * 1000, \
                 'authenticated', 'dkim=pass' \
             FROM generate_series(1::bigint, {requests}) j;",
            request = uuid_sql(REQUEST, "j"),
            now = now_ms
        ),
    )?;
    // The audit log: its secondary indexes made again after the rows are in.
    let indexes: Vec<IndexDef> = diesel::sql_query(
        "SELECT indexname::text AS indexname, indexdef::text AS indexdef FROM pg_indexes \
         WHERE tablename = 'audit_log' AND indexname NOT LIKE '%pkey'",
    )
    .load(&mut conn)
    .context("reading the audit log's indexes")?;
    let drop: String = indexes
        .iter()
        .map(|i| format!("DROP INDEX {};", i.indexname))
        .collect();
    conn.batch_execute(&drop).context("dropping indexes")?;
    // One entry in 100 about a customer itself, one in 20 an operator's license change,
    // one in 97 a refused sync, the rest accepted syncs; a year of them, spread evenly.
    let spacing = (year_ms / i64::try_from(entries.max(1)).unwrap_or(1)).max(1);
    let customer_of_g = uuid_sql(CUSTOMER, &format!("1 + g % {customers}"));
    let server_of_g = uuid_sql(SERVER, &format!("1 + (g * 7919) % {ids}"));
    step(
        "audit entries",
        &mut conn,
        &format!(
            "INSERT INTO audit_log (id, at, actor, action, server_id, outcome, detail, chain_seq, entry_hash, prev_hash) \
             SELECT g, {start} + g * {spacing}, \
               CASE WHEN g % 100 = 0 OR g % 20 = 0 THEN (ARRAY['alice', 'bob', 'carol'])[1 + g % 3] \
                    ELSE 'local server' END, \
               CASE WHEN g % 100 = 0 THEN 'customer.reminders' WHEN g % 20 = 0 THEN 'license.change' \
                    ELSE 'sync' END, \
               CASE WHEN g % 100 = 0 THEN NULL ELSE {server_of_g} END, \
               CASE WHEN g % 100 <> 0 AND g % 20 <> 0 AND g % 97 = 0 THEN 'STALE_REQUEST' ELSE 'OK' END, \
               CASE WHEN g % 100 = 0 THEN 'customer ' || {customer_of_g} || ', reminder mails switched on' \
                    WHEN g % 20 = 0 THEN 'license cad: seats 10 to ' || (10 + g % 7) \
                    ELSE 'channel internet, held sequence ' || (g % 50) || ', issued sequence ' || (g % 50 + 1) END, \
               g, md5(g::text) || md5((g + 1)::text), md5((g - 1)::text) || md5(g::text) \
             FROM generate_series(1::bigint, {entries}) g; \
             SELECT setval('audit_log_id_seq', {entries}); \
             UPDATE audit_verified SET verified_seq = {entries}, \
               verified_hash = md5('{entries}') || md5('{next}'), verified_at = {now};",
            start = now_ms - year_ms,
            next = entries + 1,
            now = now_ms
        ),
    )?;
    let began_indexes = Instant::now();
    for index in &indexes {
        conn.batch_execute(&index.indexdef)
            .with_context(|| format!("making {}", index.indexname))?;
    }
    println!(
        "   the audit log's {} secondary indexes made again: {:.1} s",
        indexes.len(),
        began_indexes.elapsed().as_secs_f64()
    );
    step("ANALYZE", &mut conn, "ANALYZE;")?;
    Ok(began.elapsed())
}

/// Latency figures of one view.
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Latency {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Asks `path(i)` `requests` times (after two unmeasured warm-ups) and prints one line.
fn measure(
    admin: &Admin,
    label: &str,
    requests: usize,
    mut path: impl FnMut(usize) -> String,
) -> Result<()> {
    let mut samples = Vec::with_capacity(requests);
    let mut refused = None;
    for i in 0..requests + 2 {
        let path = path(i);
        let began = Instant::now();
        let (status, body) = match admin.call("GET", &path, None) {
            Ok(answer) => answer,
            // An answer the client cannot take (over its 10 MB) is a finding too.
            Err(error) => {
                println!("{label:<52} failed: {error:#}: not measured");
                return Ok(());
            }
        };
        // The first two warm up (connection, caches) and are not counted.
        if i < 2 {
            continue;
        }
        samples.push(began.elapsed());
        if status != 200 && refused.is_none() {
            refused = Some(format!(
                "{status} {}",
                body.get("code")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
            ));
        }
    }
    let latency = percentiles(samples);
    let flag = if latency.p99 <= 100.0 {
        ""
    } else {
        "  ABOVE 100 ms"
    };
    match refused {
        Some(answer) => println!("{label:<52} answered {answer}: not measured"),
        None => println!(
            "{label:<52} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms{flag}",
            latency.p50, latency.p99, latency.max
        ),
    }
    Ok(())
}

/// Every view and list the console and the CLI ask for, `sizes.requests` times each.
pub fn measure_views(admin: &Admin, sizes: Sizes, started_ms: i64) -> Result<()> {
    let n = sizes.requests;
    let ids = sizes.ids.max(1);
    let customers = sizes.customers.max(1);
    // Spread over the registry, so that not one cached row is asked for each time.
    let pick = |i: usize, of: u64| 1 + (i as u64 * 7_919) % of;
    let year_ms: i64 = 365 * 86_400_000;
    let start = started_ms - year_ms;
    let spacing = (year_ms / i64::try_from(sizes.audit_entries.max(1)).unwrap_or(1)).max(1);
    let deep = |fraction: f64| {
        let g = ((sizes.audit_entries as f64) * fraction) as i64;
        format!("{}.{g}", start + g * spacing)
    };
    measure(admin, "customers, first page (GET /customers)", n, |_| {
        "/admin/v1/customers?limit=100".to_owned()
    })?;
    // The fill names customer i `Customer i`: a customer's id is a cursor somewhere in
    // the list (by name, so `Customer 10` sorts before `Customer 2`).
    measure(admin, "customers, a page deep in (after=…)", n, |i| {
        format!(
            "/admin/v1/customers?limit=100&after={}",
            uuid_of(CUSTOMER, pick(i, customers))
        )
    })?;
    // What the console's pickers ask as an operator types: the first 20 names starting
    // with a number's first digits (`Customer 4711`: 11 of 100,000 match; `Customer 47`:
    // over a thousand, of which 21 are read).
    measure(admin, "customers by name, a few match (name=…)", n, |i| {
        format!(
            "/admin/v1/customers?limit=21&name=customer%20{}",
            pick(i, customers)
        )
    })?;
    measure(admin, "customers by name, many match (name=…)", n, |i| {
        format!(
            "/admin/v1/customers?limit=21&name=customer%20{}",
            1 + (i % 99)
        )
    })?;
    measure(admin, "customers by name, none match", n, |i| {
        format!("/admin/v1/customers?limit=21&name=nobody%20{i}")
    })?;
    measure(
        admin,
        "customers by name, a page deep in (after=…)",
        n,
        |i| {
            let n = 1 + (i as u64 % 9);
            format!(
                "/admin/v1/customers?limit=100&name=customer%20{n}&after={}",
                uuid_of(CUSTOMER, n * 1_000 + pick(i, 999))
            )
        },
    )?;
    measure(admin, "customer page (GET /customers/{id})", n, |i| {
        format!(
            "/admin/v1/customers/{}",
            uuid_of(CUSTOMER, pick(i, customers))
        )
    })?;
    measure(admin, "ids list, first page (GET /servers)", n, |_| {
        "/admin/v1/servers?limit=100".to_owned()
    })?;
    measure(admin, "ids list, a page deep in (after=…)", n, |i| {
        format!(
            "/admin/v1/servers?limit=100&after={}",
            uuid_of(SERVER, pick(i, ids))
        )
    })?;
    measure(admin, "ids due within 30 days", n, |_| {
        "/admin/v1/servers?due_within_days=30&limit=100".to_owned()
    })?;
    measure(admin, "ids of one customer (customer_id=…)", n, |i| {
        format!(
            "/admin/v1/servers?customer_id={}&limit=100",
            uuid_of(CUSTOMER, pick(i, customers))
        )
    })?;
    measure(admin, "id page (GET /servers/{id})", n, |i| {
        format!("/admin/v1/servers/{}", uuid_of(SERVER, pick(i, ids)))
    })?;
    measure(admin, "key-clear requests, pending", n, |_| {
        "/admin/v1/key-clear-requests?status=pending".to_owned()
    })?;
    measure(admin, "key-clear request page", n, |i| {
        format!(
            "/admin/v1/key-clear-requests/{}",
            uuid_of(REQUEST, pick(i, 1_000.min(ids)))
        )
    })?;
    measure(admin, "audit: newest page (50)", n, |_| {
        "/admin/v1/audit/entries".to_owned()
    })?;
    measure(admin, "audit: a page half-way back (before=…)", n, |i| {
        format!(
            "/admin/v1/audit/entries?before={}",
            deep(0.3 + (i % 40) as f64 / 100.0)
        )
    })?;
    measure(admin, "audit: the oldest page (before=…)", n, |_| {
        format!("/admin/v1/audit/entries?before={}", deep(0.00001))
    })?;
    measure(admin, "audit: newer page (after=…)", n, |i| {
        format!(
            "/admin/v1/audit/entries?after={}",
            deep(0.3 + (i % 40) as f64 / 100.0)
        )
    })?;
    measure(admin, "audit: one id (server_id=…)", n, |i| {
        format!(
            "/admin/v1/audit/entries?server_id={}",
            uuid_of(SERVER, pick(i, ids))
        )
    })?;
    measure(admin, "audit: one customer (customer_id=…)", n, |i| {
        format!(
            "/admin/v1/audit/entries?customer_id={}",
            uuid_of(CUSTOMER, pick(i, customers))
        )
    })?;
    measure(admin, "audit: one actor (actor=bob)", n, |_| {
        "/admin/v1/audit/entries?actor=bob".to_owned()
    })?;
    measure(
        admin,
        "audit: one actor, deep (actor=bob&before=…)",
        n,
        |i| {
            format!(
                "/admin/v1/audit/entries?actor=bob&before={}",
                deep(0.3 + (i % 40) as f64 / 100.0)
            )
        },
    )?;
    measure(
        admin,
        "audit: one action (action=license.change)",
        n,
        |_| "/admin/v1/audit/entries?action=license.change".to_owned(),
    )?;
    measure(
        admin,
        "audit: refused and failed (outcome=failed)",
        n,
        |_| "/admin/v1/audit/entries?outcome=failed".to_owned(),
    )?;
    measure(admin, "audit: one code (outcome=STALE_REQUEST)", n, |_| {
        "/admin/v1/audit/entries?outcome=STALE_REQUEST".to_owned()
    })?;
    measure(admin, "audit: a day a month back (from, to)", n, |i| {
        let day = started_ms - (30 + (i % 30) as i64) * 86_400_000;
        let from = chrono::DateTime::from_timestamp_millis(day).unwrap_or_default();
        let to = from + chrono::Duration::days(1);
        format!(
            "/admin/v1/audit/entries?from={}&to={}",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        )
    })?;
    measure(admin, "audit: actor and action and a month", n, |i| {
        let day = started_ms - (60 + (i % 30) as i64) * 86_400_000;
        let from = chrono::DateTime::from_timestamp_millis(day).unwrap_or_default();
        let to = from + chrono::Duration::days(30);
        format!(
            "/admin/v1/audit/entries?actor=alice&action=license.change&from={}&to={}",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        )
    })?;
    measure(
        admin,
        "audit: search, a frequent word (q=sequence 7)",
        n,
        |_| "/admin/v1/audit/entries?q=sequence%207".to_owned(),
    )?;
    measure(
        admin,
        "audit: search, no match (a full window)",
        n.min(30),
        |_| "/admin/v1/audit/entries?q=zanzibar".to_owned(),
    )?;
    measure(admin, "audit: search within one id", n, |i| {
        format!(
            "/admin/v1/audit/entries?q=held&server_id={}",
            uuid_of(SERVER, pick(i, ids))
        )
    })?;
    measure(
        admin,
        "audit: 1000 entries a page (limit=1000)",
        n.min(30),
        |_| "/admin/v1/audit/entries?limit=1000".to_owned(),
    )?;
    // Verify: what is new since the filled head (a few entries the measurements above
    // did not write: reads are not audited), each walk storing its head.
    measure(admin, "audit verify, new entries only", n.min(30), |_| {
        "/admin/v1/audit/verify".to_owned()
    })?;
    Ok(())
}
