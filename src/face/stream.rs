//! The face pipeline over one camera stream: the per-frame work of [`FaceEngine`] cut down
//! by what the previous frames already told us.
//!
//! * **Full-frame detection** at the configured detector size (e.g. 320×256 for a 640×480
//!   camera: boxes and landmarks are mapped back to frame pixels, the quality gate and the
//!   alignment then read the full-resolution frame) only every `full_every` frames, or when
//!   there is no track, or when a region of interest lost its face.
//! * In between, **region-of-interest detection**: for each live track, a square around its
//!   last box ([`FaceConfig::roi_scale`] × its larger side) is scaled to the small second
//!   detector ([`FaceConfig::roi_size`], e.g. 160×160) — a fraction of the full frame's
//!   pixels. A new face elsewhere in the frame is found at the next full detection.
//! * **Tracking** ([`Tracker`]) gives each face an id over frames.
//! * **Embedding only when it can help**: a track is embedded when its face passes the
//!   quality gate and it has no embedding yet, or again after `reembed_ms` when its quality
//!   ([`quality_value`]) improved by 5 %, at most `max_embeds_per_track` times. Every
//!   [`Tracked`] carries the track's latest embedding, from this frame or an earlier one.
//!
//! [`FaceConfig::roi_scale`]: super::pipeline::FaceConfig::roi_scale
//! [`FaceConfig::roi_size`]: super::pipeline::FaceConfig::roi_size

use image::RgbImage;

use super::align::Face;
use super::model::ModelError;
use super::pipeline::{FaceEngine, Seen};
use super::quality::{QualityScore, Refusal};
use super::track::{iou, TrackId, Tracker, TrackerConfig};

/// Per-stream settings (`[face.stream]`).
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Detect on the whole frame at least every this many frames (1: every frame).
    pub full_every: u32,
    /// Between full detections, detect only around known faces (needs
    /// [`FaceConfig::roi_size`](super::pipeline::FaceConfig::roi_size) > 0).
    pub roi: bool,
    /// A track is embedded again only after this long, and only if its quality improved, ms.
    pub reembed_ms: u64,
    /// Most embeddings per track (0: never embed).
    pub max_embeds_per_track: u32,
    /// The tracker's thresholds.
    pub tracker: TrackerConfig,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            full_every: 5,
            roi: true,
            reembed_ms: 500,
            max_embeds_per_track: 3,
            tracker: TrackerConfig::default(),
        }
    }
}

/// One face of the current frame.
#[derive(Debug)]
pub struct Tracked {
    /// The track the face belongs to.
    pub track: TrackId,
    /// The face, in frame pixels.
    pub face: Face,
    /// The quality gate's verdict on this frame (the aligned crop is in the score).
    pub quality: Result<QualityScore, Refusal>,
    /// The track's latest embedding (L2-normalised), from this or an earlier frame.
    pub embedding: Option<[f32; 128]>,
    /// Whether `embedding` was computed on this frame.
    pub embedded_now: bool,
}

/// What a stream has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamStats {
    /// Frames processed.
    pub frames: u64,
    /// Whole-frame detector runs.
    pub full_detections: u64,
    /// Region-of-interest detector runs.
    pub roi_detections: u64,
    /// Embedder runs.
    pub embeddings: u64,
}

/// Relative quality improvement that justifies embedding a track again.
const REEMBED_GAIN: f32 = 1.05;

/// A scalar for comparing captures of one face: detector score × frontality (cosines of
/// yaw and pitch) × size (up to the 112 px of the aligned crop) × sharpness (up to 0.2).
pub fn quality_value(face: &Face, q: &QualityScore) -> f32 {
    let frontal = q.pose.yaw.to_radians().cos().max(0.0) * q.pose.pitch.to_radians().cos().max(0.0);
    let size = (face.bbox[2].min(face.bbox[3]) / 112.0).clamp(0.0, 1.0);
    let sharp = (q.sharpness / 0.2).clamp(0.0, 1.0);
    let v = face.score.clamp(0.0, 1.0) * frontal * size * sharp;
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// What the embedding policy remembers of a track.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EmbedHistory {
    /// Embeddings made so far.
    pub embeds: u32,
    /// When the last one was made, ms.
    pub last_ms: Option<u64>,
    /// [`quality_value`] of the best embedded capture.
    pub best_quality: f32,
}

