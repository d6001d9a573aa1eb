//! `vendd doctor`: on this machine (no GPIO, no PN532, no camera, no sound card) a real
//! hardware configuration fails each missing device with its fix and exits non-zero; the
//! simulated machine with a local Mosquitto passes.

use crate::broker::{BrokerOpts, Mosquitto};
use crate::common::*;
use std::process::Command;

fn doctor(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin("vendd"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("run vendd doctor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The line of check `name` and the fix under it.
fn line<'a>(report: &'a str, name: &str) -> (&'a str, Option<&'a str>) {
    let lines: Vec<&str> = report.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.get(5..).is_some_and(|r| r.starts_with(name)))
        .unwrap_or_else(|| panic!("no {name} check in:\n{report}"));
    let fix = lines
        .get(i + 1)
        .and_then(|l| l.trim_start().strip_prefix("fix: "));
    (lines[i], fix)
}

#[test]
fn doctor_names_each_missing_device_with_its_fix_and_passes_the_simulated_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let pinmap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/hardware/pinmap-6x10-spiral.toml"
    );
    let hw = config_text(Faults::NONE, 1000)
        .replacen(
            "backend = \"sim\"",
            &format!("backend = \"rpi\"\npinmap = \"{pinmap}\""),
            1,
        )
        .replace("rows = 3\ncols = 4", "rows = 6\ncols = 10")
        .replacen(
            "[planogram]",
            "[nfc]\nreader = \"spi\"\n\n[camera]\nsource = \"v4l2\"\ndevice = 7\n\n\
             [kiosk.voice]\nenabled = true\noutput = \"alsa\"\ndevice = \"default\"\n\n[planogram]",
            1,
        );
    let cfg = write_config(tmp.path(), &hw);
    let (code, report) = doctor(&[
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        tmp.path().join("state").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{report}");
    for (name, fix_words) in [
        ("gpio", "group gpio"),
        ("nfc", "raspi-config"),
        ("camera", "v4l2-ctl"),
        ("audio", "aplay -l"),
    ] {
        let (l, fix) = line(&report, name);
        assert!(l.starts_with("FAIL"), "{name}: {l}\n{report}");
        assert!(
            fix.is_some_and(|f| f.contains(fix_words)),
            "{name}: fix {fix:?}\n{report}"
        );
    }
    assert!(line(&report, "config").0.starts_with("ok"));

    // The simulated machine, voice into WAV files, reporting to a local broker: all fine.
    let broker = Mosquitto::start(&BrokerOpts::default());
    let sim = crate::mqtt::config(broker.port(), "").replacen(
        "[planogram]",
        &format!(
            "[kiosk.voice]\nenabled = true\noutput = \"wav\"\nwav_dir = \"{}\"\n\n[planogram]",
            tmp.path().join("voice").display()
        ),
        1,
    );
    let dir2 = tmp.path().join("sim");
    std::fs::create_dir_all(&dir2).unwrap();
    let cfg = write_config(&dir2, &sim);
    let (code, report) = doctor(&[
        "--simulate",
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        dir2.join("state").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report}");
    // (The disk and the clock depend on the machine running the test: not failed is enough.)
    assert!(!line(&report, "disk").0.starts_with("FAIL"), "{report}");
    for name in ["gpio", "nfc", "camera", "audio", "broker", "journal"] {
        assert!(line(&report, name).0.starts_with("ok"), "{name}:\n{report}");
    }
    assert!(line(&report, "broker").0.contains("accepts us"), "{report}");
    // JSON for tools.
    let (code, json) = doctor(&[
        "--simulate",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        dir2.join("state").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "broker" && c["status"] == "ok"));
}
