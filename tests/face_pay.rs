//! Face pay end to end through a real `vendd simulate` with the replay camera, the real
//! models (tract) and a real Mosquitto for the operator's command: enrolment with consent
//! and a card as proof, payment by face with the head-turn challenge, erasure by the
//! operator and by the shopper, a held photo refused, and the gallery file checked for
//! plaintext.
//!
//! How the frames are made: there is no video of a real person here, so a real photo
//! (`obama.jpg` from `../shared/data/faces/`) is placed in a 640×480 camera frame and
//! rendered as a 2.5-D head turning (`face::liveness::synth::turn_head`; its method is
//! documented there), with per-frame sensor noise. The "held photo" is the same frontal
//! frame with sensor noise only — a flat picture in front of the camera.

use crate::broker::{publish_once, BrokerOpts, Mosquitto, Subscriber};
use crate::common::*;
use crate::face_models::{faces_dir, models_dir, models_or_skip};
use crate::mqtt::{config as mqtt_config, nth_result, wait_health, ROOT, SECRET_HEX};
use image::{Rgb, RgbImage};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use vendd::face::align::Face;
use vendd::face::liveness::synth::{sensor_noise, turn_head};
use vendd::face::pipeline::{FaceConfig, FaceEngine};
use vendd::report::command::{encode_key, generate_keypair, sign};

/// Frames in one replay loop (both scenes have the same count: the replay source lists
/// the folder once, and a scene is swapped by renaming new files over the old ones).
const LOOP: usize = 30;

/// A 640×480 frame with the photo's face about 170 px wide in the middle, and that face
/// as the detector sees it in the frame.
fn shopper_frame(engine: &FaceEngine, photo: &RgbImage) -> (RgbImage, Face) {
    let seen = engine.detect(photo).expect("detect");
    let f = &seen.first().expect("a face in the photo").face;
    let side = 2.4 * f.bbox[2].max(f.bbox[3]);
    let (cx, cy) = (f.bbox[0] + f.bbox[2] / 2.0, f.bbox[1] + f.bbox[3] / 2.0);
    let out = 420u32;
    let scale = side / out as f32;
    let mut frame = RgbImage::from_fn(640, 480, |x, y| {
        let v = 70 + ((x / 8 + y / 8) % 20) as u8;
        Rgb([v, v + 4, v + 10])
    });
    let (ox, oy) = ((640 - out) / 2, (480 - out) / 2);
    for y in 0..out {
        for x in 0..out {
            let sx = cx - side / 2.0 + (x as f32 + 0.5) * scale;
            let sy = cy - side / 2.0 + (y as f32 + 0.5) * scale;
            if sx >= 0.0 && sy >= 0.0 && (sx as u32) < photo.width() && (sy as u32) < photo.height()
            {
                frame.put_pixel(ox + x, oy + y, *photo.get_pixel(sx as u32, sy as u32));
            }
        }
    }
    let seen = engine.detect(&frame).expect("detect");
    let face = seen.first().expect("the face in the frame").face;
    (frame, face)
}

/// Yaw per frame of one loop: frontal, a slow turn to the shopper's left, held, back.
fn turn_yaws() -> Vec<f32> {
    let mut y = vec![0.0; 9];
    y.extend([6.0, 12.0, 18.0, 24.0, 30.0, 35.0]);
    y.extend([35.0; 8]);
    y.extend([26.0, 18.0, 10.0, 4.0]);
    y.extend([0.0; 3]);
    assert_eq!(y.len(), LOOP);
    y
}

/// Writes one loop of frames (`f00.png` …) into `dir`: each new file is renamed over the
/// old one, so the replay source never reads a half-written frame.
fn write_scene(dir: &Path, frame: &RgbImage, face: &Face, yaws: &[f32], seed: u64) {
    for (i, yaw) in yaws.iter().enumerate() {
        let turned = if *yaw == 0.0 {
            frame.clone()
        } else {
            turn_head(frame, face, *yaw)
        };
        let noisy = sensor_noise(&turned, seed + i as u64, 3);
        let tmp = dir.join(format!("f{i:02}.tmp"));
        noisy
            .save_with_format(&tmp, image::ImageFormat::Png)
            .expect("save");
        std::fs::rename(&tmp, dir.join(format!("f{i:02}.png"))).expect("rename");
    }
}

fn face_status(d: &Daemon) -> Value {
    d.get("/api/face")
}

