//! Liveness: an active head-turn challenge checked on the landmarks of one tracked face,
//! plus passive checks on how those landmarks move.
//!
//! # The challenge
//! The kiosk asks (voice and page) "turn your head to your left" (or right, chosen at
//! random per attempt so a prepared recording has a 50 % chance of being wrong). The
//! [`Challenge`] is then fed one [`Observation`] per camera frame and passes only when, on
//! one track id and within the time limit:
//! 1. the face is first held near frontal (|yaw| ≤ `frontal_max_yaw_deg`) for
//!    `frontal_frames` consecutive frames; their mean yaw is the baseline and the last
//!    frame's landmarks the reference set;
//! 2. the yaw then moves from the baseline by ≥ `turn_yaw_deg` in the asked direction and
//!    stays there for `turn_frames` consecutive frames, never jumping more than
//!    `max_yaw_step_deg` between two frames;
//! 3. over those frames the landmarks show some 3-D parallax: they are not an affine image
//!    of the reference set (normalised residual ≥ `min_parallax`);
//! 4. optionally (`require_return`) the face comes back to frontal.
//!
//! It fails on a track change, a turn the wrong way (held `turn_frames`), a yaw jump, or
//! the time limit. The yaw used is the median of the last three frames' estimates: on real
//! YuNet output single frames of a still photo read up to 16° off, and one outlier must
//! neither pass, fail nor count as a jump.
//!
//! # Why a photo fails
//! Yaw is read from the nose tip's offset from the face midline (the line through the eye
//! and mouth midpoints; see [`estimate_pose`]). A flat picture held in front of the camera
//! (printed or on a screen), however it is moved — shifted, rotated in-plane, brought
//! closer, or tilted/turned out of plane — maps its five landmarks by an affine transform
//! (weak perspective); affine maps keep the nose on the midline at the same relative
//! offset, so the yaw estimate does not change (beyond detector noise). A real head turn
//! moves the nose tip (≈ 2 cm in front of the eye/mouth plane) across the midline. Strong
//! perspective (a photo turned steeply 30 cm from the lens) adds a few degrees of apparent
//! yaw (tested: < 10° for a photo turned 60°), short of the 18° needed.
//!
//! Measured with the real detector (YuNet, onnxruntime) on frames derived from three real
//! photos (test `real_detector_on_frames_derived_from_photos`): a photo held still or moved
//! in-plane reads yaw within about ±8° of its baseline after smoothing (single raw frames
//! up to 15° off) and never passes in
//! 8 s; the photo rendered as a 2.5-D head turning 35° (see [`synth::turn_head`]) reads
//! 20–40° and passes the asked direction and fails the other.
//!
//! # Passive checks
//! * frozen input: if every frontal frame has bit-identical landmarks the input is a
//!   replayed still image (a real camera's sensor noise always jitters the detector's
//!   landmarks) → [`FailReason::Frozen`];
//! * jump: a (smoothed) yaw change of more than `max_yaw_step_deg` between consecutive
//!   frames is a swap of pictures (frontal photo, then a turned photo of the same person),
//!   not a head turn → [`FailReason::Jump`];
//! * parallax (step 3): zero for a flat picture in theory, and it is what makes a turn
//!   differ from a flat picture; but with the real detector's landmark noise a moved photo
//!   already shows a residual of up to 0.046 of the eye distance against 0.06 for the
//!   rendered 20–35° turn, so it is only a weak second check — the nose-across-midline yaw
//!   is the primary signal. `min_parallax` is set low (0.03) not to refuse real turns.
//!
//! # What it stops and what it does not
//! Stops: a printed or on-screen still photo, held still or moved, shifted, rotated
//! in-plane, brought closer or turned out of plane; a replayed still frame; a quick swap
//! from a frontal photo to a turned photo; a second person or a swapped-in picture that
//! makes the tracker start a new track.
//!
//! Does not stop:
//! * a video of the person turning their head the right way, replayed on a screen (the
//!   random direction halves a single recording's chance; two recordings defeat it);
//! * a 3-D mask or a realistic head model turned by hand;
//! * a printed photo bent or folded along the nose line and turned by a determined
//!   attacker (the fold creates real parallax);
//! * frames injected into the camera link.
//!
//! A depth/IR camera or a trained anti-spoof model is needed for those; card and QR
//! payment stay available beside face pay.

use crate::face::align::{LEFT_EYE, RIGHT_EYE};
use crate::face::quality::estimate_pose;
use crate::face::track::TrackId;

/// Which way the shopper is asked to turn (their own left or right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChallengeKind {
    /// Turn toward the shopper's own left (nose toward the image's right in an unmirrored
    /// camera frame; positive yaw).
    TurnLeft,
    /// Turn toward the shopper's own right (negative yaw).
    TurnRight,
}

impl ChallengeKind {
    /// A uniformly random direction.
    pub fn random<R: rand::Rng + ?Sized>(rng: &mut R) -> ChallengeKind {
        if rng.gen::<bool>() {
            ChallengeKind::TurnLeft
        } else {
            ChallengeKind::TurnRight
        }
    }

    fn sign(self) -> f32 {
        match self {
            ChallengeKind::TurnLeft => 1.0,
            ChallengeKind::TurnRight => -1.0,
        }
    }
}

/// Thresholds of the challenge.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivenessConfig {
    /// Time from the prompt to a pass, ms (EN 301 549: the page must offer to extend it;
    /// the caller restarts the challenge with a new direction).
    pub time_limit_ms: u64,
    /// |yaw| at most this counts as frontal, degrees.
    pub frontal_max_yaw_deg: f32,
    /// Consecutive frontal frames needed before the turn.
    pub frontal_frames: u32,
    /// Yaw change from the frontal baseline that counts as the turn, degrees.
    pub turn_yaw_deg: f32,
    /// Consecutive frames the turn (or a turn the wrong way) must be held to count.
    pub turn_frames: u32,
    /// Largest yaw change between two consecutive frames, degrees.
    pub max_yaw_step_deg: f32,
    /// Minimum non-affine residual of the landmarks at the turn (RMS over the five points
    /// after the best affine fit to the reference, divided by the inter-ocular distance).
    pub min_parallax: f32,
    /// Whether the face must come back to frontal after the turn.
    pub require_return: bool,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            time_limit_ms: 8000,
            frontal_max_yaw_deg: 15.0,
            frontal_frames: 3,
            turn_yaw_deg: 18.0,
            turn_frames: 2,
            max_yaw_step_deg: 15.0,
            min_parallax: 0.03,
            require_return: false,
        }
    }
}

/// One frame's view of the challenged face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Frame time, ms (monotonic).
    pub now_ms: u64,
    /// The face's track id.
    pub track_id: TrackId,
    /// The five landmarks, image pixels.
    pub landmarks: [(f32, f32); 5],
    /// The face box `[x, y, w, h]`.
    pub bbox: [f32; 4],
}

/// Why a challenge failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FailReason {
    /// The time limit passed.
    Timeout,
    /// A different track (another face, or the face was lost) appeared.
    TrackChanged,
    /// The head turned the other way.
    WrongDirection,
    /// The yaw jumped between two frames (pictures swapped).
    Jump,
    /// The turn showed no 3-D parallax (a flat picture).
    Flat,
    /// Identical landmarks over the frontal frames (a replayed still image).
    Frozen,
}

/// Where a challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeState {
    /// Waiting for the face to be held frontal.
    WaitFrontal,
    /// Frontal seen; waiting for the turn.
    WaitTurn,
    /// Turn seen; waiting for the return to frontal (`require_return`).
    WaitReturn,
    /// Passed: the face on [`Challenge::track_id`] is live.
    Passed,
    /// Failed; terminal.
    Failed(FailReason),
}

/// An active head-turn challenge on one tracked face.
#[derive(Debug, Clone)]
pub struct Challenge {
    kind: ChallengeKind,
    cfg: LivenessConfig,
    started_ms: u64,
    state: ChallengeState,
    track: Option<TrackId>,
    frontal_run: u32,
    frontal_yaw_sum: f32,
    frontal_all_identical: bool,
    first_frontal: Option<[(f32, f32); 5]>,
    reference: Option<[(f32, f32); 5]>,
    baseline_yaw: f32,
    recent: Vec<f32>,
    last_yaw: Option<f32>,
    turn_run: u32,
    wrong_run: u32,
    turn_parallax: f32,
    max_parallax: f32,
}

impl Challenge {
    /// Start a challenge of `kind` at `now_ms` with the default thresholds and the given
    /// time limit.
    pub fn new(kind: ChallengeKind, now_ms: u64, time_limit_ms: u64) -> Challenge {
        Challenge::with_config(
            kind,
            now_ms,
            LivenessConfig {
                time_limit_ms,
                ..LivenessConfig::default()
            },
        )
    }

    /// Start a challenge with explicit thresholds.
    pub fn with_config(kind: ChallengeKind, now_ms: u64, cfg: LivenessConfig) -> Challenge {
        Challenge {
            kind,
            cfg,
            started_ms: now_ms,
            state: ChallengeState::WaitFrontal,
            track: None,
            frontal_run: 0,
            frontal_yaw_sum: 0.0,
            frontal_all_identical: true,
            first_frontal: None,
            reference: None,
            baseline_yaw: 0.0,
            recent: Vec::with_capacity(3),
            last_yaw: None,
            turn_run: 0,
            wrong_run: 0,
            turn_parallax: 0.0,
            max_parallax: 0.0,
        }
    }

    /// The asked direction.
    pub fn kind(&self) -> ChallengeKind {
        self.kind
    }

    /// Current state.
    pub fn state(&self) -> ChallengeState {
        self.state
    }

    /// The track the challenge is bound to (the first one fed).
    pub fn track_id(&self) -> Option<TrackId> {
        self.track
    }

    /// Largest parallax seen so far (for logs and tuning).
    pub fn max_parallax(&self) -> f32 {
        self.max_parallax
    }

