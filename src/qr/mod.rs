//! QR code decoding for pay codes shown to the kiosk camera.
//!
//! The decoder is rxing's port of zxing-cpp's QR detector and decoder
//! (`rxing::qrcode::cpp_port`), fed with our own binarisation and a short list
//! of cheap-first fallback passes (see [`Pass`]) chosen by measurement on the
//! corpus in `shared/data/qr` (numbers in the README). Every call into rxing
//! runs under `catch_unwind`, so a decoder panic on a hostile or odd frame is
//! counted in [`DecoderStats::panics`] and the frame reads as empty; the daemon
//! never goes down.
//!
//! Payloads are pay credentials: nothing in this module logs or keeps decoded
//! content (only counts).

mod binarize;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use image::GrayImage;
use rxing::common::{BitMatrix, DetectorRXingResult};
use rxing::qrcode::cpp_port::decoder::Decode;
use rxing::qrcode::cpp_port::detector::{FindFinderPatterns, GenerateFinderPatternSets, SampleQR};
use serde::{Deserialize, Serialize};

use binarize::Grey;

/// Most finder-pattern triples tried per pass, so that a frame full of
/// noise cannot make a pass loop for long.
const MAX_SETS_PER_PASS: usize = 48;

/// Flat-block range of the normal passes (zxing's value). Adapting it to the
/// frame's global contrast was tried and read nothing more on the corpus.
const ZXING_RANGE: u32 = 24;

/// Flat-block range of the low-contrast passes.
const LOW_RANGE: u32 = 4;

/// Errors from rendering a QR code.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text cannot be encoded (empty, or too long for a QR code at level M).
    #[error("cannot encode QR code: {0}")]
    Encode(String),
    /// Pixels per module must be 1..=64.
    #[error("module size {0} px out of range 1..=64")]
    ModuleSize(u32),
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// One decoding attempt on a frame: a preprocessing step, then binarisation and
/// the QR detector. The decoder runs the passes of [`QrConfig::passes`] in order
/// and stops after the first one that reads anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pass {
    /// Local-average threshold (zxing's hybrid binariser) on the frame as is.
    Local,
    /// The `Local` binarisation inverted (light code on dark ground); costs
    /// only the detector, the bit matrix is reused.
    Inverted,
    /// 2×2 average downscale first: fights sensor noise, moiré and blur.
    Down2,
    /// 3×3 box blur first: fights noise and screen moiré at full resolution.
    Blur,
    /// 2× bilinear upscale first: small codes (under ~3 px per module).
    Up2,
    /// Percentile contrast stretch, then zxing's fixed flat-block range.
    Stretch,
    /// One global (Otsu) threshold: uneven codes on even light.
    Global,
    /// Local threshold with a tiny flat-block range (4 levels): low-contrast
    /// codes on a busy, high-contrast background.
    LowRange,
    /// `LowRange` on the 2×2 downscaled frame.
    Down2LowRange,
    /// The `Down2` binarisation inverted (reuses its bit matrix).
    Down2Inverted,
}

impl Pass {
    /// The default pass list, cheapest-first by measured gain per cost on
    /// the corpus (`Up2` is left out: no read that another pass misses, at
    /// ~7 ms per VGA frame).
    pub const DEFAULT: [Pass; 9] = [
        Pass::Down2,
        Pass::Down2Inverted,
        Pass::Local,
        Pass::Inverted,
        Pass::Down2LowRange,
        Pass::Global,
        Pass::LowRange,
        Pass::Blur,
        Pass::Stretch,
    ];

    /// Every pass.
    pub const ALL: [Pass; 10] = [
        Pass::Local,
        Pass::Inverted,
        Pass::Down2,
        Pass::Blur,
        Pass::Up2,
        Pass::Stretch,
        Pass::Global,
        Pass::LowRange,
        Pass::Down2LowRange,
        Pass::Down2Inverted,
    ];

