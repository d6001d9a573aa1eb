//! EMVCo merchant-presented payloads (issue 4, item 6): the shared vectors parse to their
//! listed fields, generated payloads round-trip through our parser, a corrupted CRC or a
//! missing mandatory tag is rejected naming the tag, and no input makes the parser panic.

use proptest::prelude::*;
use serde_json::{json, Value as Json};
use vendd::core::{Currency, Money};
use vendd::payment::emvco::{
    append_crc, crc_matches, dynamic_payload, encode, parse, EmvError, Field, MerchantConfig,
    PointOfInitiation, Value,
};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/qr/emv-vectors.json"
);

/// Three vectors copied from `emv-vectors.json` (synthetic payloads, not from the licensed
/// photos), so the parser is tested even in a clone without `../shared`.
const INLINE: [(&str, &str); 3] = [
    (
        "00020101021129370016A000000677010111011300668123456785204541153037645802TH5913KIOSK MART 246007BANGKOK63047D85",
        r#"[["00","01"],["01","11"],["29",[["00","A000000677010111"],["01","0066812345678"]]],
            ["52","5411"],["53","764"],["58","TH"],["59","KIOSK MART 24"],["60","BANGKOK"],
            ["63","7D85"]]"#,
    ),
    (
        "00020101021226380015com.example.pay0115MID00012345678952045814530370254043.505802SG5912VENDO SNACKS6009SINGAPORE62230110INV00012340705VM04263049625",
        r#"[["00","01"],["01","12"],["26",[["00","com.example.pay"],["01","MID000123456789"]]],
            ["52","5814"],["53","702"],["54","3.50"],["58","SG"],["59","VENDO SNACKS"],
            ["60","SINGAPORE"],["62",[["01","INV0001234"],["07","VM042"]]],["63","9625"]]"#,
    ),
    (
        "0002010102121519936000000012345678926400014ID.CO.QRIS.WWW0118936000001234567890520454995303360540515000550202560410005802ID5911AUTOSTORE 76007JAKARTA61051011062240508ORDER-770708KIOSK-01630450DB",
        r#"[["00","01"],["01","12"],["15","9360000000123456789"],
            ["26",[["00","ID.CO.QRIS.WWW"],["01","936000001234567890"]]],["52","5499"],
            ["53","360"],["54","15000"],["55","02"],["56","1000"],["58","ID"],
            ["59","AUTOSTORE 7"],["60","JAKARTA"],["61","10110"],
            ["62",[["05","ORDER-77"],["07","KIOSK-01"]]],["63","50DB"]]"#,
    ),
];

/// Our fields in the vectors' shape: `[tag, value]` with nested lists for templates.
fn to_json(fields: &[Field]) -> Json {
    Json::Array(
        fields
            .iter()
            .map(|f| {
                let v = match &f.value {
                    Value::Primitive(s) => Json::String(s.clone()),
                    Value::Template(sub) => to_json(sub),
                };
                json!([format!("{:02}", f.tag), v])
            })
            .collect(),
    )
}

fn check_vector(name: &str, payload: &str, crc_ok: bool, fields: &Json) {
    assert_eq!(crc_matches(payload), crc_ok, "{name}: CRC check");
    match parse(payload) {
        Ok(p) => {
            assert!(crc_ok, "{name}: parsed although the CRC is bad");
            assert_eq!(&to_json(p.fields()), fields, "{name}: fields");
        }
        Err(e) => {
            assert!(!crc_ok, "{name}: {e}");
            assert!(
                matches!(e, EmvError::CrcMismatch { .. }),
                "{name}: expected a CRC mismatch, got {e}"
            );
        }
    }
}

#[test]
fn shared_vectors_parse_to_the_listed_fields() {
    let Ok(text) = std::fs::read_to_string(VECTORS) else {
        println!("SKIP: ../shared/data/qr/emv-vectors.json not found");
        return;
    };
    let vectors: serde_json::Map<String, Json> = serde_json::from_str(&text).unwrap();
    assert!(!vectors.is_empty());
    for (name, v) in &vectors {
        let payload = v["payload"].as_str().unwrap();
        let crc_ok = v["crc_ok"].as_bool().unwrap();
        check_vector(name, payload, crc_ok, &v["fields"]);
    }
}

