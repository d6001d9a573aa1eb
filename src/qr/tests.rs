use super::*;

use image::{GrayImage, Luma};
use proptest::prelude::*;

/// An EMVCo merchant-presented payload (from the synthetic corpus generator).
const EMV: &str = "00020101021141300009SG.PAYNOW011301901153000595204000053037025802TH\
5912VENDO SNACKS6012KUALA LUMPUR62230510INV12452620705VM51663045867";
const PAYCODE: &str = "268247064024242709";
const URL: &str = "HTTPS://M.EXAMPLE.ORG/V/pS8EwdNGbN";

fn decoder() -> QrDecoder {
    QrDecoder::new(QrConfig {
        time_budget_ms: None,
        ..QrConfig::default()
    })
}

/// Puts `code` on a mid-grey `w`×`h` canvas at (x, y).
fn on_canvas(code: &GrayImage, w: u32, h: u32, x: u32, y: u32) -> GrayImage {
    let mut img = GrayImage::from_pixel(w, h, Luma([128]));
    image::imageops::overlay(&mut img, code, i64::from(x), i64::from(y));
    img
}

#[test]
fn render_decode_round_trip_at_several_module_sizes() {
    for text in [EMV, PAYCODE, URL] {
        for px in [2, 3, 5, 8] {
            let img = render_qr(text, px).expect("render");
            let got = decoder().decode(&img);
            assert_eq!(got.len(), 1, "{} chars at {px} px/module", text.len());
            assert_eq!(got[0].bytes, text.as_bytes());
            assert_eq!(got[0].text.as_deref(), Some(text));
        }
    }
}

#[test]
fn round_trip_in_a_camera_sized_frame() {
    let code = render_qr(EMV, 4).expect("render");
    let frame = on_canvas(&code, 640, 480, 150, 60);
    let got = decoder().decode(&frame);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, EMV.as_bytes());
}

#[test]
fn inverted_and_low_contrast_frames_decode() {
    let code = render_qr(PAYCODE, 6).expect("render");
    let mut inverted = code.clone();
    image::imageops::invert(&mut inverted);
    let frame = on_canvas(&inverted, 640, 480, 100, 100);
    assert_eq!(decoder().decode(&frame).len(), 1, "inverted");

    // ink 120 on paper 140, on a canvas with full-range clutter
    let mut low = code.clone();
    for p in low.pixels_mut() {
        p.0[0] = if p.0[0] < 128 { 120 } else { 140 };
    }
    let mut frame = on_canvas(&low, 640, 480, 200, 100);
    for y in 0..480 {
        for x in 0..100 {
            frame.put_pixel(
                x,
                y,
                Luma([if (x / 10 + y / 10) % 2 == 0 { 10 } else { 245 }]),
            );
        }
    }
    let got = decoder().decode(&frame);
    assert_eq!(got.len(), 1, "low contrast");
    assert_eq!(got[0].bytes, PAYCODE.as_bytes());
}

#[test]
fn two_codes_in_one_frame_are_both_reported() {
    let a = render_qr(PAYCODE, 4).expect("render");
    let b = render_qr(URL, 4).expect("render");
    let mut frame = on_canvas(&a, 640, 480, 40, 100);
    image::imageops::overlay(&mut frame, &b, 360, 100);
    let mut got: Vec<Vec<u8>> = decoder()
        .decode(&frame)
        .into_iter()
        .map(|d| d.bytes)
        .collect();
    got.sort();
    let mut want = vec![PAYCODE.as_bytes().to_vec(), URL.as_bytes().to_vec()];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn utf8_text_and_png_round_trip() {
    let text = "Grüße, 自販機 €2.50";
    let png = render_qr_png(text, 4).expect("png");
    assert_eq!(&png[1..4], b"PNG");
    let img = image::load_from_memory(&png)
        .expect("decode png")
        .to_luma8();
    let got = decoder().decode(&img);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text.as_deref(), Some(text));
    assert_eq!(got[0].bytes, text.as_bytes());
}

#[test]
fn render_rejects_bad_input() {
    assert!(matches!(render_qr("", 4), Err(QrError::Encode(_))));
    assert!(matches!(render_qr("x", 0), Err(QrError::ModuleSize(0))));
    assert!(matches!(render_qr("x", 65), Err(QrError::ModuleSize(65))));
    let too_long = "x".repeat(5000);
    assert!(matches!(render_qr(&too_long, 1), Err(QrError::Encode(_))));
}

