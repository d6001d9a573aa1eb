//! Face pipeline benchmark (issue "Benchmark: our full pipeline versus onnxruntime").
//!
//! A shopper steps up to the machine: `--frames` (default 90, 6 s at 15 fps) 640×480
//! frames rendered from a real photo (`obama.jpg` of `../shared/data/faces`, see
//! `face::stream::synth::shopper_frame`: approach from 70 to 170 px face width, sway, a head
//! turn to 25° and back, sensor noise), matched against a gallery of 10,000 random unit
//! vectors plus the same person enrolled from another photo (`obama2.jpg`).
//!
//! Timed, single-threaded (tract runs on the calling thread; nothing here spawns threads),
//! each frame `--repeat` times (default 3), the per-frame median kept:
//!
//! * **every step, every frame** at the configured detector size, and at 640×480:
//!   detect (letterbox, YuNet, decode, NMS) → align the largest face (112×112 warp) →
//!   embed (SFace) → match against the 10,001 identities;
//! * **the stream** (`face::stream::FaceStream` with `StreamConfig::default()`): full
//!   detection every `full_every` frames, regions of interest in between, quality gate on
//!   every face, embedding only when the policy asks, and a match for each new embedding.
//!
//! Prints a table (per-step mean ms per frame) and the peak RSS (`VmHWM`) after loading the
//! models and the gallery. `benches/face_compare.py` runs this with `--dump DIR --json
//! FILE` and then runs the same steps with onnxruntime on the dumped frames, in the same
//! run, and prints the ratios side by side.
//!
//! `cargo bench --bench face_pipeline -- [--frames N] [--repeat R] [--dump DIR]
//! [--json FILE] [--models DIR] [--faces DIR]`
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde_json::json;
use vendd::face::align::align_112;
use vendd::face::matcher::{normalize, MatchDecision, Matcher, EMBEDDING_DIM};
use vendd::face::model::ModelPaths;
use vendd::face::pipeline::{to_face, FaceConfig, FaceEngine};
use vendd::face::stream::{synth::shopper_frame, FaceStream, StreamConfig};

const FRAME_MS: u64 = 66;
const GALLERY: usize = 10_000;

type BoxError = Box<dyn std::error::Error>;

fn vm_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    s[((s.len() - 1) as f64 * p).round() as usize]
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

const STEPS: [&str; 4] = ["detect", "align", "embed", "match"];

/// Every step on every frame; per frame the median over `repeat` of each step's ms.
/// Returns (per-step per-frame ms, frames with a face, matched frames).
fn every_step(
    engine: &FaceEngine,
    gallery: &Matcher,
    frames: &[image::RgbImage],
    repeat: usize,
) -> Result<(Vec<Vec<f64>>, usize, usize), BoxError> {
    let mut per_step = vec![vec![0.0; frames.len()]; STEPS.len()];
    let (mut with_face, mut matched) = (0, 0);
    for (i, frame) in frames.iter().enumerate() {
        let mut runs = vec![Vec::with_capacity(repeat); STEPS.len()];
        for r in 0..repeat {
            let t = Instant::now();
            let boxes = engine.detect_boxes(frame)?;
            runs[0].push(ms(t));
            let Some(b) = boxes
                .iter()
                .max_by(|a, b| (a.w * a.h).total_cmp(&(b.w * b.h)))
            else {
                runs[1].push(0.0);
                runs[2].push(0.0);
                runs[3].push(0.0);
                continue;
            };
            let t = Instant::now();
            let aligned = align_112(frame, &to_face(b).landmarks);
            runs[1].push(ms(t));
            let t = Instant::now();
            let e = engine.embed_aligned(&aligned)?;
            runs[2].push(ms(t));
            let t = Instant::now();
            let d = engine.decide(gallery, &e);
            runs[3].push(ms(t));
            if r == 0 {
                with_face += 1;
                matched += usize::from(matches!(d, MatchDecision::Match { .. }));
            }
        }
        for (s, run) in runs.iter_mut().enumerate() {
            per_step[s][i] = median(run);
        }
    }
    Ok((per_step, with_face, matched))
}

