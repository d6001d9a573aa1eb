//! Reporting over MQTT against a real Mosquitto started by the test on a free loopback
//! port: outages, a daemon killed while offline, ACL denials, TLS and passwords, and a scan
//! for secrets in everything that leaves the machine.

use crate::broker::{BrokerOpts, Mosquitto, Msg, Subscriber, TestPki};
use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub(crate) const ROOT: &str = "vend/v1/test-site/test-kiosk";
pub(crate) const SECRET_HEX: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75e";

pub(crate) fn config(broker_port: u16, extra: &str) -> String {
    let base = config_text(Faults::NONE, 100_000);
    let mqtt = format!(
        "[security]\ndevice_secret = \"{SECRET_HEX}\"\n\n[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {broker_port}\ntelemetry_interval_s = 1\nkeep_alive_s = 5\n{extra}\n\n[planogram]"
    );
    base.replacen("[planogram]", &mqtt, 1)
}

pub(crate) fn health(d: &Daemon) -> Value {
    d.get("/api/health")["mqtt"].clone()
}

pub(crate) fn wait_health(d: &Daemon, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let h = health(d);
        if pred(&h) {
            return h;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "mqtt never {what}: {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One purchase by card through the HTTP API, to the receipt.
fn buy(d: &Daemon, slot: &str, card: &str) -> u64 {
    assert_eq!(d.post("/api/cart/items", json!({"slot": slot})).0, 200);
    assert_eq!(d.post("/api/checkout", json!({})).0, 200);
    let (st, b) = d.post("/sim/credential", json!({"kind": "card", "id": card}));
    assert_eq!(st, 200, "{b}");
    let sid = b["session"]["sid"].as_u64().unwrap();
    d.wait_session(Duration::from_secs(10), |s| s["phase"] == "receipt");
    assert_eq!(d.post("/api/dismiss", json!({})).0, 200);
    sid
}

/// The `n`th result (from 1) received for command `id`, waiting up to 15 s.
pub(crate) fn nth_result(results: &Subscriber, id: &str, n: usize) -> Value {
    let msgs = results.wait_for(
        |m| m.iter().filter(|x| x.json()["id"] == id).count() >= n,
        Duration::from_secs(15),
    );
    msgs.iter()
        .filter(|x| x.json()["id"] == id)
        .nth(n - 1)
        .unwrap()
        .json()
}

/// Event ids of the received events, with how often each came.
fn by_event_id(msgs: &[Msg]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for msg in msgs
        .iter()
        .filter(|m| m.topic.starts_with(&format!("{ROOT}/events/")))
    {
        let id = msg.json()["event_id"]
            .as_str()
            .expect("every event has an id")
            .to_string();
        *m.entry(id).or_default() += 1;
    }
    m
}

/// The sale events the journal says must exist: one per session that captured money,
/// identified by the sequence number of its `session_closed` record.
fn expected_sales(state: &std::path::Path) -> BTreeSet<String> {
    export(state)
        .iter()
        .filter(|r| r["type"] == "session_closed" && r["captured"].as_i64() > Some(0))
        .map(|r| format!("test-kiosk:{}", r["seq"]))
        .collect()
}

fn sales_received(msgs: &[Msg]) -> BTreeSet<String> {
    msgs.iter()
        .filter(|m| m.topic == format!("{ROOT}/events/sale"))
        .map(|m| m.json()["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn reports_sent_during_a_broker_outage_arrive_exactly_once_after_de_duplication() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&BrokerOpts::default());
    let sub = Subscriber::start(&broker, "monitor-outage", &format!("{ROOT}/events/#"), true);
    let cfg = write_config(tmp.path(), &config(broker.port(), ""));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 11);
    wait_health(&d, "connected", |h| h["connected"] == true);
    for (i, slot) in ["A1", "A2", "B1"].iter().enumerate() {
        buy(&d, slot, &format!("card-{i}"));
    }
    broker.stop();
    wait_health(&d, "noticed the outage", |h| h["connected"] == false);
    for (i, slot) in ["B2", "C1", "C2", "A3"].iter().enumerate() {
        buy(&d, slot, &format!("card-offline-{i}"));
    }
    let h = health(&d);
    assert!(
        h["backlog"].as_u64().unwrap() > 0,
        "reports should wait while offline: {h}"
    );
    broker.restart();
    wait_health(&d, "drained the backlog", |h| {
        h["connected"] == true && h["backlog"] == 0
    });
    let expected_n = 7;
    let msgs = sub.wait_for(
        |m| sales_received(m).len() >= expected_n,
        Duration::from_secs(30),
    );
    d.terminate();
    let expected = expected_sales(&state);
    assert_eq!(expected.len(), expected_n);
    assert_eq!(
        sales_received(&msgs),
        expected,
        "every sale exactly once after de-duplication"
    );
    // Nothing unknown arrived, and every event id carries the same payload each time.
    let ids = by_event_id(&msgs);
    let mut payloads: BTreeMap<String, String> = BTreeMap::new();
    for m in msgs.iter().filter(|m| m.topic.contains("/events/")) {
        let v = m.json();
        let id = v["event_id"].as_str().unwrap().to_string();
        let text = v.to_string();
        if let Some(prev) = payloads.insert(id.clone(), text.clone()) {
            assert_eq!(prev, text, "a resend of {id} differs");
        }
    }
    assert!(ids.len() >= expected_n);
}

#[test]
fn a_daemon_killed_while_offline_sends_everything_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&BrokerOpts::default());
    let sub = Subscriber::start(&broker, "monitor-kill", &format!("{ROOT}/events/#"), true);
    broker.stop();
    let cfg = write_config(tmp.path(), &config(broker.port(), ""));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 12);
    for (i, slot) in ["A1", "B1", "C1"].iter().enumerate() {
        buy(&d, slot, &format!("k-{i}"));
    }
    d.kill(); // SIGKILL while offline: unacknowledged reports exist only in the journal
    let d = Daemon::start(&cfg, &state, 13);
    buy(&d, "A2", "k-9");
    broker.restart();
    wait_health(&d, "drained the backlog", |h| {
        h["connected"] == true && h["backlog"] == 0
    });
    let msgs = sub.wait_for(|m| sales_received(m).len() >= 4, Duration::from_secs(30));
    d.terminate();
    assert_eq!(sales_received(&msgs), expected_sales(&state));
    assert_eq!(expected_sales(&state).len(), 4);
}