fn wait_face(d: &Daemon, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let s = face_status(d);
        if pred(&s) {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "face status never {what}: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tap(d: &Daemon, id: &str) {
    let (st, b) = d.post("/sim/nfc/tap", json!({"id": id}));
    assert_eq!(st, 200, "{b}");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(d.post("/sim/nfc/remove", json!({})).0, 200);
    std::thread::sleep(Duration::from_millis(600));
}

fn enrol(d: &Daemon, card: &str) {
    let (st, b) = d.post(
        "/api/face/enrol",
        json!({"consent": true, "name": "Barack"}),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["task"]["step"], "awaiting_proof", "{b}");
    assert_eq!(b["task"]["masked_name"], "B***k", "{b}");
    tap(d, card);
    let s = wait_face(d, "finished enrolling", 90, |s| {
        matches!(s["task"]["step"].as_str(), Some("done" | "failed"))
    });
    assert_eq!(s["task"]["step"], "done", "{s}");
    assert_eq!(s["task"]["captures"], 3, "{s}");
    assert_eq!(s["enrolled"], 1, "{s}");
}

fn checkout(d: &Daemon) {
    assert_eq!(d.post("/api/cart/items", json!({"slot": "A1"})).0, 200);
    let (st, b) = d.post("/api/checkout", json!({}));
    assert_eq!(st, 200, "{b}");
}

/// Waits for the prompt `id` while payment is awaited.
fn wait_prompt(d: &Daemon, id: &str, secs: u64) -> Value {
    d.wait_session(Duration::from_secs(secs), |s| s["prompt"]["id"] == id)
}

#[test]
fn enrol_pay_and_erase_a_face_with_the_replay_camera() {
    let test = "enrol_pay_and_erase_a_face_with_the_replay_camera";
    let Some(paths) = models_or_skip(test) else {
        return;
    };
    let photo_path = faces_dir().join("obama.jpg");
    if !photo_path.is_file() {
        eprintln!(
            "SKIP {test}: photo {} is absent (set VENDD_FACES_DIR)",
            photo_path.display()
        );
        return;
    }
    let photo = image::open(&photo_path).expect("photo").to_rgb8();
    let engine = FaceEngine::load(&paths, FaceConfig::default()).expect("models load");
    let (frame, face) = shopper_frame(&engine, &photo);

    let tmp = tempfile::tempdir().unwrap();
    let frames = tmp.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    write_scene(&frames, &frame, &face, &turn_yaws(), 1);

    let broker = Mosquitto::start(&BrokerOpts::default());
    let results = Subscriber::start(
        &broker,
        "face-results",
        &format!("{ROOT}/cmd/+/result"),
        false,
    );
    let everything = Subscriber::start(&broker, "face-spy", "#", false);
    let (key, public) = generate_keypair();
    let extra = format!("operator_keys = [\"{}\"]", encode_key(public.as_bytes()));
    let sections = format!(
        "[camera]\nsource = \"replay\"\nreplay = \"{}\"\nfps = 5\nidle_fps = 1\n\n\
         [face]\nenabled = true\nmodels = \"{}\"\nchallenge = \"left\"\nenrol_timeout_s = 90\n\n\
         [face.liveness]\ntime_limit_ms = 12000\n",
        frames.display(),
        models_dir().display()
    );
    let cfg = mqtt_config(broker.port(), &extra).replacen(
        "[planogram]",
        &format!("{sections}\n[planogram]"),
        1,
    );
    let cfg = write_config(tmp.path(), &cfg);
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 5);
    wait_health(&d, "connected", |h| h["connected"] == true);
    wait_face(&d, "available", 120, |s| s["available"] == true);

    // Bad requests change nothing.
    let (st, b) = d.post(
        "/api/face/enrol",
        json!({"consent": false, "name": "Barack"}),
    );
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (400, Some("consent_required"))
    );
    let (st, b) = d.post("/api/face/enrol", json!({"consent": true, "name": ""}));
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("bad_name")));
    let (st, _) = d.post("/api/face/enrol", json!({"consent": true}));
    assert_eq!(st, 422);
    assert!(face_status(&d)["task"].is_null());

    // 1. Nobody enrolled: the face in view is not recognised and pays nothing.
    checkout(&d);
    wait_prompt(&d, "face_not_recognised", 30);
    assert_eq!(d.get("/api/session")["phase"], "awaiting_credential");
    // Enrolling in the middle of a purchase is refused (the card would pay).
    let (st, b) = d.post(
        "/api/face/enrol",
        json!({"consent": true, "name": "Barack"}),
    );
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (409, Some("session_open"))
    );
    assert_eq!(d.post("/api/cancel", json!({})).0, 200);
    d.wait_session(Duration::from_secs(10), |s| s["phase"] == "idle");

    // 2. Enrol with consent, the card "alice" proving the account.
    enrol(&d, "alice");
    let secret = hex::decode(SECRET_HEX).unwrap();
    let account = vendd::nfc::sim::SimCard::from_id("alice", None)
        .unwrap()
        .token(&secret);
    let gallery = std::fs::read(state.join("face-gallery.bin")).expect("gallery file");
    let emb = engine
        .embed(&frame, &face)
        .expect("embedding of the enrolled face");
    for needle in [b"Barack".as_slice(), b"B***k", account.as_bytes()] {
        assert!(
            !gallery.windows(needle.len()).any(|w| w == needle),
            "the gallery holds {:?} in plain text",
            String::from_utf8_lossy(needle)
        );
    }
    for v in &emb[..16] {
        let le = v.to_le_bytes();
        assert!(
            !gallery.windows(4).any(|w| w == le),
            "a raw embedding value"
        );
        let text = format!("{v:.5}");
        assert!(
            !gallery.windows(text.len()).any(|w| w == text.as_bytes()),
            "embedding value {text} in plain text"
        );
    }

    // 3. Pay by face: recognised (masked name), asked to turn left, paid, vended.
    checkout(&d);
    let s = wait_prompt(&d, "face_turn_head", 30);
    assert_eq!(s["prompt"]["masked_name"], "B***k", "{s}");
    assert_eq!(s["prompt"]["turn"], "left", "{s}");
    let s = d.wait_session(Duration::from_secs(40), |s| s["phase"] == "receipt");
    assert_eq!(s["receipt"]["charged"], 160, "{s}");
    assert_eq!(d.post("/api/dismiss", json!({})).0, 200);

    // 4. The operator erases it with a signed command; the face no longer pays.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let nonce = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("face-erase-nonce-0001")
    };
    let cmd = sign(
        "erase_face",
        json!({ "account": account }),
        "test-kiosk",
        "erase-1",
        &nonce,
        t,
        t + 60_000,
        &key,
    );
    publish_once(&broker, &format!("{ROOT}/cmd/erase_face"), &cmd, false);
    let r = nth_result(&results, "erase-1", 1);
    assert_eq!(r["ok"], true, "{r}");
    wait_face(&d, "emptied", 10, |s| s["enrolled"] == 0);
    let reopened = std::fs::read(state.join("face-gallery.bin")).expect("gallery");
    assert_ne!(reopened, gallery, "the gallery file was rewritten");
    checkout(&d);
    wait_prompt(&d, "face_not_recognised", 30);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        d.get("/api/session")["phase"],
        "awaiting_credential",
        "an erased face must not pay"
    );
    assert_eq!(d.post("/api/cancel", json!({})).0, 200);
    d.wait_session(Duration::from_secs(10), |s| s["phase"] == "idle");

    // 5. Enrol again; then a photo held still in front of the camera is recognised but
    // fails the head-turn challenge and pays nothing.
    enrol(&d, "alice");
    write_scene(&frames, &frame, &face, &[0.0; LOOP], 1000);
    checkout(&d);
    wait_prompt(&d, "face_turn_head", 30);
    wait_prompt(&d, "face_not_live", 30);
    assert_eq!(d.get("/api/session")["phase"], "awaiting_credential");
    assert_eq!(d.post("/api/cancel", json!({})).0, 200);
    d.wait_session(Duration::from_secs(10), |s| s["phase"] == "idle");

    // 6. The shopper erases their face at the kiosk, proving the account with the card.
    let (st, b) = d.post("/api/face/erase", json!({}));
    assert_eq!(st, 200, "{b}");
    tap(&d, "alice");
    let s = wait_face(&d, "erased", 30, |s| s["task"]["step"] == "done");
    assert_eq!(s["task"]["erased"], true, "{s}");
    assert_eq!(s["enrolled"], 0, "{s}");

    // Nothing of the face left the machine over MQTT: no name, masked or not (the account
    // is a credential hash, reported with the sale as for a card).
    let msgs = everything.messages();
    assert!(!msgs.is_empty());
    for m in &msgs {
        let text = String::from_utf8_lossy(&m.payload);
        assert!(
            !text.contains("B***k") && !text.contains("Barack"),
            "{}",
            m.topic
        );
    }

    // The journal has both enrolments and both erasures, with who asked.
    d.terminate();
    let records: Vec<String> = export(&state).iter().map(Value::to_string).collect();
    let count = |needle: &str| records.iter().filter(|r| r.contains(needle)).count();
    assert_eq!(count("\"face_enrolled\""), 2, "{records:#?}");
    assert_eq!(count("\"face_erased\""), 2);
    assert_eq!(count("\"operator\""), 1);
    assert_eq!(count("\"shopper\""), 1);
    assert!(
        records
            .iter()
            .any(|r| r.contains("\"authorised\"") && r.contains("\"face\"")),
        "a sale paid by face"
    );
}
