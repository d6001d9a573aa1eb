//! QR decoder benchmark on the corpus in `../shared/data/qr` (or `--data DIR`).
//!
//! Decodes every synthetic frame and every real photo with a ground truth, one
//! after another on this single thread, and measures each `QrDecoder::decode`
//! call with `CLOCK_THREAD_CPUTIME_ID` (CPU time of this thread only; image
//! loading is outside the timed region). A read counts when some decoded
//! payload equals the ground truth bytes.
//!
//! `--fast` uses `QrConfig::fast()` instead of the default configuration;
//! `--repeat N` decodes each frame N times and keeps the least CPU time
//! (robust against other load on the machine; the decoder is deterministic,
//! so every repeat reads the same).
//!
//! Prints a per-class table, or with `--json` one JSON document (per class:
//! n, read, rate, median_ms, mean_ms; plus every frame) for
//! `benches/qr_compare.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vendd::qr::{QrConfig, QrDecoder};

/// CPU time of the calling thread, in milliseconds.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

#[path = "support/qr_csv.rs"]
mod qr_csv;
use qr_csv::{csv_fields, hex_bytes};

/// (key, class, truth bytes, image path).
type Frame = (String, String, Vec<u8>, PathBuf);

/// Every frame with a ground truth, in the order qr_compare.py uses.
fn frames(data: &Path) -> Result<Vec<Frame>, String> {
    let mut out = Vec::new();
    let synth = data.join("synth");
    let text = std::fs::read_to_string(synth.join("ground_truth.csv"))
        .map_err(|e| format!("{}: {e}", synth.display()))?;
    let mut lines = text.lines();
    let head = csv_fields(lines.next().unwrap_or_default());
    let col = |name: &str| head.iter().position(|h| h == name);
    let (fi, ci, pi) = match (col("file"), col("cls"), col("payload")) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => return Err("synth/ground_truth.csv: missing columns".into()),
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let f = csv_fields(line);
        if let (Some(file), Some(cls), Some(p)) = (f.get(fi), f.get(ci), f.get(pi)) {
            out.push((
                format!("synth/{file}"),
                cls.clone(),
                p.as_bytes().to_vec(),
                synth.join(file),
            ));
        }
    }
    let real = data.join("real");
    if let Ok(text) = std::fs::read_to_string(real.join("ground_truth.csv")) {
        let mut lines = text.lines();
        let head = csv_fields(lines.next().unwrap_or_default());
        let col = |name: &str| head.iter().position(|h| h == name);
        if let (Some(pi), Some(si), Some(ti)) = (col("path"), col("set"), col("truth_hex")) {
            for line in lines.filter(|l| !l.is_empty()) {
                let f = csv_fields(line);
                if let (Some(path), Some(set), Some(hex)) = (f.get(pi), f.get(si), f.get(ti)) {
                    if let (false, Some(truth)) = (hex.is_empty(), hex_bytes(hex)) {
                        out.push((
                            format!("real/{path}"),
                            format!("real-{set}"),
                            truth,
                            real.join(path),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn main() {
    let mut json = false;
    let mut fast = false;
    let mut repeat = 1usize;
    let mut data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/qr");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--fast" => fast = true,
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1)
                    .clamp(1, 100);
            }
            "--data" => {
                if let Some(d) = args.next() {
                    data = PathBuf::from(d);
                }
            }
            _ => {} // cargo bench passes --bench
        }
    }
    let frames = match frames(&data) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("qr_decode: no QR corpus ({e}); skipping");
            if json {
                println!("{{\"frames\":[],\"classes\":{{}}}}");
            }
            return;
        }
    };
    let mut dec = QrDecoder::new(if fast {
        QrConfig::fast()
    } else {
        QrConfig::default()
    });
    let mut per_frame = Vec::new();
    let mut by_class: BTreeMap<String, Vec<(bool, f64)>> = BTreeMap::new();
    for (key, cls, truth, path) in &frames {
        let img = match image::open(path) {
            Ok(i) => i.to_luma8(),
            Err(e) => {
                eprintln!("qr_decode: {}: {e}", path.display());
                continue;
            }
        };
        // min over `repeat` decodes: robust against other load on the machine
        let mut ms = f64::INFINITY;
        let mut ok = false;
        let mut pass = String::new();
        for _ in 0..repeat {
            let before = dec.stats().pass_hits;
            let t0 = thread_cpu_ms();
            let got = dec.decode(&img);
            ms = ms.min(thread_cpu_ms() - t0);
            ok = got.iter().any(|d| &d.bytes == truth);
            // the pass that read this frame (none when nothing was read)
            pass = dec
                .stats()
                .pass_hits
                .into_iter()
                .zip(before)
                .find(|(a, b)| a.1 != b.1)
                .map(|(a, _)| a.0)
                .unwrap_or_default();
        }
        per_frame
            .push(serde_json::json!({"file": key, "cls": cls, "ok": ok, "ms": ms, "pass": pass}));
        by_class.entry(cls.clone()).or_default().push((ok, ms));
        let group = if cls.starts_with("real-") {
            "ALL real"
        } else {
            "ALL synth"
        };
        by_class
            .entry(group.to_string())
            .or_default()
            .push((ok, ms));
    }
    let mut classes = serde_json::Map::new();
    for (cls, v) in &by_class {
        let n = v.len();
        let read = v.iter().filter(|x| x.0).count();
        let mut ms: Vec<f64> = v.iter().map(|x| x.1).collect();
        ms.sort_by(f64::total_cmp);
        let median = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        let mean = ms.iter().sum::<f64>() / n.max(1) as f64;
        classes.insert(
            cls.clone(),
            serde_json::json!({"n": n, "read": read, "rate": read as f64 / n.max(1) as f64,
                "median_ms": median, "mean_ms": mean}),
        );
    }
    let stats = dec.stats();
    if json {
        let doc = serde_json::json!({
            "decoder": format!("vendd::qr (rxing 0.9.3 cpp_port detector; passes {:?})",
                dec.config().passes.iter().map(|p| p.name()).collect::<Vec<_>>()),
            "timing": format!("CLOCK_THREAD_CPUTIME_ID per decode() call, one thread, min of {repeat}"),
            "classes": classes,
            "stats": {"frames": stats.frames, "decoded": stats.decoded, "panics": stats.panics,
                "budget_exhausted": stats.budget_exhausted, "pass_hits": stats.pass_hits},
            "frames": per_frame,
        });
        println!("{doc}");
    } else {
        println!(
            "{:<16}{:>5}{:>6}{:>8}{:>11}{:>9}",
            "class", "n", "read", "rate", "median ms", "mean ms"
        );
        for (cls, v) in &classes {
            println!(
                "{:<16}{:>5}{:>6}{:>7.1}%{:>11.3}{:>9.3}",
                cls,
                v["n"].as_u64().unwrap_or(0),
                v["read"].as_u64().unwrap_or(0),
                v["rate"].as_f64().unwrap_or(0.0) * 100.0,
                v["median_ms"].as_f64().unwrap_or(0.0),
                v["mean_ms"].as_f64().unwrap_or(0.0)
            );
        }
        println!(
            "panics caught: {}; pass hits: {:?}",
            stats.panics, stats.pass_hits
        );
    }
}
