//! Tests of the command message layer: round trips, one test per rejection reason,
//! canonicalisation in transit, a byte-flip property test and the RFC 8032 key vector.

use super::*;
use crate::core::{Currency, Input};
use proptest::prelude::*;
use serde_json::{json, Map};

const NOW: u64 = 1_700_000_000_000;
const MACHINE: &str = "m-017";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

fn keys() -> Vec<VerifyingKey> {
    vec![key().verifying_key()]
}

fn nonce(n: u8) -> String {
    B64.encode([n; 16])
}

fn never_seen(_id: &str, _nonce: &str) -> bool {
    false
}

/// A command signed by the operator key, valid for ten minutes from `NOW`.
fn signed(name: &str, args: Value) -> Vec<u8> {
    sign(
        name,
        args,
        MACHINE,
        "cmd-1",
        &nonce(1),
        NOW,
        NOW + 600_000,
        &key(),
    )
}

fn check(raw: &[u8], topic: &str) -> Result<Verified, CommandError> {
    verify(raw, topic, &keys(), MACHINE, NOW, &never_seen)
}

fn code_of(raw: &[u8], topic: &str) -> &'static str {
    match check(raw, topic) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => e.code(),
    }
}

/// Re-writes a received envelope (signature kept) after `f` changes it.
fn edit(raw: &[u8], f: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(raw).unwrap();
    f(v.as_object_mut().unwrap());
    serde_json::to_vec(&v).unwrap()
}

fn planogram_args() -> Value {
    json!({"catalog": {
        "currency": "EUR",
        "products": {"cola": {"id": "cola", "name": "Cola 0,33 l"},
                     "nuts": {"id": "nuts", "name": "Nüsse"}},
        "slots": {
            "A1": {"id": "A1", "product": "cola", "price": 150, "capacity": 10, "stock": 4,
                   "enabled": true, "fault": null},
            "B2": {"id": "B2", "product": "nuts", "price": 220, "capacity": 8, "stock": 8,
                   "enabled": false}
        }
    }})
}

const HASH_A: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
const HASH_B: &str = "0000000000000000000000000000000000000000000000000000000000000abc";

fn slot(s: &str) -> SlotId {
    SlotId::parse(s).unwrap()
}

use crate::core::SlotId;

/// One valid example of every command: (name, args, the command expected).
fn examples() -> Vec<(&'static str, Value, RemoteCommand)> {
    let catalog: crate::core::Catalog =
        serde_json::from_value(planogram_args()["catalog"].clone()).unwrap();
    vec![
        (
            "set_prices",
            json!({"prices": [{"slot": "A3", "price": 150}, {"slot": "b10", "price": 0}]}),
            RemoteCommand::SetPrices {
                prices: vec![
                    PriceEntry {
                        slot: slot("A3"),
                        price: 150,
                    },
                    PriceEntry {
                        slot: slot("B10"),
                        price: 0,
                    },
                ],
            },
        ),
        (
            "set_planogram",
            planogram_args(),
            RemoteCommand::SetPlanogram {
                catalog,
                stock_given: vec![slot("A1"), slot("B2")],
            },
        ),
        (
            "restock",
            json!({"counts": [{"slot": "C1", "count": 12}]}),
            RemoteCommand::Restock {
                counts: vec![StockEntry {
                    slot: slot("C1"),
                    count: 12,
                }],
            },
        ),
        (
            "set_slot_enabled",
            json!({"slot": "D4", "enabled": false}),
            RemoteCommand::SetSlotEnabled {
                slot: slot("D4"),
                enabled: false,
            },
        ),
        (
            "refund",
            json!({"sid": 42, "amount": 150}),
            RemoteCommand::Refund {
                sid: 42,
                amount: Some(150),
            },
        ),
        ("void", json!({"sid": 7}), RemoteCommand::Void { sid: 7 }),
        (
            "unlock_door",
            json!({"seconds": 300}),
            RemoteCommand::UnlockDoor { seconds: 300 },
        ),
        (
            "deny_list",
            json!({"add": [HASH_A.to_uppercase()], "remove": [HASH_B]}),
            RemoteCommand::DenyList {
                add: vec![HASH_A.into()],
                remove: vec![HASH_B.into()],
            },
        ),
        ("audit_export", json!({}), RemoteCommand::AuditExport {}),
        ("reload_config", json!({}), RemoteCommand::ReloadConfig {}),
        (
            "clear_fault",
            json!({"slot": "F10"}),
            RemoteCommand::ClearFault { slot: slot("F10") },
        ),
        ("reset_counters", json!({}), RemoteCommand::ResetCounters {}),
        (
            "erase_face",
            json!({"account": HASH_A.to_uppercase()}),
            RemoteCommand::EraseFace {
                account: HASH_A.into(),
            },
        ),
        ("doctor", json!({}), RemoteCommand::Doctor {}),
    ]
}