    fn fail(&mut self, r: FailReason) -> ChallengeState {
        self.state = ChallengeState::Failed(r);
        self.state
    }

    /// Advance the clock without a face (no detection this frame): fails on timeout.
    pub fn tick(&mut self, now_ms: u64) -> ChallengeState {
        if matches!(
            self.state,
            ChallengeState::Passed | ChallengeState::Failed(_)
        ) {
            return self.state;
        }
        if now_ms.saturating_sub(self.started_ms) > self.cfg.time_limit_ms {
            return self.fail(FailReason::Timeout);
        }
        self.state
    }

    /// Feed one frame's observation of the face.
    pub fn feed(&mut self, obs: &Observation) -> ChallengeState {
        if matches!(
            self.tick(obs.now_ms),
            ChallengeState::Passed | ChallengeState::Failed(_)
        ) {
            return self.state;
        }
        match self.track {
            None => self.track = Some(obs.track_id),
            Some(t) if t != obs.track_id => return self.fail(FailReason::TrackChanged),
            Some(_) => {}
        }
        let Some(pose) = estimate_pose(&obs.landmarks) else {
            // Landmarks no face produces: treat like a frame without a face.
            return self.state;
        };
        // Median of the last three raw yaws: the detector's landmarks jitter (on real
        // YuNet output, single frames of a still photo read up to 16° off), and one
        // outlier must neither pass, fail, nor count as a jump.
        if self.recent.len() == 3 {
            self.recent.remove(0);
        }
        self.recent.push(pose.yaw);
        let yaw = median(&self.recent);
        if let Some(prev) = self.last_yaw {
            if (yaw - prev).abs() > self.cfg.max_yaw_step_deg {
                return self.fail(FailReason::Jump);
            }
        }
        self.last_yaw = Some(yaw);
        match self.state {
            ChallengeState::WaitFrontal => {
                if yaw.abs() <= self.cfg.frontal_max_yaw_deg {
                    match self.first_frontal {
                        None => self.first_frontal = Some(obs.landmarks),
                        Some(f) => {
                            if f != obs.landmarks {
                                self.frontal_all_identical = false;
                            }
                        }
                    }
                    self.frontal_run += 1;
                    self.frontal_yaw_sum += yaw;
                    if self.frontal_run >= self.cfg.frontal_frames {
                        if self.frontal_all_identical && self.cfg.frontal_frames > 1 {
                            return self.fail(FailReason::Frozen);
                        }
                        self.baseline_yaw = self.frontal_yaw_sum / self.frontal_run as f32;
                        self.reference = Some(obs.landmarks);
                        self.state = ChallengeState::WaitTurn;
                    }
                } else {
                    self.frontal_run = 0;
                    self.frontal_yaw_sum = 0.0;
                    self.frontal_all_identical = true;
                    self.first_frontal = None;
                }
            }
            ChallengeState::WaitTurn => {
                let delta = (yaw - self.baseline_yaw) * self.kind.sign();
                let parallax = match self.reference {
                    Some(r) => parallax(&r, &obs.landmarks),
                    None => 0.0,
                };
                self.max_parallax = self.max_parallax.max(parallax);
                let need = self.cfg.turn_frames.max(1);
                if delta <= -self.cfg.turn_yaw_deg {
                    self.wrong_run += 1;
                    if self.wrong_run >= need {
                        return self.fail(FailReason::WrongDirection);
                    }
                } else {
                    self.wrong_run = 0;
                }
                if delta >= self.cfg.turn_yaw_deg {
                    self.turn_run += 1;
                    self.turn_parallax = self.turn_parallax.max(parallax);
                    if self.turn_run >= need {
                        if self.turn_parallax < self.cfg.min_parallax {
                            return self.fail(FailReason::Flat);
                        }
                        self.state = if self.cfg.require_return {
                            ChallengeState::WaitReturn
                        } else {
                            ChallengeState::Passed
                        };
                    }
                } else {
                    self.turn_run = 0;
                    self.turn_parallax = 0.0;
                }
            }
            ChallengeState::WaitReturn => {
                if (yaw - self.baseline_yaw).abs() <= self.cfg.frontal_max_yaw_deg {
                    self.state = ChallengeState::Passed;
                }
            }
            ChallengeState::Passed | ChallengeState::Failed(_) => {}
        }
        self.state
    }
}

/// Median of one to three values (mean of the middle two for two).
fn median(v: &[f32]) -> f32 {
    let mut s = [0.0f32; 3];
    let n = v.len().min(3);
    s[..n].copy_from_slice(&v[..n]);
    let s = &mut s[..n];
    s.sort_by(f32::total_cmp);
    match n {
        0 => 0.0,
        1 => s[0],
        2 => (s[0] + s[1]) / 2.0,
        _ => s[1],
    }
}

/// How far `cur` is from being an affine image of `reference`: RMS residual of the
/// least-squares affine fit over the five points, divided by `cur`'s inter-ocular
/// distance. ≈ 0 for any view of a flat picture under weak perspective; grows with
/// `nose depth × sin(yaw)` for a real head. Returns 0 for degenerate input.
pub fn parallax(reference: &[(f32, f32); 5], cur: &[(f32, f32); 5]) -> f32 {
    let Some(rms) = affine_residual(reference, cur) else {
        return 0.0;
    };
    let (re, le) = (cur[RIGHT_EYE], cur[LEFT_EYE]);
    let iod = (le.0 - re.0).hypot(le.1 - re.1);
    if iod < 1e-3 {
        return 0.0;
    }
    rms / iod
}

/// RMS residual of the least-squares affine map `src → dst` (6 parameters), or `None` if
/// the source points are collinear or not finite.
pub fn affine_residual(src: &[(f32, f32)], dst: &[(f32, f32)]) -> Option<f32> {
    let n = src.len();
    if n < 3 || dst.len() != n {
        return None;
    }
    if src
        .iter()
        .chain(dst)
        .any(|p| !p.0.is_finite() || !p.1.is_finite())
    {
        return None;
    }
    // Centre both sets (removes the translation), then solve the 2×2 normal equations
    // for each output coordinate.
    let nf = n as f64;
    let mean = |pts: &[(f32, f32)]| {
        let (sx, sy) = pts.iter().fold((0.0f64, 0.0f64), |(a, b), p| {
            (a + f64::from(p.0), b + f64::from(p.1))
        });
        (sx / nf, sy / nf)
    };
    let (ms, md) = (mean(src), mean(dst));
    let (mut sxx, mut sxy, mut syy) = (0.0f64, 0.0f64, 0.0f64);
    let (mut bxu, mut byu, mut bxv, mut byv) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (p, q) in src.iter().zip(dst) {
        let (x, y) = (f64::from(p.0) - ms.0, f64::from(p.1) - ms.1);
        let (u, v) = (f64::from(q.0) - md.0, f64::from(q.1) - md.1);
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
        bxu += x * u;
        byu += y * u;
        bxv += x * v;
        byv += y * v;
    }
    let det = sxx * syy - sxy * sxy;
    let scale = (sxx + syy).max(1e-12);
    if det.is_nan() || det.abs() <= 1e-9 * scale * scale {
        return None;
    }
    // [a b; c d] with u ≈ a x + b y, v ≈ c x + d y.
    let a = (syy * bxu - sxy * byu) / det;
    let b = (sxx * byu - sxy * bxu) / det;
    let c = (syy * bxv - sxy * byv) / det;
    let d = (sxx * byv - sxy * bxv) / det;
    let mut ss = 0.0f64;
    for (p, q) in src.iter().zip(dst) {
        let (x, y) = (f64::from(p.0) - ms.0, f64::from(p.1) - ms.1);
        let (u, v) = (f64::from(q.0) - md.0, f64::from(q.1) - md.1);
        let (du, dv) = (a * x + b * y - u, c * x + d * y - v);
        ss += du * du + dv * dv;
    }
    Some((ss / nf).sqrt() as f32)
}

/// Synthetic camera frames derived from one photo, for testing the challenge end to end
/// (detector included) without video of real people.
///
/// * A photo **replayed** or moved in front of the camera: [`warp_rect`] the photo into a
///   camera-sized frame by a similarity per frame (shift, in-plane rotation, scale).
/// * A **head turn**: [`turn_head`] renders the photo as a 2.5-D head: every face pixel is
///   given a depth from an ellipsoid head (as deep as it is wide) plus a Gaussian nose bump
///   at the nose landmark; the head is rotated about its vertical axis and projected
///   orthographically, row by row with a depth buffer (so the far cheek is hidden and the
///   nose moves across the midline). This is a crude model — no new pixels for the far
///   side of the head, a thin strip of the original head edge may remain — but the
///   landmark geometry changes the way a real turn changes it, which is what the challenge
///   reads.
///
/// [`warp_rect`]: crate::face::align::warp_rect
pub mod synth {
    use image::{Rgb, RgbImage};

    use crate::face::align::{Face, LEFT_EYE, LEFT_MOUTH, NOSE, RIGHT_EYE, RIGHT_MOUTH};

