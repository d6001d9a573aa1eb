//! Card and code payments end to end through a real `vendd simulate`: the simulated PN532
//! (byte-level) tapped through the sim API, pay codes shown to the replay camera and read
//! by our QR decoder, and the dynamic EMVCo QR paid through the reference authoriser over a
//! real Mosquitto. Then a scan of everything that left the machine for the raw UID and
//! the raw pay code.

use crate::broker::{publish_once, BrokerOpts, Mosquitto, Subscriber};
use crate::common::*;
use crate::mqtt::online::{wait_balance, Authoriser};
use crate::mqtt::{config as mqtt_config, wait_health, SECRET_HEX};
use image::{GrayImage, Luma};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vendd::report::authoriser::{Accounts, PSP_PAID_TOPIC};

/// Adds configuration sections before `[planogram]`.
fn with_sections(base: &str, sections: &str) -> String {
    base.replacen("[planogram]", &format!("{sections}\n\n[planogram]"), 1)
}

fn offline_config(extra: &str) -> String {
    let base = config_text(Faults::NONE, 100_000);
    with_sections(
        &base,
        &format!("[security]\ndevice_secret = \"{SECRET_HEX}\"\n\n{extra}"),
    )
}

/// The UID the simulator derives for a named card (documented in `SimCard::from_id`).
fn sim_uid_hex(id: &str) -> String {
    let h = Sha256::digest(id.as_bytes());
    hex::encode([0x04, h[0], h[1], h[2], h[3], h[4], h[5]])
}

fn tap(d: &Daemon, id: &str) -> String {
    let (st, b) = d.post("/sim/nfc/tap", json!({"id": id}));
    assert_eq!(st, 200, "{b}");
    b["token"].as_str().expect("token").to_string()
}

/// Takes the card away and waits until the reader has seen it leave (a card lifted and put
/// back within the de-bounce time never left, as on the real reader).
fn remove(d: &Daemon) {
    assert_eq!(d.post("/sim/nfc/remove", json!({})).0, 200);
    std::thread::sleep(Duration::from_millis(600));
}

fn checkout(d: &Daemon, slot: &str) -> u64 {
    assert_eq!(d.post("/api/cart/items", json!({"slot": slot})).0, 200);
    let (st, b) = d.post("/api/checkout", json!({}));
    assert_eq!(st, 200, "{b}");
    b["session"]["sid"].as_u64().expect("sid")
}

fn receipt(d: &Daemon) -> Value {
    let s = d.wait_session(Duration::from_secs(20), |s| s["phase"] == "receipt");
    assert_eq!(d.post("/api/dismiss", json!({})).0, 200);
    s
}