#[test]
fn erase_face_becomes_an_operator_erasure() {
    let v = check(
        &signed("erase_face", json!({"account": HASH_B})),
        "erase_face",
    )
    .expect("ok");
    assert_eq!(
        v.command.inputs_for("c1", 6, 10),
        vec![Input::FaceErased {
            account: HASH_B.into(),
            by: crate::core::EraseBy::Operator,
        }]
    );
}

#[test]
fn every_command_signed_by_the_operator_verifies_to_the_expected_command() {
    let ex = examples();
    let names: Vec<&str> = ex.iter().map(|e| e.0).collect();
    assert_eq!(names, COMMAND_NAMES, "one example per command, in order");
    for (name, args, expected) in ex {
        let v = check(&signed(name, args), name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.command, expected, "{name}");
        assert_eq!(v.name(), name);
        assert_eq!((v.id.as_str(), v.machine.as_str()), ("cmd-1", MACHINE));
        assert_eq!(
            (v.issued_at, v.expires_at, v.signed_by),
            (NOW, NOW + 600_000, 0)
        );
        assert_eq!(v.digest.len(), 64);
        // The command's own args sign and verify to the same command.
        let again = check(&signed(name, expected.args()), name).unwrap();
        assert_eq!(again.command, expected, "{name} via args()");
    }
}

#[test]
fn optional_refund_amount_and_deny_list_halves_may_be_left_out() {
    let v = check(&signed("refund", json!({"sid": 3})), "refund").unwrap();
    assert_eq!(
        v.command,
        RemoteCommand::Refund {
            sid: 3,
            amount: None
        }
    );
    let v = check(
        &signed("deny_list", json!({"remove": [HASH_A]})),
        "deny_list",
    )
    .unwrap();
    assert_eq!(
        v.command,
        RemoteCommand::DenyList {
            add: vec![],
            remove: vec![HASH_A.into()]
        }
    );
}

#[test]
fn commands_that_map_to_core_inputs_produce_them_in_order() {
    let cmd = |name: &str| examples().into_iter().find(|e| e.0 == name).unwrap().2;
    assert_eq!(
        cmd("set_prices").to_inputs(),
        vec![
            Input::SetPrice {
                slot: slot("A3"),
                price: 150
            },
            Input::SetPrice {
                slot: slot("B10"),
                price: 0
            },
        ]
    );
    assert_eq!(
        cmd("restock").to_inputs(),
        vec![Input::Restock {
            slot: slot("C1"),
            count: 12
        }]
    );
    assert_eq!(
        cmd("set_slot_enabled").to_inputs(),
        vec![Input::SetEnabled {
            slot: slot("D4"),
            enabled: false
        }]
    );
    assert_eq!(
        cmd("clear_fault").to_inputs(),
        vec![Input::ClearFault { slot: slot("F10") }]
    );
    assert_eq!(
        cmd("reset_counters").to_inputs(),
        vec![Input::ResetCounters]
    );
    assert_eq!(
        cmd("deny_list").to_inputs(),
        vec![
            Input::Deny {
                credential: HASH_A.into(),
                add: true
            },
            Input::Deny {
                credential: HASH_B.into(),
                add: false
            },
        ]
    );
    for name in [
        "set_planogram",
        "refund",
        "void",
        "unlock_door",
        "audit_export",
        "reload_config",
    ] {
        assert!(cmd(name).to_inputs().is_empty(), "{name} is the runtime's");
    }
}

#[test]
fn a_command_without_a_signature_is_rejected_as_unsigned() {
    let raw = signed("reset_counters", json!({}));
    assert_eq!(
        code_of(&edit(&raw, |m| drop(m.remove("sig"))), "reset_counters"),
        "unsigned"
    );
    assert_eq!(
        code_of(
            &edit(&raw, |m| drop(m.insert("sig".into(), json!("")))),
            "reset_counters"
        ),
        "unsigned"
    );
    assert_eq!(
        code_of(
            &edit(&raw, |m| drop(m.insert("sig".into(), Value::Null))),
            "reset_counters"
        ),
        "unsigned"
    );
    // Unsigned wins over a bad shape: nothing unsigned is looked at further.
    let raw = edit(&raw, |m| {
        m.remove("sig");
        m.remove("nonce");
    });
    assert_eq!(code_of(&raw, "reset_counters"), "unsigned");
}

#[test]
fn a_command_signed_by_a_key_not_in_the_config_is_a_bad_signature() {
    let raw = sign(
        "reset_counters",
        json!({}),
        MACHINE,
        "c",
        &nonce(1),
        NOW,
        NOW + 1000,
        &other_key(),
    );
    assert_eq!(code_of(&raw, "reset_counters"), "bad_signature");
    // Either of two configured keys may sign; the index says which.
    let both = [key().verifying_key(), other_key().verifying_key()];
    let v = verify(&raw, "reset_counters", &both, MACHINE, NOW, &never_seen).unwrap();
    assert_eq!(v.signed_by, 1);
}