#[test]
fn an_acl_denial_is_reported_as_a_fault_and_the_reports_stay_queued() {
    let tmp = tempfile::tempdir().unwrap();
    // Anonymous clients may write status and telemetry, and read everything, but not events.
    let acl = format!("topic write {ROOT}/status\ntopic write {ROOT}/telemetry\ntopic read #\n");
    let broker = Mosquitto::start(&BrokerOpts {
        acl: Some(acl),
        ..BrokerOpts::default()
    });
    let cfg = write_config(tmp.path(), &config(broker.port(), ""));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 14);
    wait_health(&d, "connected", |h| h["connected"] == true);
    buy(&d, "A1", "acl-card");
    let h = wait_health(&d, "reported the refusal", |h| {
        h["fault"].as_str().is_some_and(|f| f.contains("135"))
    });
    assert!(h["backlog"].as_u64().unwrap() > 0, "{h}");
    let cursor = h["cursor"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let h2 = health(&d);
    assert_eq!(
        h2["cursor"].as_u64().unwrap(),
        cursor,
        "the cursor must not pass a refused report"
    );
    d.terminate();
}

#[test]
fn tls_with_the_operators_ca_and_password_connects_and_wrong_ones_are_refused_clearly() {
    let pki = TestPki::generate();
    let opts = BrokerOpts {
        anonymous: false,
        users: vec![("k1".into(), "s3cret".into())],
        tls: Some(pki.clone()),
        ..BrokerOpts::default()
    };
    let broker = Mosquitto::start(&opts);
    let cases = [
        (pki.ca_pem.clone(), "s3cret", true, ""),
        (pki.other_ca_pem.clone(), "s3cret", false, "certificate"),
        (pki.ca_pem.clone(), "wrong", false, "refused"),
    ];
    for (ca, password, ok, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let extra = format!(
            "ca_file = \"{}\"\nusername = \"k1\"\npassword = \"{password}\"",
            ca.display()
        );
        let text =
            config(broker.port(), &extra).replace("host = \"127.0.0.1\"", "host = \"localhost\"");
        let cfg = write_config(tmp.path(), &text);
        let d = Daemon::start(&cfg, &tmp.path().join("state"), 15);
        if ok {
            wait_health(&d, "connected over TLS", |h| h["connected"] == true);
        } else {
            let h = wait_health(&d, "reported the refusal", |h| h["fault"].is_string());
            assert_eq!(h["connected"], false);
            let f = h["fault"].as_str().unwrap().to_lowercase();
            assert!(f.contains(needle), "expected `{needle}` in the error: {f}");
        }
        d.terminate();
    }
}

#[test]
fn no_card_identifier_credential_hash_or_secret_leaves_the_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&BrokerOpts::default());
    let sub = Subscriber::start(&broker, "monitor-scan", "#", false);
    let cfg = write_config(tmp.path(), &config(broker.port(), ""));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 16);
    wait_health(&d, "connected", |h| h["connected"] == true);
    let card = "04A2B3C4D5E6F7";
    buy(&d, "A1", card);
    buy(&d, "B1", card);
    wait_health(&d, "drained", |h| h["backlog"] == 0);
    std::thread::sleep(Duration::from_millis(1200)); // a telemetry tick
    d.terminate();
    let tokens: Vec<String> = export(&state)
        .iter()
        .filter(|r| r["type"] == "authorised")
        .map(|r| r["credential"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens.len(), 2);
    let msgs = sub.messages();
    assert!(
        msgs.iter().any(|m| m.topic.ends_with("/events/sale")),
        "no sale was reported"
    );
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    let mut haystacks: Vec<(String, String)> =
        msgs.iter().map(|m| (m.topic.clone(), m.text())).collect();
    haystacks.push(("daemon log".into(), log));
    for (name, text) in &haystacks {
        // The authoriser's own topics carry the keyed credential hash (it must know whose
        // account to debit for an offline approval); nothing else may.
        let payment_topic = name.contains("/payments/") || name.contains("/auth/");
        let mut needles = vec![card, SECRET_HEX];
        if !payment_topic {
            needles.extend([tokens[0].as_str(), &tokens[1][..16]]);
        }
        for needle in needles {
            assert!(!text.contains(needle), "{name} contains `{needle}`");
        }
    }
}

