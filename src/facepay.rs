//! Face pay in the daemon: the face thread beside the camera, enrolment with consent, and
//! erasure.
//!
//! * **Paying.** While the machine waits for payment the camera hands frames to the face
//!   thread (at most one queued: a busy thread skips frames rather than falling behind).
//!   The stream detects, gates and tracks faces and embeds a track once; a match against
//!   the gallery (threshold and margin from the configuration) starts a head-turn
//!   challenge on that track and tells the shopper who was recognised by a masked name
//!   ([`Input::Face`]); a passed challenge sends the linked account as an ordinary
//!   credential (method `face`), authorised online first and by the offline policy
//!   otherwise. A failed challenge or no match is told to the shopper and that track is
//!   not tried again: card and code stay offered beside face pay.
//! * **Enrolling.** After an explicit consent step (`POST /api/face/enrol` with
//!   `consent: true`) the shopper proves an account by tapping a card or showing a pay
//!   code — the reader threads hand that credential to the desk instead of the core — then
//!   looks at the camera; `min_captures` gated captures of one tracked face (alone in view)
//!   are embedded, checked for agreement and averaged into the encrypted gallery, and the
//!   enrolment is journaled ([`Input::FaceEnrolled`]).
//! * **Erasing.** The shopper proves the account again at the kiosk (`POST
//!   /api/face/erase`), or the operator sends the signed `erase_face` command; either way
//!   the erasure is journaled first ([`Input::FaceErased`]) and the core's
//!   [`Command::EraseFace`](crate::core::Command::EraseFace) removes the embedding from the
//!   gallery file. At start-up every gallery entry the journal does not list as enrolled is
//!   erased, so a crash between the two steps cannot keep a face the shopper erased.
//!
//! Embeddings never leave this module except into the sealed gallery file; the face
//! thread keeps a track's embedding only while the track lives.

use crate::core::{EraseBy, FaceStep, HeadTurn, Input, PaymentMethod, Phase, Reject, SessionId};
use crate::face::gallery::{mask_name, EnrolConfig, Gallery};
use crate::face::liveness::{
    Challenge, ChallengeKind, ChallengeState, LivenessConfig, Observation,
};
use crate::face::matcher::{MatchDecision, Matcher, EMBEDDING_DIM};
use crate::face::model::ModelPaths;
use crate::face::pipeline::{FaceConfig, FaceEngine};
use crate::face::stream::{FaceStream, StreamConfig, StreamStats, Tracked};
use crate::face::track::TrackId;
use crate::runtime::{now_ms, Request};
use crate::ui::view::Snapshot;
use image::RgbImage;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};
use zeroize::Zeroizing;

/// Which way the challenge asks the shopper to turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeChoice {
    /// Left or right at random per attempt (the default: a prepared recording is wrong
    /// half the time).
    Random,
    /// Always left (commissioning and tests).
    Left,
    /// Always right.
    Right,
}

/// Face pay settings (`[face]` in the configuration).
#[derive(Debug, Clone)]
pub struct FacePayConfig {
    /// Folder with the model files of `models/manifest.toml`.
    pub models: PathBuf,
    /// The encrypted gallery file (None: `face-gallery.bin` in the state directory).
    pub gallery: Option<PathBuf>,
    /// Detector, quality gate and matching.
    pub engine: FaceConfig,
    /// Tracking and work skipping.
    pub stream: StreamConfig,
    /// The head-turn challenge.
    pub liveness: LivenessConfig,
    /// Challenge direction.
    pub challenge: ChallengeChoice,
    /// Enrolment rules.
    pub enrol: EnrolConfig,
    /// Time from consent to the last capture, ms.
    pub enrol_timeout_ms: u64,
    /// Least time between two enrolment captures, ms.
    pub capture_gap_ms: u64,
}

