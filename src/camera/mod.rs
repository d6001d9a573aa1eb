//! The camera: frames from V4L2 (nokhwa; MJPEG or YUYV decoded to RGB), from a replay
//! source (a folder of images or an MJPEG stream file) or from the simulated scene the sim
//! API draws; and the cheap frame-difference check that tells whether anybody is in front
//! of the machine.
//!
//! Capture is blocking and runs on its own thread (see [`scan`]), never on the async
//! runtime. Frames are RGB (`image::RgbImage`, what the face models take); the capture loop
//! derives the grey image the QR decoder and the movement check work on ([`luma`]).

pub mod scan;

use image::{GrayImage, Rgb, RgbImage};
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a frame could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The device could not be opened or stopped delivering.
    #[error("camera: {0}")]
    Device(String),
    /// A frame did not decode.
    #[error("camera frame: {0}")]
    Decode(String),
    /// The replay source has nothing to play.
    #[error("replay: {0}")]
    Replay(String),
}

/// Pixel format asked of a V4L2 camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Motion JPEG (most USB cameras at 640×480 and above).
    Mjpeg,
    /// Packed YUV 4:2:2.
    Yuyv,
}

impl PixelFormat {
    fn frame_format(self) -> FrameFormat {
        match self {
            PixelFormat::Mjpeg => FrameFormat::MJPEG,
            PixelFormat::Yuyv => FrameFormat::YUYV,
        }
    }
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// No camera: QR codes and faces are not offered.
    None,
    /// The simulated scene (simulate mode): what the sim API shows the camera.
    Sim,
    /// A V4L2 device by index (`/dev/videoN`).
    V4l2 {
        /// Device index.
        index: u32,
        /// Pixel format asked for.
        format: PixelFormat,
    },
    /// A folder of images (played in name order) or an MJPEG stream file, looped.
    Replay(PathBuf),
}

/// Camera settings (`[camera]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    /// Source.
    pub source: SourceKind,
    /// Width asked of the device.
    pub width: u32,
    /// Height asked of the device.
    pub height: u32,
    /// Frames per second while somebody is at the machine.
    pub fps: u32,
    /// Frames per second while nobody is (presence sensor off and no movement in view).
    pub idle_fps: u32,
    /// Mean absolute difference (0–255) between thumbnails that counts as movement.
    pub activity_threshold: f32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            source: SourceKind::None,
            width: 640,
            height: 480,
            fps: 10,
            idle_fps: 2,
            activity_threshold: 6.0,
        }
    }
}

/// A blocking source of RGB frames.
pub trait FrameSource: Send {
    /// The next frame; blocks at most about one frame time.
    ///
    /// # Errors
    /// [`CameraError`] when no frame can be had (the caller backs off and retries).
    fn next_frame(&mut self) -> Result<RgbImage, CameraError>;
}

/// Luminance of an RGB frame (BT.601 weights in 8-bit fixed point: (77 R + 150 G + 29 B) / 256).
pub fn luma(rgb: &RgbImage) -> GrayImage {
    let (w, h) = rgb.dimensions();
    let raw: Vec<u8> = rgb
        .as_raw()
        .chunks_exact(3)
        .map(|p| ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2])) >> 8) as u8)
        .collect();
    GrayImage::from_raw(w, h, raw).unwrap_or_else(|| GrayImage::new(w, h))
}