/// The stream over the sequence, `repeat` times from a fresh stream; per frame the median
/// ms of `process` + matching each new embedding.
fn stream_runs(
    engine: &FaceEngine,
    gallery: &Matcher,
    frames: &[image::RgbImage],
    repeat: usize,
    cfg: &StreamConfig,
) -> Result<(Vec<f64>, serde_json::Value), BoxError> {
    let mut times = vec![Vec::with_capacity(repeat); frames.len()];
    let mut summary = json!({});
    for r in 0..repeat {
        let mut stream = FaceStream::new(cfg.clone());
        let (mut matched_frames, mut with_face, mut decisions) = (0usize, 0usize, 0usize);
        let mut first_match_frame = None;
        let mut identified = false;
        for (i, frame) in frames.iter().enumerate() {
            let t = Instant::now();
            let out = stream.process(engine, frame, i as u64 * FRAME_MS)?;
            for tr in out.iter().filter(|t| t.embedded_now) {
                if let Some(e) = &tr.embedding {
                    decisions += 1;
                    if matches!(engine.decide(gallery, e), MatchDecision::Match { .. }) {
                        identified = true;
                        first_match_frame.get_or_insert(i);
                    }
                }
            }
            times[i].push(ms(t));
            with_face += usize::from(!out.is_empty());
            matched_frames += usize::from(identified && !out.is_empty());
        }
        if r == 0 {
            summary = json!({
                "stats": stream.stats(),
                "frames_with_face": with_face,
                "match_decisions": decisions,
                "first_match_frame": first_match_frame,
                "frames_identified": matched_frames,
            });
        }
    }
    Ok((times.iter_mut().map(|v| median(v)).collect(), summary))
}

struct Args {
    frames: u32,
    repeat: usize,
    dump: Option<PathBuf>,
    json: Option<PathBuf>,
    models: PathBuf,
    faces: PathBuf,
    face: FaceConfig,
    stream: StreamConfig,
}

fn args() -> Args {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        frames: 90,
        repeat: 3,
        dump: None,
        json: None,
        models: std::env::var_os("VENDD_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("models/cache")),
        faces: std::env::var_os("VENDD_FACES_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../shared/data/faces")),
        face: FaceConfig::default(),
        stream: StreamConfig::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        // `cargo bench` adds `--bench`; unknown flags are ignored.
        match k.as_str() {
            "--frames" => a.frames = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.frames),
            "--repeat" => a.repeat = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.repeat),
            "--dump" => a.dump = it.next().map(PathBuf::from),
            "--json" => a.json = it.next().map(PathBuf::from),
            "--models" => a.models = it.next().map(PathBuf::from).unwrap_or(a.models),
            "--faces" => a.faces = it.next().map(PathBuf::from).unwrap_or(a.faces),
            // overrides of the defaults, for exploring settings
            "--detect" => {
                let v = it.next().unwrap_or_default();
                if let Some((w, h)) = v.split_once('x') {
                    a.face.detect_width = w.parse().unwrap_or(a.face.detect_width);
                    a.face.detect_height = h.parse().unwrap_or(a.face.detect_height);
                }
            }
            "--roi-size" => {
                a.face.roi_size = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            "--roi-scale" => {
                a.face.roi_scale = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.face.roi_scale);
            }
            "--full-every" => {
                a.stream.full_every = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.stream.full_every);
            }
            _ => {}
        }
    }
    a.repeat = a.repeat.max(1);
    a
}

fn step_json(per_step: &[Vec<f64>]) -> serde_json::Value {
    let total: Vec<f64> = (0..per_step[0].len())
        .map(|i| per_step.iter().map(|s| s[i]).sum())
        .collect();
    let mut m = serde_json::Map::new();
    for (name, s) in STEPS.iter().zip(per_step) {
        m.insert((*name).into(), json!(mean(s)));
    }
    json!({
        "steps_mean_ms": m,
        "total_mean_ms": mean(&total),
        "total_p50_ms": percentile(&total, 0.5),
        "total_p95_ms": percentile(&total, 0.95),
        "per_frame_ms": total,
    })
}

