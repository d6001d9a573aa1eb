//! The payment readers as threads beside the core: the PN532 NFC reader, the camera with
//! its QR decoder, and the face thread the camera feeds (see [`crate::facepay`]). Each turns
//! what it sees into a keyed-hash credential and sends an [`Input`] to the core queue —
//! or, while a face enrolment or erasure waits for proof of an account, to the face desk;
//! none ever passes on, logs or keeps a raw UID or code.

use crate::camera::scan::{run_capture, CameraHealth, CameraStats};
use crate::camera::{self, SimScene, SourceKind};
use crate::config::{CodesConfig, NfcConfig, NfcReader};
use crate::core::{Input, PaymentMethod, Phase, SessionId};
use crate::facepay::{self, FaceDesk};
use crate::nfc::reader::{run_reader, CardEvent, DriverConfig, Pn532, ReaderHealth};
use crate::nfc::rpi::{I2cTransport, SpiTransport, UartTransport};
use crate::nfc::sim::{SimPn532, SimReaderHandle};
use crate::nfc::transport::Transport;
use crate::payment::paycode::Scanned;
use crate::qr::{Collapse, QrConfig, QrDecoder};
use crate::runtime::{now_ms, Request};
use crate::ui::view::Snapshot;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// Counters of what the camera read (never the content).
#[derive(Debug, Default)]
pub struct ScanCounters {
    /// Pay codes matched.
    pub paycodes: AtomicU64,
    /// Merchant codes held up to the camera.
    pub merchant_codes: AtomicU64,
    /// Codes that match no pattern.
    pub unrecognised: AtomicU64,
    /// Repeats collapsed.
    pub repeats: AtomicU64,
}

/// The camera's latest frame for the service page, kept only while somebody looks at it.
#[derive(Debug, Default)]
pub struct Preview {
    wanted_until: AtomicU64,
    /// The frame scaled to 320 px wide, and the full frame's width.
    frame: Mutex<Option<(image::RgbImage, u32)>>,
}

impl Preview {
    /// Somebody looks: keep a preview for the next 5 s.
    pub fn want(&self, now: u64) {
        self.wanted_until.store(now + 5000, Ordering::Relaxed);
    }

    /// Is a preview wanted now?
    pub fn wanted(&self, now: u64) -> bool {
        now < self.wanted_until.load(Ordering::Relaxed)
    }

    /// Keeps a copy of `rgb`, scaled to 320 px wide.
    pub fn offer(&self, rgb: &image::RgbImage) {
        let (w, h) = rgb.dimensions();
        if w == 0 {
            return;
        }
        let small = image::imageops::thumbnail(rgb, 320, (h * 320 / w).max(1));
        *self.frame.lock().unwrap_or_else(|p| p.into_inner()) = Some((small, w));
    }

    /// The preview as JPEG with `faces` (boxes `[x, y, w, h]` in frame pixels) outlined.
    pub fn jpeg(&self, faces: &[[f32; 4]]) -> Option<Vec<u8>> {
        let (mut img, full_w) = self
            .frame
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let k = img.width() as f32 / full_w.max(1) as f32;
        for b in faces {
            outline(&mut img, [b[0] * k, b[1] * k, b[2] * k, b[3] * k]);
        }
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .ok()?;
        Some(out.into_inner())
    }
}

/// Draws a 2-px yellow rectangle.
fn outline(img: &mut image::RgbImage, b: [f32; 4]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (b[0] as i64, b[1] as i64);
    let (x1, y1) = ((b[0] + b[2]) as i64, (b[1] + b[3]) as i64);
    let mut put = |x: i64, y: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, image::Rgb([255, 212, 0]));
        }
    };
    for d in 0..2 {
        for x in x0..=x1 {
            put(x, y0 + d);
            put(x, y1 - d);
        }
        for y in y0..=y1 {
            put(x0 + d, y);
            put(x1 - d, y);
        }
    }
}