#[test]
fn a_bad_signature_is_reported_even_when_the_args_are_also_bad() {
    let raw = sign(
        "unlock_door",
        json!({"seconds": 9999}),
        MACHINE,
        "c",
        &nonce(1),
        NOW,
        NOW + 1000,
        &other_key(),
    );
    assert_eq!(code_of(&raw, "unlock_door"), "bad_signature");
    let raw = sign(
        "no_such_command",
        json!({"x": 1}),
        MACHINE,
        "c",
        &nonce(1),
        NOW,
        NOW + 1000,
        &other_key(),
    );
    assert_eq!(code_of(&raw, "no_such_command"), "bad_signature");
}

#[test]
fn a_signature_that_is_not_base64_of_64_bytes_is_a_bad_signature() {
    let raw = signed("reset_counters", json!({}));
    for sig in [json!("not base64!"), json!(B64.encode([1u8; 63])), json!(7)] {
        let bad = edit(&raw, |m| drop(m.insert("sig".into(), sig.clone())));
        assert_eq!(code_of(&bad, "reset_counters"), "bad_signature", "{sig}");
    }
}

#[test]
fn changing_the_args_after_signing_breaks_the_signature() {
    let raw = signed(
        "set_prices",
        json!({"prices": [{"slot": "A3", "price": 150}]}),
    );
    let tampered = edit(&raw, |m| m["args"]["prices"][0]["price"] = json!(1));
    assert_eq!(code_of(&tampered, "set_prices"), "bad_signature");
    let added = edit(&raw, |m| {
        drop(
            m["args"]
                .as_object_mut()
                .unwrap()
                .insert("x".into(), json!(1)),
        )
    });
    assert_eq!(code_of(&added, "set_prices"), "bad_signature");
}

#[test]
fn changing_the_name_or_any_other_signed_field_breaks_the_signature() {
    let raw = signed("reset_counters", json!({}));
    let renamed = edit(&raw, |m| {
        drop(m.insert("name".into(), json!("audit_export")))
    });
    assert_eq!(code_of(&renamed, "audit_export"), "bad_signature");
    for (field, value) in [
        ("id", json!("cmd-2")),
        ("nonce", json!(nonce(2))),
        ("issued_at", json!(NOW - 1)),
        ("expires_at", json!(NOW + 600_001)),
        ("machine", json!("*")),
    ] {
        let changed = edit(&raw, |m| drop(m.insert(field.into(), value)));
        assert_eq!(
            code_of(&changed, "reset_counters"),
            "bad_signature",
            "{field}"
        );
    }
}

#[test]
fn a_command_on_another_commands_topic_is_a_topic_mismatch() {
    let raw = signed("unlock_door", json!({"seconds": 5}));
    let err = check(&raw, "audit_export").unwrap_err();
    assert_eq!(err.code(), "topic_mismatch");
    assert!(
        err.to_string().contains("publish it on cmd/unlock_door"),
        "{err}"
    );
}

#[test]
fn a_signed_command_with_an_unknown_name_is_an_unknown_command() {
    let raw = signed("self_destruct", json!({}));
    assert_eq!(code_of(&raw, "self_destruct"), "unknown_command");
}

#[test]
fn a_command_whose_id_was_seen_is_replayed() {
    let raw = signed("reset_counters", json!({}));
    let guard = |id: &str, _nonce: &str| id == "cmd-1";
    let err = verify(&raw, "reset_counters", &keys(), MACHINE, NOW, &guard).unwrap_err();
    assert_eq!(err.code(), "replayed");
}

#[test]
fn a_command_whose_nonce_was_seen_is_replayed() {
    let raw = signed("reset_counters", json!({}));
    let used = nonce(1);
    let guard = move |_id: &str, n: &str| n == used;
    let err = verify(&raw, "reset_counters", &keys(), MACHINE, NOW, &guard).unwrap_err();
    assert_eq!(err.code(), "replayed");
    // The guard is asked about this command's own id and nonce.
    let asked = std::cell::RefCell::new(Vec::new());
    let record = |id: &str, n: &str| {
        asked.borrow_mut().push((id.to_string(), n.to_string()));
        false
    };
    assert!(verify(&raw, "reset_counters", &keys(), MACHINE, NOW, &record).is_ok());
    assert_eq!(asked.into_inner(), vec![("cmd-1".to_string(), nonce(1))]);
}

#[test]
fn a_command_is_expired_from_its_expiry_time_on() {
    let raw = signed("reset_counters", json!({}));
    let at = |now| verify(&raw, "reset_counters", &keys(), MACHINE, now, &never_seen);
    assert!(at(NOW + 599_999).is_ok());
    assert_eq!(at(NOW + 600_000).unwrap_err().code(), "expired");
    assert_eq!(at(NOW + 10_000_000).unwrap_err().code(), "expired");
}