/// The embedding policy: embed a capture that passed the gate (`quality` is its
/// [`quality_value`], `None` when refused) if the track has no embedding yet, or if
/// `reembed_ms` have passed since the last one and the quality improved by 5 %, never more
/// than `max_embeds_per_track` times.
pub fn wants_embedding(
    h: &EmbedHistory,
    quality: Option<f32>,
    now_ms: u64,
    cfg: &StreamConfig,
) -> bool {
    let Some(q) = quality else {
        return false;
    };
    if h.embeds >= cfg.max_embeds_per_track {
        return false;
    }
    match h.last_ms {
        None => true,
        Some(t) => now_ms.saturating_sub(t) >= cfg.reembed_ms && q > h.best_quality * REEMBED_GAIN,
    }
}

#[derive(Debug, Clone)]
struct TrackState {
    id: TrackId,
    bbox: [f32; 4],
    last_seen_ms: u64,
    embedding: Option<[f32; 128]>,
    history: EmbedHistory,
}

/// The per-stream pipeline: tracks, regions of interest and embeddings carried over frames.
#[derive(Debug, Clone)]
pub struct FaceStream {
    cfg: StreamConfig,
    tracker: Tracker,
    tracks: Vec<TrackState>,
    since_full: u32,
    stats: StreamStats,
}

/// Greedy de-duplication of faces found by overlapping regions (IoU > 0.3), best score
/// first.
fn dedupe(mut seen: Vec<Seen>) -> Vec<Seen> {
    seen.sort_by(|a, b| b.face.score.total_cmp(&a.face.score));
    let mut kept: Vec<Seen> = Vec::with_capacity(seen.len());
    for s in seen {
        if kept.iter().all(|k| iou(&k.face.bbox, &s.face.bbox) <= 0.3) {
            kept.push(s);
        }
    }
    kept
}

impl FaceStream {
    /// A stream with no tracks.
    pub fn new(cfg: StreamConfig) -> FaceStream {
        FaceStream {
            tracker: Tracker::new(cfg.tracker),
            cfg,
            tracks: Vec::new(),
            since_full: 0,
            stats: StreamStats::default(),
        }
    }

    /// Forget every track and embedding (e.g. after a sale); the next frame is detected in
    /// full. Statistics are kept.
    pub fn reset(&mut self) {
        self.tracker.reset();
        self.tracks.clear();
        self.since_full = 0;
    }

    /// What the stream has done so far.
    pub fn stats(&self) -> StreamStats {
        self.stats.clone()
    }

    /// Whether this frame needs a whole-frame detection.
    fn full_due(&self, engine: &FaceEngine) -> bool {
        !self.cfg.roi
            || !engine.has_roi()
            || self.tracks.is_empty()
            || self.since_full + 1 >= self.cfg.full_every.max(1)
    }