/// The readers' state for the service page, health and `doctor`.
#[derive(Clone, Default)]
pub struct ReadersStatus {
    /// NFC reader health (None: no reader configured).
    pub nfc: Option<Arc<Mutex<ReaderHealth>>>,
    /// Camera counters (None: no camera).
    pub camera: Option<Arc<CameraStats>>,
    /// Scan counters.
    pub scans: Arc<ScanCounters>,
    /// The camera preview (None: no camera).
    pub preview: Option<Arc<Preview>>,
}

/// JSON form of [`ReadersStatus`].
#[derive(Debug, Serialize)]
pub struct ReadersReport {
    /// NFC reader.
    pub nfc: Option<ReaderHealth>,
    /// Camera.
    pub camera: Option<CameraHealth>,
    /// Codes read: pay codes, merchant codes, unrecognised, repeats collapsed.
    pub codes: [u64; 4],
}

impl ReadersStatus {
    /// A snapshot for JSON.
    pub fn report(&self) -> ReadersReport {
        let s = &self.scans;
        ReadersReport {
            nfc: self
                .nfc
                .as_ref()
                .map(|h| h.lock().expect("nfc health").clone()),
            camera: self.camera.as_ref().map(|c| c.health()),
            codes: [
                s.paycodes.load(Ordering::Relaxed),
                s.merchant_codes.load(Ordering::Relaxed),
                s.unrecognised.load(Ordering::Relaxed),
                s.repeats.load(Ordering::Relaxed),
            ],
        }
    }
}

/// What was started.
pub struct Readers {
    /// The simulated NFC reader's handle (simulate mode).
    pub nfc_sim: Option<SimReaderHandle>,
    /// The simulated camera's scene (simulate mode with `camera.source = "sim"`).
    pub scene: Option<SimScene>,
    /// Status for the API.
    pub status: ReadersStatus,
    /// Set by the panel thread when the presence sensor sees somebody.
    pub present: Arc<AtomicBool>,
    /// Stops the threads.
    pub stop: Arc<AtomicBool>,
    /// The threads.
    pub threads: Vec<JoinHandle<()>>,
}

/// Everything the reader threads need from the daemon.
pub struct ReaderDeps {
    /// Core queue.
    pub tx: mpsc::Sender<Request>,
    /// Latest snapshot (the camera scans only while a payment is awaited).
    pub snapshot: watch::Receiver<Snapshot>,
    /// Device secret for tokens.
    pub secret: Arc<Vec<u8>>,
    /// Simulate mode (real readers are replaced by simulated ones).
    pub simulate: bool,
    /// Seed for the simulated camera's noise.
    pub seed: u64,
    /// Set by the panel thread while the presence sensor sees somebody.
    pub present: Arc<AtomicBool>,
    /// Face pay (None: not offered).
    pub face: Option<Arc<FaceDesk>>,
}

/// Starts the NFC and camera threads the configuration asks for. A reader that cannot be
/// opened is reported (health not ok) and retried by its own loop; it never stops the
/// daemon: the shopper can still pay another way.
pub fn start(nfc: &NfcConfig, codes: &CodesConfig, deps: ReaderDeps) -> Readers {
    let stop = Arc::new(AtomicBool::new(false));
    let mut r = Readers {
        nfc_sim: None,
        scene: None,
        status: ReadersStatus::default(),
        present: deps.present.clone(),
        stop: stop.clone(),
        threads: Vec::new(),
    };
    start_nfc(nfc, &deps, &mut r);
    start_camera(codes, &deps, &mut r);
    r
}