#[test]
fn a_command_issued_beyond_the_clock_skew_allowance_is_not_yet_valid() {
    let raw = sign(
        "reset_counters",
        json!({}),
        MACHINE,
        "c",
        &nonce(1),
        NOW + CLOCK_SKEW_MS,
        NOW + CLOCK_SKEW_MS + 1000,
        &key(),
    );
    assert!(
        check(&raw, "reset_counters").is_ok(),
        "within the allowance"
    );
    let raw = sign(
        "reset_counters",
        json!({}),
        MACHINE,
        "c",
        &nonce(1),
        NOW + CLOCK_SKEW_MS + 1,
        NOW + CLOCK_SKEW_MS + 1000,
        &key(),
    );
    assert_eq!(code_of(&raw, "reset_counters"), "not_yet_valid");
}

#[test]
fn a_command_valid_for_more_than_a_day_is_refused_as_expiry_too_long() {
    let raw = sign(
        "reset_counters",
        json!({}),
        MACHINE,
        "c",
        &nonce(1),
        NOW,
        NOW + MAX_LIFETIME_MS,
        &key(),
    );
    assert!(
        check(&raw, "reset_counters").is_ok(),
        "exactly 24 h is allowed"
    );
    let raw = sign(
        "reset_counters",
        json!({}),
        MACHINE,
        "c",
        &nonce(1),
        NOW,
        NOW + MAX_LIFETIME_MS + 1,
        &key(),
    );
    assert_eq!(code_of(&raw, "reset_counters"), "expiry_too_long");
}

#[test]
fn a_command_for_another_machine_is_refused_and_star_addresses_all() {
    let raw = sign(
        "reset_counters",
        json!({}),
        "m-018",
        "c",
        &nonce(1),
        NOW,
        NOW + 1000,
        &key(),
    );
    let err = check(&raw, "reset_counters").unwrap_err();
    assert_eq!(err.code(), "wrong_machine");
    assert!(err.to_string().contains("m-018") && err.to_string().contains(MACHINE));
    let raw = sign(
        "reset_counters",
        json!({}),
        "*",
        "c",
        &nonce(1),
        NOW,
        NOW + 1000,
        &key(),
    );
    assert!(check(&raw, "reset_counters").is_ok());
}

#[test]
fn no_command_is_trusted_when_no_operator_key_is_configured() {
    let raw = signed("reset_counters", json!({}));
    let err = verify(&raw, "reset_counters", &[], MACHINE, NOW, &never_seen).unwrap_err();
    assert_eq!(err.code(), "no_operator_keys");
}

#[test]
fn an_unknown_version_is_refused_before_anything_else() {
    let raw = signed("reset_counters", json!({}));
    for v in [json!(2), json!(0)] {
        let bad = edit(&raw, |m| drop(m.insert("v".into(), v.clone())));
        assert_eq!(
            code_of(&bad, "reset_counters"),
            "unsupported_version",
            "{v}"
        );
    }
    let bad = edit(&raw, |m| drop(m.insert("v".into(), json!("1"))));
    assert_eq!(code_of(&bad, "reset_counters"), "malformed");
}