    /// Render `img` with the face `face` turned by `yaw_deg` (positive: toward the
    /// subject's own left, nose toward the image's right). Pixels outside the head
    /// ellipse are unchanged.
    pub fn turn_head(img: &RgbImage, face: &Face, yaw_deg: f32) -> RgbImage {
        let mut out = img.clone();
        let (w, h) = img.dimensions();
        if w < 2 || h == 0 {
            return out;
        }
        let lm = &face.landmarks;
        let [_, _, bw, bh] = face.bbox;
        let cx = (lm[RIGHT_EYE].0 + lm[LEFT_EYE].0 + lm[RIGHT_MOUTH].0 + lm[LEFT_MOUTH].0) / 4.0;
        let (nx, ny) = lm[NOSE];
        let iod = (lm[LEFT_EYE].0 - lm[RIGHT_EYE].0).hypot(lm[LEFT_EYE].1 - lm[RIGHT_EYE].1);
        let (a, b) = (0.55 * bw, 0.6 * bh);
        let cy = face.bbox[1] + 0.5 * bh;
        let c = a;
        let (nose_h, sigma) = (0.35 * iod, 0.2 * iod);
        let (s, co) = yaw_deg.to_radians().sin_cos();
        let depth = |x: f32, y: f32| -> Option<f32> {
            let (dx, dy) = ((x - cx) / a, (y - cy) / b);
            let r = 1.0 - dx * dx - dy * dy;
            if r <= 0.0 {
                return None;
            }
            let d2 = (x - nx).powi(2) + (y - ny).powi(2);
            Some(c * r.sqrt() + nose_h * (-d2 / (2.0 * sigma * sigma)).exp())
        };
        let mut zbuf = vec![f32::NEG_INFINITY; w as usize];
        let mut xs = vec![None; w as usize];
        for y in 0..h {
            zbuf.iter_mut().for_each(|z| *z = f32::NEG_INFINITY);
            let yf = y as f32;
            for (x, slot) in xs.iter_mut().enumerate() {
                let xf = x as f32;
                *slot =
                    depth(xf, yf).map(|z| (cx + (xf - cx) * co + z * s, z * co - (xf - cx) * s));
            }
            for x in 0..(w - 1) as usize {
                let (Some((u0, z0)), Some((u1, z1))) = (xs[x], xs[x + 1]) else {
                    continue;
                };
                let (p0, p1) = (
                    img.get_pixel(x as u32, y).0,
                    img.get_pixel(x as u32 + 1, y).0,
                );
                let (lo, hi) = (u0.min(u1), u0.max(u1));
                let span = (u1 - u0).abs().max(1e-6);
                let mut u = lo.ceil().max(0.0);
                while u <= hi && u < w as f32 {
                    let t = ((u - u0) / (u1 - u0)).clamp(0.0, 1.0);
                    let t = if span < 1e-5 { 0.0 } else { t };
                    let z = z0 + (z1 - z0) * t;
                    let ui = u as usize;
                    if z > zbuf[ui] {
                        zbuf[ui] = z;
                        let px = [0, 1, 2].map(|k| {
                            (f32::from(p0[k]) * (1.0 - t) + f32::from(p1[k]) * t + 0.5) as u8
                        });
                        out.put_pixel(ui as u32, y, Rgb(px));
                    }
                    u += 1.0;
                }
            }
        }
        out
    }

