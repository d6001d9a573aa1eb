//! `vendctl keygen`, `vendctl cmd` and `vendctl monitor` against a real Mosquitto on a free
//! loopback port (issue 3, item 8). The machine's side of `cmd` is a tiny fake responder:
//! a subscriber on `cmd/#` that checks each command with the daemon's own `verify` and
//! publishes the `CommandResult` on the result topic.

use crate::broker::{publish_once, unique_client_id, BrokerOpts, Mosquitto, Subscriber, TestPki};
use crate::common::bin;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vendd::report::command::{
    generate_keypair, parse_signing_key, parse_verifying_key, result_topic, verify, CommandResult,
    VerifyingKey,
};

const ROOT: &str = "vend/v1/s1/k1";

/// Runs vendctl (no `--state-dir`: these subcommands must not need it).
fn vendctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("vendctl"))
        .args(args)
        .output()
        .expect("run vendctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plain_broker() -> Mosquitto {
    Mosquitto::start(&BrokerOpts {
        persistence: false,
        ..Default::default()
    })
}

/// `vendctl keygen --out <dir>/op.key`; returns (key file, printed public key).
fn keygen(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("op.key");
    let (code, out, err) = vendctl(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 0, "keygen: {err}");
    (key, out.trim().to_string())
}

/// Sets `stop` when dropped, also while a test panics, so the responder thread ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `f` while a fake machine `k1` answers every command under [`ROOT`] with `verify`
/// against `keys`. Returns `f`'s value and the command payloads the machine received.
fn with_machine<R>(
    broker: &Mosquitto,
    keys: &[VerifyingKey],
    f: impl FnOnce() -> R,
) -> (R, Vec<Value>) {
    let sub = Subscriber::start(
        broker,
        &unique_client_id("k1"),
        &format!("{ROOT}/cmd/#"),
        false,
    );
    let stop = AtomicBool::new(false);
    let r =
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut done = 0;
                while !stop.load(Ordering::SeqCst) {
                    let msgs = sub.messages();
                    for m in &msgs[done..] {
                        let Some(name) = m.topic.strip_prefix(&format!("{ROOT}/cmd/")) else {
                            continue;
                        };
                        if name.contains('/') {
                            continue; // a result
                        }
                        let now = vendd::runtime::now_ms();
                        let res =
                            match verify(&m.payload, name, keys, "k1", now, &|_: &str, _: &str| {
                                false
                            }) {
                                Ok(v) => CommandResult::done(&v, "done", now),
                                Err(e) => CommandResult::rejected(&m.payload, name, &e, now),
                            };
                        let topic = format!("{ROOT}/{}", result_topic(name));
                        publish_once(broker, &topic, &res.to_json(), false);
                    }
                    done = msgs.len();
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            let _stop = StopOnDrop(&stop);
            f()
        });
    let received = sub
        .messages()
        .iter()
        .filter(|m| !m.topic.ends_with("/result"))
        .map(|m| m.json())
        .collect();
    (r, received)
}

fn cmd(broker: &Mosquitto, key: &Path, extra: &[&str]) -> (i32, String, String) {
    let addr = format!("127.0.0.1:{}", broker.port());
    let mut args = vec![
        "cmd",
        "--broker",
        &addr,
        "--machine",
        "k1",
        "--site",
        "s1",
        "--key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    vendctl(&args)
}

#[test]
fn keygen_writes_a_private_secret_key_that_signs_for_the_printed_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "secret key mode {mode:o}");
    let secret = parse_signing_key(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let printed = parse_verifying_key(&public).expect("stdout is the public key");
    assert_eq!(secret.verifying_key(), printed);
    let pub_file = std::fs::read_to_string(dir.path().join("op.key.pub")).unwrap();
    assert_eq!(pub_file.trim(), public);
    // Never overwritten.
    let (code, _, err) = vendctl(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        parse_signing_key(&std::fs::read_to_string(&key).unwrap())
            .unwrap()
            .to_bytes(),
        secret.to_bytes()
    );
}