    /// Detect (whole frame or regions of interest), track, gate and embed one frame taken
    /// at `now_ms` (monotonic). Faces of this frame, largest first.
    ///
    /// # Errors
    /// [`ModelError`] from the detector or the embedder.
    pub fn process(
        &mut self,
        engine: &FaceEngine,
        frame: &RgbImage,
        now_ms: u64,
    ) -> Result<Vec<Tracked>, ModelError> {
        self.stats.frames += 1;
        let gap = self.cfg.tracker.max_gap_ms;
        self.tracks
            .retain(|t| now_ms.saturating_sub(t.last_seen_ms) <= gap);

        let mut seen = None;
        if !self.full_due(engine) {
            let mut found = Vec::new();
            let mut all_roi = true;
            for t in &self.tracks {
                match engine.roi_for(frame, &t.bbox) {
                    Some(roi) => {
                        self.stats.roi_detections += 1;
                        found.extend(engine.detect_in(frame, &roi)?);
                    }
                    None => {
                        all_roi = false;
                        break;
                    }
                }
            }
            // A region that lost its face, or a face too big for one: look at everything.
            if all_roi && found.len() >= self.tracks.len() {
                seen = Some(dedupe(found));
                self.since_full += 1;
            }
        }
        let seen = match seen {
            Some(s) => s,
            None => {
                self.stats.full_detections += 1;
                self.since_full = 0;
                engine.detect(frame)?
            }
        };

        let boxes: Vec<[f32; 4]> = seen.iter().map(|s| s.face.bbox).collect();
        let ids = self.tracker.update(now_ms, &boxes);
        let mut out = Vec::with_capacity(seen.len());
        for (s, id) in seen.into_iter().zip(ids) {
            let idx = match self.tracks.iter().position(|t| t.id == id) {
                Some(i) => i,
                None => {
                    self.tracks.push(TrackState {
                        id,
                        bbox: s.face.bbox,
                        last_seen_ms: now_ms,
                        embedding: None,
                        history: EmbedHistory::default(),
                    });
                    self.tracks.len() - 1
                }
            };
            let t = &mut self.tracks[idx];
            t.bbox = s.face.bbox;
            t.last_seen_ms = now_ms;
            let q = s.quality.as_ref().ok().map(|q| quality_value(&s.face, q));
            let mut embedded_now = false;
            if let (Ok(score), true) = (
                &s.quality,
                wants_embedding(&t.history, q, now_ms, &self.cfg),
            ) {
                let e = engine.embed_aligned(&score.aligned)?;
                self.stats.embeddings += 1;
                t.embedding = Some(e);
                t.history = EmbedHistory {
                    embeds: t.history.embeds + 1,
                    last_ms: Some(now_ms),
                    best_quality: q.unwrap_or(0.0).max(t.history.best_quality),
                };
                embedded_now = true;
            }
            out.push(Tracked {
                track: id,
                face: s.face,
                quality: s.quality,
                embedding: t.embedding,
                embedded_now,
            });
        }
        out.sort_by(|a, b| {
            let area = |t: &Tracked| t.face.bbox[2] * t.face.bbox[3];
            area(b).total_cmp(&area(a))
        });
        Ok(out)
    }
}

pub mod synth {
    //! A shopper stepping up to the machine, rendered from one still photo: for tests and
    //! the benchmark (there is no video of real people here).

    use image::RgbImage;

    use crate::face::align::{warp_rect, Face, Similarity};
    use crate::face::liveness::synth::{sensor_noise, turn_head};