#[test]
fn inline_vectors_parse_to_the_listed_fields() {
    for (payload, fields) in INLINE {
        let fields: Json = serde_json::from_str(fields).unwrap();
        check_vector(payload, payload, true, &fields);
    }
    let sg = parse(INLINE[1].0).unwrap();
    assert_eq!(sg.point_of_initiation(), Some(PointOfInitiation::Dynamic));
    assert_eq!(sg.amount().unwrap(), Some(Money::new(350, cur("SGD"))));
    let th = parse(INLINE[0].0).unwrap();
    assert_eq!(th.point_of_initiation(), Some(PointOfInitiation::Static));
    assert_eq!(th.amount().unwrap(), None);
    assert_eq!(th.currency().unwrap(), cur("THB"));
    let id = parse(INLINE[2].0).unwrap();
    assert_eq!(
        id.amount().unwrap(),
        Some(Money::new(1_500_000, cur("IDR")))
    );
    assert_eq!(id.reference(), Some("ORDER-77"));
    assert_eq!(id.terminal_label(), Some("KIOSK-01"));
}

fn cur(code: &str) -> Currency {
    Currency::parse(code).unwrap()
}

fn merchant() -> MerchantConfig {
    MerchantConfig {
        account_template_id: 29,
        guid: "A000000677010111".into(),
        merchant_id: "0066812345678".into(),
        mcc: "5814".into(),
        name: "VENDO SNACKS".into(),
        city: "BERLIN".into(),
        country: "DE".into(),
        postal_code: Some("10115".into()),
    }
}

/// Payloads whose CRC and mandatory tags the tests below break.
fn samples() -> Vec<String> {
    let mut v: Vec<String> = INLINE.iter().map(|(p, _)| p.to_string()).collect();
    v.push(
        dynamic_payload(
            &merchant(),
            Money::new(350, cur("EUR")),
            "vm-042-17",
            Some("T1"),
        )
        .unwrap(),
    );
    v.push(dynamic_payload(&merchant(), Money::new(150, cur("JPY")), "vm-042-18", None).unwrap());
    v
}

#[test]
fn generated_payloads_round_trip_through_the_parser() {
    for (minor, code, text) in [
        (350, "EUR", "3.50"),
        (5, "EUR", "0.05"),
        (150, "JPY", "150"),
        (1005, "KWD", "1.005"),
        (99_999_999_999, "USD", "999999999.99"),
    ] {
        let amount = Money::new(minor, cur(code));
        let s = dynamic_payload(&merchant(), amount, "vm-042-17", Some("KIOSK-01")).unwrap();
        let p = parse(&s).unwrap();
        assert_eq!(p.primitive(54), Some(text), "{s}");
        assert_eq!(p.amount().unwrap(), Some(amount));
        assert_eq!(p.currency().unwrap(), amount.currency);
        assert_eq!(p.reference(), Some("vm-042-17"));
        assert_eq!(p.terminal_label(), Some("KIOSK-01"));
        assert_eq!(p.point_of_initiation(), Some(PointOfInitiation::Dynamic));
        assert_eq!(p.merchant_name(), "VENDO SNACKS");
        assert_eq!(p.merchant_city(), "BERLIN");
        assert_eq!(p.country(), "DE");
        assert_eq!(p.mcc(), "5814");
        assert_eq!(p.primitive(61), Some("10115"));
        assert_eq!(p.sub(29, 0), Some("A000000677010111"));
        assert_eq!(p.sub(29, 1), Some("0066812345678"));
        // Re-encoding what we parsed gives the same string.
        assert_eq!(encode(p.fields()).unwrap(), s);
    }
}

#[test]
fn generated_payloads_round_trip_through_our_qr_decoder_after_rendering() {
    let mut dec = vendd::qr::QrDecoder::new(vendd::qr::QrConfig::default());
    for s in samples() {
        for module_px in [2, 4, 8] {
            let img = vendd::qr::render_qr(&s, module_px).unwrap();
            let read = dec.decode(&img);
            assert_eq!(read.len(), 1, "{module_px} px/module: {s}");
            let text = read[0].text.as_deref().expect("text");
            assert_eq!(text, s);
            let p = parse(text).unwrap();
            assert_eq!(encode(p.fields()).unwrap(), s);
        }
        // The PNG the kiosk page shows decodes to the same payload.
        let png = vendd::qr::render_qr_png(&s, 6).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(dec.decode(&img)[0].text.as_deref(), Some(s.as_str()));
    }
}

