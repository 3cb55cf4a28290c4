//! A headless Chromium driven over the DevTools protocol, for the page tests that click,
//! type and measure (a rendered DOM alone cannot): the operator console's and the
//! manager page's. Chromium runs in a process group of its own with a fresh profile,
//! and the whole group is killed when the value is dropped.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::browser::{chromium_command, trust_certificate};
use crate::process::{signal_group, Signal};

/// How long one DevTools call, and one wait for a page condition, may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const CONDITION_TIMEOUT: Duration = Duration::from_secs(15);

/// The DevTools websocket (awc's framed socket, named by what it does).
trait Socket:
    futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
    + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
{
}

impl<T> Socket for T where
    T: futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
{
}

/// One Chromium page under remote control.
pub struct DevTools {
    child: Child,
    _profile: TempDir,
    ws: Pin<Box<dyn Socket>>,
    next_id: u64,
    /// The URLs the page loaded with an error status (400 and up), seen so far.
    failed_requests: Vec<String>,
}

impl Drop for DevTools {
    fn drop(&mut self) {
        // The renderer and GPU processes are in Chromium's group: end them all.
        signal_group(self.child.id(), Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevTools {
    /// Starts Chromium with a window of `width` × `height` on a blank page, trusting the
    /// server certificate in `certificate` when one is given.
    pub async fn start(width: u32, height: u32, certificate: Option<&Path>) -> Result<Self> {
        let profile = TempDir::new().context("making Chromium's profile folder")?;
        let mut chromium = chromium_command(profile.path());
        if let Some(certificate) = certificate {
            trust_certificate(&mut chromium, certificate)?;
        }
        let child = chromium
            .arg("--remote-debugging-port=0")
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting chromium")?;
        let port_file = profile.path().join("DevToolsActivePort");
        let port = crate::wait_until_async("chromium's DevTools port", ANSWER_TIMEOUT, || async {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u16>().ok()))
        })
        .await?;
        let http = awc::Client::new();
        let targets: Value = http
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .await
            .map_err(|e| anyhow!("listing the DevTools targets: {e}"))?
            .json()
            .await
            .map_err(|e| anyhow!("reading the DevTools targets: {e}"))?;
        let ws_url = targets
            .as_array()
            .and_then(|list| list.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .ok_or_else(|| anyhow!("Chromium shows no page target: {targets}"))?
            .to_owned();
        let (_, ws) = http
            .ws(ws_url)
            .max_frame_size(16 << 20)
            .connect()
            .await
            .map_err(|e| anyhow!("opening the DevTools websocket: {e}"))?;
        Ok(Self {
            child,
            _profile: profile,
            ws: Box::pin(ws),
            next_id: 0,
            failed_requests: Vec::new(),
        })
    }

    /// Calls a DevTools `method` and returns its result; a DevTools error is an error.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(awc::ws::Message::Text(message.into()))
            .await
            .map_err(|e| anyhow!("sending {method}: {e}"))?;
        loop {
            let frame = tokio::time::timeout(ANSWER_TIMEOUT, self.ws.next())
                .await
                .map_err(|_| anyhow!("no answer to {method} within {ANSWER_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow!("the DevTools connection closed during {method}"))?
                .map_err(|e| anyhow!("reading the answer to {method}: {e}"))?;
            if let awc::ws::Frame::Text(bytes) = frame {
                let value: Value = serde_json::from_slice(&bytes)?;
                self.note_failed_request(&value);
                if value["id"] == id {
                    if let Some(error) = value.get("error") {
                        bail!("{method}: {error}");
                    }
                    return Ok(value["result"].clone());
                }
            }
        }
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value; an
    /// exception in the page is an error.
    pub async fn eval(&mut self, expression: &str) -> Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("{expression}: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Loads `url` in the page, noting every request that fails from then on.
    pub async fn navigate(&mut self, url: &str) -> Result<()> {
        self.call("Network.enable", json!({})).await?;
        self.call("Page.enable", json!({})).await?;
        self.call("Page.navigate", json!({ "url": url })).await?;
        Ok(())
    }

    /// Evaluates `expression` until it is true (pages load their data asynchronously);
    /// the error names the page's text when it never becomes true. An expression that
    /// throws is "not yet": right after a navigation the page's elements may not exist.
    pub async fn wait_for(&mut self, expression: &str) -> Result<()> {
        let deadline = Instant::now() + CONDITION_TIMEOUT;
        loop {
            let last = match self.eval(expression).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(value) => value.to_string(),
                Err(thrown) => format!("{thrown:#}"),
            };
            if Instant::now() >= deadline {
                let text = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await?;
                bail!("timed out waiting for {expression} (last: {last}); page text: {text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URLs the page loaded with an error status (400 and up) since `navigate`,
    /// as far as the events read so far tell.
    pub fn failed_requests(&self) -> &[String] {
        &self.failed_requests
    }

    fn note_failed_request(&mut self, event: &Value) {
        if event["method"] != "Network.responseReceived" {
            return;
        }
        let response = &event["params"]["response"];
        if response["status"]
            .as_u64()
            .is_some_and(|status| status >= 400)
        {
            let url = response["url"].as_str().unwrap_or_default();
            self.failed_requests.push(url.to_owned());
        }
    }

    /// The page as a PNG image.
    pub async fn screenshot(&mut self) -> Result<Vec<u8>> {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let data = shot["data"].as_str().unwrap_or_default();
        Ok(base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            data,
        )?)
    }
}
