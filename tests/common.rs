//! Test helpers: a real `vendd simulate` process on a free loopback port, with its own
//! state directory, driven over HTTP.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a built binary of this package.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "vendd" => PathBuf::from(env!("CARGO_BIN_EXE_vendd")),
        "vendctl" => PathBuf::from(env!("CARGO_BIN_EXE_vendctl")),
        other => panic!("no binary {other}"),
    }
}

/// Simulator physics and faults for a test config.
#[derive(Clone, Copy)]
pub struct Faults {
    pub p_jam: f64,
    pub p_missed_drop: f64,
    pub p_double_drop: f64,
    pub p_stuck_home: f64,
    pub p_bounce: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        p_jam: 0.0,
        p_missed_drop: 0.0,
        p_double_drop: 0.0,
        p_stuck_home: 0.0,
        p_bounce: 0.0,
    };
}

/// A 3×4 machine with fast physics (100 ms motor turns). Prices: row A 150, B 200, C 250
/// plus 10 per column; capacity 8.
pub fn config_text(f: Faults, floor_limit: i64) -> String {
    let mut slots = String::new();
    for (r, base) in [('A', 150), ('B', 200), ('C', 250)] {
        for c in 1..=4 {
            let product = ["cola", "water", "chips"][(r as u8 - b'A') as usize];
            slots.push_str(&format!(
                "  {{ id = \"{r}{c}\", product = \"{product}\", price = {}, capacity = 8 }},\n",
                base + 10 * c
            ));
        }
    }
    format!(
        r#"
[machine]
id = "test-kiosk"
site = "test-site"
rows = 3
cols = 4
currency = "EUR"

[timeouts]
shopping_ms = 30000
credential_ms = 30000
warn_before_ms = 5000
authorising_ms = 2000
vend_watchdog_ms = 3000
settling_ms = 2000
receipt_ms = 60000

[vend]
max_attempts = 2
max_cart_items = 6
leave_home_timeout_ms = 150
motor_timeout_ms = 400
drop_window_ms = 200
drop_debounce_ms = 5

[offline]
floor_limit = {floor_limit}
max_offline_total = 100000000
max_uses_per_day = 1000000
methods = ["test-card", "card", "face"]

[hardware]
backend = "sim"

[sim]
motor_period_ms = 100
period_jitter = 0.05
home_notch = 0.35
fall_delay_ms = 20
fall_jitter_ms = 5
break_ms = 12
break_jitter_ms = 3
double_drop_gap_ms = 40
glitch_max_us = 2000
p_jam = {}
p_missed_drop = {}
p_double_drop = {}
p_stuck_home = {}
p_bounce = {}

[planogram]
products = [
  {{ id = "cola", name = "Cola" }},
  {{ id = "water", name = "Water" }},
  {{ id = "chips", name = "Chips" }},
]
slots = [
{slots}]
"#,
        f.p_jam, f.p_missed_drop, f.p_double_drop, f.p_stuck_home, f.p_bounce
    )
}

/// A running `vendd simulate`. Killed (SIGKILL) on drop.
pub struct Daemon {
    pub child: Child,
    pub base: String,
}

impl Daemon {
    /// Starts `vendd simulate` with `config` (a file path) on a free loopback port.
    pub fn start(config: &Path, state_dir: &Path, seed: u64) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state_dir.with_extension("log"))
            .expect("log file");
        let mut child = Command::new(bin("vendd"))
            .args([
                "simulate",
                "--listen",
                "127.0.0.1:0",
                "--seed",
                &seed.to_string(),
            ])
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state_dir)
            .env("VENDD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn vendd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("vendd listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(state_dir.with_extension("log")).unwrap_or_default();
                panic!("vendd did not start; log:\n{log}");
            }
        };
        Daemon { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET → JSON.
    pub fn get(&self, path: &str) -> Value {
        ureq::get(&self.url(path))
            .call()
            .expect("GET")
            .into_json()
            .expect("json")
    }

    /// GET → HTTP status only.
    pub fn get_status(&self, path: &str) -> u16 {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// POST JSON → (status, JSON body), errors included.
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        answer(ureq::post(&self.url(path)).send_json(body))
    }

    /// Waits until the session satisfies `pred` (polling), returning it.
    pub fn wait_session(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let s = self.get("/api/session");
            if pred(&s) {
                return s;
            }
            assert!(
                t.elapsed() < timeout,
                "session never reached the expected state; last: {s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "vendd did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match r {
        Ok(resp) => {
            let st = resp.status();
            (st, resp.into_json().unwrap_or(Value::Null))
        }
        Err(ureq::Error::Status(st, resp)) => (st, resp.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Runs vendctl with args; returns (exit code, stdout, stderr).
pub fn vendctl(state_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("vendctl"))
        .arg("--state-dir")
        .arg(state_dir)
        .args(args)
        .output()
        .expect("run vendctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The journal as parsed JSON lines.
pub fn export(state_dir: &Path) -> Vec<Value> {
    let (code, out, err) = vendctl(state_dir, &["journal", "export"]);
    assert_eq!(code, 0, "export failed: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Writes the config to a file in `dir` and returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("vendd.toml");
    std::fs::write(&p, text).expect("write config");
    p
}