/// Decodes one raw camera buffer (as V4L2 delivers it) to RGB, through nokhwa's own
/// decoder — the same path a live camera's frames take.
///
/// # Errors
/// [`CameraError::Decode`] for a buffer that is not a valid frame of that format and size.
pub fn decode_raw(
    width: u32,
    height: u32,
    bytes: &[u8],
    format: PixelFormat,
) -> Result<RgbImage, CameraError> {
    if format == PixelFormat::Yuyv && bytes.len() != (width as usize) * (height as usize) * 2 {
        // nokhwa indexes YUYV buffers without checking their length.
        return Err(CameraError::Decode(format!(
            "a {width}×{height} YUYV frame has {} bytes, not {}",
            (width as usize) * (height as usize) * 2,
            bytes.len()
        )));
    }
    let buf = nokhwa::Buffer::new(Resolution::new(width, height), bytes, format.frame_format());
    let img = std::panic::catch_unwind(|| buf.decode_image::<RgbFormat>())
        .map_err(|_| CameraError::Decode("the decoder panicked on this frame".into()))?
        .map_err(|e| CameraError::Decode(e.to_string()))?;
    let (w, h) = img.dimensions();
    RgbImage::from_raw(w, h, img.into_raw())
        .ok_or_else(|| CameraError::Decode("decoded frame has the wrong size".into()))
}

/// A V4L2 camera through nokhwa. Construct it on the capture thread.
pub struct V4l2Source {
    cam: nokhwa::Camera,
}

// nokhwa's V4L2 camera holds raw handles; it is created and used on one capture thread.
// SAFETY: the camera is moved into the capture thread once and only ever used there.
unsafe impl Send for V4l2Source {}

impl V4l2Source {
    /// Opens `/dev/video<index>` at the configured size, rate and pixel format.
    ///
    /// # Errors
    /// [`CameraError::Device`] with nokhwa's reason (on a machine without a camera:
    /// the device does not exist).
    pub fn open(
        index: u32,
        format: PixelFormat,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<V4l2Source, CameraError> {
        let dev = format!("/dev/video{index}");
        if !Path::new(&dev).exists() {
            return Err(CameraError::Device(format!(
                "{dev} does not exist: is the camera plugged in (and the user in group video)?"
            )));
        }
        let want = CameraFormat::new(Resolution::new(width, height), format.frame_format(), fps);
        let req = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(want));
        let mut cam = nokhwa::Camera::new(CameraIndex::Index(index), req)
            .map_err(|e| CameraError::Device(format!("{dev}: {e}")))?;
        cam.open_stream()
            .map_err(|e| CameraError::Device(format!("{dev}: {e}")))?;
        Ok(V4l2Source { cam })
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<RgbImage, CameraError> {
        let buf = self
            .cam
            .frame()
            .map_err(|e| CameraError::Device(e.to_string()))?;
        let res = buf.resolution();
        let format = match buf.source_frame_format() {
            FrameFormat::MJPEG => PixelFormat::Mjpeg,
            FrameFormat::YUYV => PixelFormat::Yuyv,
            other => {
                return Err(CameraError::Decode(format!(
                    "the camera delivers {other}, not MJPEG or YUYV"
                )))
            }
        };
        decode_raw(res.width(), res.height(), buf.buffer(), format)
    }
}

/// Splits an MJPEG stream file (concatenated JPEG images, as `ffmpeg -f mjpeg` or a V4L2
/// dump writes) into its frames: each runs from an SOI marker (FF D8) to the next EOI
/// (FF D9).
pub fn split_mjpeg(bytes: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == 0xFF && bytes[i + 1] == 0xD8 {
            let start = i;
            let mut j = i + 2;
            let mut end = None;
            while j + 1 < bytes.len() {
                if bytes[j] == 0xFF && bytes[j + 1] == 0xD9 {
                    end = Some(j + 2);
                    break;
                }
                j += 1;
            }
            match end {
                Some(e) => {
                    frames.push(&bytes[start..e]);
                    i = e;
                }
                None => break,
            }
        } else {
            i += 1;
        }
    }
    frames
}

/// Plays a folder of images (PNG or JPEG, in name order) or an MJPEG stream file, looped,
/// at most one frame per call. Frames are decoded when played, so a large folder costs no
/// memory up front.
pub struct ReplaySource {
    items: Vec<ReplayItem>,
    next: usize,
}

enum ReplayItem {
    File(PathBuf),
    Jpeg(Arc<Vec<u8>>, std::ops::Range<usize>),
}