    /// Add uniform per-pixel noise of ±`amp` grey levels (a camera's sensor noise), from a
    /// seeded generator so sequences are reproducible. Identical frames would otherwise be
    /// refused as a frozen replay, correctly.
    pub fn sensor_noise(img: &RgbImage, seed: u64, amp: u8) -> RgbImage {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = img.clone();
        let span = 2 * i32::from(amp) + 1;
        for p in out.pixels_mut() {
            for c in p.0.iter_mut() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let n = (s % span as u64) as i32 - i32::from(amp);
                *c = (i32::from(*c) + n).clamp(0, 255) as u8;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! How the test sequences are made. There is no video of real people here, so the
    //! frames' landmarks are derived:
    //! * a **3-D head**: the five landmarks get plausible 3-D positions in millimetres
    //!   (eyes ±32 mm at depth 0, nose tip 21 mm in front — deliberately shallower than
    //!   the estimator's assumed 0.8 × 32 mm = 26 mm — mouth corners ±25 mm, 5 mm behind
    //!   the eyes), rotated about a vertical axis 90 mm behind the eyes (the neck) by the
    //!   yaw of each frame and projected through a pinhole camera (f = 600 px, 500 mm
    //!   away), plus ±0.7 px uniform landmark noise from a seeded generator;
    //! * a **photo**: the same five points with the nose flattened onto the face plane
    //!   (a picture has no depth), then moved as a hand moves a picture: shifted, rotated
    //!   in-plane, scaled (similarity transforms frame to frame), or turned out of plane
    //!   about a vertical axis and projected with the same pinhole camera; also a still
    //!   replayed with tiny noise, and bit-identical frames.
    //!
    //! The sequences are fed at 15 frames per second (66 ms).
    //! A further check uses the real landmarks YuNet found on two photos: the same
    //! person's frontal photo and a turned photo (picture swap) must fail.
    use super::*;
    use crate::face::align::Similarity;
    use crate::face::track::{Tracker, TrackerConfig};
    use rand::{Rng, SeedableRng};

    const FRAME_MS: u64 = 66;

    /// 3-D landmarks (x right, y down, z toward the camera), mm, of a face looking at the
    /// camera. `flat` puts the nose in the face plane (a photograph).
    fn head(flat: bool) -> [[f32; 3]; 5] {
        let nose_z = if flat { -2.0 } else { 21.0 };
        [
            [-32.0, 0.0, 0.0],
            [32.0, 0.0, 0.0],
            [0.0, 36.0, nose_z],
            [-25.0, 70.0, -5.0],
            [25.0, 70.0, -5.0],
        ]
    }

    /// Rotate about a vertical axis `pivot_z` mm behind the eyes by `yaw_deg` (positive:
    /// subject's own left), then project with f = 600 px at 500 mm, image centre (320,240).
    fn project(
        pts: &[[f32; 3]; 5],
        yaw_deg: f32,
        pivot_z: f32,
        shift: (f32, f32),
    ) -> [(f32, f32); 5] {
        let (s, c) = yaw_deg.to_radians().sin_cos();
        pts.map(|[x, y, z]| {
            let zc = z + pivot_z;
            let (xr, zr) = (x * c + zc * s, -x * s + zc * c);
            let depth = 500.0 - (zr - pivot_z);
            (
                320.0 + shift.0 + 600.0 * xr / depth,
                200.0 + shift.1 + 600.0 * y / depth,
            )
        })
    }

    fn bbox_of(lm: &[(f32, f32); 5]) -> [f32; 4] {
        let (x0, x1) = (lm[0].0.min(lm[3].0), lm[1].0.max(lm[4].0));
        let w = (x1 - x0) * 1.6;
        [x0 - 0.3 * (x1 - x0), lm[0].1 - 0.6 * w, w, w * 1.3]
    }

    fn noisy(lm: [(f32, f32); 5], rng: &mut rand::rngs::StdRng, amp: f32) -> [(f32, f32); 5] {
        lm.map(|(x, y)| (x + rng.gen_range(-amp..=amp), y + rng.gen_range(-amp..=amp)))
    }

    fn run(ch: &mut Challenge, frames: &[[(f32, f32); 5]], track: TrackId) -> ChallengeState {
        for (i, lm) in frames.iter().enumerate() {
            let obs = Observation {
                now_ms: i as u64 * FRAME_MS,
                track_id: track,
                landmarks: *lm,
                bbox: bbox_of(lm),
            };
            if let s @ (ChallengeState::Passed | ChallengeState::Failed(_)) = ch.feed(&obs) {
                return s;
            }
        }
        ch.tick(frames.len() as u64 * FRAME_MS + 60_000)
    }

    /// Yaw per frame: 5 frontal frames, turn to `peak` in `turn_frames`, hold, come back.
    fn yaw_profile(peak: f32, turn_frames: usize) -> Vec<f32> {
        let mut v = vec![0.0; 5];
        v.extend((1..=turn_frames).map(|i| peak * i as f32 / turn_frames as f32));
        v.extend([peak; 3]);
        v.extend(
            (0..turn_frames)
                .rev()
                .map(|i| peak * i as f32 / turn_frames as f32),
        );
        v
    }

    fn head_turn(peak: f32, seed: u64) -> Vec<[(f32, f32); 5]> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        yaw_profile(peak, 8)
            .into_iter()
            .map(|y| noisy(project(&head(false), y, 90.0, (0.0, 0.0)), &mut rng, 0.7))
            .collect()
    }

    #[test]
    fn a_head_turn_the_asked_way_passes() {
        for seed in 0..20 {
            let mut ch = Challenge::new(ChallengeKind::TurnLeft, 0, 8000);
            assert_eq!(
                run(&mut ch, &head_turn(35.0, seed), 7),
                ChallengeState::Passed,
                "seed {seed}"
            );
            assert!(ch.max_parallax() > 0.03, "{}", ch.max_parallax());
            let mut ch = Challenge::new(ChallengeKind::TurnRight, 0, 8000);
            assert_eq!(
                run(&mut ch, &head_turn(-35.0, seed), 7),
                ChallengeState::Passed,
                "seed {seed}"
            );
        }
        // With the return to frontal required, the full turn-and-back passes too.
        let cfg = LivenessConfig {
            require_return: true,
            ..LivenessConfig::default()
        };
        let mut ch = Challenge::with_config(ChallengeKind::TurnLeft, 0, cfg);
        assert_eq!(
            run(&mut ch, &head_turn(35.0, 99), 7),
            ChallengeState::Passed
        );
    }

    #[test]
    fn estimates_along_the_turn() {
        // The model's nose is shallower than the estimator assumes (under-reads), but the
        // head turns about the neck, 90 mm behind the eyes, seen from 500 mm, and
        // perspective magnifies the nearer nose tip's sideways travel (over-reads); the
        // net reading stays within about ±25 % of the true yaw.
        let front = project(&head(false), 0.0, 90.0, (0.0, 0.0));
        for (yaw, lo, hi) in [
            (0.0f32, -1.0f32, 1.0f32),
            (12.0, 9.0, 15.0),
            (22.0, 17.0, 27.5),
            (35.0, 26.0, 44.0),
            (-35.0, -44.0, -26.0),
        ] {
            let lm = project(&head(false), yaw, 90.0, (0.0, 0.0));
            let est = estimate_pose(&lm).expect("pose").yaw;
            println!(
                "yaw {yaw}: estimated {est:.1}, parallax {:.3}",
                parallax(&front, &lm)
            );
            assert!(est >= lo && est <= hi, "yaw {yaw}: estimated {est}");
        }
        // The parallax condition is what fails a turn when it is set out of reach.
        let cfg = LivenessConfig {
            min_parallax: 1.0,
            ..LivenessConfig::default()
        };
        let mut ch = Challenge::with_config(ChallengeKind::TurnLeft, 0, cfg);
        assert_eq!(
            run(&mut ch, &head_turn(35.0, 10), 7),
            ChallengeState::Failed(FailReason::Flat)
        );
    }

    #[test]
    fn a_turn_the_wrong_way_fails() {
        let mut ch = Challenge::new(ChallengeKind::TurnRight, 0, 8000);
        assert_eq!(
            run(&mut ch, &head_turn(35.0, 1), 7),
            ChallengeState::Failed(FailReason::WrongDirection)
        );
    }

    #[test]
    fn a_small_nod_sideways_does_not_pass() {
        // 10° is below the 18° needed: the challenge just runs out of time.
        let mut ch = Challenge::new(ChallengeKind::TurnLeft, 0, 8000);
        assert_eq!(
            run(&mut ch, &head_turn(10.0, 2), 7),
            ChallengeState::Failed(FailReason::Timeout)
        );
    }

    #[test]
    fn a_track_change_fails() {
        let frames = head_turn(35.0, 3);
        let mut ch = Challenge::new(ChallengeKind::TurnLeft, 0, 8000);
        for (i, lm) in frames.iter().enumerate().take(8) {
            let obs = Observation {
                now_ms: i as u64 * FRAME_MS,
                track_id: 1,
                landmarks: *lm,
                bbox: bbox_of(lm),
            };
            assert_eq!(
                ch.feed(&obs),
                if i < 2 {
                    ChallengeState::WaitFrontal
                } else {
                    ChallengeState::WaitTurn
                }
            );
        }
        let rest = &frames[8..];
        let obs = Observation {
            now_ms: 8 * FRAME_MS,
            track_id: 2,
            landmarks: rest[0],
            bbox: bbox_of(&rest[0]),
        };
        assert_eq!(
            ch.feed(&obs),
            ChallengeState::Failed(FailReason::TrackChanged)
        );
        // Terminal: later good frames do not revive it.
        let obs = Observation {
            now_ms: 9 * FRAME_MS,
            track_id: 1,
            landmarks: rest[1],
            bbox: bbox_of(&rest[1]),
        };
        assert_eq!(
            ch.feed(&obs),
            ChallengeState::Failed(FailReason::TrackChanged)
        );
    }

    #[test]
    fn a_turn_after_the_time_limit_fails() {
        // 60 frontal frames (4 s) before turning, limit 3 s.
        let mut frames: Vec<_> = (0..60)
            .map(|_| project(&head(false), 0.0, 90.0, (0.0, 0.0)))
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        frames = frames
            .into_iter()
            .map(|f| noisy(f, &mut rng, 0.5))
            .collect();
        frames.extend(head_turn(35.0, 4));
        let mut ch = Challenge::new(ChallengeKind::TurnLeft, 0, 3000);
        assert_eq!(
            run(&mut ch, &frames, 1),
            ChallengeState::Failed(FailReason::Timeout)
        );
        // And the clock alone times it out with no face at all.
        let mut ch = Challenge::new(ChallengeKind::TurnLeft, 1000, 3000);
        assert_eq!(ch.tick(3999), ChallengeState::WaitFrontal);
        assert_eq!(ch.tick(4001), ChallengeState::Failed(FailReason::Timeout));
    }

    #[test]
    fn a_static_photo_fails() {
        let photo = project(&head(true), 0.0, 90.0, (0.0, 0.0));
        // Held still: tiny noise only.
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let still: Vec<_> = (0..150).map(|_| noisy(photo, &mut rng, 0.4)).collect();
        let mut ch = Challenge::new(ChallengeKind::TurnLeft, 0, 8000);
        assert_eq!(
            run(&mut ch, &still, 1),
            ChallengeState::Failed(FailReason::Timeout)
        );
        // A still frame replayed bit-identically: refused at once as frozen.
        let frozen = vec![photo; 150];
        let mut ch = Challenge::new(ChallengeKind::TurnLeft, 0, 8000);
        assert_eq!(
            run(&mut ch, &frozen, 1),
            ChallengeState::Failed(FailReason::Frozen)
        );
    }

    #[test]
    fn a_photo_moved_in_plane_fails() {
        // Shifted, rotated up to ±25° in-plane and scaled 0.8–1.25, frame to frame: the
        // landmarks move by similarity transforms, the nose stays on the midline.
        let photo = project(&head(true), 0.0, 90.0, (0.0, 0.0));
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let frames: Vec<_> = (0..150)
            .map(|i| {
                let t = i as f32 / 20.0;
                let sim =
                    Similarity::from_parts(1.0 + 0.25 * t.sin(), 0.45 * (0.7 * t).sin(), 0.0, 0.0);
                let c = (320.0, 240.0);
                let moved = photo.map(|(x, y)| {
                    let (u, v) = sim.apply((x - c.0, y - c.1));
                    (u + c.0 + 30.0 * (1.3 * t).sin(), v + c.1 + 15.0 * t.cos())
                });
                noisy(moved, &mut rng, 0.4)
            })
            .collect();
        for kind in [ChallengeKind::TurnLeft, ChallengeKind::TurnRight] {
            let mut ch = Challenge::new(kind, 0, 8000);
            assert_eq!(
                run(&mut ch, &frames, 1),
                ChallengeState::Failed(FailReason::Timeout)
            );
        }
    }

    #[test]
    fn a_photo_turned_out_of_plane_fails() {
        // The picture itself is turned about a vertical axis, 0 → 60° and back, held close
        // (300 mm) so perspective is strong. Its apparent yaw stays a few degrees.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let flat = head(true);
        let frames: Vec<_> = yaw_profile(60.0, 12)
            .into_iter()
            .map(|y| {
                let (s, c) = y.to_radians().sin_cos();
                let lm = flat.map(|[x, yy, z]| {
                    let (xr, zr) = (x * c + z * s, -x * s + z * c);
                    let depth = 300.0 - zr;
                    (320.0 + 600.0 * xr / depth, 200.0 + 600.0 * yy / depth)
                });
                noisy(lm, &mut rng, 0.4)
            })
            .collect();
        let max_yaw = frames
            .iter()
            .filter_map(estimate_pose)
            .map(|p| p.yaw.abs())
            .fold(0.0, f32::max);
        assert!(max_yaw < 10.0, "apparent yaw of a turned photo {max_yaw}");
        for kind in [ChallengeKind::TurnLeft, ChallengeKind::TurnRight] {
            let mut ch = Challenge::new(kind, 0, 8000);
            assert_eq!(
                run(&mut ch, &frames, 1),
                ChallengeState::Failed(FailReason::Timeout)
            );
        }
    }

    #[test]
    fn swapping_a_frontal_photo_for_a_turned_one_fails() {
        // Real YuNet landmarks: obama.jpg (frontal) and obama2.jpg (same person turned
        // ≈ 26° to his right), scaled to the same eye distance and position, shown as
        // photos: frontal for a second, then the turned one in the same place.
        let frontal = [
            (438.9, 214.8),
            (553.7, 214.1),
            (494.8, 268.1),
            (440.4, 318.5),
            (546.4, 320.3),
        ];
        let turned = [
            (245.6, 375.7),
            (368.6, 385.5),
            (276.9, 456.1),
            (244.0, 522.5),
            (348.7, 532.0),
        ];
        let fit = crate::face::align::estimate_similarity(&turned, &frontal).expect("fit");
        let turned = turned.map(|p| fit.apply(p));
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let mut frames: Vec<_> = (0..15).map(|_| noisy(frontal, &mut rng, 0.5)).collect();
        frames.extend((0..15).map(|_| noisy(turned, &mut rng, 0.5)));
        let mut ch = Challenge::new(ChallengeKind::TurnRight, 0, 8000);
        assert_eq!(
            run(&mut ch, &frames, 1),
            ChallengeState::Failed(FailReason::Jump)
        );
    }

    #[test]
    fn parallax_separates_flat_from_3d() {
        // Any affine image of a point set has zero residual; the turned head does not.
        let flat = project(&head(true), 0.0, 90.0, (0.0, 0.0));
        let sheared = flat.map(|(x, y)| (0.7 * x + 0.2 * y + 5.0, -0.1 * x + 1.1 * y - 3.0));
        assert!(parallax(&flat, &sheared) < 1e-4);
        let front = project(&head(false), 0.0, 90.0, (0.0, 0.0));
        for yaw in [20.0f32, 30.0] {
            let p = parallax(&front, &project(&head(false), yaw, 90.0, (0.0, 0.0)));
            assert!(p > 0.04, "yaw {yaw}: parallax {p}");
        }
        assert!(affine_residual(&[(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)], &[(0.0, 0.0); 3]).is_none());
    }

    #[test]
    fn random_direction_is_both_ways() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let lefts = (0..1000)
            .filter(|_| ChallengeKind::random(&mut rng) == ChallengeKind::TurnLeft)
            .count();
        assert!((400..600).contains(&lefts), "{lefts}");
    }
    /// YuNet landmarks on frames derived from three real photos (obama.jpg, astronaut.png,
    /// biden.jpg in `/work/shared/data/faces`), one line per frame: box x y w h, the five
    /// landmarks, score. Made by the `turn_frames` harness example (frames from
    /// [`synth::turn_head`] / [`crate::face::align::warp_rect`], each with ±3 grey-level
    /// [`synth::sensor_noise`]) and YuNet 2023mar run with onnxruntime; rounded to 0.1 px.
    /// Sections: `turn` = yaw 0,0,0,0,5,…,35,35,35,25,15,5,0 (subject's left); `turnr` = the
    /// same to the right; `photo` = the photo moved in front of the camera (shifted ±20 px,
    /// rotated ±17° in-plane, scaled 0.8–1.0); `still` = the photo held still (sensor
    /// noise only).
    const YUNET_SEQUENCES: &str = "
# obama turn\n\
370.9 90.4 238.7 328.8 438.9 214.7 553.4 213.9 494.6 268.1 440.5 318.5 546.3 320.2 0.946\n\
371.0 90.9 238.6 328.2 439.0 215.0 553.6 214.3 494.7 268.5 440.4 318.7 546.4 320.5 0.947\n\
370.6 90.3 238.9 328.6 438.6 214.7 553.5 214.2 494.5 268.2 439.9 318.5 546.0 320.4 0.947\n\
370.9 90.2 238.9 329.0 439.2 214.7 554.0 214.0 495.2 268.3 440.6 318.6 546.6 320.4 0.946\n\
378.4 86.4 234.1 330.3 444.8 215.8 560.1 211.3 502.8 278.5 450.5 322.5 555.7 320.9 0.943\n\
379.7 85.3 238.5 331.5 454.3 215.1 570.6 210.6 517.6 277.5 459.0 319.5 568.1 317.5 0.943\n\
383.6 84.0 241.5 332.3 469.1 214.5 584.7 210.0 539.6 278.5 474.0 320.8 581.7 319.3 0.944\n\
389.8 85.3 236.5 328.7 475.9 214.2 587.5 209.9 546.0 278.5 482.0 322.9 584.5 321.1 0.944\n\
401.7 100.6 229.5 309.0 481.6 217.0 585.1 210.8 551.4 272.5 492.2 323.7 587.9 319.6 0.941\n\
408.5 95.9 223.3 313.7 489.2 217.6 590.4 214.6 556.9 274.7 496.9 323.2 589.6 322.8 0.939\n\
414.7 100.4 220.5 308.2 498.9 220.0 601.6 218.7 572.2 277.4 507.9 323.8 598.8 325.0 0.934\n\
414.7 100.4 220.5 308.2 499.0 219.8 601.8 218.6 572.2 277.5 507.8 323.9 598.8 325.2 0.934\n\
414.8 99.6 220.3 308.8 499.1 220.0 601.8 218.7 572.4 277.6 508.2 323.8 599.1 325.0 0.934\n\
401.3 99.6 230.4 310.2 481.4 217.0 585.3 210.7 551.2 272.4 492.2 323.6 588.3 319.3 0.941\n\
383.9 84.1 241.3 332.1 469.2 214.7 584.7 209.9 539.8 278.5 474.5 321.0 581.9 319.3 0.944\n\
378.1 86.8 234.1 330.3 444.5 215.9 560.0 211.2 502.7 278.6 450.2 322.8 555.9 321.0 0.943\n\
370.9 90.2 238.8 328.5 438.8 214.6 553.4 214.2 494.4 268.3 440.2 318.5 545.8 320.4 0.946\n\
# obama turnr\n\
370.9 90.4 238.7 328.8 438.9 214.7 553.4 213.9 494.6 268.1 440.5 318.5 546.3 320.2 0.946\n\
371.0 90.9 238.6 328.2 439.0 215.0 553.6 214.3 494.7 268.5 440.4 318.7 546.4 320.5 0.947\n\
370.6 90.3 238.9 328.6 438.6 214.7 553.5 214.2 494.5 268.2 439.9 318.5 546.0 320.4 0.947\n\
370.9 90.2 238.9 329.0 439.2 214.7 554.0 214.0 495.2 268.3 440.6 318.6 546.6 320.4 0.946\n\
366.2 90.6 235.8 327.7 428.3 215.4 542.6 218.1 480.1 269.7 427.2 318.9 532.7 323.3 0.950\n\
361.2 90.4 235.5 325.2 421.6 212.9 534.8 217.9 470.7 268.3 418.1 316.0 523.4 322.0 0.949\n\
360.2 95.2 228.9 319.5 412.2 218.8 518.1 220.5 455.7 273.6 411.5 319.4 511.6 322.4 0.948\n\
359.8 94.1 224.7 324.2 405.1 217.6 508.3 217.8 444.0 272.1 406.7 321.2 504.4 322.6 0.944\n\
359.2 95.7 213.7 326.4 398.4 218.6 497.9 219.2 432.8 274.0 399.0 323.8 494.5 325.5 0.943\n\
354.2 91.5 209.0 318.4 390.1 214.8 488.0 212.7 420.2 272.1 399.0 324.4 484.0 321.6 0.941\n\
349.5 93.1 204.2 308.6 384.2 212.8 482.0 215.1 411.1 270.1 388.8 317.9 474.0 318.3 0.938\n\
349.4 93.3 204.9 307.8 384.2 212.4 482.3 215.2 411.0 270.0 388.4 317.6 473.7 318.4 0.938\n\
349.4 92.4 204.5 308.5 384.0 212.6 482.1 215.0 411.0 270.0 388.6 317.5 474.0 318.0 0.939\n\
357.8 90.5 212.3 325.2 396.8 216.0 496.3 212.2 429.9 272.5 406.0 327.3 493.4 323.8 0.943\n\
360.4 95.6 228.5 319.2 412.6 218.9 518.1 220.7 455.8 273.7 411.8 319.8 511.5 322.8 0.948\n\
365.8 89.9 236.8 328.9 428.0 215.4 542.7 218.0 480.0 269.7 427.1 318.9 532.9 323.2 0.950\n\
370.9 90.2 238.8 328.5 438.8 214.6 553.4 214.2 494.4 268.3 440.2 318.5 545.8 320.4 0.946\n\
# obama photo\n\
382.9 146.5 207.1 295.2 437.1 260.4 540.0 256.6 487.9 318.0 443.8 362.8 535.8 362.0 0.949\n\
394.8 136.5 223.8 308.7 459.0 250.3 571.5 252.3 512.1 309.8 457.1 355.2 558.5 358.6 0.948\n\
422.3 129.3 218.7 308.8 481.2 247.7 586.1 255.3 525.9 299.9 471.9 341.5 571.7 350.0 0.945\n\
437.4 120.2 225.0 320.1 499.8 228.4 607.8 240.0 550.3 300.1 493.0 342.7 592.9 352.7 0.947\n\
445.7 114.1 243.0 317.0 513.7 220.7 629.7 235.0 564.3 290.1 502.0 328.3 612.3 342.7 0.941\n\
459.5 110.5 243.2 319.5 532.0 216.0 648.6 236.9 580.5 290.4 514.4 326.3 622.4 346.6 0.941\n\
468.8 106.4 241.9 333.0 545.1 225.8 655.4 244.3 591.7 293.1 528.4 329.9 627.3 349.1 0.939\n\
477.2 106.7 243.4 332.4 549.1 225.5 664.2 244.2 594.2 290.4 533.3 327.2 635.6 346.5 0.942\n\
478.8 111.9 242.1 328.1 555.2 228.1 667.8 248.2 600.7 295.6 538.7 330.7 638.1 351.1 0.939\n\
479.5 113.0 237.4 320.7 554.0 229.6 662.6 246.7 598.9 294.6 538.9 330.5 634.2 348.8 0.938\n\
472.4 120.0 234.2 311.7 545.7 225.6 654.9 249.2 588.9 298.0 524.4 330.9 624.9 352.6 0.934\n\
462.2 125.7 232.8 308.9 529.2 230.9 640.9 255.7 571.3 301.8 506.5 332.6 610.5 356.1 0.937\n\
451.0 135.9 224.0 305.9 515.0 243.5 619.4 262.5 557.7 309.2 498.5 344.1 594.8 361.8 0.937\n\
441.2 143.3 218.4 292.9 504.6 248.4 611.9 262.8 548.4 308.1 492.0 344.0 589.2 357.7 0.940\n\
424.8 150.7 212.5 286.9 497.1 257.8 592.0 273.1 536.2 324.1 478.5 353.2 565.1 370.2 0.940\n\
411.5 166.5 201.8 277.2 478.0 263.0 571.7 274.9 516.6 328.9 463.3 360.6 547.0 373.0 0.943\n\
398.5 171.0 191.7 268.9 449.5 268.8 546.0 267.9 494.2 322.2 451.8 364.9 537.5 366.8 0.947\n\
381.1 176.2 194.0 266.7 430.4 275.1 526.9 270.8 478.1 326.4 435.2 369.1 525.2 367.7 0.951\n\
371.1 180.3 181.4 267.5 419.5 282.5 509.8 279.5 467.9 332.3 423.9 374.4 508.8 374.3 0.949\n\
355.3 184.3 182.5 260.4 406.5 286.0 501.2 280.0 456.8 334.2 415.7 379.1 497.4 375.8 0.949\n\
# obama still\n\
370.6 90.2 238.9 329.0 438.8 214.8 553.6 214.3 494.8 268.2 440.1 318.5 546.2 320.4 0.947\n\
370.6 90.1 239.0 328.8 438.8 214.6 553.6 214.0 494.7 268.0 440.2 318.3 546.2 320.1 0.946\n\
370.7 90.3 238.8 328.5 438.6 214.7 553.6 214.0 494.6 268.1 440.1 318.4 546.3 320.3 0.947\n\
370.9 90.2 238.9 328.3 438.9 214.4 553.9 213.7 494.8 267.7 440.3 318.2 546.3 320.1 0.947\n\
370.9 90.0 238.6 328.8 439.2 214.5 553.8 213.9 495.3 268.0 440.5 318.3 546.4 320.2 0.946\n\
370.7 90.2 239.3 328.8 439.0 214.9 553.9 214.3 494.9 268.3 440.5 318.3 546.6 320.2 0.946\n\
371.0 90.4 238.7 328.4 438.7 214.7 553.7 214.3 494.3 268.1 439.8 318.1 546.0 320.3 0.947\n\
370.8 90.5 238.8 328.5 439.1 214.5 554.0 214.0 495.0 268.1 440.2 318.3 546.5 320.4 0.947\n\
370.8 90.6 238.5 328.4 438.8 215.1 553.4 214.2 494.9 268.3 440.3 318.6 546.3 320.4 0.947\n\
370.7 90.3 239.2 328.7 439.0 214.9 553.8 214.3 494.8 268.2 440.4 318.4 546.2 320.3 0.946\n\
371.0 90.1 238.6 329.1 439.2 214.6 554.0 213.9 495.1 268.0 440.6 318.3 546.9 320.1 0.947\n\
370.9 90.2 238.7 328.7 438.7 214.8 553.5 214.2 494.5 268.1 440.2 318.1 546.3 320.0 0.947\n\
370.5 90.4 239.3 329.2 439.2 214.9 554.1 214.3 495.3 268.3 440.5 318.5 546.8 320.4 0.946\n\
371.0 90.2 238.8 329.0 439.1 215.1 553.8 214.4 495.0 268.5 440.5 318.4 546.7 320.2 0.946\n\
370.6 90.2 238.7 329.1 439.0 214.5 553.8 213.9 495.1 268.0 440.2 318.5 546.4 320.5 0.947\n\
370.7 89.8 239.0 329.2 438.8 214.5 553.9 213.8 494.9 268.0 440.2 318.3 546.5 320.2 0.947\n\
370.9 90.7 238.5 328.1 439.0 214.6 553.8 214.0 495.0 268.2 440.2 318.6 546.4 320.6 0.947\n\
371.0 90.6 238.5 328.1 438.8 214.7 553.6 214.1 494.6 268.0 440.1 318.2 546.3 320.1 0.947\n\
370.7 90.4 239.1 328.7 439.0 215.0 553.7 214.4 494.7 268.4 440.2 318.4 546.3 320.4 0.947\n\
371.1 90.7 238.7 328.4 438.9 214.7 553.8 214.0 494.7 268.1 440.2 318.4 546.5 320.3 0.947\n\
# astronaut turn\n\
178.3 63.3 90.9 110.4 201.5 105.5 245.3 104.9 221.0 127.3 204.0 145.3 242.4 145.3 0.943\n\
178.5 63.6 90.6 110.2 201.9 105.4 245.5 104.9 221.2 127.1 204.0 145.2 242.4 145.4 0.943\n\
178.6 63.7 90.6 110.2 201.6 106.0 245.2 105.1 221.0 127.6 204.2 145.7 242.5 145.5 0.942\n\
178.5 63.3 90.6 110.7 201.6 105.5 245.3 105.0 220.9 127.2 203.9 145.3 242.2 145.4 0.943\n\
180.9 62.0 90.0 112.2 206.2 102.8 249.2 103.5 225.8 124.9 206.7 144.0 243.8 145.3 0.941\n\
183.4 60.5 88.1 113.6 209.3 102.5 251.7 103.0 230.0 125.1 210.3 144.3 246.5 145.5 0.941\n\
186.6 63.9 88.0 110.7 213.6 104.9 253.8 107.4 234.1 126.8 211.7 144.9 246.6 148.1 0.940\n\
189.0 64.6 86.2 109.5 219.0 106.3 258.3 107.5 242.0 128.6 218.2 145.6 252.4 148.0 0.940\n\
191.2 62.6 83.7 112.8 222.2 105.3 259.7 105.9 245.9 127.7 222.4 145.8 254.6 147.8 0.936\n\
192.7 63.3 81.5 111.8 223.8 105.9 260.2 104.6 249.2 128.1 227.0 145.6 256.9 145.5 0.932\n\
195.5 64.6 76.6 109.9 226.2 106.3 260.7 105.4 251.7 127.9 229.5 145.6 257.3 145.7 0.926\n\
195.5 64.6 77.1 110.4 226.4 106.1 261.0 105.5 251.8 128.1 229.3 145.6 257.4 145.9 0.927\n\
195.3 64.9 76.8 110.0 225.5 105.9 260.2 105.0 250.9 127.7 228.8 145.5 257.0 145.6 0.926\n\
191.3 62.2 83.7 112.9 222.2 104.9 259.8 105.6 245.8 127.2 222.3 145.5 254.7 147.6 0.937\n\
186.7 63.5 87.8 111.0 213.7 104.8 253.8 107.5 234.0 126.9 211.6 144.8 246.3 148.3 0.939\n\
180.6 61.7 90.3 112.4 206.1 102.4 249.3 103.4 225.6 124.6 206.3 143.6 243.5 145.2 0.941\n\
178.7 63.5 90.3 110.2 201.8 105.5 245.3 104.9 221.0 127.0 204.2 145.3 242.2 145.3 0.942\n\
# astronaut turnr\n\
178.3 63.3 90.9 110.4 201.5 105.5 245.3 104.9 221.0 127.3 204.0 145.3 242.4 145.3 0.943\n\
178.5 63.6 90.6 110.2 201.9 105.4 245.5 104.9 221.2 127.1 204.0 145.2 242.4 145.4 0.943\n\
178.6 63.7 90.6 110.2 201.6 106.0 245.2 105.1 221.0 127.6 204.2 145.7 242.5 145.5 0.942\n\
178.5 63.3 90.6 110.7 201.6 105.5 245.3 105.0 220.9 127.2 203.9 145.3 242.2 145.4 0.943\n\
175.5 62.1 92.4 112.2 196.3 105.6 241.8 104.3 215.7 127.7 199.4 145.8 239.7 145.3 0.945\n\
175.1 62.2 90.0 112.1 194.0 105.3 238.2 104.9 211.4 127.5 196.4 145.6 236.1 145.7 0.945\n\
174.8 64.2 89.1 109.1 190.8 106.3 233.2 105.2 205.2 127.1 193.4 145.4 232.5 145.2 0.946\n\
174.1 64.2 88.4 110.1 187.5 106.6 228.0 106.8 197.9 127.1 188.9 145.4 225.8 146.3 0.940\n\
171.7 62.9 88.5 111.4 184.7 105.2 224.7 106.4 193.7 125.9 184.9 144.2 221.5 146.1 0.938\n\
171.2 64.7 85.5 108.5 183.3 105.9 221.8 107.7 191.1 125.8 182.8 143.6 218.0 146.1 0.936\n\
170.2 62.6 84.8 111.9 181.2 104.4 217.8 106.3 186.5 124.8 181.4 144.2 214.3 146.9 0.936\n\
170.0 63.0 84.4 111.7 180.8 105.1 217.1 106.8 185.8 125.6 181.1 144.9 214.0 147.4 0.938\n\
170.1 62.5 84.3 112.7 180.8 104.7 217.0 106.6 185.7 125.4 181.1 145.0 213.9 147.5 0.937\n\
171.9 62.8 88.6 111.6 185.0 105.1 225.0 106.5 193.8 125.9 185.0 144.2 221.5 146.3 0.938\n\
175.1 64.0 88.5 109.2 191.2 106.0 233.5 104.9 205.8 126.8 193.9 145.2 232.9 144.9 0.946\n\
175.6 61.5 92.1 112.7 196.2 105.3 241.7 104.0 215.6 127.4 199.4 145.6 239.7 145.1 0.945\n\
178.7 63.5 90.3 110.2 201.8 105.5 245.3 104.9 221.0 127.0 204.2 145.3 242.2 145.3 0.942\n\
# astronaut photo\n\
186.9 93.4 80.0 95.7 210.1 130.4 248.8 131.3 228.7 149.6 211.3 165.3 244.9 166.1 0.937\n\
195.8 87.4 85.3 100.0 218.5 125.1 259.0 126.8 236.1 145.3 216.6 159.8 253.6 162.7 0.942\n\
205.9 78.0 86.3 107.7 228.7 117.3 269.8 119.2 246.4 139.6 228.7 155.5 264.7 157.8 0.943\n\
213.8 72.8 87.9 108.5 242.7 111.4 282.3 118.3 258.8 136.7 235.6 148.3 271.3 154.8 0.937\n\
222.0 69.0 91.0 110.0 244.9 108.8 289.0 113.4 262.6 132.4 242.1 147.6 280.2 152.3 0.934\n\
229.7 63.6 90.5 109.4 254.4 100.7 297.7 106.4 270.9 124.8 250.8 141.1 287.1 146.6 0.935\n\
234.0 59.6 94.0 109.0 261.3 97.0 304.9 106.8 276.0 125.4 252.5 137.0 288.6 145.9 0.933\n\
236.8 56.7 93.6 108.6 266.1 94.9 308.4 104.2 281.9 123.8 257.9 134.6 292.5 143.1 0.932\n\
237.2 53.5 92.8 110.7 265.8 93.2 307.2 102.3 280.9 121.3 257.6 132.1 292.6 140.4 0.931\n\
235.6 55.3 91.2 107.5 263.7 93.5 305.1 103.1 278.5 121.1 255.3 131.6 289.7 140.2 0.929\n\
231.0 57.0 90.3 106.4 254.3 92.7 296.9 99.0 269.8 117.2 250.7 132.2 285.6 137.9 0.934\n\
228.4 61.1 87.2 104.2 249.4 97.8 290.4 103.4 263.7 122.4 246.7 136.8 280.4 142.0 0.935\n\
220.0 69.2 83.8 96.6 242.6 105.1 283.5 110.1 260.0 126.0 238.2 138.8 273.4 144.5 0.937\n\
212.7 71.2 79.9 97.4 231.0 107.7 268.8 111.6 243.4 128.3 229.6 142.9 262.5 146.3 0.934\n\
204.4 77.5 79.4 96.2 225.5 112.0 261.5 113.9 241.8 129.9 226.0 145.1 257.1 147.0 0.923\n\
193.6 79.9 79.3 97.1 218.5 115.9 255.6 118.2 236.3 135.1 217.6 149.3 249.2 151.9 0.928\n\
188.1 86.6 75.8 93.5 209.0 122.5 246.0 125.0 225.1 141.8 208.2 155.1 240.2 157.3 0.929\n\
181.8 95.7 70.4 86.5 203.7 130.3 234.1 131.5 218.4 147.8 203.0 160.0 230.0 161.6 0.930\n\
176.0 102.7 69.8 86.6 194.5 132.1 227.4 132.3 210.8 150.1 196.4 161.6 225.5 163.3 0.933\n\
167.9 104.5 71.6 88.3 186.4 136.3 222.5 136.5 203.7 154.3 186.9 167.1 218.2 168.5 0.930\n\
# astronaut still\n\
178.4 63.5 90.7 110.3 201.6 105.8 245.3 105.2 221.0 127.5 204.0 145.6 242.3 145.5 0.942\n\
178.4 63.2 90.9 111.0 201.4 105.7 245.2 104.9 220.8 127.5 203.9 145.7 242.4 145.6 0.943\n\
178.6 63.1 90.6 110.8 201.7 105.4 245.3 104.8 220.9 127.0 204.1 145.3 242.3 145.3 0.942\n\
178.7 63.9 90.4 109.8 201.8 106.1 245.3 105.2 221.2 127.7 204.5 145.8 242.6 145.5 0.942\n\
178.2 63.2 90.8 110.7 201.4 105.6 245.2 104.6 221.0 127.1 204.1 145.4 242.6 145.1 0.943\n\
178.7 63.8 90.3 110.1 201.7 105.8 245.4 105.1 221.1 127.3 204.1 145.5 242.5 145.4 0.943\n\
178.4 63.4 90.6 110.6 201.6 105.7 245.1 105.1 220.9 127.5 203.9 145.5 242.2 145.5 0.943\n\
178.6 63.6 90.7 110.3 201.6 105.9 245.4 105.2 221.1 127.6 204.1 145.7 242.5 145.6 0.943\n\
178.6 63.5 90.3 110.1 201.6 105.6 245.1 104.9 220.9 127.1 204.1 145.3 242.3 145.2 0.943\n\
178.6 63.0 90.7 111.1 201.6 105.4 245.3 104.6 221.0 127.2 204.2 145.5 242.5 145.3 0.943\n\
178.3 63.6 90.8 110.2 201.6 105.7 245.4 105.1 221.1 127.4 203.8 145.4 242.3 145.5 0.943\n\
179.0 63.2 90.1 110.9 201.9 105.6 245.4 105.0 221.1 127.1 204.2 145.5 242.4 145.5 0.943\n\
178.4 63.6 90.7 110.0 201.6 105.5 245.3 104.8 221.1 127.0 204.1 145.1 242.4 145.1 0.943\n\
178.4 63.5 90.7 110.2 201.6 105.8 245.3 104.8 221.2 127.4 204.2 145.5 242.6 145.3 0.943\n\
178.6 64.0 90.3 109.6 201.6 106.0 245.3 105.1 221.2 127.4 204.3 145.6 242.6 145.4 0.943\n\
178.4 63.3 90.7 110.3 201.6 105.4 245.2 104.9 220.9 126.9 204.0 145.0 242.2 145.1 0.942\n\
178.3 63.2 90.9 110.7 201.5 105.5 245.2 104.6 221.0 127.3 204.1 145.4 242.4 145.3 0.943\n\
178.4 63.5 90.7 110.3 201.5 105.5 245.2 104.9 220.9 127.1 203.9 145.2 242.3 145.2 0.943\n\
178.5 63.1 90.7 110.6 201.7 105.4 245.3 104.7 221.1 127.0 204.1 145.2 242.4 145.2 0.942\n\
178.7 63.7 90.4 110.0 201.9 105.6 245.4 105.1 221.0 127.2 204.1 145.3 242.3 145.3 0.943\n\
# biden turn\n\
417.1 176.3 297.8 400.1 520.5 323.7 661.1 327.7 597.8 405.8 520.0 462.5 638.7 470.3 0.925\n\
416.9 175.6 298.3 401.2 520.4 323.2 661.7 327.3 597.8 405.8 519.3 462.6 638.6 470.5 0.925\n\
429.5 175.8 282.6 399.7 522.1 329.7 666.5 335.3 602.1 412.7 511.8 463.8 634.8 471.6 0.925\n\
417.3 176.3 297.5 399.9 520.3 323.5 661.1 327.5 597.6 405.7 519.9 462.3 638.8 470.1 0.925\n\
417.9 175.7 305.3 402.8 534.1 322.7 669.2 325.8 612.2 404.4 531.7 459.0 647.8 471.4 0.927\n\
432.2 174.5 293.2 396.0 552.7 325.7 684.7 327.5 633.5 406.3 551.3 465.3 664.1 471.0 0.929\n\
441.2 177.3 288.6 398.4 562.6 328.6 689.8 333.3 646.5 409.6 557.0 468.2 663.7 474.4 0.918\n\
447.0 176.9 289.3 403.7 573.2 325.5 703.7 327.2 663.9 404.1 571.9 467.2 685.0 472.5 0.917\n\
451.6 176.9 287.2 392.1 593.6 321.1 708.4 323.1 680.2 401.6 592.5 461.7 688.6 471.6 0.914\n\
455.1 167.7 287.5 407.8 605.2 315.9 717.6 317.7 691.2 395.7 599.8 457.6 699.3 470.9 0.912\n\
471.1 173.9 276.5 403.8 617.4 320.8 725.0 320.4 705.4 397.2 614.4 465.7 713.0 473.5 0.916\n\
471.1 173.8 276.9 403.3 617.3 320.3 725.0 319.9 705.4 396.7 614.4 464.9 712.9 472.9 0.916\n\
470.9 174.1 276.8 403.5 617.2 321.0 724.8 320.5 705.3 397.2 614.4 465.5 712.8 473.5 0.916\n\
451.7 177.4 286.9 391.1 593.7 321.2 708.8 323.3 680.6 401.5 592.5 461.6 688.6 471.5 0.914\n\
441.0 177.4 289.0 398.7 562.9 328.9 690.0 333.7 646.9 410.0 557.2 468.6 663.9 474.8 0.917\n\
417.7 176.2 305.5 402.6 534.0 322.9 668.9 326.0 612.0 404.5 531.8 459.3 647.7 471.5 0.927\n\
429.3 176.2 282.6 399.2 522.3 330.0 666.2 335.5 602.3 412.8 512.1 464.0 634.8 471.5 0.925\n\
# biden turnr\n\
417.1 176.3 297.8 400.1 520.5 323.7 661.1 327.7 597.8 405.8 520.0 462.5 638.7 470.3 0.925\n\
416.9 175.6 298.3 401.2 520.4 323.2 661.7 327.3 597.8 405.8 519.3 462.6 638.6 470.5 0.925\n\
429.5 175.8 282.6 399.7 522.1 329.7 666.5 335.3 602.1 412.7 511.8 463.8 634.8 471.6 0.925\n\
417.3 176.3 297.5 399.9 520.3 323.5 661.1 327.5 597.6 405.7 519.9 462.3 638.8 470.1 0.925\n\
420.4 170.1 289.1 406.0 514.2 326.3 647.3 330.3 585.0 409.6 515.9 454.9 627.0 471.4 0.930\n\
415.4 178.8 281.6 384.0 496.6 329.9 628.6 332.3 559.6 404.1 496.9 453.7 609.7 464.9 0.926\n\
412.6 177.3 272.2 391.3 489.2 324.5 615.9 327.9 546.6 401.9 487.6 447.2 595.2 463.3 0.926\n\
401.0 176.8 268.9 385.3 467.0 322.6 601.4 326.9 529.5 397.4 473.1 443.2 586.6 459.6 0.933\n\
402.6 175.6 248.6 384.2 455.8 327.7 586.8 332.8 514.5 401.2 460.4 449.6 569.7 460.3 0.928\n\
402.0 176.7 246.1 391.8 454.3 328.2 577.2 331.4 505.8 404.4 461.2 448.3 561.6 462.1 0.917\n\
400.8 167.8 242.7 408.7 452.4 331.7 563.3 334.7 495.9 411.0 457.4 454.2 546.5 470.0 0.912\n\
400.8 167.8 242.5 408.8 452.3 331.6 563.1 334.6 495.6 410.9 457.2 453.8 546.1 470.0 0.912\n\
400.9 167.9 242.4 408.5 452.6 331.6 563.4 334.6 495.9 410.8 457.4 453.7 546.2 469.9 0.911\n\
402.7 175.7 248.4 384.0 455.7 328.1 586.9 333.1 514.4 401.6 460.4 450.0 569.8 460.5 0.928\n\
412.9 177.7 271.9 391.2 489.0 324.6 616.1 328.0 546.5 402.0 487.5 447.4 595.4 463.4 0.926\n\
420.3 170.5 289.0 404.9 514.2 326.1 647.4 330.1 585.2 409.1 515.9 454.4 627.2 470.9 0.930\n\
429.3 176.2 282.6 399.2 522.3 330.0 666.2 335.5 602.3 412.8 512.1 464.0 634.8 471.5 0.925\n\
# biden photo\n\
428.9 274.0 256.9 362.6 515.1 418.8 643.9 422.2 585.9 492.5 514.3 540.6 623.9 544.3 0.931\n\
468.5 263.2 264.7 357.4 557.3 399.7 686.4 404.6 626.1 475.6 551.0 519.3 658.6 527.2 0.930\n\
497.9 250.4 287.3 371.6 595.1 382.4 721.9 386.7 666.7 456.0 598.0 503.6 704.2 521.4 0.935\n\
540.8 215.7 301.0 394.2 647.6 373.2 783.0 377.3 719.0 458.0 634.7 502.4 751.0 519.3 0.923\n\
565.7 212.3 318.1 409.4 686.1 367.4 814.6 373.6 753.6 458.0 670.4 505.5 774.5 525.2 0.918\n\
603.9 207.3 308.3 406.0 717.2 364.5 847.5 369.8 784.5 452.2 702.3 502.0 810.1 515.4 0.912\n\
620.1 212.4 310.9 402.9 731.7 365.6 869.5 371.9 806.8 454.6 722.0 501.4 835.4 518.5 0.913\n\
630.9 223.0 293.7 389.6 723.6 375.8 854.7 387.6 781.0 456.4 718.0 507.1 822.0 523.1 0.902\n\
627.3 224.7 321.1 380.6 749.8 378.0 885.2 383.5 828.3 462.9 745.6 510.1 858.2 518.3 0.904\n\
630.3 239.1 307.5 377.2 741.0 385.2 876.4 391.4 817.4 467.6 738.6 512.5 849.4 524.9 0.912\n\
625.2 256.2 310.2 375.3 739.7 398.9 866.6 405.8 808.9 483.6 730.4 525.5 829.7 542.3 0.910\n\
610.4 270.8 299.9 368.2 718.7 413.0 848.9 421.3 784.1 493.2 704.5 536.8 809.0 551.5 0.911\n\
594.9 280.8 293.5 354.7 695.6 422.3 821.3 428.3 759.8 503.7 684.8 540.4 787.8 555.6 0.912\n\
554.9 290.7 283.5 364.8 653.3 424.5 770.4 430.9 715.6 499.0 650.9 546.9 747.8 564.3 0.924\n\
540.7 318.2 272.7 341.6 634.6 440.4 752.2 445.8 695.4 513.9 629.0 555.9 724.3 569.3 0.931\n\
510.9 327.3 261.9 326.2 606.7 453.2 718.9 458.3 667.0 524.3 600.0 558.6 691.9 575.3 0.927\n\
471.3 335.6 252.0 331.6 557.1 459.4 663.1 464.2 613.6 526.7 555.4 568.6 645.9 584.1 0.938\n\
453.7 358.8 230.8 308.1 527.4 476.1 642.2 478.5 590.1 543.3 526.3 583.0 623.0 588.3 0.935\n\
415.7 355.6 237.0 316.2 491.1 479.8 608.6 483.2 554.6 543.6 491.4 584.2 591.6 592.2 0.939\n\
388.3 358.8 220.7 313.2 460.4 483.4 564.7 484.6 520.7 545.2 465.7 591.4 556.0 590.9 0.937\n\
# biden still\n\
429.5 176.1 282.6 399.6 522.3 330.3 666.4 335.7 602.2 413.0 512.1 464.5 634.9 471.8 0.925\n\
429.3 176.2 282.7 399.6 522.2 330.1 666.3 335.6 602.3 412.8 512.1 464.2 635.0 471.7 0.925\n\
416.9 176.3 298.1 400.1 520.4 323.5 661.4 327.5 597.7 405.9 519.7 462.7 638.7 470.3 0.925\n\
417.3 176.4 297.8 399.8 520.7 323.6 661.5 327.6 598.0 405.8 519.9 462.6 638.8 470.2 0.925\n\
417.1 176.0 298.1 400.6 520.4 323.5 661.3 327.6 597.7 406.0 519.6 462.8 638.7 470.4 0.925\n\
429.5 176.0 282.4 399.6 522.4 330.2 666.4 335.7 602.5 413.0 512.2 464.4 635.1 471.9 0.924\n\
429.6 175.8 282.4 399.4 522.3 330.0 666.2 335.5 602.4 412.9 512.3 464.0 635.1 471.5 0.925\n\
429.5 176.2 282.3 399.3 522.5 330.2 666.2 335.7 602.4 412.9 512.3 464.1 634.9 471.7 0.925\n\
429.2 175.9 282.7 399.4 522.4 329.9 666.2 335.4 602.4 412.7 512.3 464.2 635.0 471.5 0.925\n\
429.4 175.7 282.5 399.8 522.5 330.2 666.5 335.8 602.6 413.1 512.3 464.1 635.0 471.7 0.925\n\
429.5 176.7 282.4 398.9 522.5 330.3 666.3 335.9 602.3 412.9 512.2 464.2 634.7 471.7 0.925\n\
417.2 176.1 297.6 400.2 520.5 323.6 661.2 327.5 597.9 405.9 520.0 462.6 638.8 470.3 0.925\n\
429.6 176.1 282.3 399.3 522.3 330.2 666.3 335.7 602.2 413.0 512.0 464.1 634.8 471.6 0.925\n\
430.0 176.4 282.0 399.1 522.5 330.3 666.3 335.9 602.4 413.0 512.3 464.2 635.0 471.7 0.925\n\
417.3 176.7 297.7 399.5 520.4 323.6 661.2 327.6 597.6 405.7 519.8 462.5 638.7 470.1 0.925\n\
429.7 176.0 282.3 399.5 522.4 330.2 666.2 335.7 602.2 412.9 512.2 464.2 634.9 471.6 0.925\n\
429.3 175.7 282.9 399.9 522.4 329.9 666.7 335.5 602.6 412.9 512.1 464.1 635.0 471.7 0.925\n\
429.4 176.2 282.4 399.4 522.4 330.1 666.3 335.7 602.4 412.9 512.2 464.2 634.9 471.7 0.925\n\
429.7 176.2 281.9 398.9 522.2 329.8 666.0 335.2 602.0 412.4 512.2 463.4 634.9 471.2 0.925\n\
429.9 176.1 281.9 399.4 522.5 330.1 666.1 335.5 602.4 412.7 512.6 463.8 635.1 471.5 0.925";

