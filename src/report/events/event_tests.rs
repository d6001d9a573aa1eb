//! Tests of `report::event`: journals made by driving the real controller, the secrets
//! rule, stable event ids, warm-up after a restart, and the JSON Schema in
//! `docs/events.schema.json` (checked by a small validator below).

use super::*;
use crate::core::catalog::{Product, Slot};
use crate::core::io::{Command, Input, Phase};
use crate::core::record::VendOutcome;
use crate::core::{Controller, CoreConfig};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const T0: Millis = 1_700_000_000_000;
const SECRET: &str = "cred-SECRET-5f3a9c";

fn slot(name: &str) -> SlotId {
    SlotId::parse(name).unwrap()
}

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn catalog() -> Catalog {
    let mut products = BTreeMap::new();
    let mut slots = BTreeMap::new();
    for (name, product, price, stock) in [("A1", "cola", 120, 3), ("A2", "chips", 250, 4)] {
        products.insert(
            product.to_string(),
            Product {
                id: product.to_string(),
                name: product.to_uppercase(),
            },
        );
        slots.insert(
            slot(name),
            Slot {
                id: slot(name),
                product: product.to_string(),
                price,
                capacity: 6,
                stock,
                enabled: true,
                fault: None,
            },
        );
    }
    Catalog {
        currency: eur(),
        products,
        slots,
    }
}

fn reporter() -> Reporter {
    Reporter::new(ReporterConfig {
        machine_id: "k1".into(),
        site: "depot".into(),
        currency: eur(),
        low_stock: 2,
    })
}

/// Drives the controller and numbers its journal records from 1.
struct Rig {
    ctl: Controller,
    now: Millis,
    journal: Vec<(u64, Stamped)>,
}

impl Rig {
    fn new() -> Rig {
        let mut ctl = Controller::new(CoreConfig::default(), State::new(catalog(), 0));
        let out = ctl.start(T0, "test", &catalog(), "config:test");
        let mut rig = Rig {
            ctl,
            now: T0,
            journal: Vec::new(),
        };
        rig.absorb(out);
        rig
    }

    fn absorb(&mut self, out: Vec<Command>) {
        for c in out {
            if let Command::Journal(st) = c {
                let seq = self.journal.len() as u64 + 1;
                self.journal.push((seq, st));
            }
        }
    }

    fn send(&mut self, input: Input) {
        self.now += 1_000;
        let out = self.ctl.handle_input(self.now, input).expect("accepted");
        self.absorb(out);
    }

    fn vend(&mut self, outcome: VendOutcome) {
        let Phase::Vending { item, attempt } = self.ctl.phase() else {
            panic!("no motor running: {:?}", self.ctl.phase());
        };
        let sid = self.ctl.state().open.as_ref().unwrap().sid;
        self.send(Input::VendDone {
            sid,
            item,
            attempt,
            outcome,
            motor_ms: 900,
        });
    }
}

/// One offline card purchase of A1 and A2: A1 falls (leaving 2, the low-stock threshold),
/// A2 jams (no retry after a jam) and is not charged.
fn purchase() -> Vec<(u64, Stamped)> {
    let mut r = Rig::new();
    r.send(Input::AddItem {
        slot: slot("A1"),
        qty: 1,
    });
    r.send(Input::AddItem {
        slot: slot("A2"),
        qty: 1,
    });
    r.send(Input::Checkout);
    r.send(Input::Credential {
        method: PaymentMethod::Card,
        credential: SECRET.into(),
    });
    let sid = r.ctl.state().open.as_ref().unwrap().sid;
    r.vend(VendOutcome::Delivered { drops: 1 });
    r.vend(VendOutcome::Jammed);
    r.send(Input::Settled { sid });
    r.send(Input::Dismiss);
    assert_eq!(r.ctl.phase(), Phase::Idle);
    r.journal
}

/// The monitoring events (`events/…`) the journal causes; the payment reports to the
/// authoriser (`payments/…`) are checked by their own test.
fn feed_all(rep: &mut Reporter, journal: &[(u64, Stamped)]) -> Vec<Report> {
    journal
        .iter()
        .flat_map(|(seq, st)| rep.feed(*seq, st))
        .filter(|r| r.topic_suffix.starts_with("events/"))
        .collect()
}

fn kinds(reports: &[Report]) -> Vec<String> {
    reports
        .iter()
        .map(|r| r.payload["kind"].as_str().unwrap().to_string())
        .collect()
}