    /// The passes that rarely read anything the others miss but cost the
    /// most when nothing reads (see [`QrConfig::slow_passes_need_patterns`]
    /// and [`QrConfig::slow_pass_every`]).
    pub fn is_slow(self) -> bool {
        matches!(
            self,
            Pass::Global | Pass::LowRange | Pass::Blur | Pass::Stretch | Pass::Up2
        )
    }

    /// Stable short name (as in the stats and the benchmark output).
    pub fn name(self) -> &'static str {
        match self {
            Pass::Local => "local",
            Pass::Inverted => "inverted",
            Pass::Down2 => "down2",
            Pass::Blur => "blur",
            Pass::Up2 => "up2",
            Pass::Stretch => "stretch",
            Pass::Global => "global",
            Pass::LowRange => "low-range",
            Pass::Down2LowRange => "down2-low-range",
            Pass::Down2Inverted => "down2-inverted",
        }
    }

    fn index(self) -> usize {
        match self {
            Pass::Local => 0,
            Pass::Inverted => 1,
            Pass::Down2 => 2,
            Pass::Blur => 3,
            Pass::Up2 => 4,
            Pass::Stretch => 5,
            Pass::Global => 6,
            Pass::LowRange => 7,
            Pass::Down2LowRange => 8,
            Pass::Down2Inverted => 9,
        }
    }
}

/// Decoder configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QrConfig {
    /// Passes tried in order until one reads a code.
    pub passes: Vec<Pass>,
    /// Frames with more pixels than this are first box-downscaled by the
    /// smallest integer factor that brings them under it.
    pub max_pixels: u64,
    /// Wall-clock budget per frame: no new pass starts once it is spent
    /// (the pass running then finishes). `None` = run all passes.
    pub time_budget_ms: Option<u64>,
    /// On frames with fewer pixels than this, the `Down2*` passes are
    /// moved to the end of the pass list: small frames are cheap at full
    /// resolution, and halving them first loses codes (and once read an outer
    /// code instead of the one wanted).
    pub downscale_min_pixels: u64,
    /// Slow passes ([`Pass::is_slow`]) run on one frame in this many (1 =
    /// every frame). On a video stream a code stays in view for many frames,
    /// so 2 or 3 cuts the cost of frames that show something code-like but
    /// do not read, while still trying everything within a few frames.
    pub slow_pass_every: u32,
    /// Skip the slow passes when no earlier pass saw a single finder
    /// pattern (the frame very likely shows no code): cuts the cost of idle
    /// frames. Needs a cheap pass before the slow ones.
    pub slow_passes_need_patterns: bool,
    /// Scan every third row for finder patterns even on large frames
    /// (slower, finds dense codes that fill little of the frame).
    pub try_harder: bool,
}

impl Default for QrConfig {
    fn default() -> Self {
        QrConfig {
            passes: Pass::DEFAULT.to_vec(),
            max_pixels: 1920 * 1080,
            time_budget_ms: Some(40),
            downscale_min_pixels: 200_000,
            slow_pass_every: 1,
            slow_passes_need_patterns: true,
            try_harder: false,
        }
    }
}

impl QrConfig {
    /// Only the cheap passes ([`Pass::is_slow`] false). Frames without a
    /// code cost about the same as with the default (whose slow passes are
    /// gated by [`QrConfig::slow_passes_need_patterns`]); this caps the cost of
    /// frames where something code-like fails to read, for a few points of
    /// read rate on low-contrast, small and blurred codes (README table).
    pub fn fast() -> Self {
        QrConfig {
            passes: Pass::DEFAULT.into_iter().filter(|p| !p.is_slow()).collect(),
            ..QrConfig::default()
        }
    }
}

