//! DEX export and reader: the real sample, known CRCs, round trips of files built from
//! counters that journal records produced, damage detection, and an independent checker.

use super::export::date_time;
use super::*;
use crate::core::record::{
    CloseReason, DeclineReason, LineItem, PaymentMethod, Record, Stamped, VendOutcome,
};
use crate::core::state::State;
use crate::core::{Catalog, Currency, Product, Slot, SlotId};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn slot(name: &str) -> SlotId {
    SlotId::parse(name).expect("test slot name")
}

fn catalog() -> Catalog {
    let mut products = BTreeMap::new();
    for (id, name) in [("COLA", "Cola 0.33"), ("CHIPS", "Chips")] {
        products.insert(
            id.to_string(),
            Product {
                id: id.to_string(),
                name: name.to_string(),
            },
        );
    }
    let mut slots = BTreeMap::new();
    for (name, product, price) in [
        ("A1", "COLA", 150),
        ("A2", "CHIPS", 220),
        ("B1", "COLA", 90),
    ] {
        slots.insert(
            slot(name),
            Slot {
                id: slot(name),
                product: product.to_string(),
                price,
                capacity: 10,
                stock: 10,
                enabled: true,
                fault: None,
            },
        );
    }
    Catalog {
        currency: Currency::parse("EUR").expect("EUR"),
        products,
        slots,
    }
}

/// The records of one session: checkout, authorisation, one vend per item (delivered or
/// jammed), capture of what was delivered, void of the rest, close.
fn session(sid: u64, at: u64, method: PaymentMethod, items: &[(&str, i64, bool)]) -> Vec<Stamped> {
    let lines: Vec<LineItem> = items
        .iter()
        .map(|(s, price, _)| LineItem {
            slot: slot(s),
            price: *price,
        })
        .collect();
    let total: i64 = items.iter().map(|i| i.1).sum();
    let delivered: i64 = items.iter().filter(|i| i.2).map(|i| i.1).sum();
    let auth_ref = format!("auth-{sid}");
    let mut r = vec![
        Record::SessionOpened { sid },
        Record::CheckedOut {
            sid,
            items: lines,
            total,
        },
        Record::Authorised {
            sid,
            amount: total,
            method,
            credential: format!("cred-{sid}"),
            offline: false,
            auth_ref: auth_ref.clone(),
        },
    ];
    for (i, (s, _, ok)) in items.iter().enumerate() {
        let item = i as u32;
        r.push(Record::VendIntent {
            sid,
            item,
            attempt: 1,
            slot: slot(s),
        });
        r.push(Record::VendResult {
            sid,
            item,
            attempt: 1,
            slot: slot(s),
            outcome: if *ok {
                VendOutcome::Delivered { drops: 1 }
            } else {
                VendOutcome::Jammed
            },
            motor_ms: 900,
        });
        if !ok {
            r.push(Record::ItemFailed {
                sid,
                item,
                slot: slot(s),
                reason: "jammed".into(),
            });
        }
    }
    r.push(Record::Capture {
        sid,
        amount: delivered,
        key: format!("cap-{sid}"),
        auth_ref: auth_ref.clone(),
    });
    if delivered < total {
        r.push(Record::Void {
            sid,
            amount: total - delivered,
            key: format!("void-{sid}"),
            auth_ref,
        });
    }
    r.push(Record::SessionClosed {
        sid,
        reason: if delivered == total {
            CloseReason::Completed
        } else {
            CloseReason::PartlyDelivered
        },
        captured: delivered,
    });
    r.into_iter()
        .enumerate()
        .map(|(i, record)| Stamped {
            at: at + i as u64 * 1000,
            record,
        })
        .collect()
}