impl Default for FacePayConfig {
    fn default() -> Self {
        FacePayConfig {
            models: PathBuf::from("models/cache"),
            gallery: None,
            engine: FaceConfig::default(),
            // A slow frame (a busy Pi) must not split one shopper into two tracks: the
            // face thread skips frames while it works, so allow a second between sightings.
            stream: StreamConfig {
                tracker: crate::face::track::TrackerConfig {
                    max_gap_ms: 1000,
                    ..crate::face::track::TrackerConfig::default()
                },
                ..StreamConfig::default()
            },
            liveness: LivenessConfig::default(),
            challenge: ChallengeChoice::Random,
            enrol: EnrolConfig::default(),
            enrol_timeout_ms: 60_000,
            capture_gap_ms: 200,
        }
    }
}

/// What a kiosk task (enrol or erase) is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Linking a face to an account.
    Enrol,
    /// Erasing an account's face.
    Erase,
}

/// Where a kiosk task stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStep {
    /// Tap a card or show a pay code.
    AwaitingProof,
    /// Enrolment: look at the camera.
    Capturing,
    /// Writing the gallery and the journal.
    Saving,
    /// Finished.
    Done,
    /// Failed (see `error`).
    Failed,
}

/// A kiosk task, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// Enrol or erase.
    pub kind: TaskKind,
    /// Step.
    pub step: TaskStep,
    /// Masked display name (enrolment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_name: Option<String>,
    /// Captures taken so far (enrolment).
    pub captures: usize,
    /// Captures needed (enrolment).
    pub need: usize,
    /// Erase: whether a face was erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erased: Option<bool>,
    /// Failure code and plain-language message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<(String, String)>,
}

struct Task {
    view: TaskView,
    name: Zeroizing<String>,
    started_ms: u64,
    proof: Option<(PaymentMethod, String)>,
    captures: Vec<Zeroizing<[f32; EMBEDDING_DIM]>>,
    track: Option<TrackId>,
    last_capture_ms: u64,
}

impl Task {
    fn fail(&mut self, code: &str, msg: impl Into<String>) {
        self.captures.clear();
        self.view.step = TaskStep::Failed;
        self.view.error = Some((code.to_owned(), msg.into()));
    }
}

/// Face pay status for `GET /api/face`.
#[derive(Debug, Clone, Serialize)]
pub struct FaceStatus {
    /// Models loaded and the gallery open: face pay is offered.
    pub available: bool,
    /// Why not, in plain language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Faces enrolled.
    pub enrolled: usize,
    /// The kiosk task, if any.
    pub task: Option<TaskView>,
    /// Work done by the face thread.
    pub stream: StreamStats,
}

struct DeskInner {
    gallery: Option<Gallery>,
    matcher: Matcher,
    problem: Option<String>,
    models_loaded: bool,
    task: Option<Task>,
    stream: StreamStats,
    /// The face boxes of the last processed frame, and when.
    last_faces: (u64, Vec<[f32; 4]>),
}

/// State shared by the HTTP layer, the reader threads, the core loop and the face thread.
pub struct FaceDesk {
    inner: Mutex<DeskInner>,
    cfg: FacePayConfig,
}

/// Why a kiosk task cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskError {
    /// Code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

fn desk_err(code: &'static str, message: impl Into<String>) -> DeskError {
    DeskError {
        code,
        message: message.into(),
    }
}

impl FaceDesk {
    /// Opens the gallery and erases from it every account the journal does not list as
    /// enrolled (`enrolled`, from the replayed state). A gallery that cannot be opened
    /// (wrong device secret, damaged file) leaves face pay unavailable — it is neither
    /// deleted nor overwritten.
    pub fn open(
        cfg: FacePayConfig,
        gallery_path: PathBuf,
        secret: &[u8],
        enrolled: &BTreeMap<String, String>,
    ) -> FaceDesk {
        let (gallery, problem) = match Gallery::load(&gallery_path, secret) {
            Ok(mut g) => {
                g.set_enrol_config(cfg.enrol);
                let stale: Vec<String> = g
                    .iter()
                    .filter(|e| !enrolled.contains_key(&e.id))
                    .map(|e| e.id.clone())
                    .collect();
                for id in &stale {
                    if let Err(e) = g.erase(id) {
                        error!(cause = %e, "face: cannot erase an enrolment the journal erased");
                    }
                }
                if !stale.is_empty() {
                    info!(
                        erased = stale.len(),
                        "face: erased enrolments the journal does not list"
                    );
                }
                (Some(g), None)
            }
            Err(e) => {
                error!(cause = %e, "face: the gallery cannot be opened; face pay is not offered");
                (
                    None,
                    Some(format!("the face gallery cannot be opened: {e}")),
                )
            }
        };
        let matcher = gallery.as_ref().map(Gallery::matcher).unwrap_or_default();
        FaceDesk {
            inner: Mutex::new(DeskInner {
                gallery,
                matcher,
                problem,
                models_loaded: false,
                task: None,
                stream: StreamStats::default(),
                last_faces: (0, Vec::new()),
            }),
            cfg,
        }
    }

