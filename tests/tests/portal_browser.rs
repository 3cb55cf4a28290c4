//! The customer portal in a real browser, against the real programs: a headless
//! Chromium (driven over the DevTools protocol) asks for a sign-in link, the real mail
//! gateway mails it (read from its outbox), the contact signs in with it, uploads the
//! sync data a real local server exported, downloads the license file and imports it
//! into that local server with a receipt, uploads the receipt, asks for a key-pair
//! clearing and sees an operator approve it; a second customer's contact then sees none
//! of the first customer's ids. Skipped with a notice when Chromium is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{World, CONTACT};
use test_harness::browser::chromium_present;
use test_harness::devtools::DevTools;
use test_harness::mail::read_outbox;
use uuid::Uuid;

const BETA: &str = "it@beta.example";
/// The longest a page condition is waited for: a deadline, not a pause (a busy CI
/// machine once took longer than 30 s for one of them).
const WAIT: Duration = Duration::from_secs(60);

/// Evaluates `expression` until it is true; errors while a page is being replaced
/// (a form posted) count as not yet.
async fn until(page: &mut DevTools, expression: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(value) = page.eval(expression).await {
            if value == json!(true) {
                return;
            }
        }
        if Instant::now() >= deadline {
            let text = page
                .eval("document.body ? document.body.innerText : ''")
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {expression}; page text: {text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn has_text(page: &mut DevTools, text: &str) {
    until(
        page,
        &format!("document.body && document.body.innerText.includes({text:?})"),
    )
    .await;
}

async fn click(page: &mut DevTools, selector: &str) {
    page.eval(&format!("document.querySelector({selector:?}).click()"))
        .await
        .unwrap();
}

/// Chooses `file` in the page's file input `selector`, as a person picking it does.
async fn choose_file(page: &mut DevTools, selector: &str, file: &Path) {
    let document = page.call("DOM.getDocument", json!({})).await.unwrap();
    let root = document["root"]["nodeId"].clone();
    let node = page
        .call(
            "DOM.querySelector",
            json!({"nodeId": root, "selector": selector}),
        )
        .await
        .unwrap();
    page.call(
        "DOM.setFileInputFiles",
        json!({"nodeId": node["nodeId"], "files": [file.to_string_lossy()]}),
    )
    .await
    .unwrap();
}

/// The sign-in link the gateway mailed to `to`, newest first.
fn mailed_link(outbox: &Path, to: &str) -> String {
    test_harness::wait_until("the mailed sign-in link", WAIT, || {
        read_outbox(outbox)
            .ok()?
            .into_iter()
            .rev()
            .filter(|mail| mail.to == to)
            .find_map(|mail| {
                let start = mail.text.find("https://")?;
                let link: String = mail.text[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                link.contains("/portal/link?token=").then_some(link)
            })
    })
    .unwrap()
}

/// Signs `email` in: asks for a link on the sign-in page, opens the mailed link and
/// presses its button.
async fn sign_in(page: &mut DevTools, portal: &str, outbox: &Path, email: &str) {
    page.navigate(&format!("{portal}/portal/")).await.unwrap();
    until(page, "!!document.querySelector('input[name=email]')").await;
    page.eval(&format!(
        "document.querySelector('input[name=email]').value = {email:?}"
    ))
    .await
    .unwrap();
    click(page, "form[action='/portal/sign-in'] button").await;
    has_text(page, "a sign-in link is on its way").await;
    let link = mailed_link(outbox, email);
    assert!(link.starts_with(portal), "{link}");
    page.navigate(&link).await.unwrap();
    until(page, "!!document.querySelector('#sign-in')").await;
    click(page, "#sign-in").await;
    has_text(page, "Your license servers").await;
    // No secret in the address bar after sign-in.
    let url = page.eval("location.href").await.unwrap();
    assert_eq!(url, json!(format!("{portal}/portal/")));
}

/// Waits for the one file Chromium downloads into `dir`.
fn downloaded(dir: &Path) -> PathBuf {
    test_harness::wait_until("the downloaded license file", WAIT, || {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "txt"))
    })
    .unwrap()
}

#[test]
fn a_contact_signs_in_by_mail_syncs_by_upload_and_asks_for_a_clearing() {
    if !chromium_present() {
        return;
    }
    let world = World::sqlite();
    let gateway = world.gateway();
    let (server_id, local) = world.local_server(5);
    let admin = world.admin();
    let beta = admin.customer("Beta", &[BETA]).unwrap();
    let beta_id = admin.server(&beta).unwrap();
    let main = &world.mains()[0];
    let portal = main.sync_urls()[0].clone();
    let downloads = world.dir().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    actix_rt::System::new().block_on(async {
        let mut page = DevTools::start(1280, 900, Some(&main.dir.join("tls-cert.pem")))
            .await
            .unwrap();
        page.call(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": downloads.to_string_lossy()}),
        )
        .await
        .unwrap();
        sign_in(&mut page, &portal, &gateway.outbox(), CONTACT).await;
        has_text(&mut page, &server_id.to_string()).await;
        has_text(&mut page, "No license file issued yet").await;

        // Sync by upload: the real local server's sync data in, the license file out.
        let sync_file = local.dir.join("sync-data.txt");
        local
            .succeed("export-sync-data", &[&sync_file.to_string_lossy()])
            .unwrap();
        choose_file(&mut page, "#sync-data", &sync_file).await;
        click(&mut page, "#upload").await;
        let license = downloaded(&downloads);
        assert!(license
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(&server_id.to_string())));
        let receipt = local.dir.join("receipt.txt");
        local
            .succeed(
                "import-license-file",
                &[
                    &license.to_string_lossy(),
                    "--receipt",
                    &receipt.to_string_lossy(),
                ],
            )
            .unwrap();
        assert!(support::synchronized(&local.status().unwrap()));

        // The receipt, uploaded: Solme now knows the file is installed.
        page.navigate(&format!("{portal}/portal/servers/{server_id}"))
            .await
            .unwrap();
        until(&mut page, "!!document.querySelector('#receipt-file')").await;
        choose_file(&mut page, "#receipt-file", &receipt).await;
        click(&mut page, "#upload-receipt").await;
        has_text(&mut page, "installed license file #1").await;
        page.navigate(&format!("{portal}/portal/servers/{server_id}"))
            .await
            .unwrap();
        until(
            &mut page,
            "!!document.querySelector('#installed') && \
             document.querySelector('#installed').innerText.includes('installed on')",
        )
        .await;
        has_text(&mut page, "uploaded in the portal").await;

        // A key-pair clearing, asked for signed in, approved by an operator.
        page.eval("document.querySelector('#reason').value = 'moved to new hardware'")
            .await
            .unwrap();
        click(&mut page, "#key-clear").await;
        has_text(&mut page, "pending: an operator will decide").await;
        let pending = admin.key_clear_requests("pending").unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0]["sender_auth"], "authenticated");
        admin.approve(&pending[0]).unwrap();
        page.navigate(&format!("{portal}/portal/servers/{server_id}"))
            .await
            .unwrap();
        has_text(&mut page, "approved: the key pair is cleared").await;
        has_text(&mut page, "not bound").await;

        // Signed out, then the other customer's contact sees none of it.
        click(&mut page, "form[action='/portal/sign-out'] button").await;
        until(&mut page, "!!document.querySelector('input[name=email]')").await;
        sign_in(&mut page, &portal, &gateway.outbox(), BETA).await;
        has_text(&mut page, &beta_id.to_string()).await;
        let text = page.eval("document.body.innerText").await.unwrap();
        let text = text.as_str().unwrap_or_default();
        assert!(!text.contains(&server_id.to_string()), "{text}");
        assert!(!text.contains("Acme"), "{text}");
        page.navigate(&format!("{portal}/portal/servers/{server_id}"))
            .await
            .unwrap();
        has_text(&mut page, "is not known to Solme").await;
        let unknown = Uuid::new_v4();
        let text = page.eval("document.body.innerText").await.unwrap();
        page.navigate(&format!("{portal}/portal/servers/{unknown}"))
            .await
            .unwrap();
        has_text(&mut page, &unknown.to_string()).await;
        let unknown_text = page.eval("document.body.innerText").await.unwrap();
        assert_eq!(
            text.as_str()
                .unwrap_or_default()
                .replace(&server_id.to_string(), "ID"),
            unknown_text
                .as_str()
                .unwrap_or_default()
                .replace(&unknown.to_string(), "ID"),
            "another customer's id is answered like an unknown one"
        );

        // The operator's side: a license change the server has not installed yet shows
        // under the console's "Changes not yet installed" filter, with what it holds.
        admin.add_license(server_id, "solme-cam", 2).unwrap();
        page.navigate(&format!("{}/", main.admin_url()))
            .await
            .unwrap();
        until(
            &mut page,
            "document.body && document.body.dataset.console === 'ready'",
        )
        .await;
        page.eval(&format!(
            "document.getElementById('token').value = {:?}; \
             document.getElementById('sign-in-form').requestSubmit(); true",
            main.token().unwrap()
        ))
        .await
        .unwrap();
        has_text(&mut page, "Signed in as admin").await;
        page.eval("location.hash = '#servers'; true").await.unwrap();
        until(
            &mut page,
            "!document.getElementById('show-not-installed').closest('[hidden]')",
        )
        .await;
        click(&mut page, "#show-not-installed").await;
        until(
            &mut page,
            &format!(
                "document.getElementById('servers-body').textContent.includes({:?})",
                "license file #1 issued on"
            ),
        )
        .await;
        let listed = page
            .eval("document.getElementById('servers-body').textContent")
            .await
            .unwrap();
        let listed = listed.as_str().unwrap_or_default();
        assert!(listed.contains("license file #1 issued on"), "{listed}");
        assert!(listed.contains(&server_id.to_string()), "{listed}");
        assert!(listed.contains("installed on"), "{listed}");
        assert!(!listed.contains(&beta_id.to_string()), "{listed}");
    });
    let audit = admin.audit().unwrap();
    let sign_ins: Vec<_> = audit
        .iter()
        .filter(|e| e["action"] == "portal.sign_in")
        .map(|e| e["actor"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(sign_ins.contains(&CONTACT.to_owned()), "{sign_ins:?}");
    assert!(sign_ins.contains(&BETA.to_owned()), "{sign_ins:?}");
}
