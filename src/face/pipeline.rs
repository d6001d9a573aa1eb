//! The face pipeline on one frame: detect (YuNet) → quality gate → align to the ArcFace
//! template → embed (SFace) → match against the gallery. Blocking and CPU-bound: run it on
//! a thread of its own, never on the async runtime.

use super::align::{align_112, Face};
use super::matcher::{MatchConfig, MatchDecision, Matcher};
use super::model::{
    detect_faces, detect_faces_in, sface_input, Detector, Embedder, FaceBox, ModelError, ModelPaths,
};
use super::quality::{check, QualityConfig, QualityScore, Refusal};
use image::RgbImage;

/// Pipeline settings (`[face]` in the configuration).
#[derive(Debug, Clone)]
pub struct FaceConfig {
    /// Detector input width (a multiple of 32); frames are scaled to fit.
    pub detect_width: u32,
    /// Detector input height (a multiple of 32).
    pub detect_height: u32,
    /// Detector score threshold.
    pub score_threshold: f32,
    /// Non-maximum suppression IoU.
    pub nms_iou: f32,
    /// The quality gate.
    pub quality: QualityConfig,
    /// Match threshold and margin over the runner-up.
    pub matching: MatchConfig,
    /// Side of the square region-of-interest detector input (a multiple of 32), used by
    /// [`super::stream::FaceStream`] between full-frame detections to look only around known
    /// faces; 0 loads no second detector (every detection is full-frame).
    pub roi_size: u32,
    /// Side of the region of interest as a multiple of the face box's larger side (≥ 1.2).
    pub roi_scale: f32,
}

impl Default for FaceConfig {
    fn default() -> Self {
        FaceConfig {
            detect_width: 320,
            detect_height: 256,
            score_threshold: 0.7,
            nms_iou: 0.3,
            quality: QualityConfig::default(),
            matching: MatchConfig::default(),
            roi_size: 160,
            roi_scale: 2.0,
        }
    }
}

/// The loaded models and settings.
pub struct FaceEngine {
    detector: Detector,
    roi_detector: Option<Detector>,
    embedder: Embedder,
    cfg: FaceConfig,
}

/// One detected face and what the gate said about it.
#[derive(Debug)]
pub struct Seen {
    /// The face in frame pixels.
    pub face: Face,
    /// The gate's verdict (the aligned crop is in the score).
    pub quality: Result<QualityScore, Refusal>,
}

/// A square region of a frame, whole pixels, inside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roi {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Side.
    pub side: u32,
}

/// The square of side `scale` × the larger side of `bbox` centred on it, shifted to lie
/// inside a `width`×`height` frame; its side is capped at the frame's smaller side.
/// `None` when the box is not finite or empty, or the capped square would leave the face
/// less than a tenth of its side on each side (then look at the whole frame).
pub fn roi_square(bbox: &[f32; 4], scale: f32, width: u32, height: u32) -> Option<Roi> {
    let [x, y, w, h] = *bbox;
    if !bbox.iter().all(|v| v.is_finite()) || w <= 0.0 || h <= 0.0 || !scale.is_finite() {
        return None;
    }
    let face = w.max(h);
    let limit = width.min(height) as f32;
    let side = (face * scale.max(1.2)).ceil().min(limit);
    if side < face * 1.2 || side < 1.0 {
        return None;
    }
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    let left = (cx - side / 2.0).round().clamp(0.0, width as f32 - side);
    let top = (cy - side / 2.0).round().clamp(0.0, height as f32 - side);
    Some(Roi {
        x: left as u32,
        y: top as u32,
        side: side as u32,
    })
}

/// Converts the detector's box to the pipeline's face.
pub fn to_face(b: &FaceBox) -> Face {
    Face {
        bbox: [b.x, b.y, b.w, b.h],
        score: b.score,
        landmarks: b.landmarks,
    }
}