#[test]
fn cmd_signs_sends_and_prints_the_machines_result() {
    let broker = plain_broker();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let keys = [parse_verifying_key(&public).unwrap()];
    let ((code, out, err), received) = with_machine(&broker, &keys, || {
        cmd(
            &broker,
            &key,
            &["set_slot_enabled", r#"{"slot":"A1","enabled":false}"#],
        )
    });
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let res: CommandResult = serde_json::from_str(out.trim()).expect("result JSON on stdout");
    assert!(
        res.ok && res.code == "ok" && res.name == "set_slot_enabled",
        "{res:?}"
    );
    assert_eq!(received.len(), 1, "{received:?}");
    let sent = &received[0];
    assert_eq!(sent["id"], res.id.as_str());
    assert_eq!(res.id.len(), 32, "16 random bytes in hex");
    assert_eq!(sent["machine"], "k1");
    assert_eq!(sent["args"], json!({"slot":"A1","enabled":false}));
    let lifetime = sent["expires_at"].as_u64().unwrap() - sent["issued_at"].as_u64().unwrap();
    assert_eq!(lifetime, 300_000, "default --ttl-s 300");
}

#[test]
fn cmd_exits_1_when_the_machine_refuses_the_command() {
    let broker = plain_broker();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path());
    let (_, other) = generate_keypair(); // the machine trusts another operator key
    let ((code, out, err), received) = with_machine(&broker, &[other], || {
        cmd(&broker, &key, &["unlock_door", r#"{"seconds":30}"#])
    });
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let res: CommandResult = serde_json::from_str(out.trim()).unwrap();
    assert!(!res.ok);
    assert_eq!(res.code, "bad_signature");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(received.len(), 1);
}

#[test]
fn cmd_exits_3_when_no_result_comes_in_time() {
    let broker = plain_broker();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path());
    let t = Instant::now();
    let (code, out, err) = cmd(&broker, &key, &["--timeout-s", "1", "reload_config"]);
    assert_eq!(code, 3, "stdout: {out}\nstderr: {err}");
    assert!(out.is_empty());
    assert!(err.contains("no result"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_malformed_or_invalid_command_is_refused_locally_and_nothing_is_sent() {
    let broker = plain_broker();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path());
    let sub = Subscriber::start(&broker, &unique_client_id("watch"), "#", false);
    for (args, says) in [
        (&["set_slot_enabled", r#"{"slot":"#][..], "ARGS_JSON"),
        (
            &["set_prices", r#"{"prices":[{"slot":"A1","price":1.5}]}"#],
            "ARGS_JSON",
        ),
        (
            &["set_slot_enabled", r#"{"slot":"A1"}"#],
            "invalid arguments",
        ),
        (&["unlock_door", r#"{"seconds":3600}"#], "invalid arguments"),
        (&["launch_rockets"], "unknown command"),
    ] {
        let (code, out, err) = cmd(&broker, &key, args);
        assert_eq!(code, 2, "{args:?}: {out} {err}");
        assert!(
            err.contains(says) && err.contains("nothing was sent"),
            "{args:?}: {err}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sub.count(), 0, "{:?}", sub.messages());
}

#[test]
fn monitor_once_shows_each_machine_from_status_telemetry_and_events() {
    let pki = TestPki::generate();
    let broker = Mosquitto::start(&BrokerOpts {
        anonymous: false,
        users: vec![("ops".into(), "ops-secret".into())],
        tls: Some(pki.clone()),
        persistence: false,
        ..Default::default()
    });
    let now = vendd::runtime::now_ms();
    let publish = |topic: &str, v: Value| {
        publish_once(&broker, topic, v.to_string().as_bytes(), true);
    };
    let base = |kind: &str| json!({"schema":1,"machine":"k1","site":"s1","ts":now,"kind":kind});
    let mut status = base("status");
    status["state"] = "online".into();
    publish(&format!("{ROOT}/status"), status);
    let mut tele = base("telemetry");
    tele["door_open"] = true.into();
    tele["stock"] = json!({"A1":0,"A2":1,"A3":6});
    tele["faults"] = json!({"B1":"jam"});
    tele["queue_depth"] = 0.into();
    publish(&format!("{ROOT}/telemetry"), tele);
    let mut sale = base("sale");
    sale["event_id"] = "k1:42".into();
    sale["captured"] = 260.into();
    sale["currency"] = "EUR".into();
    publish(&format!("{ROOT}/events/sale"), sale);
    publish(
        "vend/v1/s2/k9/status",
        json!({"state":"offline","machine":"k9","site":"s2","ts":now}),
    );
    // Retained messages reach the monitor whenever it subscribes, so no race.
    let pass = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pass.path(), "ops-secret\n").unwrap();
    let addr = format!("127.0.0.1:{}", broker.port());
    let (code, out, err) = vendctl(&[
        "monitor",
        "--broker",
        &addr,
        "--ca",
        pki.ca_pem.to_str().unwrap(),
        "--username",
        "ops",
        "--password-file",
        pass.path().to_str().unwrap(),
        "--once-after-s",
        "2",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("MACHINE"), "{out}");
    let k1 = lines
        .iter()
        .find(|l| l.starts_with("s1/k1"))
        .expect("k1 row");
    for part in ["online", "OPEN", "B1:jam", "A2", "A1", "1 / 2.60 EUR"] {
        assert!(k1.contains(part), "{part} missing: {k1}");
    }
    let k9 = lines
        .iter()
        .find(|l| l.starts_with("s2/k9"))
        .expect("k9 row");
    assert!(k9.contains("offline") && k9.contains("0 / 0"), "{k9}");
}

#[test]
fn monitor_once_fails_clearly_with_a_wrong_password() {
    let broker = Mosquitto::start(&BrokerOpts {
        anonymous: false,
        users: vec![("ops".into(), "ops-secret".into())],
        persistence: false,
        ..Default::default()
    });
    let pass = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pass.path(), "wrong\n").unwrap();
    let addr = format!("127.0.0.1:{}", broker.port());
    let (code, _, err) = vendctl(&[
        "monitor",
        "--broker",
        &addr,
        "--username",
        "ops",
        "--password-file",
        pass.path().to_str().unwrap(),
        "--once-after-s",
        "1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no subscription"), "{err}");
}