fn stamp(at: Millis, record: Record) -> Stamped {
    Stamped { at, record }
}

#[test]
fn a_purchase_journal_produces_exactly_the_expected_reports_in_order() {
    let journal = purchase();
    let reports = feed_all(&mut reporter(), &journal);
    assert_eq!(
        kinds(&reports),
        [
            "config",
            "offline_approval",
            "stock_low",
            "vend_failed",
            "fault",
            "alert",
            "refund",
            "sale"
        ]
    );
    for r in &reports {
        assert_eq!(
            r.topic_suffix,
            format!("events/{}", r.payload["kind"].as_str().unwrap())
        );
        assert!(!r.retain);
        assert_eq!(r.payload["schema"], json!(SCHEMA_VERSION));
        assert_eq!(r.payload["event_id"], json!(format!("k1:{}", r.seq)));
        assert_eq!(r.payload["seq"], json!(r.seq));
        assert_eq!(r.payload["machine"], json!("k1"));
        assert_eq!(r.payload["site"], json!("depot"));
        let (_, st) = &journal[r.seq as usize - 1];
        assert_eq!(r.payload["ts"], json!(st.at));
        assert_eq!(r.payload["ts_iso"], json!(rfc3339_utc_ms(st.at)));
    }
    let p = |i: usize| &reports[i].payload;
    assert_eq!(p(0)["change"], json!("planogram"));
    assert_eq!(p(0)["slots"].as_array().unwrap().len(), 2);
    assert_eq!(
        (&p(1)["amount"], &p(1)["method"], &p(1)["currency"]),
        (&json!(370), &json!("card"), &json!("EUR"))
    );
    assert_eq!(
        (
            &p(2)["slot"],
            &p(2)["product"],
            &p(2)["stock"],
            &p(2)["threshold"]
        ),
        (&json!("A1"), &json!("cola"), &json!(2), &json!(2))
    );
    assert_eq!((&p(3)["slot"], &p(3)["item"]), (&json!("A2"), &json!(1)));
    assert_eq!(
        (&p(4)["slot"], &p(4)["state"]),
        (&json!("A2"), &json!("raised"))
    );
    assert_eq!(p(5)["alert"], json!("slot_fault"));
    assert_eq!(
        (&p(6)["source"], &p(6)["amount"]),
        (&json!("void"), &json!(250))
    );
    let sale = p(7);
    assert_eq!(sale["reason"], json!("partly_delivered"));
    assert_eq!(
        sale["items"],
        json!([
            {"slot": "A1", "product": "cola", "price": 120, "delivered": true},
            {"slot": "A2", "product": "chips", "price": 250, "delivered": false}
        ])
    );
    assert_eq!(
        (&sale["captured"], &sale["released"], &sale["currency"]),
        (&json!(120), &json!(250), &json!("EUR"))
    );
    assert_eq!(
        (&sale["method"], &sale["offline"]),
        (&json!("card"), &json!(true))
    );
}

#[test]
fn every_payload_reads_back_as_the_typed_event() {
    for r in feed_all(&mut reporter(), &purchase()) {
        let e: Event = serde_json::from_value(r.payload.clone()).unwrap();
        assert_eq!(serde_json::to_value(&e).unwrap(), r.payload);
        assert_eq!(r.topic_suffix, format!("events/{}", e.body.kind()));
    }
}

#[test]
fn the_credential_hash_and_auth_reference_appear_in_no_payload() {
    let mut journal = purchase();
    let (sec, auth_ref) = journal
        .iter()
        .find_map(|(_, st)| match &st.record {
            Record::Authorised {
                credential,
                auth_ref,
                ..
            } => Some((credential.clone(), auth_ref.clone())),
            _ => None,
        })
        .expect("the purchase was authorised");
    assert_eq!(sec, SECRET);
    // A deny-list entry and a decline with the same credential hash are not leaked either.
    let n = journal.len() as u64;
    journal.push((
        n + 1,
        stamp(
            T0 + 90_000,
            Record::DenyList {
                credential: SECRET.into(),
                add: true,
            },
        ),
    ));
    journal.push((
        n + 2,
        stamp(
            T0 + 91_000,
            Record::Declined {
                sid: 9,
                method: PaymentMethod::Card,
                reason: DeclineReason::DenyListed,
            },
        ),
    ));
    let reports = feed_all(&mut reporter(), &journal);
    assert!(kinds(&reports).contains(&"declined".to_string()));
    for r in &reports {
        let text = serde_json::to_string(&r.payload).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(&auth_ref), "{text}");
        assert!(!text.contains("credential"), "{text}");
    }
}

