//! End-to-end purchases through the HTTP API of a real `vendd simulate` process.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn slot<'a>(catalog: &'a Value, id: &str) -> &'a Value {
    catalog["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

fn records<'a>(journal: &'a [Value], kind: &str, sid: u64) -> Vec<&'a Value> {
    journal
        .iter()
        .filter(|r| r["type"] == kind && r["sid"] == sid)
        .collect()
}

#[test]
fn three_items_with_a_jam_and_a_missed_drop_charge_only_what_was_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config_text(Faults::NONE, 100_000));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 7);
    let before = d.get("/api/catalog");
    let phys_before = d.get("/sim/state");

    // B2 will jam; C3's first drop is missed by the beam (the item falls), the retry works.
    assert_eq!(
        d.post("/sim/fault", json!({"slot": "B2", "fault": "jam"}))
            .0,
        200
    );
    assert_eq!(
        d.post("/sim/fault", json!({"slot": "C3", "fault": "missed-drop"}))
            .0,
        200
    );
    for s in ["A1", "B2", "C3"] {
        let (st, body) = d.post("/api/cart/items", json!({"slot": s, "qty": 1}));
        assert_eq!(st, 200, "{body}");
    }
    let (st, body) = d.post("/api/checkout", json!({}));
    assert_eq!(st, 200, "{body}");
    let total = body["session"]["total"].as_i64().unwrap();
    let (pa, pb, pc) = (160, 220, 280);
    assert_eq!(total, pa + pb + pc);
    let (st, body) = d.post(
        "/sim/credential",
        json!({"kind": "test-card", "id": "alice"}),
    );
    assert_eq!(st, 200, "{body}");
    let sid = body["session"]["sid"].as_u64().unwrap();

    let s = d.wait_session(Duration::from_secs(20), |s| s["phase"] == "receipt");
    let receipt = &s["receipt"];
    assert_eq!(receipt["sid"], sid);
    assert_eq!(receipt["charged"], pa + pc, "{s}");
    assert_eq!(receipt["released"], pb, "{s}");
    let delivered: Vec<bool> = receipt["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["delivered"].as_bool().unwrap())
        .collect();
    assert_eq!(delivered, [true, false, true]);

    // Stock: the controller's count falls only for confirmed drops; the jammed slot is
    // faulted. Physically, C3 lost two items (the missed one fell too).
    let after = d.get("/api/catalog");
    let stock = |c: &Value, id| slot(c, id)["stock"].as_i64().unwrap();
    assert_eq!(stock(&after, "A1"), stock(&before, "A1") - 1);
    assert_eq!(stock(&after, "B2"), stock(&before, "B2"));
    assert_eq!(stock(&after, "C3"), stock(&before, "C3") - 1);
    assert!(
        slot(&after, "B2")["fault"].is_string(),
        "B2 should be faulted: {after}"
    );
    assert!(slot(&after, "C3")["fault"].is_null());
    let phys = d.get("/sim/state");
    let p = |v: &Value, id: &str| v["stock"][id].as_i64().unwrap();
    assert_eq!(p(&phys, "A1"), p(&phys_before, "A1") - 1);
    assert_eq!(p(&phys, "B2"), p(&phys_before, "B2"));
    assert_eq!(p(&phys, "C3"), p(&phys_before, "C3") - 2);
    assert_eq!(phys["violations"], 0);
    assert_eq!(phys["jammed"], json!(["B2"]));

    // Counters.
    let c = d.get("/api/service/counters");
    let life = &c["lifetime"];
    assert_eq!(life["by_slot"]["A1"]["count"], 1);
    assert_eq!(life["by_slot"]["A1"]["value"], pa);
    assert_eq!(life["by_slot"]["C3"]["value"], pc);
    assert!(life["by_slot"].get("B2").is_none());
    assert_eq!(life["by_method"]["test-card"]["value"], pa + pc);
    assert_eq!(life["by_method"]["test-card"]["count"], 2);
    assert_eq!(life["failed_vends"], 1);
    assert_eq!(c["since_reset"], c["lifetime"]);

    // A clean stop, then the journal: one capture of the delivered part, one void of the
    // rest, the missed drop retried under a second intent, and no violation.
    assert!(d.terminate().success());
    let j = export(&state);
    let cap = records(&j, "capture", sid);
    let void = records(&j, "void", sid);
    assert_eq!((cap.len(), void.len()), (1, 1));
    assert_eq!(cap[0]["amount"], pa + pc);
    assert_eq!(void[0]["amount"], pb);
    assert_eq!(cap[0]["key"], format!("{sid}:capture"));
    let intents = records(&j, "vend_intent", sid);
    let c3: Vec<_> = intents.iter().filter(|r| r["slot"] == "C3").collect();
    assert_eq!(c3.len(), 2, "C3 was tried twice");
    let b2: Vec<_> = records(&j, "vend_result", sid)
        .into_iter()
        .filter(|r| r["slot"] == "B2")
        .collect();
    assert_eq!(b2[0]["outcome"]["kind"], "jammed");
    let (code, out, _) = vendctl(&state, &["journal", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 violations"), "{out}");
}

#[test]
fn a_declined_credential_leaves_the_session_waiting_and_charges_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // Floor limit 100: every sale is above it while offline.
    let cfg = write_config(tmp.path(), &config_text(Faults::NONE, 100));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 1);
    d.post("/api/cart/items", json!({"slot": "A1"}));
    d.post("/api/checkout", json!({}));
    let (st, body) = d.post("/sim/credential", json!({"kind": "test-card", "id": "bob"}));
    assert_eq!(st, 200);
    assert_eq!(body["session"]["phase"], "awaiting_credential");
    assert_eq!(body["session"]["last_decline"]["kind"], "over_floor_limit");
    // A pay code needs the network: declined offline with its own reason.
    let (_, body) = d.post(
        "/sim/credential",
        json!({"kind": "pay-code", "id": "123456789012345678"}),
    );
    assert_eq!(body["session"]["last_decline"]["kind"], "needs_online");
    let (st, _) = d.post("/api/cancel", json!({}));
    assert_eq!(st, 200);
    assert_eq!(d.get("/api/session")["phase"], "idle");
    assert_eq!(d.get("/sim/state")["items_dispensed"], 0);
    d.kill();
    let j = export(&state);
    assert!(j
        .iter()
        .all(|r| r["type"] != "authorised" && r["type"] != "capture"));
    assert_eq!(j.iter().filter(|r| r["type"] == "declined").count(), 2);
}

