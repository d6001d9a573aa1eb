//! The face models in tract against onnxruntime, and the detect → align → embed pipeline on
//! real photos.
//!
//! Needs the models (`scripts/models.sh`, into `models/cache/` or `$VENDD_MODELS_DIR`) and
//! the test photos (`../shared/data/faces/` or `$VENDD_FACES_DIR`); the onnxruntime
//! comparison also needs `python3` with `onnxruntime` and `numpy` (`$VENDD_PYTHON` picks
//! another interpreter). Each test says plainly on stderr when it skips for lack of them.

use std::path::{Path, PathBuf};
use std::process::Command;

use vendd::face::model::{
    cosine_similarity, detect_faces, sface_input, yunet_input, Detector, Embedder, FaceBox,
    ModelError, ModelPaths, EMBEDDING_LEN,
};

/// Outputs must agree with onnxruntime within this (absolute).
const TOLERANCE: f32 = 1e-4;
const SCORE: f32 = 0.7;
const NMS_IOU: f32 = 0.3;

pub(crate) fn models_dir() -> PathBuf {
    std::env::var_os("VENDD_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache"))
}

pub(crate) fn faces_dir() -> PathBuf {
    std::env::var_os("VENDD_FACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/faces"))
}

/// The model paths, or `None` (with a message) when the models are not fetched.
pub(crate) fn models_or_skip(test: &str) -> Option<ModelPaths> {
    let dir = models_dir();
    let paths = ModelPaths::from_dir(&dir).expect("manifest names both models");
    for p in [&paths.yunet, &paths.sface] {
        if !p.is_file() {
            eprintln!(
                "SKIP {test}: model {} is absent (run scripts/models.sh or set VENDD_MODELS_DIR)",
                p.display()
            );
            return None;
        }
    }
    Some(paths)
}

const PHOTOS: [&str; 6] = [
    "obama.jpg",
    "obama2.jpg",
    "biden.jpg",
    "t1.jpg",
    "astronaut.png",
    "Tom_Hanks_54745.png",
];

/// The test photos, or `None` (with a message) when any is absent.
fn photos_or_skip(test: &str) -> Option<Vec<(String, image::RgbImage)>> {
    let dir = faces_dir();
    let mut out = Vec::new();
    for name in PHOTOS {
        let p = dir.join(name);
        if !p.is_file() {
            eprintln!(
                "SKIP {test}: photo {} is absent (set VENDD_FACES_DIR)",
                p.display()
            );
            return None;
        }
        let img = image::open(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .to_rgb8();
        out.push((name.to_string(), img));
    }
    Some(out)
}

fn python() -> String {
    std::env::var("VENDD_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// `true` when `python3 -c "import onnxruntime, numpy, onnx"` works.
fn onnxruntime_or_skip(test: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", "import onnxruntime, numpy, onnx"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIP {test}: python3 with onnxruntime, numpy and onnx is not installed \
             (pip install onnxruntime onnx; or set VENDD_PYTHON)"
        );
    }
    ok
}

/// Runs `model` in onnxruntime on `input` and returns its outputs `(name, values)`, or
/// `None` when the script says it cannot (exit code 3; its reason is printed).
fn ort_reference(
    model: &Path,
    input: &[f32],
    shape: [usize; 4],
) -> Option<Vec<(String, Vec<f32>)>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let inp = dir.path().join("input.f32");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&inp, bytes).expect("write input");
    let out = dir.path().join("out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ort_reference.py");
    let shape_arg = shape.map(|d| d.to_string()).join(",");
    let res = Command::new(python())
        .arg(&script)
        .arg(model)
        .arg(&inp)
        .arg(&shape_arg)
        .arg(&out)
        .output()
        .expect("run ort_reference.py");
    if res.status.code() == Some(3) {
        eprintln!(
            "SKIP part: onnxruntime reference for {shape_arg}: {}",
            String::from_utf8_lossy(&res.stderr).trim()
        );
        return None;
    }
    assert!(
        res.status.success(),
        "ort_reference.py failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let names = std::fs::read_to_string(out.join("outputs.txt")).expect("outputs.txt");
    let outputs = names
        .lines()
        .filter(|l| !l.is_empty())
        .map(|n| {
            let raw = std::fs::read(out.join(format!("{n}.f32"))).expect("output file");
            let v = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n.to_string(), v)
        })
        .collect();
    Some(outputs)
}