/// One decoded QR code. Its `Debug` output shows only lengths, so that a
/// stray `{:?}` cannot put a pay credential into a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Raw payload bytes as encoded in the symbol (no ECI designators).
    pub bytes: Vec<u8>,
    /// The payload as text: the bytes when they are valid UTF-8, else rxing's
    /// transcoding when the symbol declares an ECI character set.
    pub text: Option<String>,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("text", &self.text.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Counters since the decoder was made (no payload content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecoderStats {
    /// Frames passed to [`QrDecoder::decode`].
    pub frames: u64,
    /// Frames in which at least one code was read.
    pub decoded: u64,
    /// Panics inside rxing caught and turned into "no code".
    pub panics: u64,
    /// Passes run in total (a measure of the work done).
    pub passes_run: u64,
    /// Slow passes skipped because no finder pattern had been seen.
    pub slow_skipped: u64,
    /// Frames whose pass list was cut short by the time budget.
    pub budget_exhausted: u64,
    /// Per pass (by [`Pass::name`]): frames in which that pass produced the read.
    pub pass_hits: Vec<(String, u64)>,
}

/// The QR decoder: configuration plus reusable buffers. `decode` takes
/// `&mut self`; use one decoder per camera thread.
pub struct QrDecoder {
    cfg: QrConfig,
    src: Grey,
    work: Grey,
    work2: Grey,
    tmp16: Vec<u16>,
    points: Vec<u32>,
    base: BitMatrix,
    bits: BitMatrix,
    /// True when `base` holds the `Local` binarisation of the current frame.
    base_valid: bool,
    /// `Down2` binarisation of the current frame, when `down_valid`.
    down: BitMatrix,
    down_valid: bool,
    /// Most finder patterns any pass has seen in the current frame.
    frame_patterns: usize,
    stats: DecoderStats,
    hits: [u64; 10],
}

impl std::fmt::Debug for QrDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QrDecoder")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn empty_matrix() -> BitMatrix {
    // 1×1 is always a valid size.
    BitMatrix::new(1, 1).expect("1×1 is a valid BitMatrix size")
}

impl QrDecoder {
    /// Makes a decoder with the given configuration.
    pub fn new(cfg: QrConfig) -> Self {
        QrDecoder {
            cfg,
            src: Grey::default(),
            work: Grey::default(),
            work2: Grey::default(),
            tmp16: Vec::new(),
            points: Vec::new(),
            base: empty_matrix(),
            bits: empty_matrix(),
            base_valid: false,
            down: empty_matrix(),
            down_valid: false,
            frame_patterns: 0,
            stats: DecoderStats::default(),
            hits: [0; 10],
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &QrConfig {
        &self.cfg
    }

    /// Decodes every QR code found in a grey frame: the distinct payloads
    /// read by the first pass that reads anything, in detection order (a
    /// second code that only a later pass could read is not looked for).
    /// Never panics: a panic inside rxing is caught, counted, and the pass
    /// reads as empty. Work is bounded by the pass list, a cap on
    /// finder-pattern triples per pass and the time budget.
    pub fn decode(&mut self, frame: &GrayImage) -> Vec<Decoded> {
        let start = Instant::now();
        let budget = self.cfg.time_budget_ms.map(Duration::from_millis);
        let mut out = Vec::new();
        if !self.begin_frame(frame) {
            return out;
        }
        let mut passes = self.cfg.passes.clone();
        if !self.big_enough_to_halve() {
            // stable: full-resolution passes first, downscaled ones after
            passes.sort_by_key(|p| {
                matches!(p, Pass::Down2 | Pass::Down2LowRange | Pass::Down2Inverted)
            });
        }
        let every = u64::from(self.cfg.slow_pass_every.max(1));
        if !self.stats.frames.is_multiple_of(every) {
            passes.retain(|p| !p.is_slow());
        }
        for (i, pass) in passes.iter().enumerate() {
            if i > 0 {
                if let Some(b) = budget {
                    if start.elapsed() >= b {
                        self.stats.budget_exhausted += 1;
                        break;
                    }
                }
            }
            if pass.is_slow() && self.cfg.slow_passes_need_patterns && self.frame_patterns == 0 {
                // no pass so far saw even one finder pattern: most likely no code
                self.stats.slow_skipped += 1;
                continue;
            }
            self.stats.passes_run += 1;
            self.run_pass(*pass, &mut out);
            if !out.is_empty() {
                self.hits[pass.index()] += 1;
                self.stats.decoded += 1;
                break;
            }
        }
        out
    }

    /// Counts the frame and loads it as the base of this frame's passes; false for an
    /// empty or short buffer (which reads as empty).
    fn begin_frame(&mut self, frame: &GrayImage) -> bool {
        self.stats.frames += 1;
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        if w == 0 || h == 0 || frame.as_raw().len() < w * h {
            return false;
        }
        self.load(frame.as_raw(), w, h);
        self.base_valid = false;
        self.down_valid = false;
        self.frame_patterns = 0;
        true
    }

    /// Binarises the working image (a blurred or scaled copy of the frame) with the
    /// zxing-style local threshold and looks for codes in it.
    fn detect_work(&mut self, try_harder: bool, out: &mut Vec<Decoded>) {
        binarize::local_threshold(
            &self.work,
            ZXING_RANGE,
            false,
            &mut self.points,
            &mut self.bits,
        );
        self.detect_bits(try_harder, out);
    }

    /// Runs only `pass` on `frame` (for measuring passes one by one); counts
    /// as a frame in the stats like [`QrDecoder::decode`].
    pub fn decode_with_pass(&mut self, frame: &GrayImage, pass: Pass) -> Vec<Decoded> {
        let mut out = Vec::new();
        if !self.begin_frame(frame) {
            return out;
        }
        self.stats.passes_run += 1;
        self.run_pass(pass, &mut out);
        if !out.is_empty() {
            self.hits[pass.index()] += 1;
            self.stats.decoded += 1;
        }
        out
    }

    /// Counters since the decoder was made.
    pub fn stats(&self) -> DecoderStats {
        let mut s = self.stats.clone();
        s.pass_hits = Pass::ALL
            .iter()
            .map(|p| (p.name().to_string(), self.hits[p.index()]))
            .collect();
        s
    }

    /// Copies the frame into `src`, box-downscaling oversized frames.
    fn load(&mut self, raw: &[u8], w: usize, h: usize) {
        let px = (w as u64) * (h as u64);
        let max = self.cfg.max_pixels.max(1);
        if px > max {
            let mut n = 2usize;
            while ((w / n) as u64) * ((h / n) as u64) > max {
                n += 1;
            }
            binarize::downscale_n(raw, w, h, n, &mut self.src);
        } else {
            self.src.reset(w, h);
            self.src.data.copy_from_slice(&raw[..w * h]);
        }
    }

    fn ensure_down(&mut self) {
        if !self.down_valid {
            binarize::downscale2(&self.src, &mut self.work);
            binarize::local_threshold(
                &self.work,
                ZXING_RANGE,
                false,
                &mut self.points,
                &mut self.down,
            );
            self.down_valid = true;
        }
    }

    fn ensure_base(&mut self) {
        if !self.base_valid {
            binarize::local_threshold(
                &self.src,
                ZXING_RANGE,
                false,
                &mut self.points,
                &mut self.base,
            );
            self.base_valid = true;
        }
    }

    fn big_enough_to_halve(&self) -> bool {
        (self.src.width as u64) * (self.src.height as u64) >= self.cfg.downscale_min_pixels
    }

    fn run_pass(&mut self, pass: Pass, out: &mut Vec<Decoded>) {
        let try_harder = self.cfg.try_harder;
        match pass {
            Pass::Local => {
                self.ensure_base();
                self.detect_base(false, try_harder, out);
            }
            Pass::Inverted => {
                self.ensure_base();
                self.detect_base(true, try_harder, out);
            }
            Pass::Down2 => {
                self.ensure_down();
                let r = detect(&self.down, try_harder, out);
                self.record(r);
            }
            Pass::Down2Inverted => {
                self.ensure_down();
                self.down.flip_self();
                let r = detect(&self.down, try_harder, out);
                self.record(r);
                self.down.flip_self();
            }
            Pass::Blur => {
                binarize::blur3(&self.src, &mut self.tmp16, &mut self.work);
                self.detect_work(try_harder, out);
            }
            Pass::Up2 => {
                // Upscaling a large frame costs 4× the pixels: only do it on
                // frames up to VGA-ish size.
                if self.src.width * self.src.height > 800 * 600 {
                    return;
                }
                binarize::upscale2(&self.src, &mut self.work);
                self.detect_work(try_harder, out);
            }
            Pass::Stretch => {
                let (lo, hi) =
                    binarize::percentiles(&self.src.data, self.src.width, self.src.height);
                binarize::stretch(&self.src, lo, hi, &mut self.work2);
                binarize::local_threshold(&self.work2, 24, false, &mut self.points, &mut self.bits);
                self.detect_bits(try_harder, out);
            }
            Pass::Global => {
                binarize::global_threshold(&self.src, &mut self.bits);
                self.detect_bits(try_harder, out);
            }
            Pass::LowRange => {
                binarize::local_threshold(
                    &self.src,
                    LOW_RANGE,
                    true,
                    &mut self.points,
                    &mut self.bits,
                );
                self.detect_bits(try_harder, out);
            }
            Pass::Down2LowRange => {
                binarize::downscale2(&self.src, &mut self.work);
                binarize::local_threshold(
                    &self.work,
                    LOW_RANGE,
                    true,
                    &mut self.points,
                    &mut self.bits,
                );
                self.detect_bits(try_harder, out);
            }
        }
    }

    fn detect_base(&mut self, invert: bool, try_harder: bool, out: &mut Vec<Decoded>) {
        if invert {
            self.base.flip_self();
        }
        let r = detect(&self.base, try_harder, out);
        if invert {
            self.base.flip_self();
        }
        self.record(r);
    }

    /// Notes a detector outcome: finder patterns seen, or a caught panic.
    fn record(&mut self, r: Option<usize>) {
        match r {
            Some(n) => self.frame_patterns = self.frame_patterns.max(n),
            None => self.note_panic(),
        }
    }

    /// Counts a caught rxing panic (never logs frame or payload content).
    fn note_panic(&mut self) {
        self.stats.panics += 1;
        tracing::warn!(
            panics = self.stats.panics,
            "QR decoder panicked inside rxing; pass skipped"
        );
    }

    fn detect_bits(&mut self, try_harder: bool, out: &mut Vec<Decoded>) {
        let r = detect(&self.bits, try_harder, out);
        self.record(r);
    }
}

/// Runs rxing's QR detector and decoder on a binarised frame, appending
/// distinct payloads to `out`. Returns the number of finder patterns seen,
/// or `None` when rxing panicked.
fn detect(bits: &BitMatrix, try_harder: bool, out: &mut Vec<Decoded>) -> Option<usize> {
    let found = catch_unwind(AssertUnwindSafe(|| {
        let mut res = Vec::new();
        let mut fps = FindFinderPatterns(bits, try_harder, 0);
        let n_patterns = fps.len();
        let sets = GenerateFinderPatternSets(&mut fps);
        let mut used = Vec::new();
        for set in sets.into_iter().take(MAX_SETS_PER_PASS) {
            if used.contains(&set.bl) || used.contains(&set.tl) || used.contains(&set.tr) {
                continue;
            }
            let Ok(det) = SampleQR(bits, &set) else {
                continue;
            };
            let Ok(dec) = Decode(det.getBits()) else {
                continue;
            };
            if !dec.isValid() {
                continue;
            }
            used.extend([set.bl, set.tl, set.tr]);
            let bytes = dec.content().bytes().to_vec();
            let text = match std::str::from_utf8(&bytes) {
                Ok(s) => Some(s.to_string()),
                Err(_) if dec.content().has_eci => Some(dec.text()),
                Err(_) => None,
            };
            res.push(Decoded { bytes, text });
        }
        (res, n_patterns)
    }));
    match found {
        Ok((list, n_patterns)) => {
            for d in list {
                if !out.iter().any(|o| o.bytes == d.bytes) {
                    out.push(d);
                }
            }
            Some(n_patterns)
        }
        Err(_) => None,
    }
}

/// Collapses repeated reads: the same payload seen again within `window_ms`
/// of its last sighting is reported once. Payloads are kept only as a 64-bit
/// keyed hash (never the bytes), and entries expire with the window.
#[derive(Debug)]
pub struct Collapse {
    window_ms: u64,
    seen: Vec<(u64, u64)>, // (hash, last seen ms)
    key: std::collections::hash_map::RandomState,
}

/// Most distinct payloads remembered at once; the oldest is forgotten first.
const COLLAPSE_CAPACITY: usize = 64;

impl Collapse {
    /// Makes a collapser with the given window.
    pub fn new(window_ms: u64) -> Self {
        Collapse {
            window_ms,
            seen: Vec::new(),
            key: std::collections::hash_map::RandomState::new(),
        }
    }

    /// True when `payload` should be reported: not seen within the window
    /// before `now_ms`. Every sighting (reported or not) refreshes the entry,
    /// so a code held in front of the camera is reported once.
    pub fn accept(&mut self, now_ms: u64, payload: &[u8]) -> bool {
        use std::hash::BuildHasher;
        let h = self.key.hash_one(payload);
        let window = self.window_ms;
        self.seen
            .retain(|&(_, t)| now_ms < t || now_ms - t <= window);
        if let Some(e) = self.seen.iter_mut().find(|e| e.0 == h) {
            e.1 = e.1.max(now_ms);
            return false;
        }
        if self.seen.len() >= COLLAPSE_CAPACITY {
            if let Some(i) = self
                .seen
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.1)
                .map(|(i, _)| i)
            {
                self.seen.swap_remove(i);
            }
        }
        self.seen.push((h, now_ms));
        true
    }
}

/// Renders `text` as a QR code image with rxing's encoder: `module_px`
/// pixels per module, a 4-module quiet zone, error-correction level M,
/// black on white.
pub fn render_qr(text: &str, module_px: u32) -> Result<GrayImage, QrError> {
    use rxing::Writer;
    if !(1..=64).contains(&module_px) {
        return Err(QrError::ModuleSize(module_px));
    }
    let hints = rxing::EncodeHints {
        ErrorCorrection: Some("M".to_string()),
        Margin: Some("4".to_string()),
        // ASCII needs no ECI header (EMVCo payloads are ASCII); anything else
        // is declared UTF-8 so that decoders do not guess.
        CharacterSet: (!text.is_ascii()).then(|| "UTF-8".to_string()),
        ..Default::default()
    };
    let m = catch_unwind(AssertUnwindSafe(|| {
        rxing::qrcode::QRCodeWriter.encode_with_hints(
            text,
            &rxing::BarcodeFormat::QR_CODE,
            0,
            0,
            &hints,
        )
    }))
    .map_err(|_| QrError::Encode("encoder panicked".to_string()))?
    .map_err(|e| QrError::Encode(e.to_string()))?;
    let (mw, mh) = (m.getWidth(), m.getHeight());
    let img = GrayImage::from_fn(mw * module_px, mh * module_px, |x, y| {
        if m.get(x / module_px, y / module_px) {
            image::Luma([0])
        } else {
            image::Luma([255])
        }
    });
    Ok(img)
}

/// PNG bytes of [`render_qr`].
pub fn render_qr_png(text: &str, module_px: u32) -> Result<Vec<u8>, QrError> {
    let img = render_qr(text, module_px)?;
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| QrError::Png(e.to_string()))?;
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests;