    /// Frame `i` of `n` (640×480) of the photo `photo` whose face is `face` (photo pixels):
    /// over the first 40 % the face grows from 70 to 170 px wide while it moves from the
    /// right to the centre; then the shopper stands, swaying a few pixels and rolling a few
    /// degrees, and turns the head to 25° and back between 55 % and 75 % (a liveness
    /// challenge); every frame gets ±3 levels of sensor noise.
    pub fn shopper_frame(photo: &RgbImage, face: &Face, i: u32, n: u32) -> RgbImage {
        let t = i as f32 / n.max(1) as f32;
        let approach = (t / 0.4).clamp(0.0, 1.0);
        let ease = approach * approach * (3.0 - 2.0 * approach);
        let phase = t * std::f32::consts::TAU * 2.0;
        let side = 70.0 + 100.0 * ease + 4.0 * phase.sin();
        let cx = 440.0 - 120.0 * ease + 5.0 * (1.3 * phase).sin();
        let cy = 210.0 + 10.0 * ease + 3.0 * (0.7 * phase).cos();
        let roll = (3.0 * phase.sin()).to_radians();
        let yaw = if (0.55..0.75).contains(&t) {
            25.0 * (std::f32::consts::PI * (t - 0.55) / 0.2).sin()
        } else {
            0.0
        };
        let turned;
        let src = if yaw.abs() > 0.5 {
            turned = turn_head(photo, face, yaw);
            &turned
        } else {
            photo
        };
        let [fx, fy, fw, fh] = face.bbox;
        let (sx, sy) = (fx + fw / 2.0, fy + fh / 2.0);
        let rot = Similarity::from_parts(side / fw.max(1.0), roll, 0.0, 0.0);
        let (rx, ry) = rot.apply((sx, sy));
        let sim = Similarity {
            tx: cx - rx,
            ty: cy - ry,
            ..rot
        };
        sensor_noise(&warp_rect(src, &sim, 640, 480), u64::from(i) + 1, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::pipeline::{roi_square, FaceConfig, Roi};

    #[test]
    fn roi_is_a_centred_square_inside_the_frame() {
        // A 100×120 face in the middle of 640×480: a 240 px square centred on it.
        let r = roi_square(&[270.0, 180.0, 100.0, 120.0], 2.0, 640, 480).expect("roi");
        assert_eq!(
            r,
            Roi {
                x: 200,
                y: 120,
                side: 240
            }
        );
        // Near the top-left corner: shifted inside, same side.
        let r = roi_square(&[5.0, 3.0, 100.0, 100.0], 2.0, 640, 480).expect("roi");
        assert_eq!(
            r,
            Roi {
                x: 0,
                y: 0,
                side: 200
            }
        );
        // Near the bottom-right corner.
        let r = roi_square(&[600.0, 440.0, 40.0, 40.0], 2.0, 640, 480).expect("roi");
        assert_eq!((r.x + r.side, r.y + r.side), (640, 480));
        // A face of 300 px: the square is capped at the frame height, still 1.6 × the face.
        let r = roi_square(&[170.0, 90.0, 300.0, 300.0], 2.0, 640, 480).expect("roi");
        assert_eq!(r.side, 480);
        assert_eq!(r.y, 0);
        // A face of 420 px: no room around it, look at the whole frame.
        assert_eq!(
            roi_square(&[100.0, 30.0, 420.0, 420.0], 2.0, 640, 480),
            None
        );
        // Garbage boxes.
        assert_eq!(
            roi_square(&[f32::NAN, 0.0, 10.0, 10.0], 2.0, 640, 480),
            None
        );
        assert_eq!(roi_square(&[0.0, 0.0, 0.0, 10.0], 2.0, 640, 480), None);
    }

    #[test]
    fn roi_mapping_round_trips_a_point() {
        // The mapping FaceEngine::detect_in applies: frame = origin + det · side / size.
        let r = roi_square(&[300.0, 200.0, 80.0, 80.0], 2.0, 640, 480).expect("roi");
        let size = FaceConfig::default().roi_size as f32;
        let k = r.side as f32 / size;
        let (fx, fy) = (340.0f32, 240.0f32); // face centre in the frame
        let (dx, dy) = ((fx - r.x as f32) / k, (fy - r.y as f32) / k);
        assert!((dx - size / 2.0).abs() < 1.0 && (dy - size / 2.0).abs() < 1.0);
        assert!(((r.x as f32 + dx * k) - fx).abs() < 1e-3);
    }

    #[test]
    fn embedding_policy_embeds_once_then_only_better_and_later() {
        let cfg = StreamConfig {
            reembed_ms: 500,
            max_embeds_per_track: 3,
            ..StreamConfig::default()
        };
        let mut h = EmbedHistory::default();
        // Refused by the gate: never.
        assert!(!wants_embedding(&h, None, 0, &cfg));
        // First good capture: yes.
        assert!(wants_embedding(&h, Some(0.4), 0, &cfg));
        h = EmbedHistory {
            embeds: 1,
            last_ms: Some(0),
            best_quality: 0.4,
        };
        // Same quality, or better but too soon: no.
        assert!(!wants_embedding(&h, Some(0.4), 1000, &cfg));
        assert!(!wants_embedding(&h, Some(0.9), 100, &cfg));
        // Clearly better and late enough: yes; barely better: no.
        assert!(wants_embedding(&h, Some(0.5), 600, &cfg));
        assert!(!wants_embedding(&h, Some(0.41), 600, &cfg));
        // The cap.
        h.embeds = 3;
        assert!(!wants_embedding(&h, Some(0.9), 10_000, &cfg));
        let never = StreamConfig {
            max_embeds_per_track: 0,
            ..cfg
        };
        assert!(!wants_embedding(
            &EmbedHistory::default(),
            Some(1.0),
            0,
            &never
        ));
    }

    #[test]
    fn quality_value_prefers_frontal_large_sharp_faces() {
        use crate::face::align::alignment;
        use crate::face::quality::Pose;
        let face = Face {
            bbox: [0.0, 0.0, 120.0, 140.0],
            score: 0.9,
            landmarks: crate::face::align::ARCFACE_TEMPLATE,
        };
        let q = |yaw: f32, sharpness: f32| QualityScore {
            pose: Pose {
                yaw,
                pitch: 0.0,
                roll: 0.0,
            },
            alignment: alignment(&face.landmarks).expect("alignment"),
            sharpness,
            mouth_texture: 1.0,
            lower_face_colour: 0.0,
            aligned: RgbImage::new(112, 112),
        };
        let frontal = quality_value(&face, &q(0.0, 0.2));
        assert!((frontal - 0.9).abs() < 1e-5, "{frontal}");
        assert!(quality_value(&face, &q(15.0, 0.2)) < frontal);
        assert!(quality_value(&face, &q(0.0, 0.1)) < frontal);
        let small = Face {
            bbox: [0.0, 0.0, 56.0, 70.0],
            ..face
        };
        assert!((quality_value(&small, &q(0.0, 0.2)) - 0.45).abs() < 1e-5);
    }

    #[test]
    fn dedupe_keeps_the_best_of_overlapping_regions() {
        let seen = |x: f32, score: f32| Seen {
            face: Face {
                bbox: [x, 0.0, 100.0, 100.0],
                score,
                landmarks: [(0.0, 0.0); 5],
            },
            quality: Err(Refusal::Partial),
        };
        let kept = dedupe(vec![seen(0.0, 0.8), seen(3.0, 0.9), seen(300.0, 0.7)]);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].face.score, 0.9);
        assert_eq!(kept[1].face.bbox[0], 300.0);
    }