mod commands {
    use super::*;
    use crate::broker::publish_once;
    use vendd::report::command::{encode_key, generate_keypair, sign};

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    fn nonce(n: u32) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("nonce-{n:010}-padding"))
    }

    fn price(d: &Daemon, slot: &str) -> i64 {
        let c = d.get("/api/catalog");
        c["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == slot)
            .unwrap()["price"]
            .as_i64()
            .unwrap()
    }

    #[test]
    fn signed_commands_apply_once_and_every_bad_one_is_refused_with_a_reason_and_no_change() {
        let tmp = tempfile::tempdir().unwrap();
        let broker = Mosquitto::start(&BrokerOpts::default());
        let results = Subscriber::start(
            &broker,
            "operator-results",
            &format!("{ROOT}/cmd/+/result"),
            false,
        );
        let (key, public) = generate_keypair();
        let (other_key, _) = generate_keypair();
        let extra = format!("operator_keys = [\"{}\"]", encode_key(public.as_bytes()));
        let cfg = write_config(tmp.path(), &config(broker.port(), &extra));
        let state = tmp.path().join("state");
        let d = Daemon::start(&cfg, &state, 21);
        wait_health(&d, "connected", |h| h["connected"] == true);
        let t = now();
        let send = |name: &str, bytes: &[u8]| {
            publish_once(&broker, &format!("{ROOT}/cmd/{name}"), bytes, false);
        };
        let result_for = |id: &str, n: usize| -> Value { nth_result(&results, id, n) };

        // A good command: applied, answered ok, from the journal.
        let args = json!({"prices": [{"slot": "A1", "price": 999}, {"slot": "B1", "price": 5}]});
        let good = sign(
            "set_prices",
            args.clone(),
            "test-kiosk",
            "cmd-1",
            &nonce(1),
            t,
            t + 60_000,
            &key,
        );
        send("set_prices", &good);
        let r = result_for("cmd-1", 1);
        assert_eq!(
            (r["ok"].as_bool(), r["code"].as_str()),
            (Some(true), Some("ok")),
            "{r}"
        );
        assert_eq!(price(&d, "A1"), 999);
        assert_eq!(price(&d, "B1"), 5);

        // The same bytes again (a redelivery or a replay): the original answer, no change.
        d.post("/api/service/price", json!({"slot": "A1", "price": 170}));
        send("set_prices", &good);
        let r = result_for("cmd-1", 2);
        assert_eq!(
            (r["ok"].as_bool(), r["replay"].as_bool()),
            (Some(true), Some(true)),
            "{r}"
        );
        assert_eq!(price(&d, "A1"), 170, "a replay must not apply again");

        // Each bad command: refused with its reason, nothing changed.
        let snapshot = || (d.get("/api/catalog"), d.get("/api/service/counters"));
        let before = snapshot();
        let unsigned = {
            let mut v: Value = serde_json::from_slice(&sign(
                "restock",
                json!({"counts": [{"slot": "A2", "count": 1}]}),
                "test-kiosk",
                "cmd-2",
                &nonce(2),
                t,
                t + 60_000,
                &key,
            ))
            .unwrap();
            v.as_object_mut().unwrap().remove("sig");
            serde_json::to_vec(&v).unwrap()
        };
        let tampered = {
            let mut v: Value = serde_json::from_slice(&sign(
                "restock",
                json!({"counts": [{"slot": "A2", "count": 1}]}),
                "test-kiosk",
                "cmd-3",
                &nonce(3),
                t,
                t + 60_000,
                &key,
            ))
            .unwrap();
            v["args"]["counts"][0]["count"] = json!(2);
            serde_json::to_vec(&v).unwrap()
        };
        let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
            ("restock", "cmd-2", unsigned, "unsigned"),
            ("restock", "cmd-3", tampered, "bad_signature"),
            (
                "restock",
                "cmd-4",
                sign(
                    "restock",
                    json!({"counts": [{"slot": "A2", "count": 1}]}),
                    "test-kiosk",
                    "cmd-4",
                    &nonce(4),
                    t,
                    t + 60_000,
                    &other_key,
                ),
                "bad_signature",
            ),
            (
                "restock",
                "cmd-5",
                sign(
                    "restock",
                    json!({"counts": [{"slot": "A2", "count": 1}]}),
                    "test-kiosk",
                    "cmd-5",
                    &nonce(5),
                    t - 120_000,
                    t - 60_000,
                    &key,
                ),
                "expired",
            ),
            (
                "restock",
                "cmd-6",
                sign(
                    "restock",
                    json!({"counts": [{"slot": "A2", "count": 1}]}),
                    "other-kiosk",
                    "cmd-6",
                    &nonce(6),
                    t,
                    t + 60_000,
                    &key,
                ),
                "wrong_machine",
            ),
            (
                "restock",
                "cmd-7",
                sign(
                    "restock",
                    json!({"counts": [{"slot": "A2", "count": -1}]}),
                    "test-kiosk",
                    "cmd-7",
                    &nonce(7),
                    t,
                    t + 60_000,
                    &key,
                ),
                "invalid_args",
            ),
            (
                "restock",
                "cmd-8",
                sign(
                    "restock",
                    json!({"counts": [{"slot": "A2", "count": 1}]}),
                    "test-kiosk",
                    "cmd-8",
                    &nonce(1),
                    t,
                    t + 60_000,
                    &key,
                ),
                "replayed",
            ),
            (
                "set_prices",
                "cmd-9",
                sign(
                    "restock",
                    json!({"counts": [{"slot": "A2", "count": 1}]}),
                    "test-kiosk",
                    "cmd-9",
                    &nonce(9),
                    t,
                    t + 60_000,
                    &key,
                ),
                "topic_mismatch",
            ),
        ];
        for (topic_name, id, bytes, code) in &cases {
            send(topic_name, bytes);
            let r = result_for(id, 1);
            assert_eq!(
                (r["ok"].as_bool(), r["code"].as_str()),
                (Some(false), Some(*code)),
                "{id}: {r}"
            );
            assert!(
                r["message"].as_str().unwrap().len() > 5,
                "{id}: unclear message {r}"
            );
        }
        send("restock", b"{not json");
        let msgs = results.wait_for(
            |m| m.iter().any(|x| x.json()["code"] == "malformed"),
            Duration::from_secs(15),
        );
        assert!(msgs
            .iter()
            .any(|x| x.json()["code"] == "malformed" && x.json()["ok"] == false));
        assert_eq!(snapshot(), before, "a refused command changed something");

        // Verified, but the controller refuses part of it: nothing of it applies.
        let partly = json!({"counts": [{"slot": "A2", "count": 1}, {"slot": "A3", "count": 99}]});
        send(
            "restock",
            &sign(
                "restock",
                partly,
                "test-kiosk",
                "cmd-10",
                &nonce(10),
                t,
                t + 60_000,
                &key,
            ),
        );
        let r = result_for("cmd-10", 1);
        assert_eq!(
            (r["ok"].as_bool(), r["code"].as_str()),
            (Some(false), Some("over_capacity")),
            "{r}"
        );
        assert_eq!(
            snapshot(),
            before,
            "a half-valid command must apply nothing"
        );

        d.terminate();
        let j = export(&state);
        let cmds: Vec<&Value> = j.iter().filter(|r| r["type"] == "remote_command").collect();
        let ids: Vec<&str> = cmds.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            ["cmd-1", "cmd-10"],
            "only verified commands are journaled"
        );
        let (code, out, _) = vendctl(&state, &["journal", "verify"]);
        assert_eq!(code, 0, "{out}");
    }
    /// A daemon with an operator key, its broker, and a subscriber to every command
    /// result.
    struct Op {
        key: vendd::report::command::SigningKey,
        cfg: std::path::PathBuf,
        state: std::path::PathBuf,
        results: Subscriber,
        broker: Mosquitto,
        _tmp: tempfile::TempDir,
    }

    impl Op {
        fn start(extra: &str) -> Op {
            let tmp = tempfile::tempdir().unwrap();
            let broker = Mosquitto::start(&BrokerOpts::default());
            let results = Subscriber::start(
                &broker,
                &crate::broker::unique_client_id("operator-results"),
                &format!("{ROOT}/cmd/+/result"),
                false,
            );
            let (key, public) = generate_keypair();
            let extra = format!(
                "operator_keys = [\"{}\"]\n{extra}",
                encode_key(public.as_bytes())
            );
            let cfg = write_config(tmp.path(), &config(broker.port(), &extra));
            let state = tmp.path().join("state");
            Op {
                key,
                cfg,
                state,
                results,
                broker,
                _tmp: tmp,
            }
        }

        fn daemon(&self, seed: u64) -> Daemon {
            let d = Daemon::start(&self.cfg, &self.state, seed);
            wait_health(&d, "connected", |h| h["connected"] == true);
            d
        }

        /// Signs and sends `name` with `args` as command `id`; returns the bytes sent.
        fn send(&self, name: &str, id: &str, args: Value) -> Vec<u8> {
            use base64::Engine;
            let t = now();
            let nonce =
                base64::engine::general_purpose::STANDARD.encode(format!("n-{id}-0123456789"));
            let bytes = sign(
                name,
                args,
                "test-kiosk",
                id,
                &nonce,
                t,
                t + 60_000,
                &self.key,
            );
            publish_once(&self.broker, &format!("{ROOT}/cmd/{name}"), &bytes, false);
            bytes
        }

        /// The `n`th result for command `id`.
        fn result(&self, id: &str, n: usize) -> Value {
            super::nth_result(&self.results, id, n)
        }

        /// Sends a command and returns its (first) result.
        fn run(&self, name: &str, id: &str, args: Value) -> Value {
            self.send(name, id, args);
            self.result(id, 1)
        }
    }

    fn code(r: &Value) -> (Option<bool>, Option<&str>) {
        (r["ok"].as_bool(), r["code"].as_str())
    }

    fn slot_view(d: &Daemon, slot: &str) -> Option<Value> {
        d.get("/api/catalog")["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == slot)
            .cloned()
    }

    fn slot_ids(d: &Daemon) -> Vec<String> {
        d.get("/api/catalog")["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn planogram(currency: &str, extra_slot: Option<Value>) -> Value {
        let mut slots = json!({
            // Same product, no stock given: keeps its count.
            "A1": {"id": "A1", "product": "cola", "price": 111, "capacity": 8,
                   "enabled": true, "fault": null},
            // New product: starts empty unless counted.
            "A2": {"id": "A2", "product": "tea", "price": 120, "capacity": 6,
                   "enabled": true, "fault": null},
            // Same product, stock given: the count is the command's.
            "B1": {"id": "B1", "product": "water", "price": 210, "capacity": 8, "stock": 3,
                   "enabled": true, "fault": null}
        });
        if let Some(s) = extra_slot {
            let id = s["id"].as_str().unwrap().to_string();
            slots[id] = s;
        }
        json!({"catalog": {
            "currency": currency,
            "products": {"cola": {"id": "cola", "name": "Cola"},
                         "water": {"id": "water", "name": "Water"},
                         "tea": {"id": "tea", "name": "Tea"}},
            "slots": slots,
        }})
    }

    #[test]
    fn set_planogram_replaces_the_catalog_keeps_counts_refuses_bad_ones_and_survives_a_restart() {
        let op = Op::start("");
        let d = op.daemon(41);
        let r = op.run(
            "restock",
            "pl-0",
            json!({"counts": [{"slot": "A1", "count": 5}, {"slot": "B1", "count": 7}]}),
        );
        assert_eq!(code(&r), (Some(true), Some("ok")), "{r}");
        let before = d.get("/api/catalog");

        // Refused, each with its reason, and nothing changes.
        let r = op.run("set_planogram", "pl-1", planogram("USD", None));
        assert_eq!(code(&r), (Some(false), Some("wrong_currency")), "{r}");
        let outside = json!({"id": "D1", "product": "cola", "price": 100, "capacity": 8,
                             "enabled": true, "fault": null});
        let r = op.run("set_planogram", "pl-2", planogram("EUR", Some(outside)));
        assert_eq!(code(&r), (Some(false), Some("bad_planogram")), "{r}");
        assert!(r["message"].as_str().unwrap().contains("D1"), "{r}");
        let over = json!({"id": "C1", "product": "cola", "price": 100, "capacity": 2,
                          "stock": 3, "enabled": true, "fault": null});
        let r = op.run("set_planogram", "pl-3", planogram("EUR", Some(over)));
        assert_eq!(code(&r), (Some(false), Some("invalid_args")), "{r}");
        assert_eq!(d.post("/api/cart/items", json!({"slot": "A1"})).0, 200);
        let r = op.run("set_planogram", "pl-4", planogram("EUR", None));
        assert_eq!(code(&r), (Some(false), Some("busy")), "{r}");
        assert_eq!(d.post("/api/cancel", json!({})).0, 200);
        d.wait_session(Duration::from_secs(5), |s| s["phase"] == "idle");
        assert_eq!(
            d.get("/api/catalog"),
            before,
            "a refused planogram changed something"
        );

        // Applied: only the new slots, counts carried over where the product stays.
        let r = op.run("set_planogram", "pl-5", planogram("EUR", None));
        assert_eq!(code(&r), (Some(true), Some("ok")), "{r}");
        let check = |d: &Daemon| {
            assert_eq!(slot_ids(d), ["A1", "A2", "B1"]);
            let a1 = slot_view(d, "A1").unwrap();
            assert_eq!(
                (a1["price"].as_i64(), a1["stock"].as_u64()),
                (Some(111), Some(5))
            );
            let a2 = slot_view(d, "A2").unwrap();
            assert_eq!(
                (a2["product"].as_str(), a2["stock"].as_u64()),
                (Some("tea"), Some(0))
            );
            assert_eq!(slot_view(d, "B1").unwrap()["stock"], 3);
        };
        check(&d);
        // It sells: a vend from the new planogram.
        buy(&d, "A1", "card-pl");
        assert_eq!(slot_view(&d, "A1").unwrap()["stock"], 4);

        // A restart with the same config file keeps the remote planogram.
        d.terminate();
        let d = op.daemon(42);
        assert_eq!(slot_ids(&d), ["A1", "A2", "B1"]);
        assert_eq!(slot_view(&d, "A1").unwrap()["price"], 111);
        assert_eq!(slot_view(&d, "A1").unwrap()["stock"], 4);
        d.terminate();
        let j = export(&op.state);
        let sources: Vec<&str> = j
            .iter()
            .filter(|r| r["type"] == "planogram")
            .map(|r| r["source"].as_str().unwrap())
            .collect();
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert_eq!(sources[1], "cmd:pl-5");
        let (code, out, _) = vendctl(&op.state, &["journal", "verify"]);
        assert_eq!(code, 0, "{out}");
    }

    #[test]
    fn refund_gives_captured_money_back_once_never_more_and_void_of_a_closed_session_is_refused() {
        use super::online::{wait_balance, Authoriser};
        use std::sync::{Arc, Mutex};
        use vendd::report::authoriser::Accounts;
        let op = Op::start("online_auth = true");
        let refunds = Subscriber::start(
            &op.broker,
            &crate::broker::unique_client_id("monitor-refunds"),
            &format!("{ROOT}/events/refund"),
            false,
        );
        let secret = hex::decode(SECRET_HEX).unwrap();
        let alice = vendd::token::credential_token(&secret, "card", "alice-card");
        let accounts = Accounts::from_toml(&format!(
            "[[account]]\ncredential = \"{alice}\"\nname = \"alice\"\nbalance = 1000\n"
        ))
        .unwrap();
        let accounts = Arc::new(Mutex::new(accounts));
        let _auth = Authoriser::start(&op.broker, accounts.clone());
        let d = op.daemon(51);
        let sid1 = buy(&d, "A1", "alice-card");
        wait_balance(&accounts, &alice, 840);

        // Part, then the rest (the default): credited once each.
        let first = op.send("refund", "rf-1", json!({"sid": sid1, "amount": 60}));
        let r = op.result("rf-1", 1);
        assert_eq!(code(&r), (Some(true), Some("ok")), "{r}");
        wait_balance(&accounts, &alice, 900);
        // The same command again: the original answer, no second refund.
        publish_once(&op.broker, &format!("{ROOT}/cmd/refund"), &first, false);
        let r = op.result("rf-1", 2);
        assert_eq!(r["replay"], true, "{r}");
        let r = op.run("refund", "rf-2", json!({"sid": sid1}));
        assert_eq!(code(&r), (Some(true), Some("ok")), "{r}");
        wait_balance(&accounts, &alice, 1000);

        // Never more than captured, never a session that captured nothing.
        let r = op.run("refund", "rf-3", json!({"sid": sid1, "amount": 1}));
        assert_eq!(code(&r), (Some(false), Some("already_refunded")), "{r}");
        let sid2 = buy(&d, "A2", "alice-card");
        wait_balance(&accounts, &alice, 830);
        let r = op.run("refund", "rf-4", json!({"sid": sid2, "amount": 171}));
        assert_eq!(code(&r), (Some(false), Some("over_refund")), "{r}");
        let r = op.run("refund", "rf-5", json!({"sid": 999}));
        assert_eq!(code(&r), (Some(false), Some("nothing_captured")), "{r}");
        // A closed session's hold was settled when it closed: nothing to void.
        let r = op.run("void", "vd-1", json!({"sid": sid2}));
        assert_eq!(code(&r), (Some(false), Some("nothing_to_void")), "{r}");
        assert!(r["message"].as_str().unwrap().contains("refund"), "{r}");
        let r = op.run("void", "vd-2", json!({"sid": 999}));
        assert_eq!(code(&r), (Some(false), Some("unknown_session")), "{r}");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(accounts.lock().unwrap().balance(&alice), Some(830));

        // Monitoring sees each refund once.
        let msgs = refunds.wait_for(|m| m.len() >= 2, Duration::from_secs(15));
        let mut seen: Vec<(i64, String)> = msgs
            .iter()
            .map(|m| {
                let v = m.json();
                assert_eq!(
                    (v["source"].as_str(), v["sid"].as_u64()),
                    (Some("refund"), Some(sid1))
                );
                (
                    v["amount"].as_i64().unwrap(),
                    v["event_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        seen.sort();
        seen.dedup_by(|a, b| a.1 == b.1);
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [60, 100]);
        let c = d.get("/api/service/counters");
        assert_eq!(
            c["lifetime"]["refunds"],
            json!({"count": 2, "value": 160}),
            "{c}"
        );

        d.terminate();
        let j = export(&op.state);
        let keys: Vec<&str> = j
            .iter()
            .filter(|r| r["type"] == "refund")
            .map(|r| r["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [format!("{sid1}:refund:rf-1"), format!("{sid1}:refund:rf-2")]
        );
        let (code, out, _) = vendctl(&op.state, &["journal", "verify"]);
        assert_eq!(code, 0, "{out}");
    }

    #[test]
    fn unlock_door_opens_the_lock_for_a_while_audit_export_publishes_counters_and_reload_config_applies_the_file(
    ) {
        let op = Op::start("");
        let audit = Subscriber::start(
            &op.broker,
            &crate::broker::unique_client_id("operator-audit"),
            &format!("{ROOT}/audit"),
            false,
        );
        let d = op.daemon(61);
        assert_eq!(d.get("/sim/state")["locked"], true);

        // Unlock for 2 s: open, then locked again by itself.
        let r = op.run("unlock_door", "ul-1", json!({"seconds": 2}));
        assert_eq!(code(&r), (Some(true), Some("ok")), "{r}");
        let t = Instant::now();
        while d.get("/sim/state")["locked"] == true {
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "the lock never opened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        while d.get("/sim/state")["locked"] == false {
            assert!(
                t.elapsed() < Duration::from_secs(8),
                "the lock never closed again"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            t.elapsed() >= Duration::from_millis(1500),
            "re-locked too early"
        );
        let r = op.run("unlock_door", "ul-2", json!({"seconds": 0}));
        assert_eq!(code(&r), (Some(false), Some("invalid_args")), "{r}");
        assert_eq!(d.get("/sim/state")["locked"], true);

        // Audit export: the counters as JSON on <root>/audit.
        buy(&d, "A1", "card-audit");
        let r = op.run("audit_export", "ae-1", json!({}));
        assert_eq!(code(&r), (Some(true), Some("ok")), "{r}");
        let msgs = audit.wait_for(|m| !m.is_empty(), Duration::from_secs(10));
        assert!(!msgs[0].retain, "the audit is not retained");
        let a = msgs[0].json();
        assert_eq!(a["command_id"], "ae-1", "{a}");
        for set in ["lifetime", "since_reset"] {
            let c = &a["counters"][set];
            assert_eq!(c["paid"], json!({"count": 1, "value": 160}), "{a}");
            assert_eq!(c["by_slot"]["A1"], json!({"count": 1, "value": 160}), "{a}");
            assert_eq!(
                c["by_method"]["card"],
                json!({"count": 1, "value": 160}),
                "{a}"
            );
        }
        // Doctor: the running daemon's checks on <root>/doctor.
        let doctor = Subscriber::start(
            &op.broker,
            &crate::broker::unique_client_id("operator-doctor"),
            &format!("{ROOT}/doctor"),
            false,
        );
        let r = op.run("doctor", "dr-1", json!({}));
        assert_eq!(code(&r), (Some(true), Some("ok")), "{r}");
        let msgs = doctor.wait_for(|m| !m.is_empty(), Duration::from_secs(10));
        let dr = msgs[0].json();
        assert_eq!(dr["command_id"], "dr-1", "{dr}");
        let checks = dr["checks"].as_array().expect("checks");
        let status = |name: &str| {
            checks
                .iter()
                .find(|c| c["name"] == name)
                .map(|c| c["status"].clone())
        };
        assert_eq!(status("broker"), Some(json!("ok")), "{dr}");
        assert_eq!(status("nfc"), Some(json!("ok")), "{dr}");
        assert_eq!(status("journal"), Some(json!("ok")), "{dr}");

        // The DEX/EVA-DTS file comes with it, and verifies.
        let dex = vendd::dex::parse(a["dex"].as_str().expect("dex text")).expect("parses");
        dex.verify().expect("CRC and segment count");
        let va1 = dex.va1().unwrap().expect("VA1");
        assert_eq!((va1.count_init, va1.value_init), (1, 160));

        // reload_config: a broken file changes nothing and the answer names file and line.
        let good = std::fs::read_to_string(&op.cfg).unwrap();
        std::fs::write(&op.cfg, good.replacen("rows = 3", "rows = \"three\"", 1)).unwrap();
        let r = op.run("reload_config", "rc-0", json!({}));
        assert_eq!(code(&r), (Some(false), Some("bad_config")), "{r}");
        let msg = r["message"].as_str().unwrap();
        assert!(
            msg.contains("vendd.toml:") && msg.contains("machine.rows"),
            "{r}"
        );
        assert_eq!(slot_view(&d, "A1").unwrap()["price"], 160);
        // A good file with a new price: its planogram applies, counts carry over.
        let stock_before = slot_view(&d, "A1").unwrap()["stock"].clone();
        std::fs::write(&op.cfg, good.replacen("price = 160", "price = 555", 1)).unwrap();
        let r = op.run("reload_config", "rc-1", json!({}));
        assert_eq!(code(&r), (Some(true), Some("ok")), "{r}");
        assert_eq!(slot_view(&d, "A1").unwrap()["price"], 555);
        assert_eq!(slot_view(&d, "A1").unwrap()["stock"], stock_before);

        d.terminate();
        let j = export(&op.state);
        let unlocks: Vec<&Value> = j.iter().filter(|r| r["type"] == "unlock").collect();
        assert_eq!(unlocks.len(), 1);
        assert_eq!(unlocks[0]["seconds"], 2);
        let ids: Vec<&str> = j
            .iter()
            .filter(|r| r["type"] == "remote_command")
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["ul-1", "ae-1", "dr-1", "rc-1"]);
        let (code, out, _) = vendctl(&op.state, &["journal", "verify"]);
        assert_eq!(code, 0, "{out}");
    }
}

pub(crate) mod online {
    use super::*;
    use crate::broker::publish_once;
    use std::sync::{Arc, Mutex};
    use vendd::report::authoriser::{serve, Accounts};

    pub(crate) struct Authoriser {
        stop: tokio::sync::watch::Sender<bool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Authoriser {
        pub(crate) fn start(broker: &Mosquitto, accounts: Arc<Mutex<Accounts>>) -> Authoriser {
            let mut options = broker.client_options("authoriser-test");
            options.set_client_id("authoriser-test".into());
            let (stop, rx) = tokio::sync::watch::channel(false);
            let thread = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(serve(options, "vend/v1/+/+", accounts, rx));
            });
            std::thread::sleep(Duration::from_millis(300)); // connected and subscribed
            Authoriser {
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Authoriser {
        fn drop(&mut self) {
            let _ = self.stop.send(true);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    pub(crate) fn wait_balance(accounts: &Arc<Mutex<Accounts>>, token: &str, want: i64) {
        let t = Instant::now();
        loop {
            let b = accounts.lock().unwrap().balance(token);
            if b == Some(want) {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "balance {b:?}, expected {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn payments_go_online_fall_back_to_offline_rules_and_offline_approvals_upload_once() {
        let tmp = tempfile::tempdir().unwrap();
        let broker = Mosquitto::start(&BrokerOpts::default());
        let secret = hex::decode(SECRET_HEX).unwrap();
        let alice = vendd::token::credential_token(&secret, "card", "alice-card");
        let accounts = Accounts::from_toml(&format!(
            "[[account]]\ncredential = \"{alice}\"\nname = \"alice\"\nbalance = 1000\n"
        ))
        .unwrap();
        let accounts = Arc::new(Mutex::new(accounts));
        let auth = Authoriser::start(&broker, accounts.clone());
        let cfg = write_config(tmp.path(), &config(broker.port(), "online_auth = true"));
        let state = tmp.path().join("state");
        let d = Daemon::start(&cfg, &state, 31);
        wait_health(&d, "connected", |h| h["connected"] == true);

        // Online: approved by the authoriser, captured against its hold.
        let sid1 = buy(&d, "A1", "alice-card");
        wait_balance(&accounts, &alice, 1000 - 160);
        // Online decline: an unknown account.
        d.post("/api/cart/items", json!({"slot": "A2"}));
        d.post("/api/checkout", json!({}));
        d.post(
            "/sim/credential",
            json!({"kind": "card", "id": "mallory-card"}),
        );
        let s = d.wait_session(Duration::from_secs(10), |s| {
            s["last_decline"]["kind"] == "authoriser"
        });
        assert_eq!(s["last_decline"]["reason"], "unknown account", "{s}");
        assert_eq!(d.post("/api/cancel", json!({})).0, 200);

        // The authoriser goes away: after the authorising time-out the offline rules decide.
        drop(auth);
        let sid2 = buy(&d, "A2", "alice-card");
        // It returns: the offline capture queued for it by the broker is applied once.
        let _auth = Authoriser::start(&broker, accounts.clone());
        wait_balance(&accounts, &alice, 1000 - 160 - 170);
        // A resend of the same capture (same key) changes nothing.
        let key = format!("{sid2}:capture");
        let dup = json!({"key": key, "amount": 170, "offline": true, "credential": alice, "auth_ref": format!("offline-{sid2}"), "sid": sid2});
        publish_once(
            &broker,
            &format!("{ROOT}/payments/capture"),
            dup.to_string().as_bytes(),
            false,
        );
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            accounts.lock().unwrap().balance(&alice),
            Some(1000 - 160 - 170)
        );

        wait_health(&d, "drained", |h| h["backlog"] == 0);
        std::thread::sleep(Duration::from_millis(300));
        d.terminate();
        let j = export(&state);
        let auths: Vec<(u64, bool)> = j
            .iter()
            .filter(|r| r["type"] == "authorised")
            .map(|r| (r["sid"].as_u64().unwrap(), r["offline"].as_bool().unwrap()))
            .collect();
        assert_eq!(auths, [(sid1, false), (sid2, true)]);
        let uploads: Vec<u64> = j
            .iter()
            .filter(|r| r["type"] == "offline_uploaded")
            .map(|r| r["sid"].as_u64().unwrap())
            .collect();
        assert_eq!(
            uploads,
            [sid2],
            "the offline approval is uploaded exactly once"
        );
        let (code, out, _) = vendctl(&state, &["journal", "verify"]);
        assert_eq!(code, 0, "{out}");
    }
}