#[test]
fn payloads_that_are_not_a_json_envelope_are_malformed() {
    let good = String::from_utf8(signed("reset_counters", json!({}))).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), b"".to_vec()),
        ("not json".into(), b"reset please".to_vec()),
        (
            "truncated".into(),
            good.as_bytes()[..good.len() - 1].to_vec(),
        ),
        ("trailing data".into(), format!("{good} x").into_bytes()),
        ("two objects".into(), format!("{good}{good}").into_bytes()),
        ("array".into(), format!("[{good}]").into_bytes()),
        ("string".into(), b"\"cmd\"".to_vec()),
        (
            "invalid utf-8".into(),
            b"{\"v\":1,\"name\":\"\xff\"}".to_vec(),
        ),
        (
            "duplicate key".into(),
            good.replacen("{", "{\"name\":\"void\",", 1).into_bytes(),
        ),
        (
            "float".into(),
            good.replacen(
                &format!("\"issued_at\":{NOW}"),
                &format!("\"issued_at\":{NOW}.0"),
                1,
            )
            .into_bytes(),
        ),
        ("too large".into(), vec![b' '; MAX_COMMAND_BYTES + 1]),
    ];
    let raw = good.as_bytes();
    let edited: Vec<(&str, Vec<u8>)> = vec![
        ("missing v", edit(raw, |m| drop(m.remove("v")))),
        ("missing nonce", edit(raw, |m| drop(m.remove("nonce")))),
        ("missing args", edit(raw, |m| drop(m.remove("args")))),
        (
            "unknown field",
            edit(raw, |m| drop(m.insert("extra".into(), json!(1)))),
        ),
        (
            "string time",
            edit(raw, |m| drop(m.insert("issued_at".into(), json!("now")))),
        ),
        (
            "negative time",
            edit(raw, |m| drop(m.insert("expires_at".into(), json!(-1)))),
        ),
        (
            "short nonce",
            edit(raw, |m| {
                drop(m.insert("nonce".into(), json!(B64.encode([1u8; 15]))))
            }),
        ),
        (
            "nonce not base64",
            edit(raw, |m| {
                drop(m.insert("nonce".into(), json!("%%%%%%%%%%%%%%%%%%%%%%%%")))
            }),
        ),
        (
            "empty id",
            edit(raw, |m| drop(m.insert("id".into(), json!("")))),
        ),
        (
            "id with a slash",
            edit(raw, |m| drop(m.insert("id".into(), json!("a/b")))),
        ),
        (
            "empty machine",
            edit(raw, |m| drop(m.insert("machine".into(), json!("")))),
        ),
        (
            "expiry before issue",
            edit(raw, |m| drop(m.insert("expires_at".into(), json!(NOW - 1)))),
        ),
    ];
    cases.extend(edited.into_iter().map(|(n, b)| (n.to_string(), b)));
    for (what, bytes) in cases {
        match check(&bytes, "reset_counters") {
            Err(CommandError::Malformed(m)) => assert!(!m.is_empty(), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// (name, args, words the reason must contain).
fn bad_args() -> Vec<(&'static str, Value, &'static str)> {
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"slot": format!("{}{}", (b'A' + (i / 99) as u8) as char, i % 99 + 1), "price": 1}))
        .collect();
    let mut stock_over = planogram_args();
    stock_over["catalog"]["slots"]["A1"]["stock"] = json!(11);
    let mut unknown_product = planogram_args();
    unknown_product["catalog"]["slots"]["A1"]["product"] = json!("tea");
    let mut negative = planogram_args();
    negative["catalog"]["slots"]["A1"]["price"] = json!(-1);
    let mut misfiled = planogram_args();
    misfiled["catalog"]["slots"]["A1"]["id"] = json!("C3");
    let mut lower_currency = planogram_args();
    lower_currency["catalog"]["currency"] = json!("eur");
    let mut empty = planogram_args();
    empty["catalog"]["slots"] = json!({});
    vec![
        ("set_prices", json!({}), "either prices"),
        ("set_prices", json!({"prices": []}), "empty"),
        (
            "set_prices",
            json!({"prices": [{"slot": "A1", "price": 1}, {"slot": "a1", "price": 2}]}),
            "A1 appears twice",
        ),
        (
            "set_prices",
            json!({"prices": [{"slot": "A1", "price": -1}]}),
            "must be 0..=100000000",
        ),
        (
            "set_prices",
            json!({"prices": [{"slot": "A1", "price": MAX_AMOUNT + 1}]}),
            "must be 0..=",
        ),
        (
            "set_prices",
            json!({"prices": [{"slot": "A0", "price": 1}]}),
            "not a slot name",
        ),
        (
            "set_prices",
            json!({"prices": [{"slot": "A1", "prise": 1}]}),
            "unknown field `prise`",
        ),
        (
            "set_prices",
            json!({"prices": [["A1", 1]]}),
            "prices[0] must be an object",
        ),
        ("set_prices", json!({"prices": many}), "more than 200"),
        ("set_prices", json!({"prices": {"A1": 1}}), "invalid type"),
        (
            "set_prices",
            json!({"prices": [], "currency": "EUR"}),
            "unknown field `currency`",
        ),
        ("set_planogram", json!({}), "missing field `catalog`"),
        ("set_planogram", empty, "no slots"),
        ("set_planogram", stock_over, "capacity is 10"),
        ("set_planogram", unknown_product, "unknown product `tea`"),
        ("set_planogram", negative, "negative price"),
        ("set_planogram", misfiled, "listed as A1 says its id is C3"),
        ("set_planogram", lower_currency, "ISO 4217"),
        (
            "restock",
            json!({"counts": [{"slot": "A1", "count": -1}]}),
            "counts[0]",
        ),
        (
            "restock",
            json!({"counts": [{"slot": "A1", "count": MAX_STOCK_COUNT + 1}]}),
            "above 10000",
        ),
        (
            "restock",
            json!({"counts": [{"slot": "A1", "count": 1}, {"slot": "A1", "count": 2}]}),
            "twice",
        ),
        (
            "set_slot_enabled",
            json!({"slot": "A1", "enabled": "yes"}),
            "invalid type",
        ),
        (
            "set_slot_enabled",
            json!({"enabled": true}),
            "missing field `slot`",
        ),
        ("refund", json!({"sid": 0}), "start at 1"),
        (
            "refund",
            json!({"sid": 1, "amount": 0}),
            "refund amount is 0",
        ),
        (
            "refund",
            json!({"sid": 1, "amount": -5}),
            "refund amount is -5",
        ),
        (
            "refund",
            json!({"sid": 1, "amount": MAX_AMOUNT + 1}),
            "must be 1..=",
        ),
        ("refund", json!({"sid": "12"}), "invalid type"),
        ("void", json!({"sid": 0}), "start at 1"),
        (
            "void",
            json!({"sid": 1, "amount": 3}),
            "unknown field `amount`",
        ),
        ("unlock_door", json!({"seconds": 0}), "must be 1..=300"),
        ("unlock_door", json!({"seconds": 301}), "must be 1..=300"),
        ("unlock_door", json!({}), "missing field `seconds`"),
        ("deny_list", json!({}), "both empty"),
        (
            "deny_list",
            json!({"add": ["abc"]}),
            "add[0] is not a credential hash",
        ),
        (
            "deny_list",
            json!({"remove": [HASH_A.replace('5', "g")]}),
            "remove[0] is not a credential hash",
        ),
        (
            "deny_list",
            json!({"add": [HASH_A], "remove": [HASH_A.to_uppercase()]}),
            "listed twice",
        ),
        (
            "audit_export",
            json!({"format": "dex"}),
            "unknown field `format`",
        ),
        ("reload_config", json!([]), "must be a JSON object"),
        ("reset_counters", Value::Null, "must be a JSON object"),
        ("clear_fault", json!({"slot": "A"}), "not a slot name"),
        ("erase_face", json!({}), "missing field `account`"),
        (
            "erase_face",
            json!({"account": "4111111111111111"}),
            "account is not a credential hash",
        ),
        (
            "erase_face",
            json!({"account": HASH_A, "extra": 1}),
            "unknown field",
        ),
        (
            "doctor",
            json!({"verbose": true}),
            "unknown field `verbose`",
        ),
    ]
}

