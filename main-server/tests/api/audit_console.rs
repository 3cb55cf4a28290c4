//! The console's audit view in a headless Chromium, as an operator and as a viewer:
//! the filter form, older and newer pages, the CSV and JSON downloads (every matching
//! entry), and the chain's status (verified up to a position, or broken at one).

use std::time::Duration;

use serde_json::{json, Value};
use test_harness::browser::chromium_present;
use test_harness::devtools::DevTools;

use crate::audit_chain::{connect, tamper};
use crate::helpers::{spawn_app, TestApp};
use crate::operators::add;

struct Browser(DevTools);

impl Browser {
    async fn eval(&mut self, expression: &str) -> Value {
        self.0.eval(expression).await.expect("evaluate in the page")
    }

    async fn wait_for(&mut self, expression: &str) {
        self.0
            .wait_for(expression)
            .await
            .expect("the page's condition");
    }

    async fn wait_for_text(&mut self, id: &str, text: &str) {
        self.wait_for(&format!(
            "document.getElementById({}).textContent.includes({})",
            json!(id),
            json!(text)
        ))
        .await;
    }

    async fn click(&mut self, id: &str) {
        self.eval(&format!(
            "document.getElementById({}).click(); true",
            json!(id)
        ))
        .await;
    }

    async fn set(&mut self, id: &str, value: &str) {
        self.eval(&format!(
            "document.getElementById({}).value = {}; true",
            json!(id),
            json!(value)
        ))
        .await;
    }

    /// Clicks the download button `id` and returns the text of the file the browser
    /// saved (as `name`, in `dir`).
    async fn download(&mut self, id: &str, dir: &std::path::Path, name: &str) -> String {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        self.0
            .call(
                "Page.setDownloadBehavior",
                json!({"behavior": "allow", "downloadPath": dir}),
            )
            .await
            .expect("allow downloads");
        self.click(id).await;
        test_harness::wait_until_async("the download", Duration::from_secs(20), || async {
            std::fs::read_to_string(&path)
                .ok()
                .filter(|text| !text.is_empty())
        })
        .await
        .expect("the browser saves the file")
    }

    /// The texts of the audit table's rows.
    async fn rows(&mut self) -> Vec<String> {
        let rows = self
            .eval("[...document.querySelectorAll('#audit-body tr')].map(r => r.textContent)")
            .await;
        serde_json::from_value(rows).unwrap_or_default()
    }

    /// Signed in with `token`, on the audit view.
    async fn on_audit_view(app: &TestApp, token: &str) -> Self {
        let mut browser = Self(
            DevTools::start(1280, 900, Some(&app.data_dir().join("tls-cert.pem")))
                .await
                .expect("start chromium"),
        );
        browser
            .0
            .navigate(&format!("{}/", app.admin_base()))
            .await
            .expect("open the console");
        browser
            .wait_for("document.body && document.body.dataset.console === 'ready'")
            .await;
        browser
            .eval(&format!(
                "document.getElementById('token').value = {}; \
                 document.getElementById('sign-in-form').requestSubmit(); true",
                json!(token)
            ))
            .await;
        browser.wait_for_text("customers-body", "Acme").await;
        browser.eval("location.hash = '#audit'; true").await;
        browser.wait_for_text("audit-status", "Hash chain").await;
        browser
    }
}

