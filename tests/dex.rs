//! The DEX/EVA-DTS audit file of a scripted day through a real `vendd simulate`: sales by
//! card, a jammed spiral (not charged), a door opening; then `vendctl dex` from the journal.
//! The file passes our checks (CRC-16/ARC over ST..G85, SE count) and an independent
//! checker (`tests/data/dex_check.py`, its own CRC and parser); its totals equal the
//! journal's sales (`vendctl sales`) and the receipts. The Prometheus metrics of the same day
//! match it too.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

fn buy(d: &Daemon, slot: &str, card: &str) -> Value {
    assert_eq!(d.post("/api/cart/items", json!({"slot": slot})).0, 200);
    assert_eq!(d.post("/api/checkout", json!({})).0, 200);
    let (st, b) = d.post("/sim/credential", json!({"kind": "card", "id": card}));
    assert_eq!(st, 200, "{b}");
    let s = d.wait_session(Duration::from_secs(20), |s| s["phase"] == "receipt");
    assert_eq!(d.post("/api/dismiss", json!({})).0, 200);
    s["receipt"].clone()
}

#[test]
fn the_dex_file_of_a_scripted_day_verifies_and_adds_up_to_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config_text(Faults::NONE, 100_000));
    let state = tmp.path().join("state");
    let d = Daemon::start(&cfg, &state, 17);
    let mut charged = 0i64;
    let mut items = 0u64;
    for (slot, card) in [("A1", "ann"), ("B2", "bob"), ("A1", "cy"), ("C3", "di")] {
        let r = buy(&d, slot, card);
        charged += r["charged"].as_i64().unwrap();
        items += r["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["delivered"] == true)
            .count() as u64;
    }
    // A jam: the item is not charged and not counted as a paid vend.
    assert_eq!(
        d.post(
            "/sim/fault",
            json!({"slot": "B4", "fault": "jam", "count": 3})
        )
        .0,
        200
    );
    let r = buy(&d, "B4", "eve");
    assert_eq!(r["charged"], 0, "{r}");
    // The service door opens and closes.
    assert_eq!(d.post("/sim/door", json!({"open": true})).0, 200);
    assert_eq!(d.post("/sim/door", json!({"open": false})).0, 200);

    // The service page's DEX link: the same file from the running daemon.
    let live = ureq::get(&d.url("/api/service/dex"))
        .call()
        .expect("dex")
        .into_string()
        .expect("text");
    let lf = vendd::dex::parse(&live).expect("parses");
    lf.verify().expect("verifies");
    let lva1 = lf.va1().unwrap().expect("VA1");
    assert_eq!((lva1.count_init, lva1.value_init), (items, charged));

    // The Prometheus metrics of the same day.
    let metrics = ureq::get(&d.url("/metrics"))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
            .parse()
            .expect("number")
    };
    assert_eq!(value("vendd_sales_total"), 4.0);
    assert_eq!(
        value("vendd_vends_total{outcome=\"delivered\"}"),
        items as f64
    );
    assert_eq!(value("vendd_vends_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(
        value("vendd_revenue_total{currency=\"EUR\"}"),
        charged as f64 / 100.0
    );
    assert_eq!(
        value("vendd_vends_by_method_total{method=\"card\"}"),
        items as f64
    );
    assert_eq!(value("vendd_door_openings_total"), 1.0);
    assert_eq!(value("vendd_slot_faults"), 1.0, "B4 jammed");
    assert_eq!(value("vendd_stock{slot=\"A1\"}"), 6.0, "two A1 sold of 8");
    assert!(value("vendd_journal_commit_seconds_count") >= 10.0);
    assert_eq!(
        value("vendd_journal_commit_seconds_bucket{le=\"+Inf\"}"),
        value("vendd_journal_commit_seconds_count")
    );
    d.terminate();

    let out = tmp.path().join("audit.dex");
    let (code, _, err) = vendctl(
        &state,
        &[
            "dex",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("DXS*") && text.trim_end().ends_with("DXE*1*1"));
    assert!(text.contains("\r\n"), "CRLF line ends");

    // Our checks.
    let f = vendd::dex::parse(&text).expect("parses");
    f.verify().expect("CRC and segment count");
    let va1 = f.va1().unwrap().expect("VA1");
    assert_eq!((va1.count_init, va1.value_init), (items, charged));
    assert_eq!((va1.count_reset, va1.value_reset), (items, charged));
    // The journal's own sales report: per slot, the same counts and values as PA2.
    let (code, sales, err) = vendctl(&state, &["sales", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let sales: Value = serde_json::from_str(&sales).unwrap();
    let mut by_slot: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for (slot, v) in sales["by_slot"].as_object().unwrap() {
        by_slot.insert(
            slot.clone(),
            (v[0].as_u64().unwrap(), v[1].as_i64().unwrap()),
        );
    }
    for s in f.selections().unwrap() {
        let want = by_slot.get(&s.id).copied().unwrap_or((0, 0));
        assert_eq!(
            (s.sales.count_init, s.sales.value_init),
            want,
            "PA2 of {}",
            s.id
        );
    }
    assert_eq!(by_slot.values().map(|v| v.1).sum::<i64>(), charged);

    // The operator's reports of the same day.
    let report = |which: &str| -> Value {
        let (code, out, err) = vendctl(
            &state,
            &[
                "report",
                which,
                "--format",
                "json",
                "--config",
                cfg.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).expect("json")
    };
    let sales = report("sales");
    assert_eq!(sales["total"], json!({"items": items, "value": charged}));
    assert_eq!(
        sales["by_method"]["card"],
        json!({"items": items, "value": charged})
    );
    assert_eq!(sales["by_slot"]["A1"], json!({"items": 2, "value": 320}));
    assert_eq!(
        sales["by_product"]["cola"],
        json!({"items": 2, "value": 320})
    );
    assert_eq!(
        sales["by_product"]["water"],
        json!({"items": 1, "value": 220})
    );
    assert_eq!(
        sales["by_product"]["chips"],
        json!({"items": 1, "value": 280})
    );
    assert!(
        sales["by_slot"].get("B4").is_none(),
        "the jammed item was not sold"
    );
    let days = sales["by_day"].as_object().unwrap();
    assert_eq!(days.len(), 1);
    let refill = report("refill");
    let bring = |slot: &str| {
        refill["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["slot"] == slot)
            .map(|l| (l["bring"].as_u64().unwrap(), l["fault"].clone()))
    };
    assert_eq!(bring("A1"), Some((2, Value::Null)));
    assert_eq!(bring("B2").map(|b| b.0), Some(1));
    assert_eq!(bring("A2"), None, "full and fine: nothing to bring");
    assert!(
        bring("B4").is_some_and(|b| b.1.is_string()),
        "the jammed slot is listed"
    );
    assert_eq!(refill["by_product"]["cola"], 2);
    let faults = report("faults");
    assert!(faults
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["slot"] == "B4" && f["event"] == "faulted"));
    assert_eq!(report("refunds"), json!([]));
    let (code, csv, _) = vendctl(
        &state,
        &["report", "sales", "--config", cfg.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert!(csv.starts_with("by,key,items,value_minor\n"), "{csv}");
    assert!(
        csv.contains(&format!("total,,{items},{charged}\n")),
        "{csv}"
    );

    // The independent checker.
    match Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/dex_check.py"
        ))
        .arg(&out)
        .output()
    {
        Err(_) => eprintln!("SKIP the independent DEX check: python3 is not installed"),
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["crc_ok"], true);
            assert_eq!(v["se_ok"], true);
            assert_eq!(v["pa2_sum"], json!([items, charged, items, charged]), "{v}");
            // Door openings (EGS) as the independent checker read them.
            assert_eq!(v["events"]["EGS"][1], json!(1), "{v}");
        }
    }
}
