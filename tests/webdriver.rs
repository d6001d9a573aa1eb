//! A small W3C WebDriver client (JSON over HTTP with ureq) for a real headless Chromium
//! through `chromedriver`, on loopback. Enough to drive the kiosk page: open, find, click,
//! type, read text, run a script, take screenshots.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium and chromedriver, or `None` (with a message) when either is missing.
pub fn browser_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| names.iter().map(PathBuf::from).find(|p| p.is_file());
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            eprintln!(
                "SKIP {test}: chromium and chromium-driver are not installed (scripts/setup.sh test installs them)"
            );
            None
        }
    }
}

/// A chromedriver process and one browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn try_call(method: &str, url: &str, body: Option<Value>) -> Result<Value, (u16, Value)> {
    let req = ureq::request(method, url).timeout(Duration::from_secs(60));
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match res {
        Ok(r) => Ok(r.into_json().expect("webdriver json")),
        Err(ureq::Error::Status(code, r)) => Err((code, r.into_json().unwrap_or(Value::Null))),
        Err(e) => panic!("webdriver {method} {url}: {e}"),
    }
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    try_call(method, url, body)
        .unwrap_or_else(|(code, v)| panic!("webdriver {method} {url}: {code} {v}"))
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium of `w`×`h`.
    pub fn start(chromium: &Path, driver: &Path, w: u32, h: u32) -> Browser {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        // The flags keep Chromium from reaching for any network but loopback.
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={w},{h}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let v = call("POST", &format!("{base}/session"), Some(caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        let b = Browser {
            driver: child,
            base,
            session,
            _profile: profile,
        };
        // Make the page's viewport exactly w×h (the window adds its own frame).
        let inner = b.script("return [window.innerWidth, window.innerHeight];", json!([]));
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(u64::from(w)),
            inner[1].as_u64().unwrap_or(u64::from(h)),
        );
        call(
            "POST",
            &b.url("/window/rect"),
            Some(json!({"width": 2 * u64::from(w) - iw, "height": 2 * u64::from(h) - ih})),
        );
        b
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{}", self.base, self.session, path)
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        call("POST", &self.url("/url"), Some(json!({ "url": url })));
    }

    /// The element matching the CSS selector now, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let v = call(
            "POST",
            &self.url("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v["value"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT].as_str())
            .map(str::to_string)
    }

    /// Waits (up to `secs`) for an element matching `css`.
    pub fn wait(&self, css: &str, secs: u64) -> String {
        let t = Instant::now();
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "no `{css}` on the page after {secs} s; page text: {}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks (touches) the element matching `css`, waiting for it. The page redraws on
    /// every session event, so an element found a moment ago may be gone: find it again.
    pub fn click(&self, css: &str) {
        let t = Instant::now();
        loop {
            let e = self.wait(css, 15);
            match try_call(
                "POST",
                &self.url(&format!("/element/{e}/click")),
                Some(json!({})),
            ) {
                Ok(_) => return,
                Err((_, v)) if v["value"]["error"] == "stale element reference" => {
                    assert!(
                        t.elapsed() < Duration::from_secs(15),
                        "`{css}` kept going stale"
                    );
                }
                Err((code, v)) => panic!("click {css}: {code} {v}"),
            }
        }
    }

    /// The visible text of the element matching `css` ("" when absent).
    pub fn text(&self, css: &str) -> String {
        let v = self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            json!([css]),
        );
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits until the text of `css` satisfies `pred`; returns it.
    pub fn wait_text(&self, css: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let s = self.text(css);
            if pred(&s) {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "`{css}` never showed the expected text; last: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a script in the page and returns its value.
    pub fn script(&self, script: &str, args: Value) -> Value {
        call(
            "POST",
            &self.url("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )["value"]
            .clone()
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = call("GET", &self.url("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().expect("base64"))
            .expect("png");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
