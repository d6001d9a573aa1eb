//! The face pipeline on one frame: detect (YuNet) → quality gate → align to the ArcFace
//! template → embed (SFace) → match against the gallery. Blocking and CPU-bound: run it on
//! a thread of its own, never on the async runtime.

use super::align::{align_112, Face};
use super::matcher::{MatchConfig, MatchDecision, Matcher};
use super::model::{
    detect_faces, sface_input, Detector, Embedder, FaceBox, ModelError, ModelPaths,
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
}

impl Default for FaceConfig {
    fn default() -> Self {
        FaceConfig {
            detect_width: 640,
            detect_height: 480,
            score_threshold: 0.7,
            nms_iou: 0.3,
            quality: QualityConfig::default(),
            matching: MatchConfig::default(),
        }
    }
}

/// The loaded models and settings.
pub struct FaceEngine {
    detector: Detector,
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
        Ok(FaceEngine {
            detector: Detector::load(&paths.yunet, cfg.detect_width, cfg.detect_height)?,
            embedder: Embedder::load(&paths.sface)?,
            cfg,
        })
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
        let boxes = detect_faces(
            &self.detector,
            frame,
            self.cfg.score_threshold,
            self.cfg.nms_iou,
        )?;
        Ok(boxes
            .iter()
            .map(|b| {
                let face = to_face(b);
                let quality = check(frame, &face, &self.cfg.quality);
                Seen { face, quality }
            })
            .collect())
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