/// Largest absolute difference between two tensors.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "tensor sizes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

// ---- a simple similarity alignment onto the ArcFace 112×112 template -------------------

const TEMPLATE: [(f32, f32); 5] = [
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
];

/// Least-squares similarity (rotation, uniform scale, translation) from the landmarks onto
/// the template, then bilinear inverse warping with a black border (like `warpAffine`).
fn align(img: &image::RgbImage, face: &FaceBox) -> image::RgbImage {
    let n = 5.0f64;
    let (mut msx, mut msy, mut mdx, mut mdy) = (0f64, 0f64, 0f64, 0f64);
    for (s, d) in face.landmarks.iter().zip(TEMPLATE) {
        msx += f64::from(s.0) / n;
        msy += f64::from(s.1) / n;
        mdx += f64::from(d.0) / n;
        mdy += f64::from(d.1) / n;
    }
    let (mut num_a, mut num_b, mut den) = (0f64, 0f64, 0f64);
    for (s, d) in face.landmarks.iter().zip(TEMPLATE) {
        let (sx, sy) = (f64::from(s.0) - msx, f64::from(s.1) - msy);
        let (dx, dy) = (f64::from(d.0) - mdx, f64::from(d.1) - mdy);
        num_a += sx * dx + sy * dy;
        num_b += sx * dy - sy * dx;
        den += sx * sx + sy * sy;
    }
    let (a, b) = (num_a / den, num_b / den);
    let tx = mdx - (a * msx - b * msy);
    let ty = mdy - (b * msx + a * msy);
    let det = a * a + b * b;
    let (w, h) = img.dimensions();
    image::RgbImage::from_fn(112, 112, |u, v| {
        let (px, py) = (f64::from(u) - tx, f64::from(v) - ty);
        let x = (a * px + b * py) / det;
        let y = (-b * px + a * py) / det;
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let mut acc = [0f64; 3];
        for (dx, dy, wgt) in [
            (0, 0, (1.0 - fx) * (1.0 - fy)),
            (1, 0, fx * (1.0 - fy)),
            (0, 1, (1.0 - fx) * fy),
            (1, 1, fx * fy),
        ] {
            let (xi, yi) = (x0 as i64 + dx, y0 as i64 + dy);
            if xi >= 0 && yi >= 0 && (xi as u32) < w && (yi as u32) < h {
                let p = img.get_pixel(xi as u32, yi as u32);
                for (a, c) in acc.iter_mut().zip(p.0) {
                    *a += wgt * f64::from(c);
                }
            }
        }
        image::Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
    })
}

/// The photo's main face aligned to 112×112: the best detection, or the photo itself when
/// it already is a 112×112 aligned crop (Tom_Hanks_54745.png from insightface).
fn aligned_face(det: &Detector, img: &image::RgbImage) -> Option<image::RgbImage> {
    let faces = detect_faces(det, img, SCORE, NMS_IOU).expect("detect");
    match faces.first() {
        Some(f) => Some(align(img, f)),
        None if img.dimensions() == (112, 112) => Some(img.clone()),
        None => None,
    }
}

// ---- tests ------------------------------------------------------------------------------