    fn lock(&self) -> MutexGuard<'_, DeskInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Status for the API.
    pub fn status(&self) -> FaceStatus {
        let g = self.lock();
        FaceStatus {
            available: g.models_loaded && g.gallery.is_some(),
            problem: g.problem.clone(),
            enrolled: g.gallery.as_ref().map_or(0, Gallery::len),
            task: g.task.as_ref().map(|t| t.view.clone()),
            stream: g.stream.clone(),
        }
    }

    /// The face boxes (`[x, y, w, h]`, frame pixels) of the last frame the face thread
    /// processed, when it was at most `max_age_ms` ago (for the service page's preview).
    pub fn recent_faces(&self, now: u64, max_age_ms: u64) -> Vec<[f32; 4]> {
        let g = self.lock();
        if now.saturating_sub(g.last_faces.0) <= max_age_ms {
            g.last_faces.1.clone()
        } else {
            Vec::new()
        }
    }

    /// Is face pay offered now?
    pub fn available(&self) -> bool {
        let g = self.lock();
        g.models_loaded && g.gallery.is_some()
    }

    /// Starts enrolment for a consenting shopper who gave `name` (shown only masked).
    ///
    /// # Errors
    /// [`DeskError`]: no consent, a bad name, face pay unavailable, or another task running.
    pub fn start_enrol(&self, consent: bool, name: &str) -> Result<TaskView, DeskError> {
        if !consent {
            return Err(desk_err(
                "consent_required",
                "enrolling needs the shopper's explicit consent (consent: true)",
            ));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
            return Err(desk_err(
                "bad_name",
                "a name is 1 to 40 printable characters",
            ));
        }
        let need = self.cfg.enrol.min_captures.max(1);
        self.start(TaskKind::Enrol, Some(mask_name(name)), name, need)
    }

    /// Starts the kiosk erasure: the shopper proves the account next.
    ///
    /// # Errors
    /// [`DeskError`]: face pay unavailable, or another task running.
    pub fn start_erase(&self) -> Result<TaskView, DeskError> {
        self.start(TaskKind::Erase, None, "", 0)
    }

    fn start(
        &self,
        kind: TaskKind,
        masked_name: Option<String>,
        name: &str,
        need: usize,
    ) -> Result<TaskView, DeskError> {
        let mut g = self.lock();
        if g.gallery.is_none() || !g.models_loaded {
            return Err(desk_err(
                "face_unavailable",
                g.problem
                    .clone()
                    .unwrap_or_else(|| "face pay is starting; try again in a moment".into()),
            ));
        }
        if let Some(t) = &g.task {
            if !matches!(t.view.step, TaskStep::Done | TaskStep::Failed) {
                return Err(desk_err(
                    "busy",
                    "another enrolment or erasure is in progress; cancel it first",
                ));
            }
        }
        let view = TaskView {
            kind,
            step: TaskStep::AwaitingProof,
            masked_name,
            captures: 0,
            need,
            erased: None,
            error: None,
        };
        g.task = Some(Task {
            view: view.clone(),
            name: Zeroizing::new(name.to_owned()),
            started_ms: now_ms(),
            proof: None,
            captures: Vec::new(),
            track: None,
            last_capture_ms: 0,
        });
        Ok(view)
    }