impl ReplaySource {
    /// Opens a folder or an `.mjpeg`/`.mjpg` file.
    ///
    /// # Errors
    /// [`CameraError::Replay`] when the path is missing or holds no frames.
    pub fn open(path: &Path) -> Result<ReplaySource, CameraError> {
        let mut items = Vec::new();
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| CameraError::Replay(format!("{}: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                        matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                    })
                })
                .collect();
            files.sort();
            items.extend(files.into_iter().map(ReplayItem::File));
        } else {
            let bytes = std::fs::read(path)
                .map_err(|e| CameraError::Replay(format!("{}: {e}", path.display())))?;
            let ranges: Vec<std::ops::Range<usize>> = split_mjpeg(&bytes)
                .into_iter()
                .map(|f| {
                    let start = f.as_ptr() as usize - bytes.as_ptr() as usize;
                    start..start + f.len()
                })
                .collect();
            let bytes = Arc::new(bytes);
            items.extend(
                ranges
                    .into_iter()
                    .map(|r| ReplayItem::Jpeg(bytes.clone(), r)),
            );
        }
        if items.is_empty() {
            return Err(CameraError::Replay(format!(
                "{} holds no PNG/JPEG images or MJPEG frames",
                path.display()
            )));
        }
        Ok(ReplaySource { items, next: 0 })
    }

    /// Frames in one loop.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Never true for an opened source.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl FrameSource for ReplaySource {
    fn next_frame(&mut self) -> Result<RgbImage, CameraError> {
        let item = &self.items[self.next % self.items.len()];
        self.next = (self.next + 1) % self.items.len();
        let img = match item {
            ReplayItem::File(p) => {
                image::open(p).map_err(|e| CameraError::Decode(format!("{}: {e}", p.display())))?
            }
            ReplayItem::Jpeg(bytes, r) => {
                image::load_from_memory_with_format(&bytes[r.clone()], image::ImageFormat::Jpeg)
                    .map_err(|e| CameraError::Decode(e.to_string()))?
            }
        };
        Ok(img.to_rgb8())
    }
}

/// What the simulated camera sees: an empty scene, or an image held up to it.
#[derive(Clone, Default)]
pub struct SimScene {
    inner: Arc<Mutex<Option<RgbImage>>>,
}

impl SimScene {
    /// Holds an image up to the camera until [`SimScene::clear`].
    pub fn show(&self, img: RgbImage) {
        *self.inner.lock().expect("scene lock") = Some(img);
    }

    /// Takes it away.
    pub fn clear(&self) {
        *self.inner.lock().expect("scene lock") = None;
    }

    /// Is something shown?
    pub fn showing(&self) -> bool {
        self.inner.lock().expect("scene lock").is_some()
    }
}

/// The simulated camera: a 640×480 view of a dim shop front with sensor noise, and
/// whatever the sim API holds up to it, placed in the middle.
pub struct SimCamera {
    scene: SimScene,
    width: u32,
    height: u32,
    rng: u64,
}

impl SimCamera {
    /// A camera looking at `scene`.
    pub fn new(scene: SimScene, width: u32, height: u32, seed: u64) -> SimCamera {
        SimCamera {
            scene,
            width: width.max(16),
            height: height.max(16),
            rng: seed | 1,
        }
    }

    fn noise(&mut self) -> i16 {
        // xorshift64*: a few grey levels of sensor noise.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((r >> 60) as i16) - 8
    }
}