#[test]
fn degenerate_frames_read_empty() {
    let mut dec = decoder();
    for (w, h) in [
        (0, 0),
        (0, 10),
        (10, 0),
        (1, 1),
        (1, 5000),
        (5000, 1),
        (39, 39),
        (41, 41),
    ] {
        assert!(dec.decode(&GrayImage::new(w, h)).is_empty(), "{w}x{h}");
    }
    for v in [0u8, 128, 255] {
        assert!(dec
            .decode(&GrayImage::from_pixel(640, 480, Luma([v])))
            .is_empty());
    }
    // larger than max_pixels: downscaled first, still empty and quick
    assert!(dec
        .decode(&GrayImage::from_pixel(4000, 3000, Luma([200])))
        .is_empty());
    let s = dec.stats();
    assert_eq!(s.frames, 12);
    assert_eq!(s.decoded, 0);
}

#[test]
fn oversized_frame_with_code_is_downscaled_and_read() {
    let code = render_qr(URL, 24).expect("render");
    let frame = on_canvas(&code, 3000, 2200, 500, 300);
    let mut dec = QrDecoder::new(QrConfig {
        max_pixels: 1_000_000,
        time_budget_ms: None,
        ..QrConfig::default()
    });
    let got = dec.decode(&frame);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, URL.as_bytes());
}

/// Deterministic xorshift noise.
fn noise_image(w: u32, h: u32, seed: u64, blocky: u32) -> GrayImage {
    let mut s = seed | 1;
    let mut cells = Vec::new();
    let (cw, ch) = (w.div_ceil(blocky.max(1)), h.div_ceil(blocky.max(1)));
    for _ in 0..(cw * ch) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        cells.push((s >> 24) as u8);
    }
    GrayImage::from_fn(w, h, |x, y| {
        let b = blocky.max(1);
        Luma([cells[((y / b) * cw + x / b) as usize]])
    })
}

#[test]
fn random_noise_frames_never_panic_and_are_bounded() {
    let mut dec = QrDecoder::new(QrConfig::default());
    for i in 0..24u64 {
        let w = 40 + (i as u32 * 37) % 600;
        let h = 40 + (i as u32 * 53) % 440;
        let img = noise_image(w, h, i + 1, 1 + (i as u32 % 9));
        let got = dec.decode(&img);
        // noise may in theory contain a valid symbol, but never garbage bytes
        // that failed error correction; an empty read is what we expect here
        assert!(got.is_empty(), "noise frame {i} read something");
    }
    assert_eq!(dec.stats().frames, 24);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn any_small_frame_decodes_without_panic(
        w in 0u32..120, h in 0u32..120, seed in any::<u64>(), block in 1u32..12
    ) {
        let img = noise_image(w, h, seed, block);
        let mut dec = QrDecoder::new(QrConfig::default());
        let got = dec.decode(&img);
        prop_assert!(got.len() <= 4);
        prop_assert_eq!(dec.stats().frames, 1);
    }
}

#[test]
fn every_pass_alone_reads_a_clean_code() {
    let code = render_qr(PAYCODE, 6).expect("render");
    let frame = on_canvas(&code, 640, 480, 120, 80);
    let mut inverted = frame.clone();
    image::imageops::invert(&mut inverted);
    for pass in Pass::ALL {
        let is_inverting = matches!(pass, Pass::Inverted | Pass::Down2Inverted);
        let (right, wrong) = if is_inverting {
            (&inverted, &frame)
        } else {
            (&frame, &inverted)
        };
        let mut dec = decoder();
        let got = dec.decode_with_pass(right, pass);
        assert_eq!(got.len(), 1, "pass {}", pass.name());
        assert_eq!(got[0].bytes, PAYCODE.as_bytes());
        let hits = dec.stats().pass_hits;
        assert!(hits.iter().any(|(n, c)| n == pass.name() && *c == 1));
        assert!(
            dec.decode_with_pass(wrong, pass).is_empty(),
            "pass {} read the wrong polarity",
            pass.name()
        );
    }
}

#[test]
fn collapse_reports_once_per_window() {
    let mut c = Collapse::new(2000);
    assert!(c.accept(1000, b"A"));
    assert!(!c.accept(1500, b"A"), "repeat within window");
    assert!(c.accept(1500, b"B"), "other payload");
    assert!(
        !c.accept(3400, b"A"),
        "refreshed at 1500, still within 2000 ms"
    );
    assert!(c.accept(5401, b"A"), "window passed since last sighting");
    assert!(!c.accept(5401, b"A"));
    assert!(c.accept(9000, b"B"), "B expired");
}