    /// Cancels the kiosk task; returns whether one was running.
    pub fn cancel(&self) -> bool {
        let mut g = self.lock();
        let running = g
            .task
            .as_ref()
            .is_some_and(|t| !matches!(t.view.step, TaskStep::Done | TaskStep::Failed));
        g.task = None;
        running
    }

    /// Is a kiosk task waiting for a card or a pay code?
    pub fn awaiting_proof(&self) -> bool {
        self.lock()
            .task
            .as_ref()
            .is_some_and(|t| t.view.step == TaskStep::AwaitingProof)
    }

    /// A reader offers a credential (keyed hash). Taken — and kept from the core — when a
    /// kiosk task is waiting for proof of an account; returns whether it was taken.
    pub fn offer_proof(&self, method: PaymentMethod, token: &str) -> bool {
        let mut g = self.lock();
        let Some(t) = g.task.as_mut() else {
            return false;
        };
        if t.view.step != TaskStep::AwaitingProof {
            return false;
        }
        t.proof = Some((method, token.to_owned()));
        t.view.step = match t.view.kind {
            TaskKind::Enrol => TaskStep::Capturing,
            TaskKind::Erase => TaskStep::Saving,
        };
        true
    }

    /// Does the face thread need camera frames now (enrolment capturing)?
    fn capturing(&self) -> bool {
        self.lock()
            .task
            .as_ref()
            .is_some_and(|t| t.view.step == TaskStep::Capturing)
    }

    /// Removes `account` from the gallery (the core's `EraseFace`, after the journal has
    /// the erasure). Errors are logged; start-up erases again.
    pub fn erase(&self, account: &str) {
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some(gal) = inner.gallery.as_mut() {
            match gal.erase(account) {
                Ok(_) => {
                    inner.matcher.remove(account);
                    info!("face: enrolment erased");
                }
                Err(e) => {
                    error!(cause = %e, "face: cannot rewrite the gallery; start-up erases again")
                }
            }
        }
    }
}

/// Everything the face thread needs.
pub struct FaceDeps {
    /// Core queue.
    pub tx: mpsc::Sender<Request>,
    /// Latest snapshot.
    pub snapshot: watch::Receiver<Snapshot>,
    /// Frames from the camera thread.
    pub frames: std_mpsc::Receiver<RgbImage>,
    /// Stop flag.
    pub stop: Arc<AtomicBool>,
}

/// The session whose payment the face thread watches (awaiting a credential).
fn awaiting_sid(snap: &watch::Receiver<Snapshot>) -> Option<SessionId> {
    let s = snap.borrow();
    (s.session.phase == Phase::AwaitingCredential.name())
        .then_some(s.session.sid)
        .flatten()
}

/// Does the camera thread need to hand frames to the face thread now?
pub fn wants_frames(desk: &FaceDesk, snap: &watch::Receiver<Snapshot>) -> bool {
    desk.capturing() || (awaiting_sid(snap).is_some() && desk.available())
}

/// Starts the face thread: loads the models (a missing or changed model leaves face pay
/// unavailable, with the reason in the status), then serves payments and kiosk tasks.
pub fn start(desk: Arc<FaceDesk>, deps: FaceDeps) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("face".into())
        .spawn(move || run(desk, deps))
        .expect("spawn face thread")
}

/// The challenge in progress on one recognised track.
struct Candidate {
    account: String,
    challenge: Challenge,
}

/// Head-turn challenges a session may start (each one a fresh random direction): a
/// shopper can try again after a miss, a recording cannot try forever.
const MAX_CHALLENGES: u32 = 3;
/// Pause after a challenge before the next one starts, ms (time to read "try again").
const RETRY_PAUSE_MS: u64 = 2000;

/// Per-session payment state.
#[derive(Default)]
struct PayFlow {
    sid: Option<SessionId>,
    candidate: Option<Candidate>,
    /// Tracks matched this session: account and masked name.
    recognised: HashMap<TrackId, (String, String)>,
    /// Tracks the shopper was told were not recognised.
    told_unknown: HashSet<TrackId>,
    /// Challenges started this session.
    challenges: u32,
    /// No new challenge before this time.
    retry_at: u64,
}