#[test]
fn tract_matches_onnxruntime_on_real_photos() {
    let test = "tract_matches_onnxruntime_on_real_photos";
    let (Some(paths), Some(photos)) = (models_or_skip(test), photos_or_skip(test)) else {
        return;
    };
    if !onnxruntime_or_skip(test) {
        return;
    }
    let detectors = [(640, 640), (640, 480), (320, 256)]
        .map(|(w, h)| Detector::load(&paths.yunet, w, h).expect("load YuNet"));
    let emb = Embedder::load(&paths.sface).expect("load SFace");
    let mut compared = 0;
    for (name, img) in &photos {
        for det in &detectors {
            let (input, _) = yunet_input(det, img);
            let shape = [1, 3, det.height() as usize, det.width() as usize];
            let ours = det.infer(&input).expect("tract YuNet");
            let Some(reference) = ort_reference(&paths.yunet, &input, shape) else {
                continue;
            };
            assert_eq!(ours.len(), reference.len());
            let mut worst = 0f32;
            for ((n, _, v), (rn, rv)) in ours.iter().zip(&reference) {
                assert_eq!(n, rn, "output order");
                let d = max_abs_diff(v, rv);
                assert!(
                    d <= TOLERANCE,
                    "{name}: YuNet {}×{} output {n} differs by {d}",
                    det.width(),
                    det.height()
                );
                worst = worst.max(d);
            }
            compared += 1;
            eprintln!(
                "{name}: YuNet {}×{} max abs diff vs onnxruntime {worst:.2e}",
                det.width(),
                det.height()
            );
        }
        let Some(face) = aligned_face(&detectors[1], img) else {
            panic!("{name}: no face found");
        };
        let input = sface_input(&face);
        let ours = emb.embed(&input).expect("tract SFace");
        let reference =
            ort_reference(&paths.sface, &input, [1, 3, 112, 112]).expect("SFace reference");
        assert_eq!(reference.len(), 1);
        assert_eq!(reference[0].1.len(), EMBEDDING_LEN);
        let d = max_abs_diff(&ours, &reference[0].1);
        eprintln!("{name}: SFace max abs diff vs onnxruntime {d:.2e}");
        assert!(d <= TOLERANCE, "{name}: SFace differs by {d}");
    }
    // at least the stored 640×640 size needs nothing but onnxruntime
    assert!(
        compared >= photos.len(),
        "YuNet was compared on too few inputs"
    );
}