#[test]
fn collapse_with_zero_window_only_drops_same_instant() {
    let mut c = Collapse::new(0);
    assert!(c.accept(10, b"x"));
    assert!(!c.accept(10, b"x"));
    assert!(c.accept(11, b"x"));
}

#[test]
fn collapse_memory_is_bounded() {
    let mut c = Collapse::new(u64::MAX);
    for i in 0..1000u32 {
        assert!(c.accept(u64::from(i), &i.to_le_bytes()));
    }
    assert!(c.seen.len() <= COLLAPSE_CAPACITY);
    // the most recent payloads are still remembered
    assert!(!c.accept(1000, &999u32.to_le_bytes()));
}

#[test]
fn config_round_trips_through_serde() {
    let cfg = QrConfig::default();
    let json = serde_json::to_string(&cfg).expect("serialise");
    assert!(json.contains("\"down2\""));
    let back: QrConfig = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, cfg);
    let partial: QrConfig = serde_json::from_str(r#"{"passes":["local"]}"#).expect("parse");
    assert_eq!(partial.passes, vec![Pass::Local]);
    assert_eq!(partial.max_pixels, cfg.max_pixels);
}

#[test]
fn swar_pack_matches_plain_compare() {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s as u8
    };
    let wb = usize::BITS as usize;
    for round in 0..2000 {
        let len = round % (wb + 1);
        let mut px: Vec<u8> = (0..len).map(|_| next()).collect();
        let tx: Vec<u8> = (0..len).map(|_| next()).collect();
        if round % 3 == 0 {
            // equal values and the 0 / 255 extremes
            for (i, p) in px.iter_mut().enumerate() {
                *p = match i % 4 {
                    0 => tx[i],
                    1 => 0,
                    2 => 255,
                    _ => *p,
                };
            }
        }
        let want = px
            .iter()
            .zip(&tx)
            .enumerate()
            .fold(0usize, |w, (i, (p, t))| w | (usize::from(p <= t) << i));
        assert_eq!(binarize::pack_le(&px, &tx), want, "len {len}");
    }
}

#[test]
fn slow_passes_can_be_thinned_or_dropped() {
    let blank = GrayImage::from_pixel(640, 480, Luma([90]));
    let n_all = Pass::DEFAULT.len() as u64;
    let n_fast = Pass::DEFAULT.iter().filter(|p| !p.is_slow()).count() as u64;
    assert!(n_fast < n_all);
    let ungated = QrConfig {
        time_budget_ms: None,
        slow_passes_need_patterns: false,
        ..QrConfig::default()
    };

    let mut dec = QrDecoder::new(ungated.clone());
    dec.decode(&blank);
    assert_eq!(dec.stats().passes_run, n_all);

    // gated (the default): no finder pattern anywhere, so no slow pass
    let mut gated = decoder();
    gated.decode(&blank);
    let s = gated.stats();
    assert_eq!(s.passes_run, n_fast);
    assert_eq!(s.slow_skipped, n_all - n_fast);

    let mut fast = QrDecoder::new(QrConfig {
        time_budget_ms: None,
        ..QrConfig::fast()
    });
    fast.decode(&blank);
    assert_eq!(fast.stats().passes_run, n_fast);

    let mut every2 = QrDecoder::new(QrConfig {
        slow_pass_every: 2,
        ..ungated
    });
    every2.decode(&blank);
    assert_eq!(
        every2.stats().passes_run,
        n_fast,
        "frame 1: cheap passes only"
    );
    every2.decode(&blank);
    assert_eq!(
        every2.stats().passes_run,
        n_fast + n_all,
        "frame 2: all passes"
    );

    // a clean code is read by the fast preset too
    let code = render_qr(URL, 4).expect("render");
    let got = fast.decode(&on_canvas(&code, 640, 480, 200, 100));
    assert_eq!(got.len(), 1);
}

#[test]
fn decoded_debug_does_not_show_the_payload() {
    let d = Decoded {
        bytes: PAYCODE.as_bytes().to_vec(),
        text: Some(PAYCODE.to_string()),
    };
    let shown = format!("{d:?}");
    assert!(!shown.contains(PAYCODE), "{shown}");
    assert!(shown.contains("18 bytes"), "{shown}");
}