    fn sequences() -> Vec<(String, String, Vec<Observation>)> {
        let mut out: Vec<(String, String, Vec<Observation>)> = Vec::new();
        for line in YUNET_SEQUENCES
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if let Some(h) = line.strip_prefix("# ") {
                let (photo, seq) = h.split_once(' ').expect("header");
                out.push((photo.to_owned(), seq.to_owned(), Vec::new()));
                continue;
            }
            let v: Vec<f32> = line
                .split_whitespace()
                .map(|x| x.parse().expect("number"))
                .collect();
            assert_eq!(v.len(), 15, "{line}");
            let obs = Observation {
                now_ms: 0,
                track_id: 0,
                bbox: [v[0], v[1], v[2], v[3]],
                landmarks: [
                    (v[4], v[5]),
                    (v[6], v[7]),
                    (v[8], v[9]),
                    (v[10], v[11]),
                    (v[12], v[13]),
                ],
            };
            out.last_mut().expect("section").2.push(obs);
        }
        out
    }

    /// Run frames through the tracker and a challenge at 15 fps; photo sequences are
    /// cycled for the whole time limit (a photo held up for 8 s).
    fn replay(frames: &[Observation], kind: ChallengeKind, cycle: bool) -> ChallengeState {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut ch = Challenge::new(kind, 0, 8000);
        let n = if cycle {
            (8000 / FRAME_MS + 1) as usize
        } else {
            frames.len()
        };
        for i in 0..n {
            let f = frames[i % frames.len()];
            let now_ms = i as u64 * FRAME_MS;
            let track_id = tracker.update(now_ms, &[f.bbox])[0];
            let obs = Observation {
                now_ms,
                track_id,
                ..f
            };
            if let s @ (ChallengeState::Passed | ChallengeState::Failed(_)) = ch.feed(&obs) {
                return s;
            }
        }
        ch.tick(n as u64 * FRAME_MS + 8000)
    }

    #[test]
    fn synthetic_turn_render_moves_the_nose_not_the_background() {
        // A 200×200 frame: grey background, a face-sized box with a horizontal gradient,
        // and a dark 5×5 "nose" dot at the nose landmark.
        let lm = [
            (80.0, 80.0),
            (120.0, 80.0),
            (100.0, 100.0),
            (84.0, 120.0),
            (116.0, 120.0),
        ];
        let face = crate::face::align::Face {
            bbox: [60.0, 50.0, 80.0, 100.0],
            score: 0.9,
            landmarks: lm,
        };
        let img = image::RgbImage::from_fn(200, 200, |x, y| {
            if (98..=102).contains(&x) && (98..=102).contains(&y) {
                image::Rgb([0, 0, 0])
            } else if (60..140).contains(&x) && (50..150).contains(&y) {
                image::Rgb([100 + x as u8, 150, 150])
            } else {
                image::Rgb([128, 128, 128])
            }
        });
        assert_eq!(
            synth::turn_head(&img, &face, 0.0),
            img,
            "yaw 0 is the identity"
        );
        let dark_x = |im: &image::RgbImage| {
            let xs: Vec<u32> = (0..200)
                .filter(|&x| im.get_pixel(x, 100).0[0] < 40)
                .collect();
            xs.iter().sum::<u32>() as f32 / xs.len().max(1) as f32
        };
        let left = synth::turn_head(&img, &face, 25.0);
        let right = synth::turn_head(&img, &face, -25.0);
        assert!(
            dark_x(&left) > 110.0 && dark_x(&right) < 90.0,
            "{} {}",
            dark_x(&left),
            dark_x(&right)
        );
        assert_eq!(
            left.get_pixel(5, 5),
            img.get_pixel(5, 5),
            "background unchanged"
        );
        let noisy = synth::sensor_noise(&img, 1, 3);
        assert_ne!(noisy, img);
        assert!(noisy
            .pixels()
            .zip(img.pixels())
            .all(|(a, b)| (0..3).all(|c| a.0[c].abs_diff(b.0[c]) <= 3)));
    }

    #[test]
    fn real_detector_on_frames_derived_from_photos() {
        use ChallengeKind::{TurnLeft, TurnRight};
        use ChallengeState::{Failed, Passed};
        let seqs = sequences();
        assert_eq!(seqs.len(), 12);
        for (photo, seq, frames) in &seqs {
            let (left, right, cycle) = match seq.as_str() {
                "turn" => (Passed, Failed(FailReason::WrongDirection), false),
                "turnr" => (Failed(FailReason::WrongDirection), Passed, false),
                "photo" | "still" => (
                    Failed(FailReason::Timeout),
                    Failed(FailReason::Timeout),
                    true,
                ),
                other => panic!("section {other}"),
            };
            assert_eq!(
                replay(frames, TurnLeft, cycle),
                left,
                "{photo} {seq}, asked left"
            );
            assert_eq!(
                replay(frames, TurnRight, cycle),
                right,
                "{photo} {seq}, asked right"
            );
        }
    }
}