/// A journal: three sales, a reset, a failed item, a hot-listed card, two door openings
/// (the door is open at the end). Expected totals are worked out by hand in the tests.
fn journal() -> Vec<Stamped> {
    const T0: u64 = 1_713_193_461_000; // 2024-04-15 15:04:21 UTC
    let mut j = Vec::new();
    j.extend(session(1, T0, PaymentMethod::Card, &[("A1", 150, true)]));
    j.push(Stamped {
        at: T0 + 60_000,
        record: Record::Door { open: true },
    });
    j.push(Stamped {
        at: T0 + 120_000,
        record: Record::Door { open: false },
    });
    j.extend(session(
        2,
        T0 + 200_000,
        PaymentMethod::PayCode,
        &[("A1", 150, true), ("A2", 220, true)],
    ));
    j.push(Stamped {
        at: T0 + 300_000,
        record: Record::CountersReset,
    });
    j.extend(session(
        3,
        T0 + 400_000,
        PaymentMethod::Face,
        &[("A2", 220, true), ("A1", 150, false)],
    ));
    j.push(Stamped {
        at: T0 + 500_000,
        record: Record::Declined {
            sid: 4,
            method: PaymentMethod::Card,
            reason: DeclineReason::DenyListed,
        },
    });
    j.push(Stamped {
        at: T0 + 600_000,
        record: Record::Door { open: true },
    });
    j
}

fn state_after(journal: &[Stamped]) -> State {
    let mut state = State::new(catalog(), 0);
    for st in journal {
        state.apply(st);
    }
    state
}

fn identity() -> DexIdentity {
    DexIdentity {
        comm_id: "VND0000001".into(),
        serial: "SN-0042".into(),
        model: "KIOSK-6x10".into(),
        location: "Hall 2, by the lifts".into(),
        asset: "A-17".into(),
        software_version: "0.1.0".into(),
        utc_offset_s: 0,
    }
}

fn generated() -> (State, String) {
    let j = journal();
    let state = state_after(&j);
    let events = DexEvents::from_journal(&j, 16);
    let text = export(
        &identity(),
        &state.catalog,
        &state.counters,
        &events,
        1_713_193_461_000 + 700_000,
    );
    (state, text)
}

fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/specs/dex-sample-cvendbox.txt")
}

fn read_sample() -> Option<String> {
    let path = sample_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => {
            eprintln!(
                "SKIPPED: the real DEX sample {} is not readable ({e})",
                path.display()
            );
            None
        }
    }
}

fn totals(count_init: u64, value_init: i64, count_reset: u64, value_reset: i64) -> DexTotals {
    DexTotals {
        count_init,
        value_init,
        count_reset,
        value_reset,
    }
}

#[test]
fn crc16_arc_matches_the_catalogue_check_values() {
    assert_eq!(crc16_arc(b"123456789"), 0xBB3D);
    assert_eq!(crc16_arc(b""), 0);
    assert_eq!(crc16_arc(b"A"), 0x30C0);
}

#[test]
fn the_real_sample_parses_and_its_g85_and_se_verify() {
    let Some(text) = read_sample() else { return };
    let dex = parse(&text).expect("sample parses");
    dex.verify_crc().expect("sample G85 (F66D) verifies");
    dex.verify_segment_count()
        .expect("sample SE (144) verifies");
    assert_eq!(dex.find("G85").and_then(|s| s.element(1)), Some("F66D"));
    // VA1*143500*423*142450*421: value, count since init; value, count since reset.
    assert_eq!(
        dex.va1().expect("VA1"),
        Some(totals(423, 143_500, 421, 142_450))
    );
    assert_eq!(
        dex.da2().expect("DA2"),
        Some(totals(41, 15_250, 41, 15_250))
    );
    // The per-selection PA2 counters add up to VA1 in the real file.
    assert_eq!(
        dex.pa2_total().expect("PA2"),
        totals(423, 143_500, 421, 142_450)
    );
    let sels = dex.selections().expect("selections");
    assert_eq!(sels.len(), 36);
    assert_eq!(sels[0].id, "10");
    assert_eq!(sels[0].price, Some(750));
    let id4 = dex.id4().expect("ID4").expect("has ID4");
    assert_eq!((id4.decimals, id4.numeric.as_str()), (2, "1978"));
}

#[test]
fn the_real_sample_verifies_with_crlf_line_endings_too() {
    let Some(text) = read_sample() else { return };
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let dex = parse(&crlf).expect("parses");
    dex.verify().expect("verifies with CRLF");
}

