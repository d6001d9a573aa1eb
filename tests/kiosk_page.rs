//! The kiosk page in a real headless Chromium (through chromedriver, loopback only) against
//! a real `vendd simulate`: a purchase by touch, a decline, a vend failure that says "not
//! charged", a language switch, a time-out warning that is extended; the service page and
//! the sim panel load. Screenshots of the main screens are saved to
//! `$CARGO_TARGET_TMPDIR/screenshots/` (the README shows copies from `docs/screenshots/`).

use crate::common::*;
use crate::webdriver::{browser_or_skip, Browser};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use vendd::voice::catalog::{Args, Catalog, Lang};

fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

#[test]
fn a_shopper_buys_by_touch_is_declined_is_not_charged_switches_language_and_extends() {
    let test = "kiosk_page";
    let Some((chromium, driver)) = browser_or_skip(test) else {
        return;
    };
    let cat = Catalog::embedded().expect("catalogue");
    let en = |id: &str| cat.text(Lang::En, id, &Args::new()).expect(id);
    let zh = |id: &str| cat.text(Lang::Zh, id, &Args::new()).expect(id);

    let tmp = tempfile::tempdir().unwrap();
    // Floor limit 2.00: A1 (1.60) is approved offline, C4 (2.90) is declined.
    let cfg = config_text(Faults::NONE, 200)
        .replace("shopping_ms = 30000", "shopping_ms = 12000")
        .replacen(
            "[planogram]",
            "[kiosk]\nlanguage = \"en\"\n\n[planogram]",
            1,
        );
    let cfg = write_config(tmp.path(), &cfg);
    let d = Daemon::start(&cfg, &tmp.path().join("state"), 3);
    // Everything the pages load is served by the daemon: no reference to any other host.
    for path in [
        "/",
        "/kiosk.js",
        "/kiosk.css",
        "/service",
        "/service.js",
        "/sim",
        "/sim.js",
    ] {
        let text = ureq::get(&d.url(path))
            .call()
            .expect(path)
            .into_string()
            .expect("text");
        let outside = text
            .replace("http://www.w3.org/2000/svg", "")
            .contains("://");
        assert!(!outside, "{path} refers to another host");
    }
    let b = Browser::start(&chromium, &driver, 1024, 600);
    let dir = shots();

    // The product grid, from the catalogue's strings.
    b.goto(&d.url("/"));
    b.wait("#p-A1", 20);
    b.wait_text("#prompt", 10, |t| t == en("screen.products"));
    b.screenshot(&dir.join("01-products.png"));

    // 1. A purchase by touch: choose, pay, (the card is tapped on the reader), take it.
    b.click("#p-A1");
    b.wait_text("#cart", 10, |t| t.contains("A1"));
    b.wait_text("#total", 10, |t| t.contains("1.60"));
    b.screenshot(&dir.join("02-cart.png"));
    b.click("#pay");
    b.wait("#method-card", 10);
    b.click("#method-card");
    b.wait_text("#method-hint", 10, |t| t == en("present_credential.card"));
    b.screenshot(&dir.join("03-pay.png"));
    let (st, body) = d.post("/sim/credential", json!({"kind": "card", "id": "alice"}));
    assert_eq!(st, 200, "{body}");
    b.wait_text("#result", 20, |t| t == en("take_item"));
    assert!(b.text("#receipt").contains("1.60"));
    b.wait("#receipt-qr", 5);
    let t = std::time::Instant::now();
    let loaded = "const i = document.querySelector('#receipt-qr'); return !!i && i.complete && i.naturalWidth > 0;";
    while b.script(loaded, json!([])) != json!(true) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the receipt QR image did not load"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b.screenshot(&dir.join("04-receipt.png"));
    b.click("#done");
    b.wait_text("#prompt", 10, |t| t == en("screen.products"));

    // 2. A decline: offline, 2.90 is over the floor limit; the prompt says so.
    b.click("#p-C4");
    b.click("#pay");
    b.wait("#method-card", 10);
    let (st, _) = d.post("/sim/credential", json!({"kind": "card", "id": "bob"}));
    assert_eq!(st, 200);
    let declined = b.wait_text("#prompt", 10, |t| t.contains("limited to"));
    assert!(declined.contains("2.00"), "{declined}");
    b.screenshot(&dir.join("05-declined.png"));
    b.click("#cancel");
    b.wait_text("#prompt", 10, |t| t == en("screen.products"));

    // 3. A vend failure: the spiral jams; the page says the item was not charged.
    assert_eq!(
        d.post(
            "/sim/fault",
            json!({"slot": "A2", "fault": "jam", "count": 3})
        )
        .0,
        200
    );
    b.click("#p-A2");
    b.click("#pay");
    b.wait("#method-card", 10);
    assert_eq!(
        d.post("/sim/credential", json!({"kind": "card", "id": "carol"}))
            .0,
        200
    );
    let failed = b.wait_text("#result", 30, |t| t.contains("not been charged"));
    assert!(failed.contains("A2"), "{failed}");
    b.screenshot(&dir.join("06-vend-failed.png"));
    b.click("#done");
    b.wait_text("#prompt", 10, |t| t == en("screen.products"));

    // 4. The language switch: the page turns Chinese (and the daemon's voice follows).
    b.click("#lang");
    b.wait_text("#prompt", 10, |t| t == zh("screen.products"));
    assert_eq!(d.get("/api/kiosk")["language"], "zh");
    b.click("#p-A1");
    b.wait_text("#pay", 10, |t| t == zh("ui.pay"));
    b.screenshot(&dir.join("07-chinese.png"));
    b.click("#cancel");
    b.click("#lang");
    b.wait_text("#prompt", 10, |t| t == en("screen.products"));

    // 5. The card reader stops answering: the page says what it means (pay by code or
    // face) and offers no card.
    // The reader breaks: resets do not bring it back.
    assert_eq!(d.post("/sim/nfc/fault", json!({"fault": "break"})).0, 200);
    let t = std::time::Instant::now();
    while d.get("/api/readers")["nfc"]["ok"] != false {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the reader never showed as down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b.click("#p-A1");
    b.click("#pay");
    b.wait_text("#reader-note", 10, |t| t == en("screen.card_reader_down"));
    assert!(
        b.find("#method-card").is_none(),
        "no card while the reader is down"
    );
    b.screenshot(&dir.join("11-reader-down.png"));
    // The service page's diagnostics say so too, with the fix.
    let doc = d.get("/api/service/doctor");
    let nfc = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "nfc")
        .cloned()
        .expect("nfc check");
    assert_eq!(nfc["status"], "fail", "{doc}");
    assert!(nfc["fix"].as_str().unwrap().contains("cable"), "{doc}");
    b.click("#cancel");
    assert_eq!(d.post("/sim/nfc/fault", json!({"fault": "repair"})).0, 200);
    b.wait_text("#prompt", 10, |t| t == en("screen.products"));

    // 6. A time-out warning that is extended: 12 s to shop, warned 5 s before the end.
    b.click("#p-A1");
    b.wait_text("#overlay-text", 20, |t| t.contains("Are you still there"));
    b.screenshot(&dir.join("08-timeout-warning.png"));
    let before = d.get("/api/session");
    assert_eq!(before["warned"], true);
    b.click("#extend");
    let after = d.wait_session(Duration::from_secs(5), |s| s["warned"] == false);
    assert_eq!(after["phase"], "shopping", "extended, not cancelled");
    assert!(
        after["deadline_in_ms"].as_u64().unwrap_or(0) > 6000,
        "{after}"
    );
    // The page hides the warning when the extended session arrives over SSE.
    let t = std::time::Instant::now();
    while b.script(
        "return document.querySelector('#overlay').hidden;",
        json!([]),
    ) != json!(true)
    {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the warning stayed up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b.click("#cancel");

    // The door opens: the page turns into the service page; a test vend runs a spiral once.
    assert_eq!(
        d.post("/api/service/test-vend", json!({"slot": "A3"})).0,
        409,
        "door closed"
    );
    assert_eq!(d.post("/sim/door", json!({"open": true})).0, 200);
    b.wait_text("#stock", 15, |t| t.contains("A3"));
    let stock_before = d.get("/sim/state");
    b.click("#test-A3");
    let s = d.wait_session(Duration::from_secs(20), |s| s["last_test_vend"].is_array());
    assert_eq!(s["last_test_vend"][0], "A3", "{s}");
    assert_eq!(s["last_test_vend"][1]["kind"], "delivered", "{s}");
    let a3 = |v: &serde_json::Value| {
        v["slots"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == "A3"))
            .map(|x| x["stock"].as_u64().unwrap_or(0))
    };
    let catalog_a3 = d.get("/api/catalog");
    assert_eq!(a3(&catalog_a3), Some(7), "the test item came off the count");
    let _ = stock_before;
    b.wait_text("#doctor-nfc", 10, |t| t.starts_with("OK"));
    b.screenshot(&dir.join("09-service.png"));
    assert_eq!(d.post("/sim/door", json!({"open": false})).0, 200);
    b.wait_text("#prompt", 15, |t| t == en("screen.products"));

    // The sim panel loads from the daemon too.
    b.goto(&d.url("/sim"));
    b.wait_text("#world", 10, |t| t.contains("stock"));
    b.screenshot(&dir.join("10-sim-panel.png"));
    eprintln!("screenshots in {}", dir.display());
}