#[test]
fn event_ids_are_unique_and_the_same_when_the_records_are_fed_again() {
    let journal = purchase();
    let first = feed_all(&mut reporter(), &journal);
    let again = feed_all(&mut reporter(), &journal);
    assert_eq!(first, again);
    let ids: BTreeSet<_> = first.iter().map(|r| r.event_id().unwrap()).collect();
    assert_eq!(ids.len(), first.len());
    // Every record yields at most one event, so the id names its record; a capture or
    // void also yields its payment report, whose id adds the kind.
    let mut rep = reporter();
    for (seq, st) in &journal {
        let out = rep.feed(*seq, st);
        assert!(
            out.iter()
                .filter(|r| r.topic_suffix.starts_with("events/"))
                .count()
                <= 1
        );
        let ids: BTreeSet<_> = out
            .iter()
            .map(|r| r.event_id().unwrap().to_string())
            .collect();
        assert_eq!(
            ids.len(),
            out.len(),
            "two reports of one record share an id"
        );
    }
}

#[test]
fn captures_and_voids_reach_the_authoriser_with_the_credential_only_when_offline() {
    let mut rep = reporter();
    let journal = purchase();
    let payments: Vec<Report> = journal
        .iter()
        .flat_map(|(seq, st)| rep.feed(*seq, st))
        .filter(|r| r.topic_suffix.starts_with("payments/"))
        .collect();
    let kinds: Vec<&str> = payments.iter().map(|r| r.topic_suffix.as_str()).collect();
    assert_eq!(kinds, ["payments/capture", "payments/void"]);
    for p in &payments {
        let (offline, key) = (
            p.payload["offline"].as_bool().unwrap(),
            p.payload["key"].as_str().unwrap(),
        );
        assert!(key.ends_with(":capture") || key.ends_with(":void"));
        assert_eq!(
            p.payload["credential"].is_string(),
            offline,
            "{}",
            p.payload
        );
    }
}

#[test]
fn a_restart_at_any_point_of_the_session_still_reports_the_same_sale() {
    let journal = purchase();
    let full = feed_all(&mut reporter(), &journal);
    let opened = journal
        .iter()
        .position(|(_, st)| matches!(st.record, Record::SessionOpened { .. }))
        .unwrap();
    for cursor in opened..journal.len() {
        let tail: Vec<Report> = full
            .iter()
            .filter(|r| r.seq > cursor as u64)
            .cloned()
            .collect();
        // (a) warm with every record up to the cursor.
        let mut rep = reporter();
        rep.rebuild_from(journal[..cursor].iter().cloned());
        assert_eq!(
            feed_all(&mut rep, &journal[cursor..]),
            tail,
            "cursor {cursor}"
        );
        // (b) seed from a state folded up to the cursor.
        let mut state = State::new(catalog(), 0);
        for (_, st) in &journal[..cursor] {
            state.apply(st);
        }
        let mut rep = reporter();
        rep.seed(&state);
        assert_eq!(
            feed_all(&mut rep, &journal[cursor..]),
            tail,
            "cursor {cursor}"
        );
        // (c) seed from a checkpoint before the session, warm the window after it.
        let mut state = State::new(catalog(), 0);
        for (_, st) in &journal[..opened] {
            state.apply(st);
        }
        let mut rep = reporter();
        rep.seed(&state);
        for (seq, st) in &journal[opened..cursor] {
            rep.warm(*seq, st);
        }
        assert_eq!(
            feed_all(&mut rep, &journal[cursor..]),
            tail,
            "cursor {cursor}"
        );
    }
}

#[test]
fn records_that_are_not_reported_produce_nothing() {
    let mut rep = reporter();
    let quiet = [
        Record::Boot {
            version: "1".into(),
        },
        Record::SessionOpened { sid: 1 },
        Record::VendIntent {
            sid: 1,
            item: 0,
            attempt: 1,
            slot: slot("A1"),
        },
        Record::Capture {
            sid: 1,
            amount: 0,
            key: "1:capture".into(),
            auth_ref: "r".into(),
        },
        Record::Void {
            sid: 1,
            amount: 0,
            key: "1:void".into(),
            auth_ref: "r".into(),
        },
        Record::SessionClosed {
            sid: 1,
            reason: CloseReason::Cancelled,
            captured: 0,
        },
        Record::StockSet {
            slot: slot("A1"),
            count: 5,
            reason: "restock".into(),
        },
        Record::CountersReset,
    ];
    for (i, r) in quiet.into_iter().enumerate() {
        let events: Vec<Report> = rep
            .feed(i as u64 + 1, &stamp(T0, r))
            .into_iter()
            .filter(|r| r.topic_suffix.starts_with("events/"))
            .collect();
        assert!(events.is_empty(), "{events:?}");
    }
}