    /// The models (`models/cache` or `$VENDD_MODELS_DIR`) and the photo
    /// (`../shared/data/faces` or `$VENDD_FACES_DIR`), or `None` with a message.
    fn engine_or_skip(test: &str) -> Option<(FaceEngine, RgbImage)> {
        use std::path::{Path, PathBuf};
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let models = std::env::var_os("VENDD_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("models/cache"));
        let faces = std::env::var_os("VENDD_FACES_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../shared/data/faces"));
        let paths = crate::face::model::ModelPaths::from_dir(&models).expect("manifest");
        for p in [&paths.yunet, &paths.sface, &faces.join("obama.jpg")] {
            if !p.is_file() {
                eprintln!(
                    "SKIP {test}: {} is absent (run scripts/models.sh, or set VENDD_MODELS_DIR / VENDD_FACES_DIR)",
                    p.display()
                );
                return None;
            }
        }
        let photo = image::open(faces.join("obama.jpg"))
            .expect("photo")
            .to_rgb8();
        let engine = FaceEngine::load(&paths, FaceConfig::default()).expect("models load");
        Some((engine, photo))
    }

    #[test]
    fn roi_detection_agrees_with_full_frame_detection() {
        let Some((engine, photo)) =
            engine_or_skip("roi_detection_agrees_with_full_frame_detection")
        else {
            return;
        };
        let face = engine.detect(&photo).expect("detect")[0].face;
        for i in [5u32, 20, 30] {
            let frame = synth::shopper_frame(&photo, &face, i, 40);
            let full = engine.detect(&frame).expect("detect");
            assert_eq!(full.len(), 1, "frame {i}");
            let roi = engine
                .roi_for(&frame, &full[0].face.bbox)
                .expect("roi fits");
            let inroi = engine.detect_in(&frame, &roi).expect("detect_in");
            assert_eq!(inroi.len(), 1, "frame {i}");
            let (a, b) = (&full[0].face, &inroi[0].face);
            let side = a.bbox[2].max(a.bbox[3]);
            for (p, q) in a.landmarks.iter().zip(&b.landmarks) {
                let d = (p.0 - q.0).hypot(p.1 - q.1);
                assert!(
                    d < 0.06 * side,
                    "frame {i}: landmark {p:?} vs {q:?} ({d:.1} px)"
                );
            }
            if let (Ok(qa), Ok(qb)) = (&a_quality(&full[0]), &a_quality(&inroi[0])) {
                let (ea, eb) = (
                    engine.embed_aligned(&qa.aligned).expect("embed"),
                    engine.embed_aligned(&qb.aligned).expect("embed"),
                );
                let c = crate::face::matcher::cosine(&ea, &eb);
                assert!(c > 0.9, "frame {i}: full vs roi embedding cosine {c}");
            }
        }
    }