#[test]
fn bad_arguments_of_every_command_are_refused_with_the_reason() {
    let cases = bad_args();
    for name in COMMAND_NAMES {
        assert!(
            cases.iter().any(|c| c.0 == name),
            "no bad-args case for {name}"
        );
    }
    for (name, args, words) in cases {
        match check(&signed(name, args.clone()), name) {
            Err(CommandError::InvalidArgs { name: n, reason }) => {
                assert_eq!(n, name);
                assert!(
                    reason.contains(words),
                    "{name} {args}: `{reason}` lacks `{words}`"
                );
            }
            other => panic!("{name} {args}: {other:?}"),
        }
    }
}

#[test]
fn a_raw_card_number_sent_to_the_deny_list_is_not_echoed_back() {
    let err = check(
        &signed("deny_list", json!({"add": ["4111111111111111"]})),
        "deny_list",
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_args");
    assert!(!err.to_string().contains("4111111111111111"), "{err}");
    let result = CommandResult::rejected(b"{}", "deny_list", &err, NOW);
    assert!(!String::from_utf8(result.to_json())
        .unwrap()
        .contains("4111111111111111"));
}

#[test]
fn a_reordered_and_reformatted_envelope_still_verifies() {
    let raw = signed("set_planogram", planogram_args());
    let value: Value = serde_json::from_slice(&raw).unwrap();
    // Reverse the key order at every depth and pretty-print with CRLF line ends.
    fn reversed(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .rev()
                    .map(|(k, x)| {
                        format!(
                            "\r\n  {} :\t{}",
                            serde_json::to_string(k).unwrap(),
                            reversed(x)
                        )
                    })
                    .collect();
                format!("{{{} }}", parts.join(" ,"))
            }
            Value::Array(a) => format!(
                "[ {} ]",
                a.iter().map(reversed).collect::<Vec<_>>().join(" , ")
            ),
            other => other.to_string(),
        }
    }
    let moved = reversed(&value);
    assert_ne!(moved.as_bytes(), &raw[..]);
    assert!(
        moved.find("\"v\"").unwrap() < moved.find("\"args\"").unwrap(),
        "order did change"
    );
    // Escaped and unescaped forms of the same text are the same value, too.
    let moved = moved.replace("Cola 0,33 l", "Cola 0\\u002c33 l");
    let a = check(&raw, "set_planogram").unwrap();
    let b = check(moved.as_bytes(), "set_planogram").unwrap();
    assert_eq!(a, b);
}