#[test]
fn nfc_cards_pay_end_to_end_with_the_daily_limit_and_the_deny_list() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = hex::decode(SECRET_HEX).unwrap();
    // Mallory's card token as the reader computes it (UID-derived), on the deny list.
    let mallory = vendd::nfc::sim::SimCard::from_id("mallory", None)
        .unwrap()
        .token(&secret);
    let cfg = offline_config("").replace(
        "max_uses_per_day = 1000000",
        &format!("max_uses_per_day = 1\ndeny = [\"{mallory}\"]"),
    );
    let cfg = write_config(tmp.path(), &cfg);
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 5);

    // A tap before checkout is not a payment: nothing happens.
    tap(&d, "alice");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(d.get("/api/session")["phase"], "idle");
    remove(&d);

    // Alice pays (offline rules) by tapping; the card must be noticed, de-bounced and read.
    let sid = checkout(&d, "A1");
    let alice = tap(&d, "alice");
    let s = receipt(&d);
    assert_eq!(s["receipt"]["charged"], 160, "{s}");
    remove(&d);

    // The same card again today: the per-credential daily limit (1) declines it.
    checkout(&d, "A2");
    tap(&d, "alice");
    let s = d.wait_session(Duration::from_secs(10), |s| !s["last_decline"].is_null());
    assert_eq!(s["last_decline"]["kind"], "daily_uses_exceeded", "{s}");
    assert_eq!(s["phase"], "awaiting_credential");
    remove(&d);
    // Another card pays for the same checkout.
    tap(&d, "bob");
    let s = receipt(&d);
    assert_eq!(s["receipt"]["charged"], 170, "{s}");
    remove(&d);

    // A deny-listed card is declined, whatever the limits.
    checkout(&d, "A3");
    tap(&d, "mallory");
    let s = d.wait_session(Duration::from_secs(10), |s| !s["last_decline"].is_null());
    assert_eq!(s["last_decline"]["kind"], "deny_listed", "{s}");
    assert_eq!(d.post("/api/cancel", json!({})).0, 200);
    remove(&d);

    let readers = d.get("/api/readers");
    assert_eq!(readers["nfc"]["ok"], true, "{readers}");
    d.terminate();

    let j = export(&state);
    let auths: Vec<(u64, &str, &str)> = j
        .iter()
        .filter(|r| r["type"] == "authorised")
        .map(|r| {
            (
                r["sid"].as_u64().unwrap(),
                r["method"].as_str().unwrap(),
                r["credential"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(auths.len(), 2, "{auths:?}");
    assert_eq!(auths[0], (sid, "card", alice.as_str()));
    // The journal and the log never hold a raw UID.
    let text = serde_json::to_string(&j).unwrap();
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    for id in ["alice", "bob", "mallory"] {
        let uid = sim_uid_hex(id);
        for hay in [&text, &log] {
            assert!(!hay.to_lowercase().contains(&uid), "raw UID of {id} leaked");
        }
    }
}

#[test]
fn a_jammed_reader_is_reset_and_cards_work_again() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &offline_config(""));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 6);
    // Once the reader is up (its first initialisation resets the chip, which would clear
    // a wedge injected before it), it stops answering.
    let t = std::time::Instant::now();
    while d.get("/api/readers")["nfc"]["ok"] != true {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "reader never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(d.post("/sim/nfc/fault", json!({"fault": "wedge"})).0, 200);
    // The poller notices (K link failures) and resets the reader through its reset pin.
    let t = std::time::Instant::now();
    loop {
        let r = d.get("/api/readers");
        if r["nfc"]["resets"].as_u64().unwrap_or(0) >= 1 && r["nfc"]["ok"] == true {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "never recovered: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    checkout(&d, "B1");
    tap(&d, "carol");
    let s = receipt(&d);
    assert_eq!(s["receipt"]["charged"], 210, "{s}");
    let (st, b) = d.post("/sim/nfc/fault", json!({"fault": "melt"}));
    assert_eq!(st, 422, "{b}");
    assert_eq!(b["error"]["code"], "bad_fault", "{b}");
}

/// A camera-like 640×480 frame with `text` as a QR code held up in it (a phone screen),
/// with a few grey levels of noise.
fn phone_frame(text: &str) -> GrayImage {
    let code = vendd::qr::render_qr(text, 5).expect("renders");
    let mut f = GrayImage::from_fn(640, 480, |x, y| Luma([70 + ((x * 7 + y * 3) % 40) as u8]));
    let (ox, oy) = (
        (640 - code.width()) / 2 + 30,
        (480 - code.height()) / 2 - 10,
    );
    for (x, y, p) in code.enumerate_pixels() {
        f.put_pixel(ox + x, oy + y, *p);
    }
    let mut rng = 12345u32;
    for p in f.pixels_mut() {
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let n = ((rng >> 16) % 9) as i16 - 4;
        p.0[0] = (i16::from(p.0[0]) + n).clamp(0, 255) as u8;
    }
    f
}

const PAYCODE: &str = "268247064024242709";

#[test]
fn pay_codes_on_the_replay_camera_and_a_dynamic_qr_pay_through_the_authoriser() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&BrokerOpts::default());
    let everything = Subscriber::start(&broker, "payments-spy", "#", false);
    let secret = hex::decode(SECRET_HEX).unwrap();
    let code_token = vendd::token::credential_token(&secret, "paycode", PAYCODE);
    let card_token = vendd::nfc::sim::SimCard::from_id("alice", None)
        .unwrap()
        .token(&secret);
    let accounts = Accounts::from_toml(&format!(
        "[[account]]\ncredential = \"{code_token}\"\nname = \"wallet\"\nbalance = 1000\n\
         [[account]]\ncredential = \"{card_token}\"\nname = \"alice\"\nbalance = 500\n"
    ))
    .unwrap();
    let accounts = Arc::new(Mutex::new(accounts));
    let _auth = Authoriser::start(&broker, accounts.clone());

    // The replay camera plays a folder: an empty scene, then the shopper's phone.
    let frames = tmp.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    GrayImage::from_pixel(640, 480, Luma([90]))
        .save(frames.join("0-empty.png"))
        .unwrap();
    phone_frame(PAYCODE)
        .save(frames.join("1-phone.png"))
        .unwrap();
    let sections = format!(
        "[camera]\nsource = \"replay\"\nreplay = \"{}\"\nfps = 10\n\n\
         [merchant_qr]\nenabled = true\naccount_template_id = 26\nguid = \"com.example.pay\"\n\
         merchant_id = \"MID000123456789\"\nmcc = \"5814\"\nname = \"VENDO TEST\"\ncity = \"BERLIN\"\ncountry = \"DE\"",
        frames.display()
    );
    let cfg = with_sections(&mqtt_config(broker.port(), "online_auth = true"), &sections);
    let cfg = write_config(tmp.path(), &cfg);
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 9);
    wait_health(&d, "connected", |h| h["connected"] == true);

    // 1. Pay code: checkout, the camera reads the phone, the authoriser approves online.
    let sid1 = checkout(&d, "A1");
    let s = receipt(&d);
    assert_eq!(s["receipt"]["charged"], 160, "{s}");
    wait_balance(&accounts, &code_token, 1000 - 160);
    let r = d.get("/api/readers");
    assert!(r["codes"][0].as_u64().unwrap() >= 1, "{r}");
    // The shopper puts the phone away (the replayed frame becomes an empty scene).
    GrayImage::from_pixel(640, 480, Luma([90]))
        .save(frames.join("1-phone.png"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // 2. Dynamic QR: the kiosk shows an EMVCo code; the shopper's phone scans it (our own
    // decoder reads the PNG the API serves) and the payment provider reports it paid.
    let sid2 = checkout(&d, "C2");
    let (st, b) = d.post("/api/pay/qr", json!({}));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["session"]["phase"], "authorising", "{b}");
    assert_eq!(b["session"]["paying_by"], "merchant-qr", "{b}");
    let png = ureq::get(&d.url("/api/pay/qr.png"))
        .call()
        .expect("png")
        .into_reader();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut { png }, &mut bytes).unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_luma8();
    let mut dec = vendd::qr::QrDecoder::new(vendd::qr::QrConfig::default());
    let read = dec.decode(&img);
    assert_eq!(read.len(), 1, "the shown QR decodes");
    let payload = read[0].text.clone().expect("text");
    assert_eq!(payload, b["qr"]["payload"].as_str().unwrap());
    let p = vendd::payment::parse(&payload).expect("valid EMVCo");
    assert_eq!(p.primitive(1), Some("12"), "dynamic");
    assert_eq!(p.primitive(54), Some("2.70"));
    assert_eq!(p.primitive(53), Some("978"));
    assert_eq!(p.merchant_name(), "VENDO TEST");
    let reference = p.reference().expect("tag 62.05").to_string();
    assert_eq!(reference, format!("test-kiosk-{sid2}"));
    // A payment for the wrong amount is refused by the authoriser...
    let paid = |amount: i64| json!({"reference": reference, "terminal": p.terminal_label(), "amount": amount, "currency": "EUR", "txid": format!("tx{amount}")});
    // The phone pays once the authoriser holds the machine's request.
    let request_held = || {
        let t = std::time::Instant::now();
        while !accounts.lock().unwrap().qr_waiting(&reference) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no request reached the authoriser"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    request_held();
    publish_once(
        &broker,
        PSP_PAID_TOPIC,
        paid(100).to_string().as_bytes(),
        false,
    );
    let s = d.wait_session(Duration::from_secs(10), |s| !s["last_decline"].is_null());
    assert_eq!(s["last_decline"]["kind"], "authoriser", "{s}");
    assert_eq!(s["phase"], "awaiting_credential");
    // ...the shopper asks for the code again and pays it right.
    let (st, b) = d.post("/api/pay/qr", json!({}));
    assert_eq!(st, 200, "{b}");
    // This time `vendctl pay-qr` plays the phone: it reads the kiosk's PNG and pays it.
    request_held();
    let png_path = tmp.path().join("shown.png");
    std::fs::write(&png_path, &bytes).unwrap();
    let out = std::process::Command::new(bin("vendctl"))
        .args([
            "pay-qr",
            "--broker",
            &format!("127.0.0.1:{}", broker.port()),
            "--image",
        ])
        .arg(&png_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("paid 2.70 EUR for test-kiosk-"), "{stdout}");
    let s = receipt(&d);
    assert_eq!(s["receipt"]["charged"], 270, "{s}");
    // After the session the code is gone.
    assert_eq!(d.get_status("/api/pay/qr.png"), 404);

    // 3. A card, approved online: its UID must not leave the reader either.
    let sid3 = checkout(&d, "B1");
    tap(&d, "alice");
    let s = receipt(&d);
    assert_eq!(s["receipt"]["charged"], 210, "{s}");
    remove(&d);
    wait_balance(&accounts, &card_token, 500 - 210);

    wait_health(&d, "drained", |h| h["backlog"] == 0);
    d.terminate();
    let j = export(&state);
    let auths: Vec<(u64, String, bool)> = j
        .iter()
        .filter(|r| r["type"] == "authorised")
        .map(|r| {
            (
                r["sid"].as_u64().unwrap(),
                r["method"].as_str().unwrap().to_string(),
                r["offline"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        auths,
        [
            (sid1, "pay-code".to_string(), false),
            (sid2, "merchant-qr".to_string(), false),
            (sid3, "card".to_string(), false)
        ]
    );

    // No raw pay code in the journal, the log or anything published on the broker.
    let journal = serde_json::to_string(&j).unwrap();
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    let mqtt: String = everything
        .messages()
        .iter()
        .map(|m| format!("{} {}\n", m.topic, m.text()))
        .collect();
    assert!(
        mqtt.contains(&code_token),
        "the token is what the authoriser sees"
    );
    let uid = sim_uid_hex("alice");
    for (name, hay) in [("journal", &journal), ("log", &log), ("mqtt", &mqtt)] {
        assert!(!hay.contains(PAYCODE), "the raw pay code is in the {name}");
        assert!(
            !hay.to_lowercase().contains(&uid),
            "the raw UID is in the {name}"
        );
    }
}

#[test]
fn unknown_codes_get_a_clear_prompt_and_qr_needs_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = offline_config(
        "[merchant_qr]\nenabled = true\naccount_template_id = 26\nguid = \"com.example.pay\"\n\
         merchant_id = \"MID1\"\nmcc = \"5814\"\nname = \"VENDO TEST\"\ncity = \"BERLIN\"\ncountry = \"DE\"",
    );
    let cfg = write_config(tmp.path(), &cfg);
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 10);
    let seq0 = d.get("/api/health")["journal_seq"].as_u64().unwrap();
    // Nothing to pay: showing a code or asking for a QR changes nothing.
    assert_eq!(d.post("/sim/camera/show", json!({"text": "hello"})).0, 200);
    let (st, b) = d.post("/api/pay/qr", json!({}));
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"]["code"], "not_awaiting_payment");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.get("/api/health")["journal_seq"].as_u64().unwrap(), seq0);

    checkout(&d, "A1");
    let s = d.wait_session(Duration::from_secs(10), |s| {
        s["prompt"]["id"] == "code_not_recognised"
    });
    assert_eq!(s["phase"], "awaiting_credential");
    assert_eq!(d.post("/sim/camera/clear", json!({})).0, 200);
    // A pay code offline: declined, it needs the network.
    assert_eq!(d.post("/sim/camera/show", json!({"text": PAYCODE})).0, 200);
    let s = d.wait_session(Duration::from_secs(10), |s| !s["last_decline"].is_null());
    assert_eq!(s["last_decline"]["kind"], "needs_online", "{s}");
    // The dynamic QR offline: declined the same way.
    let (st, b) = d.post("/api/pay/qr", json!({}));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["session"]["last_decline"]["kind"], "needs_online", "{b}");
    assert_eq!(b["session"]["phase"], "awaiting_credential");
    // Bad sim input is refused with a clear error.
    let (st, b) = d.post("/sim/camera/show", json!({"image_base64": "%%%"}));
    assert_eq!(st, 422, "{b}");
    let (st, _) = d.post("/sim/camera/show", json!({}));
    assert_eq!(st, 422);
}
