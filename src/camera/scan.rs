//! The capture loop: runs on its own thread, paces the camera (full rate while somebody is
//! at the machine or a payment is awaited, a low rate otherwise) and hands frames to the
//! consumer only when it wants them.

use super::{luma, Activity, CameraConfig, FrameSource};
use image::{GrayImage, RgbImage};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

/// Counters the service page and `doctor` read.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Frames captured.
    pub frames: AtomicU64,
    /// Frames handed to the consumer (decoded).
    pub scanned: AtomicU64,
    /// Capture errors.
    pub errors: AtomicU64,
    /// Is the source delivering (last capture succeeded)?
    pub ok: AtomicBool,
    /// Is the loop at its full rate now?
    pub active: AtomicBool,
}

/// A copy of [`CameraStats`] for JSON.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CameraHealth {
    /// Frames captured.
    pub frames: u64,
    /// Frames scanned.
    pub scanned: u64,
    /// Capture errors.
    pub errors: u64,
    /// Delivering now.
    pub ok: bool,
    /// At full rate now.
    pub active: bool,
}

impl CameraStats {
    /// A snapshot.
    pub fn health(&self) -> CameraHealth {
        CameraHealth {
            frames: self.frames.load(Ordering::Relaxed),
            scanned: self.scanned.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
        }
    }
}

/// One captured frame: the camera's RGB picture and its luminance.
#[derive(Debug, Clone)]
pub struct Frame {
    /// As captured.
    pub rgb: RgbImage,
    /// Luminance (QR decoding, movement).
    pub gray: GrayImage,
}

/// How long movement keeps the loop at full rate.
const ACTIVITY_HOLD: Duration = Duration::from_secs(5);

/// The pacing decision, pure: full rate when a payment is awaited, the presence sensor
/// sees somebody, or there was movement in view within [`ACTIVITY_HOLD`].
pub fn frame_interval(
    cfg: &CameraConfig,
    wanted: bool,
    present: bool,
    since_movement: Option<Duration>,
) -> Duration {
    let active = wanted || present || since_movement.is_some_and(|d| d < ACTIVITY_HOLD);
    let fps = if active { cfg.fps } else { cfg.idle_fps };
    Duration::from_millis(1000 / u64::from(fps.max(1)))
}

/// Runs until `stop`: captures, measures movement, and calls `consume` with each frame
/// while `wanted()` says frames are needed (e.g. a payment is awaited). Capture errors are
/// counted and retried with a back-off up to 30 s; the loop never ends on its own.
pub fn run_capture(
    mut source: Box<dyn FrameSource>,
    cfg: &CameraConfig,
    present: &AtomicBool,
    wanted: impl Fn() -> bool,
    stop: &AtomicBool,
    stats: &Arc<CameraStats>,
    mut consume: impl FnMut(&Frame),
) {
    let mut activity = Activity::default();
    let mut last_movement: Option<Instant> = None;
    let mut backoff = Duration::from_millis(500);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match source.next_frame() {
            Ok(rgb) => {
                backoff = Duration::from_millis(500);
                stats.frames.fetch_add(1, Ordering::Relaxed);
                stats.ok.store(true, Ordering::Relaxed);
                let frame = Frame {
                    gray: luma(&rgb),
                    rgb,
                };
                if activity.update(&frame.gray) >= cfg.activity_threshold {
                    last_movement = Some(Instant::now());
                }
                if wanted() {
                    stats.scanned.fetch_add(1, Ordering::Relaxed);
                    consume(&frame);
                }
            }
            Err(e) => {
                let n = stats.errors.fetch_add(1, Ordering::Relaxed);
                stats.ok.store(false, Ordering::Relaxed);
                if n < 5 || n.is_multiple_of(100) {
                    warn!(error = %e, "camera: no frame; retrying");
                }
                sleep_unless_stopped(backoff, stop);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        }
        let wanted_now = wanted();
        let interval = frame_interval(
            cfg,
            wanted_now,
            present.load(Ordering::Relaxed),
            last_movement.map(|t| t.elapsed()),
        );
        stats.active.store(
            interval < Duration::from_millis(1000 / u64::from(cfg.idle_fps.max(1))),
            Ordering::Relaxed,
        );
        if let Some(rest) = interval.checked_sub(started.elapsed()) {
            sleep_unless_stopped(rest, stop);
        }
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}