#[test]
fn signed_output_is_canonical_json_with_the_signature_added() {
    let raw = signed("void", json!({"sid": 7}));
    let value = parse_strict(&raw).unwrap();
    assert_eq!(canonical_json(&value).unwrap().as_bytes(), &raw[..]);
    let text = String::from_utf8(raw).unwrap();
    assert!(
        text.starts_with("{\"args\":{\"sid\":7},\"expires_at\":"),
        "{text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Flipping any one byte of a signed command (compact or pretty-printed) makes it fail,
    /// or, where the byte was layout (whitespace), verifies to exactly the same command.
    #[test]
    fn flipping_any_single_byte_fails_or_changes_nothing(
        which in 0usize..3,
        pretty in any::<bool>(),
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let (name, args) = match which {
            0 => ("set_prices", json!({"prices": [{"slot": "A3", "price": 150}, {"slot": "B1", "price": 99}]})),
            1 => ("deny_list", json!({"add": [HASH_A], "remove": [HASH_B]})),
            _ => ("set_planogram", planogram_args()),
        };
        let mut raw = signed(name, args);
        if pretty {
            raw = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&raw).unwrap()).unwrap();
        }
        let original = check(&raw, name).unwrap();
        let i = pos.index(raw.len());
        raw[i] ^= mask;
        if let Ok(v) = check(&raw, name) {
            prop_assert_eq!(v, original, "byte {} became {:?}", i, raw[i] as char);
        }
    }
}

#[test]
fn the_rfc8032_test_1_vector_signs_the_empty_message_through_our_key_encoding() {
    use ed25519_dalek::{Signer as _, Verifier as _};
    let secret = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let signature = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    let sk = parse_signing_key(secret).unwrap();
    let vk = parse_verifying_key(public).unwrap();
    assert_eq!(sk.verifying_key(), vk);
    let sig = sk.sign(b"");
    assert_eq!(hex::encode(sig.to_bytes()), signature);
    assert!(vk.verify(b"", &sig).is_ok());
    assert_eq!(encode_key(&sk.to_bytes()), secret);
    assert_eq!(encode_key(vk.as_bytes()), public);
    // Base64 and upper-case hex of the same bytes read as the same keys.
    let b64 = B64.encode(hex::decode(public).unwrap());
    assert_eq!(parse_verifying_key(&format!(" {b64}\n")).unwrap(), vk);
    assert_eq!(parse_verifying_key(&public.to_uppercase()).unwrap(), vk);
    assert_eq!(
        parse_signing_key(&B64.encode(hex::decode(secret).unwrap()))
            .unwrap()
            .to_bytes(),
        sk.to_bytes()
    );
}

#[test]
fn a_generated_key_pair_signs_commands_the_machine_accepts_after_a_text_round_trip() {
    let (sk, vk) = generate_keypair();
    let (sk2, _) = generate_keypair();
    assert_ne!(sk.to_bytes(), sk2.to_bytes());
    let sk = parse_signing_key(&encode_key(&sk.to_bytes())).unwrap();
    let vk = parse_verifying_key(&encode_key(vk.as_bytes())).unwrap();
    let raw = sign(
        "void",
        json!({"sid": 1}),
        MACHINE,
        "k",
        &nonce(3),
        NOW,
        NOW + 1000,
        &sk,
    );
    assert!(verify(&raw, "void", &[vk], MACHINE, NOW, &never_seen).is_ok());
}

#[test]
fn key_text_of_the_wrong_length_or_a_weak_public_key_is_refused() {
    for bad in [
        "",
        "abc",
        &"0".repeat(63),
        &"zz".repeat(32),
        &B64.encode([1u8; 31]),
    ] {
        assert!(
            matches!(parse_verifying_key(bad), Err(KeyError::Encoding { .. })),
            "{bad}"
        );
        assert!(
            matches!(parse_signing_key(bad), Err(KeyError::Encoding { .. })),
            "{bad}"
        );
    }
    // The identity point (small order) decodes but must not be trusted.
    let identity = format!("01{}", "00".repeat(31));
    assert_eq!(
        parse_verifying_key(&identity),
        Err(KeyError::InvalidPublicKey)
    );
    // A secret key's text is not repeated in the error.
    let secret = "s3cr3t-s3cr3t-s3cr3t";
    assert!(!parse_signing_key(secret)
        .unwrap_err()
        .to_string()
        .contains(secret));
}

#[test]
fn error_codes_are_distinct_snake_case_and_messages_say_what_to_do() {
    let errors = [
        CommandError::Malformed("x".into()),
        CommandError::UnsupportedVersion("2".into()),
        CommandError::Unsigned,
        CommandError::BadSignature("x".into()),
        CommandError::NoOperatorKeys,
        CommandError::UnknownCommand("x".into()),
        CommandError::TopicMismatch {
            topic: "a".into(),
            name: "b".into(),
        },
        CommandError::WrongMachine {
            target: "a".into(),
            machine: "b".into(),
        },
        CommandError::NotYetValid {
            issued_at: 2,
            now: 1,
        },
        CommandError::Expired {
            expires_at: 1,
            now: 2,
        },
        CommandError::ExpiryTooLong {
            lifetime_ms: 2,
            max_ms: 1,
        },
        CommandError::Replayed { id: "x".into() },
        CommandError::InvalidArgs {
            name: "x".into(),
            reason: "y".into(),
        },
    ];
    let codes: std::collections::BTreeSet<&str> = errors.iter().map(CommandError::code).collect();
    assert_eq!(codes.len(), errors.len());
    for c in &codes {
        assert!(
            c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{c}"
        );
    }
    for e in &errors[..errors.len() - 1] {
        let m = e.to_string();
        assert!(
            ["sign", "send", "use", "add", "publish", "check"]
                .iter()
                .any(|w| m.to_lowercase().contains(w)),
            "{m}"
        );
    }
}