#[test]
fn a_corrupted_crc_is_rejected() {
    for s in samples() {
        assert!(parse(&s).is_ok());
        let (body, crc) = s.split_at(s.len() - 4);
        for i in 0..4 {
            for d in "0123456789ABCDEF".chars() {
                let mut bad: Vec<char> = crc.chars().collect();
                if bad[i].eq_ignore_ascii_case(&d) {
                    continue;
                }
                bad[i] = d;
                let bad: String = bad.into_iter().collect();
                let e = parse(&format!("{body}{bad}")).unwrap_err();
                assert!(
                    matches!(&e, EmvError::CrcMismatch { found, .. } if *found == bad),
                    "{body}{bad}: {e}"
                );
                assert!(e.to_string().contains("tag 63"), "{e}");
            }
        }
        // A changed character of the body (same structure) is caught by the CRC too:
        // static <-> dynamic in tag 01.
        let swapped = if s.starts_with("000201010211") {
            s.replacen("010211", "010212", 1)
        } else {
            s.replacen("010212", "010211", 1)
        };
        assert!(matches!(parse(&swapped), Err(EmvError::CrcMismatch { .. })));
    }
}

#[test]
fn removing_a_mandatory_tag_is_rejected_naming_it() {
    for s in samples() {
        let p = parse(&s).unwrap();
        let without_crc: Vec<Field> = p.fields().iter().filter(|f| f.tag != 63).cloned().collect();
        for tag in [0u8, 52, 53, 58, 59, 60] {
            let fields: Vec<Field> = without_crc
                .iter()
                .filter(|f| f.tag != tag)
                .cloned()
                .collect();
            let e = parse(&append_crc(&encode(&fields).unwrap())).unwrap_err();
            assert!(
                matches!(&e, EmvError::Missing { tag: t, .. } if *t == format!("{tag:02}")),
                "removing {tag:02} from {s}: {e}"
            );
            assert!(e.to_string().contains(&format!("tag {tag:02}")), "{e}");
        }
        // Tag 63 itself.
        let e = parse(&encode(&without_crc).unwrap()).unwrap_err();
        assert_eq!(
            e,
            EmvError::Missing {
                tag: "63".into(),
                name: "CRC"
            }
        );
        // Every merchant account (02-51).
        let fields: Vec<Field> = without_crc
            .iter()
            .filter(|f| !(2..=51).contains(&f.tag))
            .cloned()
            .collect();
        let e = parse(&append_crc(&encode(&fields).unwrap())).unwrap_err();
        assert_eq!(e, EmvError::MissingMerchantAccount);
    }
}

const CODES: [&str; 8] = ["EUR", "USD", "JPY", "KWD", "SGD", "IDR", "CHF", "BHD"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_payloads_round_trip_for_any_amount_reference_and_name(
        minor in 1i64..1_000_000_000_000,
        code in prop::sample::select(&CODES[..]),
        reference in "[ -~]{1,25}",
        terminal in prop::option::of("[A-Za-z0-9-]{1,25}"),
        name in "[ -~]{1,25}",
        city in "[ -~]{1,15}",
    ) {
        let cfg = MerchantConfig { name: name.clone(), city: city.clone(), ..merchant() };
        let amount = Money::new(minor, cur(code));
        let s = dynamic_payload(&cfg, amount, &reference, terminal.as_deref()).unwrap();
        let p = parse(&s).unwrap();
        prop_assert_eq!(p.amount().unwrap(), Some(amount));
        prop_assert_eq!(p.currency().unwrap(), amount.currency);
        prop_assert_eq!(p.reference(), Some(reference.as_str()));
        prop_assert_eq!(p.terminal_label(), terminal.as_deref());
        prop_assert_eq!(p.merchant_name(), name.as_str());
        prop_assert_eq!(p.merchant_city(), city.as_str());
    }

    #[test]
    fn random_strings_never_panic(s in ".{0,300}", digits in "[0-9A-F]{0,300}") {
        let _ = parse(&s);
        let _ = crc_matches(&s);
        let _ = parse(&digits);
        let _ = parse(&append_crc(&digits));
    }

    #[test]
    fn mutated_payloads_never_panic(
        which in 0usize..5,
        edits in prop::collection::vec((0usize..4, any::<prop::sample::Index>(), any::<char>()), 1..6),
        refresh_crc in any::<bool>(),
    ) {
        let samples = samples();
        let mut chars: Vec<char> = samples[which % samples.len()].chars().collect();
        if refresh_crc {
            chars.truncate(chars.len() - 8);
        }
        for (op, at, c) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 if i < chars.len() => chars[i] = c,
                1 if i < chars.len() => { chars.remove(i); }
                2 => chars.insert(i, c),
                _ => chars.truncate(i),
            }
        }
        let s: String = chars.into_iter().collect();
        let s = if refresh_crc { append_crc(&s) } else { s };
        if let Ok(p) = parse(&s) {
            // Whatever parses re-encodes to itself and answers every accessor.
            prop_assert_eq!(encode(p.fields()).unwrap(), s);
            let _ = (p.amount(), p.currency(), p.reference(), p.point_of_initiation());
        }
    }
}