fn run(desk: Arc<FaceDesk>, deps: FaceDeps) {
    let paths = match ModelPaths::from_dir(&desk.cfg.models) {
        Ok(p) => p,
        Err(e) => return unavailable(&desk, &e.to_string()),
    };
    let engine = match FaceEngine::load(&paths, desk.cfg.engine.clone()) {
        Ok(e) => e,
        Err(e) => return unavailable(&desk, &e.to_string()),
    };
    desk.lock().models_loaded = true;
    info!(models = %desk.cfg.models.display(), "face: models loaded; face pay offered");
    let mut stream = FaceStream::new(desk.cfg.stream.clone());
    let mut pay = PayFlow::default();
    let mut rng = rand::thread_rng();
    while !deps.stop.load(Ordering::Relaxed) {
        // Kiosk erasure needs no frames: it is carried out as soon as proof arrives.
        finish_erase(&desk, &deps.tx);
        expire_task(&desk);
        let frame = match deps.frames.recv_timeout(Duration::from_millis(100)) {
            Ok(f) => f,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                if let Some(c) = pay.candidate.as_mut() {
                    if let ChallengeState::Failed(_) = c.challenge.tick(now_ms()) {
                        challenge_failed(&mut pay, now_ms(), &deps.tx);
                    }
                }
                continue;
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let now = now_ms();
        let capturing = desk.capturing();
        let sid = awaiting_sid(&deps.snapshot);
        if !capturing && sid.is_none() {
            continue;
        }
        let tracked = match stream.process(&engine, &frame, now) {
            Ok(t) => t,
            Err(e) => {
                warn!(cause = %e, "face: inference failed on a frame");
                continue;
            }
        };
        {
            let mut g = desk.lock();
            g.stream = stream.stats();
            g.last_faces = (now, tracked.iter().map(|t| t.face.bbox).collect());
        }
        if capturing {
            capture(&desk, &engine, &tracked, now, &deps.tx);
            continue;
        }
        let Some(sid) = sid else { continue };
        if pay.sid != Some(sid) {
            pay = PayFlow {
                sid: Some(sid),
                ..PayFlow::default()
            };
        }
        serve_payment(&desk, &mut pay, &tracked, now, &deps.tx, &mut rng);
    }
}

fn unavailable(desk: &FaceDesk, why: &str) {
    error!(
        cause = why,
        "face: models not loaded; face pay is not offered"
    );
    desk.lock().problem = Some(format!(
        "face models not loaded ({why}); run scripts/models.sh"
    ));
}

fn send(tx: &mpsc::Sender<Request>, input: Input) {
    let _ = tx.blocking_send(Request { input, reply: None });
}

/// Sends an input and waits until the core has journaled it (or refused it).
fn send_and_wait(tx: &mpsc::Sender<Request>, input: Input) -> Result<(), Reject> {
    let (reply, rx) = oneshot::channel();
    if tx
        .blocking_send(Request {
            input,
            reply: Some(reply),
        })
        .is_err()
    {
        return Err(Reject::new("stopped", "the controller is not running"));
    }
    match rx.blocking_recv() {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(Reject::new("stopped", "the controller is not running")),
    }
}

fn challenge_failed(pay: &mut PayFlow, now: u64, tx: &mpsc::Sender<Request>) {
    if let Some(c) = pay.candidate.take() {
        info!(state = ?c.challenge.state(), "face: head-turn challenge failed");
        pay.retry_at = now + RETRY_PAUSE_MS;
        send(
            tx,
            Input::Face {
                step: FaceStep::NotLive,
            },
        );
    }
}

fn observation(t: &Tracked, now: u64) -> Observation {
    Observation {
        now_ms: now,
        track_id: t.track,
        landmarks: t.face.landmarks,
        bbox: t.face.bbox,
    }
}

/// Starts a head-turn challenge on a recognised track and tells the shopper.
fn start_challenge(
    desk: &FaceDesk,
    pay: &mut PayFlow,
    t: &Tracked,
    now: u64,
    tx: &mpsc::Sender<Request>,
    rng: &mut impl rand::Rng,
) {
    let Some((account, masked_name)) = pay.recognised.get(&t.track).cloned() else {
        return;
    };
    if pay.challenges >= MAX_CHALLENGES || now < pay.retry_at {
        return;
    }
    pay.challenges += 1;
    let kind = match desk.cfg.challenge {
        ChallengeChoice::Random => ChallengeKind::random(rng),
        ChallengeChoice::Left => ChallengeKind::TurnLeft,
        ChallengeChoice::Right => ChallengeKind::TurnRight,
    };
    let turn = match kind {
        ChallengeKind::TurnLeft => HeadTurn::Left,
        ChallengeKind::TurnRight => HeadTurn::Right,
    };
    info!(
        ?turn,
        attempt = pay.challenges,
        "face: recognised; head-turn challenge started"
    );
    let mut challenge = Challenge::with_config(kind, now, desk.cfg.liveness);
    // This frame is the first of the challenge.
    challenge.feed(&observation(t, now));
    pay.candidate = Some(Candidate { account, challenge });
    send(
        tx,
        Input::Face {
            step: FaceStep::Recognised { masked_name, turn },
        },
    );
}

fn serve_payment(
    desk: &FaceDesk,
    pay: &mut PayFlow,
    tracked: &[Tracked],
    now: u64,
    tx: &mpsc::Sender<Request>,
    rng: &mut impl rand::Rng,
) {
    let primary = tracked.first();
    if let Some(c) = pay.candidate.as_mut() {
        // The challenge follows the biggest face: another face taking its place fails it.
        let state = match primary {
            Some(t) => c.challenge.feed(&observation(t, now)),
            None => c.challenge.tick(now),
        };
        match state {
            ChallengeState::Passed => {
                let c = pay.candidate.take().expect("candidate");
                pay.retry_at = now + RETRY_PAUSE_MS;
                info!("face: challenge passed; paying with the linked account");
                send(
                    tx,
                    Input::Credential {
                        method: PaymentMethod::Face,
                        credential: c.account,
                    },
                );
            }
            ChallengeState::Failed(_) => challenge_failed(pay, now, tx),
            _ => {}
        }
        return;
    }
    let Some(t) = primary else { return };
    if pay.recognised.contains_key(&t.track) {
        return start_challenge(desk, pay, t, now, tx, rng);
    }
    let (Some(emb), true) = (t.embedding.as_ref(), t.embedded_now) else {
        return;
    };
    let recognised = {
        let g = desk.lock();
        match g.matcher.decide(emb, &desk.cfg.engine.matching) {
            MatchDecision::Match { id, .. } => g
                .gallery
                .as_ref()
                .and_then(|gal| gal.get(&id))
                .map(|e| (id.clone(), e.masked_name.clone())),
            _ => None,
        }
    };
    match recognised {
        Some(r) => {
            pay.recognised.insert(t.track, r);
            start_challenge(desk, pay, t, now, tx, rng);
        }
        None => {
            if pay.told_unknown.insert(t.track) {
                info!("face: not recognised");
                send(
                    tx,
                    Input::Face {
                        step: FaceStep::NotRecognised,
                    },
                );
            }
        }
    }
}

/// Enrolment: one gated capture per `capture_gap_ms` from one tracked face alone in view;
/// when enough are in, the gallery is written and the enrolment journaled.
fn capture(
    desk: &FaceDesk,
    engine: &FaceEngine,
    tracked: &[Tracked],
    now: u64,
    tx: &mpsc::Sender<Request>,
) {
    // One person at a time: with two faces in view nobody is captured.
    let [t] = tracked else { return };
    let Ok(q) = &t.quality else { return };
    {
        let mut g = desk.lock();
        let Some(task) = g.task.as_mut() else { return };
        if task.track != Some(t.track) {
            // A new face: start over (another person stepped in).
            task.track = Some(t.track);
            task.captures.clear();
        } else if now.saturating_sub(task.last_capture_ms) < desk.cfg.capture_gap_ms {
            return;
        }
    }
    let emb = match engine.embed_aligned(&q.aligned) {
        Ok(e) => Zeroizing::new(e),
        Err(e) => {
            warn!(cause = %e, "face: embedding failed during enrolment");
            return;
        }
    };
    let mut g = desk.lock();
    let inner = &mut *g;
    let Some(task) = inner.task.as_mut() else {
        return;
    };
    if task.view.step != TaskStep::Capturing || task.track != Some(t.track) {
        return;
    }
    task.captures.push(emb);
    task.last_capture_ms = now;
    task.view.captures = task.captures.len();
    if task.captures.len() < task.view.need {
        return;
    }
    task.view.step = TaskStep::Saving;
    let Some((proof, account)) = task.proof.clone() else {
        task.fail("no_proof", "no card or code was given");
        return;
    };
    let masked = mask_name(&task.name);
    let caps: Vec<[f32; EMBEDDING_DIM]> = task.captures.iter().map(|c| **c).collect();
    let caps = Zeroizing::new(caps);
    let Some(gal) = inner.gallery.as_mut() else {
        task.fail("face_unavailable", "the face gallery is not open");
        return;
    };
    if let Err(e) = gal.enrol(&account, &masked, &caps) {
        task.fail(
            "capture_failed",
            format!("the captures could not be enrolled ({e}); please try again"),
        );
        return;
    }
    let n = task.captures.len() as u32;
    task.captures.clear();
    // Journal it; the gallery lock is not held while the core works.
    drop(g);
    let res = send_and_wait(
        tx,
        Input::FaceEnrolled {
            account: account.clone(),
            masked_name: masked.clone(),
            captures: n,
            proof,
        },
    );
    let mut g = desk.lock();
    let inner = &mut *g;
    match res {
        Ok(()) => {
            if let Some(gal) = inner.gallery.as_ref() {
                inner.matcher = gal.matcher();
            }
            if let Some(task) = inner.task.as_mut() {
                task.view.step = TaskStep::Done;
            }
            info!("face: enrolled");
        }
        Err(rej) => {
            // Not journaled: take the embedding out again.
            if let Some(gal) = inner.gallery.as_mut() {
                if let Err(e) = gal.erase(&account) {
                    error!(cause = %e, "face: cannot undo a refused enrolment; start-up erases it");
                }
            }
            if let Some(task) = inner.task.as_mut() {
                task.fail(rej.code, rej.message);
            }
        }
    }
}

/// Kiosk erasure: once the account is proved, journal the erasure (the core then erases
/// the gallery entry).
fn finish_erase(desk: &FaceDesk, tx: &mpsc::Sender<Request>) {
    let account = {
        let g = desk.lock();
        match g.task.as_ref() {
            Some(t) if t.view.kind == TaskKind::Erase && t.view.step == TaskStep::Saving => {
                t.proof.as_ref().map(|p| p.1.clone())
            }
            _ => None,
        }
    };
    let Some(account) = account else { return };
    let res = send_and_wait(
        tx,
        Input::FaceErased {
            account,
            by: EraseBy::Shopper,
        },
    );
    let mut g = desk.lock();
    if let Some(t) = g.task.as_mut() {
        match res {
            Ok(()) => {
                t.view.step = TaskStep::Done;
                t.view.erased = Some(true);
            }
            Err(rej) if rej.code == "not_enrolled" => {
                t.view.step = TaskStep::Done;
                t.view.erased = Some(false);
            }
            Err(rej) => t.fail(rej.code, rej.message),
        }
    }
}

fn expire_task(desk: &FaceDesk) {
    let mut g = desk.lock();
    if let Some(t) = g.task.as_mut() {
        let open = matches!(t.view.step, TaskStep::AwaitingProof | TaskStep::Capturing);
        if open && now_ms().saturating_sub(t.started_ms) > desk.cfg.enrol_timeout_ms {
            t.fail(
                "timed_out",
                "nothing happened in time; start again when you are ready",
            );
        }
    }
}

#[cfg(test)]
mod tests;
