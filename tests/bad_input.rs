//! Bad input gets a clear error and changes nothing: configuration files checked by
//! `vendd check-config`, and every kind of malformed API request against a running daemon.

use crate::common::*;
use serde_json::{json, Value};
use std::process::Command;

fn check_config(text: &str) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let p = write_config(tmp.path(), text);
    let out = Command::new(bin("vendd"))
        .arg("check-config")
        .arg(&p)
        .output()
        .unwrap();
    let msg =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), msg)
}

/// Replaces the first occurrence of `from` in the good config.
fn broken(from: &str, to: &str) -> String {
    let good = config_text(Faults::NONE, 1000);
    assert!(good.contains(from), "fixture lacks {from}");
    good.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn the_embedded_and_example_configs_are_valid() {
    let ok = check_config(&config_text(Faults::NONE, 1000));
    assert_eq!(ok.0, 0, "{}", ok.1);
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/example-6x10.toml"
    ))
    .unwrap();
    let (code, msg) = check_config(&example);
    assert_eq!(code, 0, "{msg}");
    assert!(msg.contains("60 slots"), "{msg}");
}

#[test]
fn malformed_configs_name_the_file_line_and_field_and_exit_non_zero() {
    // (replace, with, expected field text, the line's marker in the broken text)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "currency = \"EUR\"",
            "currency = \"euro\"",
            "currency",
            "currency = \"euro\"",
        ),
        ("rows = 3", "rows = 3\nmotors = 4", "motors", "motors = 4"),
        (
            "price = 160",
            "price = -5",
            "planogram.slots[0].price",
            "price = -5",
        ),
        (
            "product = \"cola\", price = 170",
            "product = \"fanta\", price = 170",
            "planogram.slots[1].product",
            "fanta",
        ),
        (
            "id = \"A4\"",
            "id = \"D4\"",
            "planogram.slots[3].id",
            "\"D4\"",
        ),
        (
            "id = \"A4\"",
            "id = \"A1\"",
            "planogram.slots[3].id",
            "id = \"A1\", product = \"cola\", price = 190",
        ),
        ("id = \"A4\"", "id = \"A0\"", "A0", "\"A0\""),
        (
            "vend_watchdog_ms = 3000",
            "vend_watchdog_ms = 500",
            "timeouts.vend_watchdog_ms",
            "vend_watchdog_ms = 500",
        ),
        (
            "max_attempts = 2",
            "max_attempts = 0",
            "vend.max_attempts",
            "max_attempts = 0",
        ),
        (
            "[timeouts]",
            "[http]\nlisten = \"0.0.0.0:80\"\n\n[timeouts]",
            "http.listen",
            "listen = \"0.0.0.0:80\"",
        ),
        (
            "p_jam = 0",
            "p_jam = \"often\"",
            "p_jam",
            "p_jam = \"often\"",
        ),
        (
            "backend = \"sim\"",
            "backend = \"rpi\"",
            "hardware.pinmap",
            "backend = \"rpi\"",
        ),
        (
            "capacity = 8 },\n",
            "capacity = 8, stock = 9 },\n",
            "planogram.slots[0].stock",
            "stock = 9",
        ),
        ("[offline]", "[offline\n", "-", "[offline\n"),
    ];
    for (from, to, field, marker) in cases {
        let text = broken(from, to);
        let (code, msg) = check_config(&text);
        assert_ne!(code, 0, "{to}: accepted");
        let line = line_of(&text, marker);
        assert!(msg.contains("vendd.toml:"), "{to}: no file in {msg}");
        assert!(
            msg.contains(&format!("vendd.toml:{line}:")),
            "{to}: expected line {line} in {msg}"
        );
        assert!(msg.contains(field), "{to}: expected field {field} in {msg}");
    }
    let (code, msg) = check_config("");
    assert_ne!(code, 0);
    assert!(msg.contains("machine"), "{msg}");
}