impl FaceEngine {
    /// Loads (and verifies, by sha256 against the manifest) both models.
    ///
    /// # Errors
    /// [`ModelError`]: a missing or changed file, or a graph tract cannot run.
    pub fn load(paths: &ModelPaths, cfg: FaceConfig) -> Result<FaceEngine, ModelError> {
        // The embedder first: its load peak is the largest, and the detectors' loads then
        // reuse the memory it freed.
        let embedder = Embedder::load(&paths.sface)?;
        let roi_detector = match cfg.roi_size {
            0 => None,
            s => Some(Detector::load(&paths.yunet, s, s)?),
        };
        Ok(FaceEngine {
            detector: Detector::load(&paths.yunet, cfg.detect_width, cfg.detect_height)?,
            roi_detector,
            embedder,
            cfg,
        })
    }

    /// Whether a region-of-interest detector is loaded (`roi_size` > 0).
    pub fn has_roi(&self) -> bool {
        self.roi_detector.is_some()
    }

    /// Settings.
    pub fn config(&self) -> &FaceConfig {
        &self.cfg
    }

    /// Detects every face and runs the quality gate on each, best score first.
    ///
    /// # Errors
    /// [`ModelError`] from the detector.
    pub fn detect(&self, frame: &RgbImage) -> Result<Vec<Seen>, ModelError> {
        Ok(self.gate(frame, self.detect_boxes(frame)?))
    }

    /// Detects every face in the whole frame at the configured detector size, without the
    /// quality gate; boxes in frame pixels, best score first.
    ///
    /// # Errors
    /// [`ModelError`] from the detector.
    pub fn detect_boxes(&self, frame: &RgbImage) -> Result<Vec<FaceBox>, ModelError> {
        detect_faces(
            &self.detector,
            frame,
            self.cfg.score_threshold,
            self.cfg.nms_iou,
        )
    }

    /// The square region of interest the ROI detector would look at around `bbox`
    /// (`[x, y, w, h]`, frame pixels), or `None` without a ROI detector or when the region
    /// would not fit the frame (then detect on the whole frame).
    pub fn roi_for(&self, frame: &RgbImage, bbox: &[f32; 4]) -> Option<Roi> {
        self.roi_detector.as_ref()?;
        roi_square(bbox, self.cfg.roi_scale, frame.width(), frame.height())
    }

    /// Detects faces inside `roi` only (crop, scale to the ROI detector's square input, run
    /// YuNet, map boxes and landmarks back to frame pixels) and runs the quality gate on the
    /// full-resolution frame, best score first. Without a ROI detector, detects on the whole
    /// frame.
    ///
    /// # Errors
    /// [`ModelError`] from the detector.
    pub fn detect_in(&self, frame: &RgbImage, roi: &Roi) -> Result<Vec<Seen>, ModelError> {
        let Some(det) = &self.roi_detector else {
            return self.detect(frame);
        };
        let boxes = detect_faces_in(
            det,
            frame,
            [roi.x, roi.y, roi.side, roi.side],
            self.cfg.score_threshold,
            self.cfg.nms_iou,
        )?;
        Ok(self.gate(frame, boxes))
    }

    fn gate(&self, frame: &RgbImage, boxes: Vec<FaceBox>) -> Vec<Seen> {
        boxes
            .iter()
            .map(|b| {
                let face = to_face(b);
                let quality = check(frame, &face, &self.cfg.quality);
                Seen { face, quality }
            })
            .collect()
    }

    /// The L2-normalised embedding of a face, aligned from the frame by its landmarks
    /// (without the quality gate: enrolment and payment gate first, see [`Self::detect`]).
    ///
    /// # Errors
    /// [`ModelError`] from the embedder.
    pub fn embed(&self, frame: &RgbImage, face: &Face) -> Result<[f32; 128], ModelError> {
        self.embed_aligned(&align_112(frame, &face.landmarks))
    }

    /// The L2-normalised embedding of an already aligned 112×112 face (e.g.
    /// [`QualityScore::aligned`], the crop that passed the gate).
    ///
    /// # Errors
    /// [`ModelError`] from the embedder.
    pub fn embed_aligned(&self, aligned: &RgbImage) -> Result<[f32; 128], ModelError> {
        let mut e = self.embedder.embed(&sface_input(aligned))?;
        let n = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            for v in &mut e {
                *v /= n;
            }
        }
        Ok(e)
    }

    /// Matches an embedding against the gallery with the configured threshold and margin.
    pub fn decide(&self, gallery: &Matcher, embedding: &[f32; 128]) -> MatchDecision {
        gallery.decide(embedding, &self.cfg.matching)
    }
}
