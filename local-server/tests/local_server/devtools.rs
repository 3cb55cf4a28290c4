//! A headless Chromium driven over the DevTools protocol, for page tests that click and
//! measure (a rendered DOM alone cannot): killed with its process group on drop.

use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use test_harness::browser::chromium_command;
use test_harness::process::{signal_group, Signal};

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

pub struct Browser {
    child: Child,
    _profile: TempDir,
    ws: Pin<Box<dyn Socket>>,
    next_id: u64,
    /// Every URL the page answered with a 4xx or 5xx, as the network events said.
    pub failed: Vec<String>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        signal_group(self.child.id(), Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Chromium with a window of `width` × `height` CSS pixels, on `url`.
    pub async fn open(url: &str, width: u32, height: u32) -> Self {
        let profile = TempDir::new().unwrap();
        let child = chromium_command(profile.path())
            .arg("--remote-debugging-port=0")
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let port_file = profile.path().join("DevToolsActivePort");
        let port = test_harness::wait_until_async(
            "the DevTools port",
            Duration::from_secs(30),
            || async {
                std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u16>().ok()))
            },
        )
        .await
        .unwrap();
        let http = awc::Client::new();
        let targets: Value = http
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ws_url = targets
            .as_array()
            .and_then(|list| list.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap()
            .to_owned();
        let (_, ws) = http
            .ws(ws_url)
            .max_frame_size(16 << 20)
            .connect()
            .await
            .unwrap();
        let mut browser = Self {
            child,
            _profile: profile,
            ws: Box::pin(ws),
            next_id: 0,
            failed: Vec::new(),
        };
        browser.call("Network.enable", json!({})).await;
        browser.call("Page.enable", json!({})).await;
        browser.call("Page.navigate", json!({"url": url})).await;
        browser
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(awc::ws::Message::Text(message.into()))
            .await
            .unwrap();
        loop {
            let frame = actix_rt::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("a DevTools answer in time")
                .expect("the DevTools connection open")
                .unwrap();
            let awc::ws::Frame::Text(bytes) = frame else {
                continue;
            };
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            if value["method"] == "Network.responseReceived" {
                let response = &value["params"]["response"];
                if response["status"].as_u64().is_some_and(|s| s >= 400) {
                    self.failed
                        .push(response["url"].as_str().unwrap_or("").to_owned());
                }
            }
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is true (the page loads data asynchronously).
    pub async fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.eval(expression).await != json!(true) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {expression}; page text: {}",
                self.eval("document.body ? document.body.innerText : ''")
                    .await
            );
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