    fn a_quality(s: &Seen) -> Result<&QualityScore, &Refusal> {
        s.quality.as_ref()
    }

    #[test]
    fn stream_tracks_one_shopper_with_less_work() {
        let Some((engine, photo)) = engine_or_skip("stream_tracks_one_shopper_with_less_work")
        else {
            return;
        };
        let face = engine.detect(&photo).expect("detect")[0].face;
        let n = 45;
        let cfg = StreamConfig::default();
        let mut stream = FaceStream::new(cfg.clone());
        let mut ids = std::collections::HashSet::new();
        let mut reference = None;
        for i in 0..n {
            let frame = synth::shopper_frame(&photo, &face, i, n);
            let out = stream
                .process(&engine, &frame, u64::from(i) * 66)
                .expect("process");
            assert_eq!(out.len(), 1, "frame {i}: one face");
            ids.insert(out[0].track);
            if out[0].embedded_now {
                assert!(out[0].quality.is_ok(), "frame {i}: embedded a refused face");
            }
            if reference.is_none() {
                if let Ok(q) = &out[0].quality {
                    reference = Some(engine.embed_aligned(&q.aligned).expect("embed"));
                }
            }
            if let (Some(e), Some(r)) = (out[0].embedding, reference) {
                let c = crate::face::matcher::cosine(&e, &r);
                assert!(c > 0.8, "frame {i}: embedding drifted (cosine {c})");
            }
        }
        let st = stream.stats();
        eprintln!("{st:?}, tracks {ids:?}");
        assert_eq!(ids.len(), 1, "one shopper, one track");
        assert_eq!(st.frames, u64::from(n));
        assert!(st.roi_detections > 0 && st.full_detections < st.frames);
        assert!(st.embeddings >= 1 && st.embeddings <= u64::from(cfg.max_embeds_per_track));
        // Everything every frame: the stream with ROI and skipping switched off.
        let mut every = FaceStream::new(StreamConfig {
            full_every: 1,
            roi: false,
            ..cfg
        });
        let frame = synth::shopper_frame(&photo, &face, n - 1, n);
        every.process(&engine, &frame, 0).expect("process");
        let st = every.stats();
        assert_eq!((st.full_detections, st.roi_detections), (1, 0));
        // A reset forgets the track.
        stream.reset();
        let out = stream.process(&engine, &frame, 10_000).expect("process");
        assert!(!ids.contains(&out[0].track));
        assert!(out[0].embedding.is_none() || out[0].embedded_now);
    }
}