#[test]
fn changed_or_missing_model_gives_a_clear_error() {
    let test = "changed_or_missing_model_gives_a_clear_error";
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing.onnx");
    match Detector::load(&missing, 640, 480) {
        Err(e @ ModelError::Missing { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("nothing.onnx") && msg.contains("missing"),
                "{msg}"
            );
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    let Some(paths) = models_or_skip(test) else {
        return;
    };
    let mut bytes = std::fs::read(&paths.sface).expect("read SFace");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let changed = dir.path().join("sface.onnx");
    std::fs::write(&changed, &bytes).expect("write copy");
    match Embedder::load(&changed) {
        Err(e @ ModelError::Checksum { .. }) => {
            let msg = e.to_string();
            let expected = vendd::face::model::manifest_entry("sface")
                .expect("entry")
                .sha256;
            assert!(
                msg.contains("sface.onnx") && msg.contains(&expected),
                "{msg}"
            );
            eprintln!("changed model: {msg}");
        }
        other => panic!("expected Checksum, got {other:?}"),
    }
    // the detector file given to the embedder is the wrong model: also refused
    assert!(matches!(
        Embedder::load(&paths.yunet),
        Err(ModelError::Checksum { .. })
    ));
    // a detector size that is not a multiple of 32
    assert!(matches!(
        Detector::load(&paths.yunet, 320, 240),
        Err(ModelError::Shape(_))
    ));
}

#[test]
fn detect_and_embed_separates_people() {
    let test = "detect_and_embed_separates_people";
    let (Some(paths), Some(photos)) = (models_or_skip(test), photos_or_skip(test)) else {
        return;
    };
    let det = Detector::load(&paths.yunet, 640, 480).expect("load YuNet");
    let emb = Embedder::load(&paths.sface).expect("load SFace");
    let photo = |n: &str| {
        &photos
            .iter()
            .find(|(name, _)| name == n)
            .expect("photo loaded")
            .1
    };

    let group = detect_faces(&det, photo("t1.jpg"), SCORE, NMS_IOU).expect("detect");
    for f in &group {
        eprintln!(
            "t1.jpg face at ({:.0},{:.0}) {:.0}×{:.0} score {:.3}",
            f.x, f.y, f.w, f.h, f.score
        );
    }
    assert_eq!(group.len(), 6, "t1.jpg shows 6 faces");

    // one identity per photo; obama and obama2 are the same person
    let people = [
        ("obama.jpg", "obama"),
        ("obama2.jpg", "obama"),
        ("biden.jpg", "biden"),
        ("astronaut.png", "collins"),
        ("Tom_Hanks_54745.png", "hanks"),
    ];
    let mut rgb = Vec::new();
    let mut bgr = Vec::new();
    for (file, who) in people {
        let face = aligned_face(&det, photo(file)).unwrap_or_else(|| panic!("{file}: no face"));
        let input = sface_input(&face);
        rgb.push((file, who, emb.embed(&input).expect("embed")));
        // diagnostic only: the same crop with the planes in B, G, R order
        let plane = 112 * 112;
        let mut swapped = input.clone();
        swapped[..plane].copy_from_slice(&input[2 * plane..]);
        swapped[2 * plane..].copy_from_slice(&input[..plane]);
        bgr.push(emb.embed(&swapped).expect("embed"));
    }
    for i in 0..rgb.len() {
        for j in i + 1..rgb.len() {
            let (fa, wa, ea) = &rgb[i];
            let (fb, wb, eb) = &rgb[j];
            let cos = cosine_similarity(ea, eb);
            let cos_bgr = cosine_similarity(&bgr[i], &bgr[j]);
            eprintln!("{fa} vs {fb}: cosine {cos:.3} (BGR planes: {cos_bgr:.3})");
            if wa == wb {
                assert!(cos >= 0.6, "{fa} and {fb} are the same person: {cos}");
            } else {
                assert!(cos < 0.4, "{fa} and {fb} are different people: {cos}");
            }
        }
    }
}

/// The daemon's pipeline (`vendd::face::pipeline`) with its default configuration: the
/// gallery's threshold and margin decide, over the real photos, that the second Obama photo
/// is Obama and that nobody else is anybody else.
#[test]
fn the_configured_pipeline_matches_the_same_person_and_nobody_else() {
    use vendd::face::matcher::{cosine, MatchDecision, Matcher};
    use vendd::face::pipeline::{FaceConfig, FaceEngine};
    let test = "the_configured_pipeline_matches_the_same_person_and_nobody_else";
    let Some(paths) = models_or_skip(test) else {
        return;
    };
    let Some(photos) = photos_or_skip(test) else {
        return;
    };
    let engine = FaceEngine::load(&paths, FaceConfig::default()).expect("models load");
    let threshold = engine.config().matching.threshold;
    let mut people: Vec<(String, [f32; 128])> = Vec::new();
    for (name, img) in &photos {
        if name.starts_with("Tom_Hanks") {
            // Already an aligned 112×112 crop.
            people.push((name.clone(), engine.embed_aligned(img).unwrap()));
            continue;
        }
        let seen = engine.detect(img).expect("detector runs");
        if name == "t1.jpg" {
            assert_eq!(seen.len(), 6, "the group photo holds six faces");
            for (i, s) in seen.iter().enumerate() {
                people.push((format!("t1#{i}"), engine.embed(img, &s.face).unwrap()));
            }
        } else {
            assert!(!seen.is_empty(), "no face found in {name}");
            people.push((name.clone(), engine.embed(img, &seen[0].face).unwrap()));
        }
    }
    let get = |id: &str| people.iter().find(|(n, _)| n == id).unwrap().1;
    // The frontal portrait passes the payment gate; the turned one is refused as not frontal.
    let obama = engine.detect(&photos[0].1).unwrap();
    assert!(obama[0].quality.is_ok(), "{:?}", obama[0].quality);
    let obama2 = engine.detect(&photos[1].1).unwrap();
    assert!(obama2[0].quality.is_err(), "obama2 is turned about 26°");

    // Every pair of different people stays below the threshold.
    for (i, (a, ea)) in people.iter().enumerate() {
        for (b, eb) in &people[i + 1..] {
            let same = a.starts_with("obama") && b.starts_with("obama");
            let c = cosine(ea, eb);
            eprintln!("{a} ~ {b}: {c:.3}");
            if same {
                assert!(c >= threshold, "{a} ~ {b}: {c} below {threshold}");
            } else {
                assert!(c < threshold, "{a} ~ {b}: {c} at or above {threshold}");
            }
        }
    }
    // With everyone else enrolled, the second photo is matched to the first, with margin.
    let mut gallery = Matcher::new();
    for (id, e) in people.iter().filter(|(n, _)| n != "obama2.jpg") {
        gallery.insert(id, e);
    }
    match engine.decide(&gallery, &get("obama2.jpg")) {
        MatchDecision::Match { id, .. } => assert_eq!(id, "obama.jpg"),
        other => panic!("obama2 not matched: {other:?}"),
    }
    // Without Obama enrolled, nobody is matched in his place.
    gallery.remove("obama.jpg");
    assert!(matches!(
        engine.decide(&gallery, &get("obama2.jpg")),
        MatchDecision::NoMatch { .. }
    ));
}