#[test]
fn a_generated_file_round_trips_and_its_totals_are_the_journals() {
    let (state, text) = generated();
    let c = &state.counters;
    // Worked out by hand from journal(): lifetime A1 150 + A1 150 + A2 220 + A2 220,
    // since the reset only session 3's A2 (its A1 jammed and was not charged).
    assert_eq!((c.lifetime.paid.count, c.lifetime.paid.value), (4, 740));
    assert_eq!(
        (c.since_reset.paid.count, c.since_reset.paid.value),
        (1, 220)
    );

    let dex = parse(&text).expect("generated file parses");
    dex.verify_crc().expect("CRC verifies");
    dex.verify_segment_count().expect("SE verifies");

    let va1 = dex.va1().expect("VA1").expect("has VA1");
    assert_eq!(
        va1,
        DexTotals::from_tallies(c.lifetime.paid, c.since_reset.paid)
    );
    assert_eq!(va1, totals(4, 740, 1, 220));
    assert_eq!(dex.da2().expect("DA2"), Some(va1));
    assert_eq!(dex.pa2_total().expect("PA2"), va1);

    let sels = dex.selections().expect("selections");
    let ids: Vec<&str> = sels.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["A1", "A2", "B1"]);
    for sel in &sels {
        let s = slot(&sel.id);
        let want = DexTotals::from_tallies(
            c.lifetime.by_slot.get(&s).copied().unwrap_or_default(),
            c.since_reset.by_slot.get(&s).copied().unwrap_or_default(),
        );
        assert_eq!(sel.sales, want, "selection {}", sel.id);
        assert_eq!(sel.price, Some(state.catalog.slots[&s].price));
        assert_eq!(sel.product, state.catalog.slots[&s].product);
    }
    assert_eq!(sels[0].sales, totals(2, 300, 0, 0));
    assert_eq!(sels[1].sales, totals(2, 440, 1, 220));
    assert_eq!(sels[2].sales, totals(0, 0, 0, 0));

    let id4 = dex.id4().expect("ID4").expect("has ID4");
    assert_eq!(
        (id4.decimals, id4.numeric.as_str(), id4.alpha.as_str()),
        (2, "1978", "EUR")
    );

    let events: BTreeMap<String, (u64, u64, bool)> = dex
        .events()
        .expect("EA2")
        .into_iter()
        .map(|e| (e.code, (e.since_reset, e.lifetime, e.active)))
        .collect();
    assert_eq!(
        events["EGS"],
        (1, 2, true),
        "door: 2 openings, 1 since reset, open now"
    );
    assert_eq!(events["ELA"], (1, 1, false));
    assert_eq!(events["EKJ"], (1, 1, false));
    assert!(!events.contains_key("EOA"), "no temperature sensor, no EOA");
    assert_eq!(events["EGS"].1, c.lifetime.door_openings);
    assert_eq!(events["ELA"].1, c.lifetime.failed_vends);
    assert_eq!(events["EKJ"].1, c.lifetime.denied_credentials);

    let ea1: Vec<&str> = dex
        .segments()
        .iter()
        .filter(|s| s.tag == "EA1")
        .filter_map(|s| s.element(1))
        .collect();
    assert_eq!(ea1, ["EGS", "ELA", "EKJ", "EGS"]);
}

#[test]
fn a_generated_file_has_crlf_endings_and_the_dex_envelope() {
    let (_, text) = generated();
    assert!(text.ends_with("\r\n"));
    assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "DXS*VND0000001*VA*V0/6*1");
    assert_eq!(lines[1], "ST*001*0001");
    assert_eq!(
        lines[2],
        "ID1*SN-0042*KIOSK-6x10**Hall 2, by the lifts**A-17"
    );
    assert_eq!(lines[3], "ID4*2*1978*EUR");
    assert_eq!(lines[4], "ID5*20240415*151601");
    assert_eq!(lines[5], "VA1*740*4*220*1");
    assert!(lines.contains(&"MA5*PAYMENT*card*150*1*0*0"));
    assert!(lines.contains(&"MA5*PAYMENT*pay-code*370*2*0*0"));
    assert!(lines.contains(&"MA5*PAYMENT*face*220*1*220*1"));
    assert!(lines.contains(&"PA1*A2*220*CHIPS"));
    assert!(lines.contains(&"EA2*EGS*1*2**1"));
    assert_eq!(lines[lines.len() - 1], "DXE*1*1");
    assert!(lines[lines.len() - 2].starts_with("SE*"));
    assert!(lines[lines.len() - 3].starts_with("G85*"));
}