impl FrameSource for SimCamera {
    fn next_frame(&mut self) -> Result<RgbImage, CameraError> {
        let shown = self.scene.inner.lock().expect("scene lock").clone();
        let (w, h) = (self.width, self.height);
        let mut frame = RgbImage::from_fn(w, h, |x, y| {
            let v = 90 + ((x + y) % 64) as u8;
            Rgb([v, v.saturating_add(6), v.saturating_sub(8)])
        });
        if let Some(img) = shown {
            // Fit the shown image inside the frame (nearest-neighbour), centred.
            let scale = (w as f32 / img.width() as f32)
                .min(h as f32 / img.height() as f32)
                .min(1.0);
            let (sw, sh) = (
                (img.width() as f32 * scale) as u32,
                (img.height() as f32 * scale) as u32,
            );
            let (ox, oy) = ((w - sw) / 2, (h - sh) / 2);
            for y in 0..sh {
                for x in 0..sw {
                    let sx = ((x as f32 / scale) as u32).min(img.width() - 1);
                    let sy = ((y as f32 / scale) as u32).min(img.height() - 1);
                    frame.put_pixel(ox + x, oy + y, *img.get_pixel(sx, sy));
                }
            }
        }
        for p in frame.pixels_mut() {
            let n = self.noise() / 4;
            for c in &mut p.0 {
                *c = (i16::from(*c) + n).clamp(0, 255) as u8;
            }
        }
        Ok(frame)
    }
}

/// Opens the configured source (`None` for [`SourceKind::None`]). Call on the capture
/// thread.
///
/// # Errors
/// [`CameraError`] when the device or replay path cannot be opened.
pub fn open_source(
    cfg: &CameraConfig,
    scene: &SimScene,
    seed: u64,
) -> Result<Option<Box<dyn FrameSource>>, CameraError> {
    Ok(match &cfg.source {
        SourceKind::None => None,
        SourceKind::Sim => Some(Box::new(SimCamera::new(
            scene.clone(),
            cfg.width,
            cfg.height,
            seed,
        ))),
        SourceKind::V4l2 { index, format } => Some(Box::new(V4l2Source::open(
            *index, *format, cfg.width, cfg.height, cfg.fps,
        )?)),
        SourceKind::Replay(p) => Some(Box::new(ReplaySource::open(p)?)),
    })
}

/// Movement in view, from the mean absolute difference of 40×30 thumbnails of consecutive
/// frames: a few microseconds per frame, so it runs on every frame even when idle.
#[derive(Debug, Default)]
pub struct Activity {
    last: Option<Vec<u8>>,
}

/// Thumbnail size for [`Activity`].
const THUMB: (u32, u32) = (40, 30);

impl Activity {
    /// Compares with the previous frame; returns the mean absolute difference (0–255).
    pub fn update(&mut self, frame: &GrayImage) -> f32 {
        let thumb = thumbnail(frame);
        let d = match &self.last {
            Some(prev) if prev.len() == thumb.len() => {
                let sum: u64 = prev
                    .iter()
                    .zip(&thumb)
                    .map(|(a, b)| u64::from(a.abs_diff(*b)))
                    .sum();
                sum as f32 / thumb.len() as f32
            }
            _ => 0.0,
        };
        self.last = Some(thumb);
        d
    }
}

fn thumbnail(frame: &GrayImage) -> Vec<u8> {
    let (w, h) = frame.dimensions();
    let mut out = Vec::with_capacity((THUMB.0 * THUMB.1) as usize);
    if w == 0 || h == 0 {
        return out;
    }
    for ty in 0..THUMB.1 {
        for tx in 0..THUMB.0 {
            // Box average over the cell (integer bounds, at least one pixel).
            let (x0, x1) = (
                tx * w / THUMB.0,
                ((tx + 1) * w / THUMB.0).max(tx * w / THUMB.0 + 1),
            );
            let (y0, y1) = (
                ty * h / THUMB.1,
                ((ty + 1) * h / THUMB.1).max(ty * h / THUMB.1 + 1),
            );
            let mut sum = 0u32;
            let mut n = 0u32;
            for y in (y0..y1.min(h)).step_by(2) {
                for x in (x0..x1.min(w)).step_by(2) {
                    sum += u32::from(frame.get_pixel(x, y).0[0]);
                    n += 1;
                }
            }
            out.push((sum / n.max(1)) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests;
