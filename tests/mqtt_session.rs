//! The machine's MQTT session is persistent: commands sent while it was offline arrive
//! when it connects again.

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
