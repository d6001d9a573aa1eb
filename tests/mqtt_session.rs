//! More MQTT tests: the persistent session (commands sent while the machine was offline
//! arrive when it connects again), the remaining operator commands and HA discovery.

use crate::broker::{publish_once, BrokerOpts, Mosquitto};
use crate::common::*;
use crate::mqtt::{config, wait_health, ROOT};
use serde_json::json;
use std::time::Duration;
use vendd::report::command::{encode_key, generate_keypair, sign};

#[test]
fn a_command_sent_while_the_machine_is_down_is_carried_out_when_it_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&BrokerOpts::default());
    let (key, public) = generate_keypair();
    let extra = format!("operator_keys = [\"{}\"]", encode_key(public.as_bytes()));
    let cfg = write_config(tmp.path(), &config(broker.port(), &extra));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 41);
    wait_health(&d, "connected", |h| h["connected"] == true);
    assert!(d.terminate().success());

    // The machine is down; the operator changes a price.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let args = json!({"prices": [{"slot": "C4", "price": 777}]});
    let nonce = "b2ZmbGluZS1jb21tYW5kLW5vbmNl";
    let cmd = sign(
        "set_prices",
        args,
        "test-kiosk",
        "offline-cmd-1",
        nonce,
        now,
        now + 600_000,
        &key,
    );
    publish_once(&broker, &format!("{ROOT}/cmd/set_prices"), &cmd, false);

    let d = Daemon::start(&cfg, &state, 42);
    wait_health(&d, "connected", |h| h["connected"] == true);
    let t = std::time::Instant::now();
    loop {
        let c = d.get("/api/catalog");
        let price = c["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "C4")
            .unwrap()["price"]
            .clone();
        if price == 777 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the queued command never arrived (price {price})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.terminate();
    let j = export(&state);
    assert!(j
        .iter()
        .any(|r| r["type"] == "remote_command" && r["id"] == "offline-cmd-1" && r["ok"] == true));
}

/// The operator commands that map to controller inputs each do what they say over MQTT, and
/// Home Assistant discovery announces the machine.
#[test]
fn restock_enable_clear_fault_deny_list_and_reset_counters_each_work_and_discovery_is_announced() {
    use crate::broker::Subscriber;
    let tmp = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&BrokerOpts::default());
    let results = Subscriber::start(
        &broker,
        "ops-results",
        &format!("{ROOT}/cmd/+/result"),
        false,
    );
    let discovery = Subscriber::start(&broker, "ha", "homeassistant/#", false);
    let (key, public) = generate_keypair();
    let extra = format!(
        "operator_keys = [\"{}\"]\nha_discovery = true",
        encode_key(public.as_bytes())
    );
    let cfg = write_config(tmp.path(), &config(broker.port(), &extra));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 43);
    wait_health(&d, "connected", |h| h["connected"] == true);
    let msgs = discovery.wait_for(|m| m.len() >= 5, Duration::from_secs(10));
    assert!(msgs
        .iter()
        .all(|m| m.topic.ends_with("/config") && m.json()["unique_id"].is_string()));
    assert!(msgs
        .iter()
        .any(|m| m.text().contains(&format!("{ROOT}/telemetry"))));

    // Make a fault to clear: C1 jams during a sale.
    assert_eq!(
        d.post("/sim/fault", json!({"slot": "C1", "fault": "jam"}))
            .0,
        200
    );
    d.post("/api/cart/items", json!({"slot": "C1"}));
    d.post("/api/checkout", json!({}));
    d.post("/sim/credential", json!({"kind": "test-card", "id": "ops"}));
    d.wait_session(Duration::from_secs(10), |s| s["phase"] == "receipt");
    d.post("/api/dismiss", json!({}));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let hash = "ab".repeat(32);
    let cmds = [
        ("restock", json!({"counts": [{"slot": "A2", "count": 3}]})),
        ("set_slot_enabled", json!({"slot": "B1", "enabled": false})),
        ("clear_fault", json!({"slot": "C1"})),
        ("deny_list", json!({"add": [hash], "remove": []})),
        ("reset_counters", json!({})),
    ];
    for (i, (name, args)) in cmds.iter().enumerate() {
        let id = format!("ops-{i}");
        let nonce = format!("b3BzLW5vbmNlLW51bWJlci0{i}");
        let bytes = sign(
            name,
            args.clone(),
            "test-kiosk",
            &id,
            &nonce,
            now,
            now + 600_000,
            &key,
        );
        publish_once(&broker, &format!("{ROOT}/cmd/{name}"), &bytes, false);
        let got = results.wait_for(
            |m| m.iter().any(|x| x.json()["id"] == id),
            Duration::from_secs(10),
        );
        let r = got.iter().find(|x| x.json()["id"] == id).unwrap().json();
        assert_eq!(
            (r["ok"].as_bool(), r["code"].as_str()),
            (Some(true), Some("ok")),
            "{name}: {r}"
        );
    }
    let cat = d.get("/api/catalog");
    let slot = |id: &str| {
        cat["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(slot("A2")["stock"], 3);
    assert_eq!(slot("B1")["enabled"], false);
    assert!(slot("C1")["fault"].is_null());
    let counters = d.get("/api/service/counters");
    assert_eq!(counters["since_reset"]["failed_vends"], 0, "reset");
    assert_eq!(counters["lifetime"]["failed_vends"], 1);
    d.terminate();
    let j = export(&state);
    assert!(j.iter().any(|r| r["type"] == "deny_list"
        && r["credential"] == "ab".repeat(32)
        && r["add"] == true));
}