#[test]
fn memory_stays_bounded_over_many_sessions() {
    let mut rep = reporter();
    rep.warm(
        1,
        &stamp(
            T0,
            Record::Planogram {
                catalog: catalog(),
                source: "x".into(),
            },
        ),
    );
    let mut seq = 1;
    for sid in 1..=5_000u64 {
        for record in [
            Record::SessionOpened { sid },
            Record::CheckedOut {
                sid,
                items: vec![LineItem {
                    slot: slot("A1"),
                    price: 120,
                }],
                total: 120,
            },
        ] {
            seq += 1;
            rep.feed(seq, &stamp(T0, record));
        }
        // Every other session is abandoned without a close record.
        if sid % 2 == 0 {
            seq += 1;
            rep.feed(
                seq,
                &stamp(
                    T0,
                    Record::SessionClosed {
                        sid,
                        reason: CloseReason::Cancelled,
                        captured: 0,
                    },
                ),
            );
        }
        assert!(rep.context_size().1 <= 1);
    }
    assert_eq!(rep.context_size().0, 2);
}

#[test]
fn timestamps_are_rfc3339_utc_with_milliseconds() {
    assert_eq!(rfc3339_utc_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_utc_ms(T0 + 7), "2023-11-14T22:13:20.007Z");
    assert_eq!(rfc3339_utc_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(
        rfc3339_utc_ms(4_107_542_399_999),
        "2100-02-28T23:59:59.999Z"
    );
    assert_eq!(
        rfc3339_utc_ms(1_709_251_199_000),
        "2024-02-29T23:59:59.000Z"
    );
}

// ---------------------------------------------------------------------------------------
// The JSON Schema
// ---------------------------------------------------------------------------------------

fn schema() -> Value {
    serde_json::from_str(include_str!("../../../docs/events.schema.json"))
        .expect("the schema is JSON")
}

/// A validator for the subset of JSON Schema 2020-12 the schema file uses. An unknown
/// keyword is an error, so the file cannot drift into keywords this test ignores.
/// Returns the instance properties evaluated (for `unevaluatedProperties`).
fn check(root: &Value, s: &Value, v: &Value, at: &str) -> Result<BTreeSet<String>, String> {
    let s = s
        .as_object()
        .ok_or(format!("{at}: schema is not an object"))?;
    let mut seen = BTreeSet::new();
    for (k, arg) in s {
        match k.as_str() {
            "$schema"
            | "$id"
            | "title"
            | "description"
            | "format"
            | "$defs"
            | "unevaluatedProperties" => {}
            "$ref" => {
                let name = arg.as_str().and_then(|r| r.strip_prefix("#/$defs/"));
                let target = name
                    .and_then(|n| root["$defs"].get(n))
                    .ok_or(format!("{at}: bad $ref {arg}"))?;
                seen.extend(check(root, target, v, at)?);
            }
            "type" => {
                let types: Vec<&str> = match arg {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => return Err(format!("{at}: bad type {arg}")),
                };
                let ok = types.iter().any(|t| match *t {
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    "string" => v.is_string(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "boolean" => v.is_boolean(),
                    "null" => v.is_null(),
                    _ => false,
                });
                if !ok {
                    return Err(format!("{at}: {v} is not of type {arg}"));
                }
            }
            "const" if v != arg => return Err(format!("{at}: {v} is not {arg}")),
            "const" => {}
            "enum" => {
                if !arg.as_array().is_some_and(|a| a.contains(v)) {
                    return Err(format!("{at}: {v} is not one of {arg}"));
                }
            }
            "minimum" => {
                if v.as_i64().zip(arg.as_i64()).is_some_and(|(x, m)| x < m) {
                    return Err(format!("{at}: {v} is below {arg}"));
                }
            }
            "required" => {
                for f in arg.as_array().into_iter().flatten() {
                    let f = f.as_str().unwrap_or_default();
                    if v.is_object() && v.get(f).is_none() {
                        return Err(format!("{at}: missing required `{f}`"));
                    }
                }
            }
            "properties" => {
                let props = arg.as_object().ok_or(format!("{at}: bad properties"))?;
                if let Some(obj) = v.as_object() {
                    for (name, sub) in props {
                        if let Some(x) = obj.get(name) {
                            check(root, sub, x, &format!("{at}.{name}"))?;
                            seen.insert(name.clone());
                        }
                    }
                }
            }
            "items" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    check(root, arg, x, &format!("{at}[{i}]"))?;
                }
            }
            "allOf" => {
                for sub in arg.as_array().into_iter().flatten() {
                    seen.extend(check(root, sub, v, at)?);
                }
            }
            "oneOf" => {
                let results: Vec<_> = arg
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|sub| check(root, sub, v, at))
                    .collect();
                let passed: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
                if passed.len() != 1 {
                    let why: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
                    return Err(format!("{at}: {} of oneOf matched ({why:?})", passed.len()));
                }
                seen.extend(passed[0].iter().cloned());
            }
            other => return Err(format!("{at}: keyword `{other}` is not supported here")),
        }
    }
    if s.get("unevaluatedProperties") == Some(&Value::Bool(false)) {
        for key in v.as_object().into_iter().flat_map(|o| o.keys()) {
            if !seen.contains(key) {
                return Err(format!("{at}: property `{key}` is not in the schema"));
            }
        }
    }
    Ok(seen)
}

