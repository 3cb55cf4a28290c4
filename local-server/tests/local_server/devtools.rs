//! The manager page in a headless Chromium (the shared DevTools driver of
//! `test_harness::devtools`), for the page tests that click and measure; a failure of
//! the browser fails the test.

use serde_json::Value;
use test_harness::devtools::DevTools;

pub struct Browser(DevTools);

impl Browser {
    /// Chromium with a window of `width` × `height` showing `url`.
    pub async fn open(url: &str, width: u32, height: u32) -> Self {
        let mut devtools = DevTools::start(width, height, None)
            .await
            .expect("start chromium");
        devtools.navigate(url).await.expect("open the page");
        Self(devtools)
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.0.call(method, params).await.expect("DevTools call")
    }

    pub async fn eval(&mut self, expression: &str) -> Value {
        self.0.eval(expression).await.expect("evaluate in the page")
    }

    /// Evaluates `expression` until it is true (the page loads data asynchronously).
    pub async fn wait_for(&mut self, expression: &str) {
        self.0
            .wait_for(expression)
            .await
            .expect("the page's condition");
    }

    /// The URLs the page loaded with an error status.
    pub fn failed_requests(&self) -> &[String] {
        self.0.failed_requests()
    }
}
