//! systemd integration: the unit file's settings and sandboxing score, and the daemon's
//! READY / WATCHDOG / STOPPING notifications on a real notify socket.

use crate::common::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/vendd.service");

#[test]
fn the_unit_is_notify_with_watchdog_restart_and_a_strict_sandbox() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=10s",
        "Restart=on-failure",
        "StateDirectory=vendd",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "DevicePolicy=closed",
        "CapabilityBoundingSet=",
        "SupplementaryGroups=gpio spi i2c dialout video audio",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "unit lacks `{line}`"
        );
    }
    let Ok(out) = Command::new("systemd-analyze")
        .args(["security", "--offline=true", UNIT])
        .output()
    else {
        eprintln!("SKIP: systemd-analyze is not installed (scripts/setup.sh installs it)");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for vendd.service:").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(score <= 2.0, "exposure {score} is above 2.0:\n{text}");
}

#[test]
fn the_daemon_notifies_ready_pets_the_watchdog_and_says_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cfg = write_config(tmp.path(), &config_text(Faults::NONE, 1000));
    // systemd sets WATCHDOG_PID to the service's pid: `exec` from a shell keeps its $$.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" simulate --listen 127.0.0.1:0 --config \"$1\" --state-dir \"$2\"")
        .arg(bin("vendd"))
        .arg(&cfg)
        .arg(tmp.path().join("state"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "300000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let t = Instant::now();
    let mut buf = [0u8; 512];
    while t.elapsed() < Duration::from_secs(20) {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let ready = seen.iter().any(|m| m.contains("READY=1"));
        let pets = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
        if ready && pets >= 3 {
            break;
        }
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let st = child.wait().unwrap();
    while let Ok(n) = sock.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(st.success(), "exit {st}");
    assert!(seen.iter().any(|m| m.contains("READY=1")), "{seen:?}");
    assert!(
        seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3,
        "{seen:?}"
    );
    assert!(seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
}

#[test]
fn the_kiosk_browser_unit_runs_chromium_in_kiosk_mode_on_loopback_only() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/vendd-kiosk.service"
    ))
    .unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    for flag in [
        "--kiosk",
        "--noerrdialogs",
        "--touch-events=enabled",
        "--disable-pinch",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-quic",
    ] {
        assert!(exec.split_whitespace().any(|w| w == flag), "lacks {flag}");
    }
    let urls: Vec<&str> = exec
        .split_whitespace()
        .filter(|w| w.starts_with("http"))
        .collect();
    assert_eq!(urls, ["http://127.0.0.1:8080/"], "loopback only");
    // The README gives the same launch line.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(
            exec.trim_end_matches(" http://127.0.0.1:8080/")
                .split(" --user-data-dir")
                .next()
                .unwrap()
        ),
        "README lacks the launch line"
    );
}