fn validate(v: &Value) -> Result<(), String> {
    let root = schema();
    check(&root, &root, v, "$").map(|_| ())
}

/// A journal with every kind of event: the purchase plus hand-made operator and
/// payment records.
fn every_kind() -> Vec<Report> {
    let mut journal = purchase();
    let extra = [
        Record::Door { open: true },
        Record::Door { open: false },
        Record::PriceSet {
            slot: slot("A1"),
            price: 130,
        },
        Record::PriceSet {
            slot: slot("Z9"),
            price: 10,
        },
        Record::SlotEnabled {
            slot: slot("A2"),
            enabled: false,
        },
        Record::FaultCleared { slot: slot("A2") },
        Record::StrayAuthVoided {
            sid: 7,
            amount: 500,
            auth_ref: "ar-9".into(),
            key: "7:stray:ar-9".into(),
        },
        Record::Declined {
            sid: 8,
            method: PaymentMethod::PayCode,
            reason: DeclineReason::Authoriser {
                reason: "no funds".into(),
            },
        },
        Record::Alert {
            kind: AlertKind::RecoveredSession,
            sid: Some(8),
            slot: None,
            message: "session 8 was closed after a restart".into(),
        },
        Record::SessionClosed {
            sid: 12,
            reason: CloseReason::Recovered,
            captured: 90,
        },
    ];
    for r in extra {
        let n = journal.len() as u64 + 1;
        journal.push((n, stamp(T0 + n * 1000, r)));
    }
    feed_all(&mut reporter(), &journal)
}

#[test]
fn every_event_kind_validates_against_the_json_schema() {
    let reports = every_kind();
    let all: BTreeSet<_> = kinds(&reports).into_iter().collect();
    let expected: BTreeSet<_> = [
        "sale",
        "vend_failed",
        "refund",
        "door",
        "fault",
        "stock_low",
        "alert",
        "offline_approval",
        "declined",
        "config",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(all, expected);
    for r in &reports {
        validate(&r.payload).unwrap_or_else(|e| panic!("{e}\n{:#}", r.payload));
    }
}

#[test]
fn the_schema_check_rejects_broken_payloads() {
    let sale = every_kind()
        .into_iter()
        .find(|r| r.payload["kind"] == "sale")
        .unwrap()
        .payload;
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut p = sale.clone();
        f(&mut p);
        p
    };
    let cases = [
        broken(&|p| {
            p.as_object_mut().unwrap().remove("event_id");
        }),
        broken(&|p| p["captured"] = json!("120")),
        broken(&|p| p["credential"] = json!(SECRET)),
        broken(&|p| p["kind"] = json!("sales")),
        broken(&|p| p["method"] = json!("cash")),
        broken(&|p| p["items"][0]["pan"] = json!("4111")),
        broken(&|p| p["schema"] = json!(2)),
    ];
    assert!(validate(&sale).is_ok());
    for p in cases {
        assert!(validate(&p).is_err(), "accepted {p:#}");
    }
}