#[test]
fn results_carry_the_id_name_code_and_reason_in_the_agreed_json() {
    let raw = signed("unlock_door", json!({"seconds": 0}));
    let err = check(&raw, "unlock_door").unwrap_err();
    let r = CommandResult::rejected(&raw, "unlock_door", &err, NOW + 5);
    assert_eq!(
        (r.id.as_str(), r.name.as_str(), r.ok, r.code.as_str()),
        ("cmd-1", "unlock_door", false, "invalid_args")
    );
    let json: Value = serde_json::from_slice(&r.to_json()).unwrap();
    assert_eq!(json["v"], 1);
    assert_eq!(json["at"], NOW + 5);
    assert!(json["message"].as_str().unwrap().contains("1..=300"));
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = ["at", "code", "id", "message", "name", "ok", "v"];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    // Unreadable payloads still get an answer, with no id.
    let r = CommandResult::rejected(b"\xff", "void", &CommandError::Malformed("x".into()), NOW);
    assert_eq!((r.id.as_str(), r.code.as_str()), ("", "malformed"));
    // A verified command's success and failure.
    let v = check(&signed("void", json!({"sid": 4})), "void").unwrap();
    let ok = CommandResult::done(&v, "voided", NOW);
    assert!(ok.ok && ok.code == "ok" && ok.name == "void" && ok.id == "cmd-1");
    let no = CommandResult::failed(&v, "unknown_session", "no session 4", NOW);
    assert!(!no.ok && no.code == "unknown_session");
    assert_eq!(result_topic("void"), "cmd/void/result");
}

#[test]
fn currency_and_catalog_types_come_from_the_core() {
    // Guards the planogram example against drifting from the core's serde shape.
    let v = check(&signed("set_planogram", planogram_args()), "set_planogram").unwrap();
    let RemoteCommand::SetPlanogram { catalog, .. } = v.command else {
        panic!()
    };
    assert_eq!(catalog.currency, Currency::parse("EUR").unwrap());
    assert!(catalog.problems().is_empty());
    assert!(!catalog.slots[&slot("B2")].enabled);
}

#[test]
fn set_prices_also_takes_an_eva_dts_price_list_checked_before_it_applies() {
    let v = check(
        &signed(
            "set_prices",
            json!({"price_list": "PC1*A1*150\r\nPC1*B2*275*cola\r\n"}),
        ),
        "set_prices",
    )
    .expect("a bare PC1 list");
    assert_eq!(
        v.command,
        RemoteCommand::SetPrices {
            prices: vec![
                PriceEntry {
                    slot: slot("A1"),
                    price: 150
                },
                PriceEntry {
                    slot: slot("B2"),
                    price: 275
                },
            ]
        }
    );
    // A whole DEX file: its CRC must hold.
    let body = "ST*001*0001\r\nPC1*C3*90\r\n";
    let crc = crate::dex::crc16_arc(body.as_bytes());
    let file =
        format!("DXS*VND0000001*VA*V0/6*1\r\n{body}G85*{crc:04X}\r\nSE*4*0001\r\nDXE*1*1\r\n");
    let v = check(
        &signed("set_prices", json!({ "price_list": file })),
        "set_prices",
    )
    .expect("a DEX file");
    assert!(matches!(v.command, RemoteCommand::SetPrices { ref prices } if prices.len() == 1));
    let broken = file.replace("PC1*C3*90", "PC1*C3*99");
    for (args, why) in [
        (json!({ "price_list": broken }), "CRC"),
        (json!({"price_list": "ST*001*0001\r\n"}), "no PC1"),
        (json!({"price_list": "PC1*10*100"}), "not a slot name"),
        (json!({"price_list": "PC1*A1*1.50"}), "not a price"),
        (json!({"price_list": "PC1*A1*-5"}), "price of A1"),
        (json!({"price_list": "PC1*A1*100\nPC1*A1*120"}), "twice"),
        (
            json!({"prices": [], "price_list": "PC1*A1*100"}),
            "either prices",
        ),
    ] {
        let err = check(&signed("set_prices", args.clone()), "set_prices")
            .err()
            .unwrap_or_else(|| panic!("accepted {args}"));
        assert!(err.to_string().contains(why), "{args}: {err}");
    }
}