#[test]
fn sigterm_during_a_vend_finishes_it_and_leaves_every_motor_off() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config_text(Faults::NONE, 100_000));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 3);
    d.post("/api/cart/items", json!({"slot": "A2", "qty": 3}));
    d.post("/api/checkout", json!({}));
    d.post(
        "/sim/credential",
        json!({"kind": "test-card", "id": "carol"}),
    );
    d.wait_session(Duration::from_secs(5), |s| s["phase"] == "vending");
    assert!(
        d.terminate().success(),
        "vendd must exit cleanly on SIGTERM"
    );
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    assert!(log.contains("all motors off"), "{log}");
    // Whatever was under way was answered before exit: no intent is left unanswered, so
    // the next start has nothing to recover.
    let j = export(&state);
    assert!(!j.iter().any(|r| r["type"] == "interrupted_vend"));
    let last_intent = j.iter().rposition(|r| r["type"] == "vend_intent").unwrap();
    assert!(
        j[last_intent..].iter().any(|r| r["type"] == "vend_result"),
        "last intent unanswered"
    );
    let (code, out, _) = vendctl(&state, &["journal", "verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn opening_the_door_ends_an_unpaid_session_and_stops_sales_until_it_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config_text(Faults::NONE, 100_000));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 5);
    assert_eq!(d.post("/api/cart/items", json!({"slot": "A1"})).0, 200);
    let (st, body) = d.post("/sim/door", json!({"open": true}));
    assert_eq!(st, 200, "{body}");
    let s = d.get("/api/session");
    assert_eq!(s["phase"], "idle");
    assert_eq!(s["prompt"]["id"], "out_of_service");
    let (st, body) = d.post("/api/cart/items", json!({"slot": "A1"}));
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("out_of_service"))
    );
    assert!(d.get("/api/catalog")["slots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["available"] == false));
    assert_eq!(d.post("/sim/door", json!({"open": false})).0, 200);
    assert_eq!(d.post("/api/cart/items", json!({"slot": "A1"})).0, 200);
    d.kill();
    let j = export(&state);
    let doors: Vec<bool> = j
        .iter()
        .filter(|r| r["type"] == "door")
        .map(|r| r["open"].as_bool().unwrap())
        .collect();
    assert_eq!(doors, [true, false]);
    assert!(j
        .iter()
        .any(|r| r["type"] == "session_closed" && r["reason"] == "out_of_service"));
}