fn main() -> Result<(), BoxError> {
    let a = args();
    let paths = ModelPaths::from_dir(&a.models)?;
    for p in [&paths.yunet, &paths.sface] {
        if !p.is_file() {
            eprintln!(
                "face_pipeline: {} is absent; run scripts/models.sh (or set VENDD_MODELS_DIR)",
                p.display()
            );
            std::process::exit(2);
        }
    }
    let hwm_start = vm_kb("VmHWM:").unwrap_or(0);
    let cfg = a.face.clone();
    let t = Instant::now();
    let engine = FaceEngine::load(&paths, cfg.clone())?;
    let load_ms = ms(t);

    // The gallery: 10,000 random identities and the shopper, enrolled from another photo.
    let photo = image::open(a.faces.join("obama.jpg"))?.to_rgb8();
    let enrol = image::open(a.faces.join("obama2.jpg"))?.to_rgb8();
    let seen = engine.detect(&enrol)?;
    let first = seen.first().ok_or("no face in obama2.jpg")?;
    let enrolled = engine.embed(&enrol, &first.face)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut gallery = Matcher::with_capacity(GALLERY + 1);
    let mut rows: Vec<f32> = Vec::with_capacity((GALLERY + 1) * EMBEDDING_DIM);
    for i in 0..GALLERY {
        let mut v = [0f32; EMBEDDING_DIM];
        v.iter_mut().for_each(|x| *x = rng.gen_range(-1.0..1.0));
        normalize(&mut v);
        gallery.insert(&format!("id{i:05}"), &v);
        rows.extend_from_slice(&v);
    }
    gallery.insert("obama", &enrolled);
    rows.extend_from_slice(&enrolled);
    drop((enrol, seen));
    let hwm_loaded = vm_kb("VmHWM:").unwrap_or(0);
    let rss_loaded = vm_kb("VmRSS:").unwrap_or(0);

    // The sequence.
    let face = engine
        .detect(&photo)?
        .first()
        .map(|s| s.face)
        .ok_or("no face in obama.jpg")?;
    let frames: Vec<image::RgbImage> = (0..a.frames)
        .map(|i| shopper_frame(&photo, &face, i, a.frames))
        .collect();
    if let Some(dir) = &a.dump {
        std::fs::create_dir_all(dir)?;
        for (i, f) in frames.iter().enumerate() {
            std::fs::write(dir.join(format!("frame{i:04}.rgb")), f.as_raw())?;
        }
        let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join("gallery.f32"), bytes)?;
        let meta = json!({
            "frames": frames.len(), "width": 640, "height": 480, "frame_ms": FRAME_MS,
            "detect_width": cfg.detect_width, "detect_height": cfg.detect_height,
            "score_threshold": cfg.score_threshold, "nms_iou": cfg.nms_iou,
            "threshold": cfg.matching.threshold, "margin": cfg.matching.margin,
            "gallery": GALLERY + 1, "enrolled_index": GALLERY,
        });
        std::fs::write(dir.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    }

    // Warm-up, then the three runs.
    for f in frames.iter().take(3) {
        let b = engine.detect_boxes(f)?;
        if let Some(b) = b.first() {
            let e = engine.embed(f, &to_face(b))?;
            engine.decide(&gallery, &e);
        }
    }
    let (configured, cfg_face, cfg_matched) = every_step(&engine, &gallery, &frames, a.repeat)?;
    let stream_cfg = a.stream.clone();
    let (stream, stream_summary) = stream_runs(&engine, &gallery, &frames, a.repeat, &stream_cfg)?;
    let hwm_end = vm_kb("VmHWM:").unwrap_or(0);

    // The same steps at 640×480 (another engine, loaded after the RSS reading).
    let full_cfg = FaceConfig {
        detect_width: 640,
        detect_height: 480,
        roi_size: 0,
        ..cfg.clone()
    };
    let engine640 = FaceEngine::load(&paths, full_cfg)?;
    let (full, full_face, full_matched) = every_step(&engine640, &gallery, &frames, a.repeat)?;

    let n = frames.len() as f64;
    let result = json!({
        "frames": frames.len(),
        "repeat": a.repeat,
        "config": {
            "detect": format!("{}x{}", cfg.detect_width, cfg.detect_height),
            "roi_size": cfg.roi_size, "roi_scale": cfg.roi_scale,
            "full_every": stream_cfg.full_every, "roi": stream_cfg.roi,
            "reembed_ms": stream_cfg.reembed_ms,
            "max_embeds_per_track": stream_cfg.max_embeds_per_track,
        },
        "load_ms": load_ms,
        "rss_kb": {"hwm_at_start": hwm_start, "hwm_models_and_gallery": hwm_loaded,
                   "rss_models_and_gallery": rss_loaded, "hwm_end_of_stream_runs": hwm_end},
        "every_step_configured": step_json(&configured),
        "every_step_640x480": step_json(&full),
        "faces": {"configured": cfg_face, "configured_matched": cfg_matched,
                  "640x480": full_face, "640x480_matched": full_matched},
        "stream": {
            "total_mean_ms": mean(&stream), "total_p50_ms": percentile(&stream, 0.5),
            "total_p95_ms": percentile(&stream, 0.95),
            "total_max_ms": percentile(&stream, 1.0),
            "per_frame_ms": stream, "summary": stream_summary,
        },
    });

    println!(
        "face pipeline, tract, single thread: {} frames 640x480 ({} ms apart), median of {} runs per frame, gallery {} identities",
        n, FRAME_MS, a.repeat, GALLERY + 1
    );
    println!(
        "models loaded in {load_ms:.0} ms; peak RSS (VmHWM) after models + gallery {:.1} MB (at start {:.1} MB, after the stream runs {:.1} MB)",
        hwm_loaded as f64 / 1024.0,
        hwm_start as f64 / 1024.0,
        hwm_end as f64 / 1024.0
    );
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}",
        "mean ms per frame", "detect", "align", "embed", "match", "total", "p50", "p95"
    );
    for (name, r) in [
        (
            format!("every step {}x{}", cfg.detect_width, cfg.detect_height),
            &result["every_step_configured"],
        ),
        (
            "every step 640x480".to_string(),
            &result["every_step_640x480"],
        ),
    ] {
        let s = &r["steps_mean_ms"];
        println!(
            "{:<34} {:>8.2} {:>8.2} {:>8.2} {:>8.3} {:>9.2} {:>8.2} {:>8.2}",
            name,
            s["detect"].as_f64().unwrap_or(0.0),
            s["align"].as_f64().unwrap_or(0.0),
            s["embed"].as_f64().unwrap_or(0.0),
            s["match"].as_f64().unwrap_or(0.0),
            r["total_mean_ms"].as_f64().unwrap_or(0.0),
            r["total_p50_ms"].as_f64().unwrap_or(0.0),
            r["total_p95_ms"].as_f64().unwrap_or(0.0),
        );
    }
    let st = &result["stream"];
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>9.2} {:>8.2} {:>8.2}",
        "stream (track, ROI, skip)",
        "",
        "",
        "",
        "",
        st["total_mean_ms"].as_f64().unwrap_or(0.0),
        st["total_p50_ms"].as_f64().unwrap_or(0.0),
        st["total_p95_ms"].as_f64().unwrap_or(0.0),
    );
    println!("stream: {}", st["summary"]);
    println!(
        "faces found / matched, every step: {cfg_face}/{cfg_matched} ({}x{}), {full_face}/{full_matched} (640x480) of {} frames",
        cfg.detect_width, cfg.detect_height, n
    );
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_vec_pretty(&result)?)?;
    }
    Ok(())
}