#[test]
fn a_corrupted_byte_fails_the_crc_with_a_clear_error() {
    let (_, text) = generated();
    let damaged = text.replacen("PA2*2*440", "PA2*2*450", 1);
    assert_ne!(damaged, text);
    let dex = parse(&damaged).expect("still parses");
    let err = dex.verify_crc().expect_err("damage must be caught");
    let g85_line = dex.find("G85").map(|s| s.line).expect("G85");
    match &err {
        DexError::CrcMismatch { line, from, to, .. } => {
            assert_eq!(*line, g85_line);
            assert_eq!((*from, *to), (2, g85_line - 1));
        }
        other => panic!("expected a CRC mismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("G85") && msg.contains("altered"), "{msg}");
    // The segment count is untouched by the damage.
    dex.verify_segment_count().expect("SE still right");
}

#[test]
fn a_wrong_segment_count_is_reported_with_both_numbers() {
    let (_, text) = generated();
    let dex = parse(&text).expect("parses");
    let se = dex.find("SE").expect("SE");
    let right = se.element(1).expect("SE01").to_string();
    let wrong = text.replace(&format!("SE*{right}*"), "SE*3*");
    let err = parse(&wrong)
        .expect("parses")
        .verify_segment_count()
        .expect_err("count is wrong");
    assert!(
        matches!(&err, DexError::SegmentCount { stated, counted, .. }
            if stated == "3" && counted.to_string() == right),
        "{err:?}"
    );
    // SE is covered by neither the CRC nor itself: only the count check sees this.
    parse(&wrong)
        .expect("parses")
        .verify_crc()
        .expect("CRC unaffected");
}

#[test]
fn the_independent_python_checker_agrees() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dex_check.py");
    let (state, text) = generated();
    let path = std::env::temp_dir().join(format!("vendd-dex-{}.txt", std::process::id()));
    std::fs::write(&path, &text).expect("write temp DEX file");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = match run {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: python3 is not available ({e}); independent check not run");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dex_check.py failed ({}): {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("dex_check.py: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("checker prints JSON");
    assert_eq!(v["crc_ok"], true);
    assert_eq!(v["se_ok"], true);

    let ours = parse(&text).expect("parses");
    let g85 = ours.find("G85").and_then(|s| s.element(1)).expect("G85");
    assert_eq!(v["crc_computed"], g85);
    let va1 = ours.va1().expect("VA1").expect("VA1");
    let c = &state.counters;
    // VA1 and DA2 as the checker read them: value, count, value, count.
    let vc = serde_json::json!([
        c.lifetime.paid.value,
        c.lifetime.paid.count,
        c.since_reset.paid.value,
        c.since_reset.paid.count
    ]);
    assert_eq!(v["va1"], vc);
    assert_eq!(v["da2"], vc);
    assert_eq!(
        v["pa2_sum"],
        serde_json::json!([
            va1.count_init,
            va1.value_init,
            va1.count_reset,
            va1.value_reset
        ])
    );
    for sel in ours.selections().expect("selections") {
        let t = sel.sales;
        assert_eq!(
            v["selections"][&sel.id],
            serde_json::json!([t.count_init, t.value_init, t.count_reset, t.value_reset]),
            "selection {}",
            sel.id
        );
    }
    assert_eq!(v["events"]["EGS"], serde_json::json!([1, 2]));
}

#[test]
fn a_slot_dropped_from_the_planogram_keeps_its_sales_in_the_file() {
    let mut j = journal();
    let mut smaller = catalog();
    smaller.slots.remove(&slot("A2"));
    j.push(Stamped {
        at: 1_713_194_000_000,
        record: Record::Planogram {
            catalog: smaller,
            source: "test".into(),
        },
    });
    let state = state_after(&j);
    assert!(!state.catalog.slots.contains_key(&slot("A2")));
    let text = export(
        &identity(),
        &state.catalog,
        &state.counters,
        &DexEvents::default(),
        0,
    );
    let dex = parse(&text).expect("parses");
    dex.verify().expect("verifies");
    let a2 = dex
        .selections()
        .expect("selections")
        .into_iter()
        .find(|s| s.id == "A2")
        .expect("A2 still reported");
    assert_eq!((a2.price, a2.product.as_str()), (None, ""));
    assert_eq!(a2.sales, totals(2, 440, 1, 220));
    assert_eq!(
        dex.pa2_total().expect("PA2"),
        dex.va1().expect("VA1").expect("VA1")
    );
}

#[test]
fn temperature_alarms_from_the_caller_become_eoa() {
    let state = state_after(&journal());
    let events = DexEvents {
        temperature: Some(EventCount {
            since_reset: 2,
            lifetime: 5,
        }),
        temperature_alarm_now: true,
        recent: vec![DexEvent {
            kind: DexEventKind::Temperature,
            at: 951_868_799_000,
        }],
        ..DexEvents::default()
    };
    let text = export(&identity(), &state.catalog, &state.counters, &events, 0);
    assert!(text.contains("\r\nEA1*EOA*20000229*235959\r\n"), "{text}");
    assert!(text.contains("\r\nEA2*EOA*2*5**1\r\n"), "{text}");
    parse(&text).expect("parses").verify().expect("verifies");
}

#[test]
fn element_separators_and_non_ascii_in_identity_cannot_break_the_file() {
    let state = state_after(&journal());
    let mut id = identity();
    id.location = "Café*Nord\r\nST*evil".into();
    let text = export(
        &id,
        &state.catalog,
        &state.counters,
        &DexEvents::default(),
        0,
    );
    let dex = parse(&text).expect("parses");
    dex.verify().expect("verifies");
    let id1 = dex.find("ID1").expect("ID1");
    assert_eq!(id1.element(4), Some("Caf??Nord??ST?evil"));
    assert_eq!(id1.elements.len(), 6);
}

#[test]
fn journal_events_follow_the_counters_rules() {
    let j = journal();
    let ev = DexEvents::from_journal(&j, 2);
    assert!(ev.door_open_now);
    assert_eq!(ev.temperature, None);
    let kinds: Vec<DexEventKind> = ev.recent.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [DexEventKind::HotListedCard, DexEventKind::DoorOpen]);
    // A repeated "open" is not a second opening, as in State::apply.
    let twice = [
        Stamped {
            at: 1,
            record: Record::Door { open: true },
        },
        Stamped {
            at: 2,
            record: Record::Door { open: true },
        },
    ];
    assert_eq!(DexEvents::from_journal(&twice, 10).recent.len(), 1);
    assert_eq!(state_after(&twice).counters.lifetime.door_openings, 1);
}

#[test]
fn dates_are_civil_dates_in_the_machines_offset() {
    assert_eq!(
        date_time(1_713_193_461_000, 0),
        ("20240415".into(), "150421".into())
    );
    assert_eq!(
        date_time(951_868_799_000, 0),
        ("20000229".into(), "235959".into())
    );
    assert_eq!(
        date_time(951_868_799_000, 3600),
        ("20000301".into(), "005959".into())
    );
    assert_eq!(date_time(0, 0), ("19700101".into(), "000000".into()));
}

#[test]
fn malformed_files_are_refused_with_the_line() {
    assert_eq!(parse(""), Err(DexError::Empty));
    assert_eq!(parse("\r\n\n"), Err(DexError::Empty));
    let err = parse("DXS*X*VA*V0/6*1\nST*001*0001\n*oops\n").expect_err("bad line");
    assert!(
        matches!(err, DexError::BadSegment { line: 3, .. }),
        "{err:?}"
    );
    let dex = parse("ST*001*0001\nVA1*12x*1*0*0\nG85*0000\nSE*4*0001\n").expect("parses");
    let err = dex.va1().expect_err("12x is no number");
    assert_eq!(
        err,
        DexError::BadNumber {
            line: 2,
            segment: "VA1".into(),
            element: 1,
            value: "12x".into(),
        }
    );
    assert!(err.to_string().contains("line 2"), "{err}");
    let no_g85 = parse("ST*001*0001\nSE*2*0001\n").expect("parses");
    assert!(matches!(
        no_g85.verify_crc(),
        Err(DexError::Missing { tag: "G85", .. })
    ));
    no_g85.verify_segment_count().expect("2 segments");
}