#[test]
fn face_pay_settings_are_checked_and_face_pay_never_stands_alone() {
    let base = config_text(Faults::NONE, 1000);
    let with =
        |sections: &str| base.replacen("[planogram]", &format!("{sections}\n[planogram]"), 1);
    // (sections, expected field, expected words)
    let cases = [
        (
            "[face]\nenabled = true\ndetect_width = 300\n",
            "face.detect_width",
            "multiple of 32",
        ),
        (
            "[face]\nenabled = true\nchallenge = \"up\"\n",
            "face.challenge",
            "random, left, right",
        ),
        (
            "[face]\nenabled = true\nroi_size = 100\n",
            "face.roi_size",
            "multiple of 32",
        ),
        (
            "[face]\nenabled = true\n\n[face.matching]\nthreshold = 1.5\n",
            "face.matching",
            "cosine",
        ),
        (
            "[face]\nenabled = true\n\n[face.enrol]\nmin_captures = 1\n",
            "face.enrol",
            "2 to 20",
        ),
        (
            "[face]\nenabled = true\n\n[face.liveness]\ntime_limit_ms = 100\n",
            "face.liveness",
            "1000 to 60000",
        ),
        (
            "[face]\nenabled = true\nbogus = 1\n",
            "bogus",
            "unknown field",
        ),
        (
            "[camera]\nsource = \"none\"\n\n[face]\nenabled = true\n",
            "face.enabled",
            "needs a camera",
        ),
        (
            "[nfc]\nreader = \"none\"\n\n[paycodes]\npattern = []\n\n[face]\nenabled = true\n",
            "face.enabled",
            "beside a card reader or pay codes",
        ),
    ];
    for (sections, field, words) in cases {
        let (code, msg) = check_config(&with(sections));
        assert_ne!(code, 0, "{sections}: accepted");
        assert!(msg.contains(field), "{sections}: expected {field} in {msg}");
        assert!(
            msg.contains(words),
            "{sections}: expected `{words}` in {msg}"
        );
    }
    // Off, face settings are not needed; on with a reader and a camera, the defaults pass.
    for ok in [
        "[face]\nenabled = false\nchallenge = \"left\"\n",
        "[face]\nenabled = true\n",
        "[nfc]\nreader = \"none\"\n\n[face]\nenabled = true\n",
    ] {
        let (code, msg) = check_config(&with(ok));
        assert_eq!(code, 0, "{ok}: {msg}");
    }
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = Command::new(bin("vendd"))
        .args(["check-config", "/nonexistent/vendd.toml"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("/nonexistent/vendd.toml") && msg.contains("cannot read"),
        "{msg}"
    );
}

#[test]
fn malformed_api_requests_get_a_json_error_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config_text(Faults::NONE, 100_000));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 1);
    let snapshot = |d: &Daemon| -> (Value, Value, Value, Value) {
        (
            d.get("/api/catalog"),
            d.get("/api/session"),
            d.get("/sim/state"),
            d.get("/api/service/counters"),
        )
    };
    let raw = |method: &str, path: &str, ctype: Option<&str>, body: &str| -> (u16, Value) {
        let mut r = ureq::request(method, &d.url(path));
        if let Some(c) = ctype {
            r = r.set("content-type", c);
        }
        answer(r.send_string(body))
    };
    let before = snapshot(&d);
    let big = format!("{{\"slot\":\"A1\",\"pad\":\"{}\"}}", "x".repeat(20_000));
    let j = Some("application/json");
    let cases: Vec<(&str, &str, Option<&str>, String, u16)> = vec![
        ("POST", "/api/cart/items", j, "{".into(), 400),
        ("POST", "/api/cart/items", j, "[]".into(), 422),
        ("POST", "/api/cart/items", j, "{}".into(), 422),
        (
            "POST",
            "/api/cart/items",
            None,
            "{\"slot\":\"A1\"}".into(),
            415,
        ),
        (
            "POST",
            "/api/cart/items",
            Some("text/plain"),
            "{\"slot\":\"A1\"}".into(),
            415,
        ),
        (
            "POST",
            "/api/cart/items",
            j,
            "{\"slot\":\"Z9\"}".into(),
            404,
        ),
        (
            "POST",
            "/api/cart/items",
            j,
            "{\"slot\":\"A0\"}".into(),
            422,
        ),
        ("POST", "/api/cart/items", j, "{\"slot\":7}".into(), 422),
        (
            "POST",
            "/api/cart/items",
            j,
            "{\"slot\":\"A1\",\"qty\":0}".into(),
            409,
        ),
        (
            "POST",
            "/api/cart/items",
            j,
            "{\"slot\":\"A1\",\"qty\":-1}".into(),
            422,
        ),
        (
            "POST",
            "/api/cart/items",
            j,
            "{\"slot\":\"A1\",\"qty\":99}".into(),
            409,
        ),
        (
            "POST",
            "/api/cart/items",
            j,
            "{\"slot\":\"A1\",\"qty\":1,\"extra\":true}".into(),
            422,
        ),
        ("POST", "/api/cart/items", j, big, 413),
        ("DELETE", "/api/cart/items/A1", None, String::new(), 409),
        ("DELETE", "/api/cart/items/%FF", None, String::new(), 400),
        ("POST", "/api/checkout", None, String::new(), 409),
        ("POST", "/api/cancel", None, String::new(), 409),
        ("POST", "/api/extend", None, String::new(), 409),
        ("POST", "/api/dismiss", None, String::new(), 409),
        ("GET", "/api/checkout", None, String::new(), 405),
        ("GET", "/api/nothing-here", None, String::new(), 404),
        (
            "POST",
            "/sim/credential",
            j,
            "{\"kind\":\"test-card\",\"id\":\"x\"}".into(),
            409,
        ),
        (
            "POST",
            "/sim/credential",
            j,
            "{\"kind\":\"cash\",\"id\":\"x\"}".into(),
            422,
        ),
        (
            "POST",
            "/sim/credential",
            j,
            "{\"kind\":\"test-card\",\"id\":\"\"}".into(),
            422,
        ),
        (
            "POST",
            "/sim/fault",
            j,
            "{\"slot\":\"A1\",\"fault\":\"fire\"}".into(),
            422,
        ),
        (
            "POST",
            "/sim/fault",
            j,
            "{\"slot\":\"A1\",\"fault\":\"jam\",\"count\":0}".into(),
            422,
        ),
        (
            "POST",
            "/sim/fault",
            j,
            "{\"slot\":\"F9\",\"fault\":\"jam\"}".into(),
            404,
        ),
        ("POST", "/sim/door", j, "{\"open\":\"yes\"}".into(), 422),
        (
            "POST",
            "/sim/stock",
            j,
            "{\"slot\":\"A1\",\"count\":99}".into(),
            409,
        ),
        (
            "POST",
            "/sim/stock",
            j,
            "{\"slot\":\"F9\",\"count\":1}".into(),
            404,
        ),
        (
            "POST",
            "/api/service/price",
            j,
            "{\"slot\":\"A1\",\"price\":-1}".into(),
            409,
        ),
        (
            "POST",
            "/api/service/clear-fault",
            j,
            "{\"slot\":\"A1\"}".into(),
            409,
        ),
    ];
    for (method, path, ctype, body, want) in &cases {
        let (st, v) = raw(method, path, *ctype, body);
        assert_eq!(
            st,
            *want,
            "{method} {path} {}: {v}",
            &body[..body.len().min(60)]
        );
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no error code in {v}"));
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            !code.is_empty() && msg.len() > 5,
            "{method} {path}: unclear error {v}"
        );
        assert_eq!(
            snapshot(&d),
            before,
            "{method} {path} {body} changed something"
        );
    }
    // A refused add in the middle of a session leaves that session as it was too.
    assert_eq!(d.post("/api/cart/items", json!({"slot": "A1"})).0, 200);
    let mid = snapshot(&d);
    for body in [
        json!({"slot": "A1", "qty": 50}),
        json!({"slot": "Z1"}),
        json!({"slot": "A1", "qty": 0}),
    ] {
        let (st, _) = d.post("/api/cart/items", body);
        assert!((400..500).contains(&st));
        let now = snapshot(&d);
        assert_eq!(now.0, mid.0);
        assert_eq!(now.1["cart"], mid.1["cart"]);
        assert_eq!(now.1["journal_seq"], mid.1["journal_seq"]);
    }
    d.kill();
    let (code, out, _) = vendctl(&state, &["journal", "verify"]);
    assert_eq!(code, 0, "{out}");
}