/// Filters, pages both ways, a download, and the chain's status, for `token`.
async fn walk_the_audit_view(app: &TestApp, token: &str, server_id: uuid::Uuid, first: bool) {
    let mut browser = Browser::on_audit_view(app, token).await;
    if first {
        browser.wait_for_text("audit-status", "not verified").await;
    }

    // Two entries a page: the first page, then older, then newer again.
    browser.set("audit-limit", "2").await;
    browser
        .eval("document.getElementById('audit-form').requestSubmit(); true")
        .await;
    browser
        .wait_for("document.querySelectorAll('#audit-body tr').length === 2")
        .await;
    let first = browser.rows().await;
    assert_eq!(
        browser
            .eval("document.getElementById('audit-newer').disabled")
            .await,
        json!(true)
    );
    browser.click("audit-older").await;
    browser
        .wait_for(&format!(
            "!document.querySelector('#audit-body').textContent.includes({})",
            json!(first[0])
        ))
        .await;
    let second = browser.rows().await;
    assert_ne!(first, second);
    browser.click("audit-newer").await;
    browser
        .wait_for(&format!(
            "document.querySelector('#audit-body tr') && \
             document.querySelector('#audit-body tr').textContent === {}",
            json!(first[0])
        ))
        .await;
    assert_eq!(browser.rows().await, first);

    // A filter: the id's entries only.
    browser.set("audit-limit", "100").await;
    browser.set("audit-server", &server_id.to_string()).await;
    browser
        .eval("document.getElementById('audit-form').requestSubmit(); true")
        .await;
    let rows_all_name_the_id = format!(
        "(() => {{ const rows = [...document.querySelectorAll('#audit-body tr')]; \
         return rows.length === 2 && rows.every(r => r.textContent.includes({})); }})()",
        json!(server_id.to_string())
    );
    browser.wait_for(&rows_all_name_the_id).await;

    // A filter the server refuses: its words on the page.
    browser.set("audit-action", "key.steal").await;
    browser
        .eval("document.getElementById('audit-form').requestSubmit(); true")
        .await;
    browser
        .wait_for_text("message", "no action of the audit log")
        .await;
    browser.set("audit-action", "license.add").await;
    browser
        .eval("document.getElementById('audit-form').requestSubmit(); true")
        .await;
    browser
        .wait_for(
            "(() => { const rows = [...document.querySelectorAll('#audit-body tr')]; \
             return rows.length === 1 && rows[0].textContent.includes('license.add'); })()",
        )
        .await;

    // The CSV download holds the filtered entries.
    let downloads = tempfile::TempDir::new().expect("download dir");
    let csv = browser
        .download("audit-export-csv", downloads.path(), "solme-audit.csv")
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with("entry,chain position,time (UTC)"),
        "{csv}"
    );
    assert!(lines[1].contains(",license.add,"), "{csv}");
    assert!(lines[1].contains(&server_id.to_string()), "{csv}");

    // The JSON download, without filters: every entry.
    browser.set("audit-server", "").await;
    browser.set("audit-action", "").await;
    let text = browser
        .download("audit-export-json", downloads.path(), "solme-audit.json")
        .await;
    let exported: Value = serde_json::from_str(&text).expect("a JSON array");
    let (_, all) = app.get("/admin/v1/audit/entries?limit=1000").await;
    // Entries written after the download (none expected) aside, nothing is missing.
    assert!(
        exported.as_array().expect("array").len()
            >= all["entries"].as_array().expect("entries").len() - 1,
        "{exported}"
    );

    // Verifying: the status says up to which position; the whole walk too.
    browser.click("audit-verify-new").await;
    browser.wait_for_text("audit-chain", "intact").await;
    browser
        .wait_for_text("audit-status", "verified up to position")
        .await;
}

#[actix_rt::test]
async fn chromium_audit_view_as_operator_and_viewer() {
    if !chromium_present() {
        return;
    }
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    app.register().await;
    let operator = add(&app, "olga", "operator").await;
    let viewer = add(&app, "vera", "viewer").await;
    test_harness::wait_until_async("every entry sealed", Duration::from_secs(20), || async {
        let (_, page) = app.get("/admin/v1/audit/entries?limit=1").await;
        (page["chain"]["head_seq"].as_u64() >= Some(7)).then_some(())
    })
    .await
    .expect("the sealer seals the entries");
    walk_the_audit_view(&app, &operator, server_id, true).await;
    walk_the_audit_view(&app, &viewer, server_id, false).await;

    // A break found by the whole walk shows as the chain's status.
    tamper(
        &mut connect(&app),
        &["UPDATE audit_log SET detail = 'nothing happened' WHERE chain_seq = 2".into()],
    );
    let mut browser = Browser::on_audit_view(&app, &viewer).await;
    browser.click("audit-verify").await;
    browser.wait_for_text("audit-chain", "changed").await;
    browser.wait_for_text("audit-status", "broken").await;
    browser.wait_for_text("audit-status", "at position 2").await;
}