fn start_nfc(cfg: &NfcConfig, deps: &ReaderDeps, r: &mut Readers) {
    let transport: Box<dyn Transport + Send> = match (&cfg.reader, deps.simulate) {
        (NfcReader::None, _) => return,
        (NfcReader::Sim, _) | (_, true) => {
            let (sim, handle) = SimPn532::new(true);
            r.nfc_sim = Some(handle);
            Box::new(sim)
        }
        (
            NfcReader::Spi {
                bus,
                slave_select,
                clock_hz,
            },
            false,
        ) => match SpiTransport::new(*bus, *slave_select, *clock_hz, cfg.pins) {
            Ok(t) => Box::new(t),
            Err(e) => return nfc_unavailable(r, &e.to_string()),
        },
        (NfcReader::I2c { bus }, false) => match I2cTransport::new(*bus, cfg.pins) {
            Ok(t) => Box::new(t),
            Err(e) => return nfc_unavailable(r, &e.to_string()),
        },
        (NfcReader::Uart { path }, false) => match UartTransport::new(path, cfg.pins) {
            Ok(t) => Box::new(t),
            Err(e) => return nfc_unavailable(r, &e.to_string()),
        },
    };
    let health = Arc::new(Mutex::new(ReaderHealth::default()));
    r.status.nfc = Some(health.clone());
    let pn532 = Pn532::new(transport, DriverConfig::default());
    let poll = cfg.poll.clone();
    let secret = deps.secret.clone();
    let stop = r.stop.clone();
    let tx = deps.tx.clone();
    let face = deps.face.clone();
    let nsnap = deps.snapshot.clone();
    let t = std::thread::Builder::new()
        .name("nfc".into())
        .spawn(move || {
            run_reader(pn532, poll, &secret, &stop, |ev| match ev {
                CardEvent::Arrived { token } => {
                    debug!("nfc: card arrived");
                    // A card pays when a payment is awaited; otherwise it may prove an
                    // account to a waiting face enrolment or erasure.
                    if payment_watch(&nsnap).is_none()
                        && face
                            .as_ref()
                            .is_some_and(|d| d.offer_proof(PaymentMethod::Card, &token))
                    {
                        info!("nfc: card taken as proof of account for the face desk");
                        return;
                    }
                    let input = Input::Credential {
                        method: PaymentMethod::Card,
                        credential: token,
                    };
                    if tx.blocking_send(Request { input, reply: None }).is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                CardEvent::Left => debug!("nfc: card left"),
                CardEvent::Health(h) => {
                    if h.wedged {
                        warn!(
                            resets = h.resets,
                            "nfc: the reader is not answering; resetting it"
                        );
                    }
                    *health.lock().expect("nfc health") = h;
                }
            });
        })
        .expect("spawn nfc thread");
    r.threads.push(t);
}

fn nfc_unavailable(r: &mut Readers, why: &str) {
    error!(
        cause = why,
        "nfc: the reader cannot be opened; cards are not offered"
    );
    r.status.nfc = Some(Arc::new(Mutex::new(ReaderHealth {
        ok: false,
        wedged: true,
        ..ReaderHealth::default()
    })));
}

/// The session whose payment the camera watches for, and whether a code would be taken now
/// (awaiting a credential) or only watched (authorising: a code still held up must not be
/// taken again as soon as an answer comes back — it counts as one read until it has been
/// out of view for `repeat_ms`).
fn payment_watch(snap: &watch::Receiver<Snapshot>) -> Option<(SessionId, bool)> {
    let s = snap.borrow();
    let phase = s.session.phase;
    let awaiting = phase == Phase::AwaitingCredential.name();
    if awaiting || phase == Phase::Authorising.name() {
        s.session.sid.map(|sid| (sid, awaiting))
    } else {
        None
    }
}

fn start_camera(cfg: &CodesConfig, deps: &ReaderDeps, r: &mut Readers) {
    let mut cam = cfg.camera.clone();
    if deps.simulate && !matches!(cam.source, SourceKind::Replay(_) | SourceKind::None) {
        cam.source = SourceKind::Sim;
    }
    if cam.source == SourceKind::None {
        return;
    }
    let scene = SimScene::default();
    if cam.source == SourceKind::Sim {
        r.scene = Some(scene.clone());
    }
    let stats = Arc::new(CameraStats::default());
    r.status.camera = Some(stats.clone());
    let preview = Arc::new(Preview::default());
    r.status.preview = Some(preview.clone());
    let scans = r.status.scans.clone();
    let (stop, present, snap, tx, secret, seed) = (
        r.stop.clone(),
        r.present.clone(),
        deps.snapshot.clone(),
        deps.tx.clone(),
        deps.secret.clone(),
        deps.seed,
    );
    let rules = cfg.paycodes.clone();
    let repeat_ms = cfg.repeat_ms;
    // The face thread gets at most one frame queued: a busy face thread skips frames.
    let face = deps.face.clone();
    let face_tx = face.as_ref().map(|desk| {
        let (ftx, frx) = std::sync::mpsc::sync_channel(1);
        r.threads.push(facepay::start(
            desk.clone(),
            facepay::FaceDeps {
                tx: deps.tx.clone(),
                snapshot: deps.snapshot.clone(),
                frames: frx,
                stop: r.stop.clone(),
            },
        ));
        ftx
    });
    let t = std::thread::Builder::new()
        .name("camera".into())
        .spawn(move || {
            let source = loop {
                match camera::open_source(&cam, &scene, seed) {
                    Ok(Some(s)) => break s,
                    Ok(None) => return,
                    Err(e) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        warn!(cause = %e, "camera: cannot open; retrying in 10 s");
                        for _ in 0..200 {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    }
                }
            };
            info!("camera: delivering frames");
            let mut decoder = QrDecoder::new(QrConfig::default());
            let mut collapse = Collapse::new(repeat_ms);
            let mut session: Option<SessionId> = None;
            let proof_wanted = || face.as_ref().is_some_and(|d| d.awaiting_proof());
            let face_wanted = || {
                face.as_ref()
                    .is_some_and(|d| facepay::wants_frames(d, &snap))
            };
            let wanted = || {
                payment_watch(&snap).is_some()
                    || proof_wanted()
                    || face_wanted()
                    || preview.wanted(now_ms())
            };
            run_capture(source, &cam, &present, wanted, &stop, &stats, |frame| {
                if preview.wanted(now_ms()) {
                    preview.offer(&frame.rgb);
                }
                if let (Some(ftx), true) = (&face_tx, face_wanted()) {
                    // Full: the face thread is still on an earlier frame; skip this one.
                    let _ = ftx.try_send(frame.rgb.clone());
                }
                if proof_wanted() {
                    // A face enrolment or erasure waits for a pay code as proof.
                    for d in decoder.decode(&frame.gray) {
                        if let Scanned::PayCode { token, .. } = rules.classify(&secret, &d.bytes) {
                            if let Some(desk) = &face {
                                if desk.offer_proof(PaymentMethod::PayCode, &token) {
                                    info!("camera: pay code taken as proof of account");
                                }
                            }
                        }
                    }
                    return;
                }
                let Some((sid, awaiting)) = payment_watch(&snap) else {
                    return;
                };
                // A new session forgets the codes read in the last one.
                if Some(sid) != session {
                    session = Some(sid);
                    collapse = Collapse::new(repeat_ms);
                }
                for d in decoder.decode(&frame.gray) {
                    if !collapse.accept(now_ms(), &d.bytes) {
                        scans.repeats.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if !awaiting {
                        // Seen while an answer is pending: remembered, not taken.
                        continue;
                    }
                    let input = match rules.classify(&secret, &d.bytes) {
                        Scanned::PayCode { pattern, token } => {
                            debug!(%pattern, "camera: pay code read");
                            scans.paycodes.fetch_add(1, Ordering::Relaxed);
                            Input::Credential {
                                method: PaymentMethod::PayCode,
                                credential: token,
                            }
                        }
                        Scanned::MerchantCode => {
                            scans.merchant_codes.fetch_add(1, Ordering::Relaxed);
                            Input::UnrecognisedCode
                        }
                        Scanned::Unrecognised => {
                            scans.unrecognised.fetch_add(1, Ordering::Relaxed);
                            Input::UnrecognisedCode
                        }
                    };
                    if tx.blocking_send(Request { input, reply: None }).is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        })
        .expect("spawn camera thread");
    r.threads.push(t);
}
