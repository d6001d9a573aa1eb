//! The tokio driver: one event queue into the core, adapters as tasks and threads.
//!
//! The core loop owns the [`Controller`] and the [`Journal`]. It selects over the input
//! queue, the controller's next time-out, the watchdog tick and shutdown; it carries out the
//! returned commands in order and makes the journal durable before any command that moves a
//! motor or money. Blocking devices run on their own threads: the motor thread (one vend at
//! a time, so two motors can never run together) and the panel thread (door, presence,
//! LEDs, lock). Shutdown finishes or journals a vend under way and leaves every motor off.

use crate::config::{Backend, Config};
use crate::core::{
    Command, Controller, Input, Millis, Phase, Prompt, Reject, SessionId, SlotId, State,
    VendOutcome,
};
use crate::hw::{self, LedPattern, Machine, SimHandle, SlotAddr, VendTiming};
use crate::journal::{Journal, JournalError};
use crate::report::link::{AuthRequest, Channels, Identity, Link, LinkError, LinkStatus};
use crate::sysd;
use crate::ui::view::{self, Snapshot};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

/// Firmware version (from Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Capacity of the input queue. HTTP requests wait (with back-pressure) when it is full;
/// device threads never block on it for long because the core drains it continuously.
const QUEUE: usize = 256;

/// How long shutdown waits for a vend under way to report before journaling it as unknown.
const SHUTDOWN_VEND_GRACE: Duration = Duration::from_secs(10);
/// How often a retention step runs (when idle).
const RETENTION_EVERY: Duration = Duration::from_secs(600);

/// Current wall-clock time in ms since the epoch: the only clock the core sees.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A successful input: the last committed journal sequence and the new snapshot.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Last journal sequence number, durable when the reply is sent.
    pub seq: u64,
}

/// Something for the core loop.
#[derive(Debug)]
pub struct Request {
    /// The input.
    pub input: Input,
    /// Where to send the outcome (None for device inputs).
    pub reply: Option<oneshot::Sender<Result<Ack, Reject>>>,
}

/// Handle used by the HTTP layer.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
    /// Latest snapshot (session, catalog, machine).
    pub snapshot: watch::Receiver<Snapshot>,
    /// The simulator, in simulate mode.
    pub sim: Option<SimHandle>,
    /// Device secret for credential tokens.
    pub secret: std::sync::Arc<Vec<u8>>,
    /// Matrix size for slot → address checks.
    pub matrix: (u8, u8),
    /// The MQTT link's state (None when reporting is off).
    pub link: Option<watch::Receiver<LinkStatus>>,
    /// NFC reader and camera status.
    pub readers: crate::readers::ReadersStatus,
    /// The simulated NFC reader (simulate mode).
    pub nfc_sim: Option<crate::nfc::sim::SimReaderHandle>,
    /// What the simulated camera sees (simulate mode).
    pub scene: Option<crate::camera::SimScene>,
    /// The dynamic merchant QR (None when not configured).
    pub pay_qr: Option<std::sync::Arc<PayQr>>,
    /// Face pay (None when not configured).
    pub face: Option<std::sync::Arc<crate::facepay::FaceDesk>>,
    /// The kiosk page's language and voice.
    pub kiosk: std::sync::Arc<crate::ui::kiosk::KioskState>,
    /// Read access to the journal (service page).
    pub journal: crate::journal::JournalReader,
    /// Machine id (receipts).
    pub machine_id: String,
    /// The state directory (journal, gallery).
    pub state_dir: PathBuf,
    /// Identity for the DEX file, and the currency.
    pub machine: crate::config::Machine,
    /// The currency.
    pub currency: crate::core::Currency,
    /// Seconds east of UTC (the local day of "sales today").
    pub day_offset_s: i64,
    /// What the core loop measured (`/metrics`).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// How voice commands are triggered (`presence`, `push`, `always`; None: no voice
    /// commands), for the page's push-to-talk button.
    pub listen_trigger: Option<&'static str>,
}

/// The dynamic merchant-presented QR of the current checkout.
#[derive(Debug)]
pub struct PayQr {
    /// Merchant data from the configuration.
    pub merchant: crate::payment::MerchantConfig,
    /// Machine id (terminal label and reference prefix).
    pub machine_id: String,
    /// The payload shown for a session.
    pub shown: std::sync::Mutex<Option<(SessionId, String)>>,
}

/// Why a request could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The core loop has stopped (shutting down or failed).
    #[error("the controller is not running")]
    Stopped,
    /// The core refused the input.
    #[error("{0}")]
    Rejected(Reject),
}

impl Handle {
    /// Sends an input and waits until its records are durable.
    ///
    /// # Errors
    /// [`SendError::Rejected`] with the core's reason, or [`SendError::Stopped`].
    pub async fn send(&self, input: Input) -> Result<Ack, SendError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                input,
                reply: Some(reply),
            })
            .await
            .map_err(|_| SendError::Stopped)?;
        match rx.await {
            Ok(Ok(ack)) => Ok(ack),
            Ok(Err(rej)) => Err(SendError::Rejected(rej)),
            Err(_) => Err(SendError::Stopped),
        }
    }
}

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The journal failed: the machine must not sell without it.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The MQTT link could not be set up (TLS material).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The hardware could not be opened.
    #[error(transparent)]
    Hardware(#[from] hw::HwError),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Journal directory.
    pub state_dir: PathBuf,
    /// Force the simulated machine.
    pub simulate: bool,
    /// Seed for the simulator.
    pub seed: u64,
}

struct MotorJob {
    sid: SessionId,
    item: u32,
    attempt: u32,
    addr: SlotAddr,
}

fn addr(slot: &SlotId) -> SlotAddr {
    SlotAddr {
        row: slot.row(),
        col: slot.col(),
    }
}

/// The running core: controller, journal and the device channels.
struct CoreLoop {
    ctl: Controller,
    journal: Journal,
    motor: Option<std_mpsc::Sender<MotorJob>>,
    panel: std_mpsc::Sender<PanelMsg>,
    follow_ups: VecDeque<Input>,
    snapshot: watch::Sender<Snapshot>,
    committed: watch::Sender<u64>,
    last_seq: u64,
    /// Online authorisation requests to the MQTT link (None without a link).
    auth: Option<mpsc::UnboundedSender<AuthRequest>>,
    /// The face gallery (None when face pay is off).
    face: Option<std::sync::Arc<crate::facepay::FaceDesk>>,
    /// What `/metrics` shows.
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// When each session's online authorisation was asked for.
    auth_started: std::collections::HashMap<SessionId, std::time::Instant>,
}

impl CoreLoop {
    /// Carries out commands in order; durable journal before any acting command.
    fn execute(&mut self, cmds: Vec<Command>) -> Result<(), JournalError> {
        let mut acting = Vec::new();
        let commits = self.journal.commits();
        // Acting commands are collected in order and dispatched right after the commit that
        // precedes them; dispatch itself only queues work for device threads.
        let last = self.journal.write_ahead(cmds, |c| acting.push(c))?;
        if self.journal.commits() != commits {
            self.metrics
                .journal_commit
                .observe(self.journal.last_commit_duration());
        }
        if let Some(seq) = last {
            self.last_seq = seq;
        }
        for c in acting {
            self.dispatch(c);
        }
        // Every record up to last_seq is durable now: the reporter may read it.
        self.committed.send_if_modified(|v| {
            let changed = *v != self.last_seq;
            *v = self.last_seq;
            changed
        });
        self.journal.maybe_checkpoint(self.ctl.state())?;
        Ok(())
    }

    fn dispatch(&mut self, cmd: Command) {
        match cmd {
            Command::Journal(_) => unreachable!("handled by execute"),
            Command::RunMotor {
                sid,
                item,
                attempt,
                slot,
            } => {
                info!(sid, item, attempt, %slot, "run motor");
                let job = MotorJob {
                    sid,
                    item,
                    attempt,
                    addr: addr(&slot),
                };
                if let Some(m) = &self.motor {
                    if m.send(job).is_err() {
                        error!("motor thread is gone; the vend watchdog will fail the item");
                    }
                }
            }
            Command::RequestAuth {
                sid,
                amount,
                method,
                credential,
            } => match &self.auth {
                Some(link) => {
                    self.auth_started.insert(sid, std::time::Instant::now());
                    let _ = link.send(AuthRequest {
                        sid,
                        amount,
                        method,
                        credential,
                    });
                }
                // Without a link the controller is never told it is online; should it ask,
                // the authorising time-out hands the decision to the offline policy.
                None => warn!(
                    sid,
                    amount,
                    method = method.as_str(),
                    "no online authoriser"
                ),
            },
            Command::Capture {
                sid, amount, key, ..
            } => {
                info!(sid, amount, %key, "capture stored for upload");
            }
            Command::Void {
                sid, amount, key, ..
            } => {
                info!(sid, amount, %key, "void stored for upload");
                // Capture and void are durable intents in the journal; the offline payment
                // store is the journal itself, so the session is settled.
                self.follow_ups.push_back(Input::Settled { sid });
            }
            Command::Unlock { seconds } => {
                info!(seconds, "door unlocked by the operator");
                if self
                    .panel
                    .send(PanelMsg::Unlock(Duration::from_secs(seconds.into())))
                    .is_err()
                {
                    error!("panel thread is gone; the door stays locked");
                }
            }
            Command::EraseFace { account } => match &self.face {
                Some(desk) => desk.erase(&account),
                // Face pay is off now: the journal has the erasure, and the next start with
                // face pay on erases the gallery entry.
                None => info!("face erasure journaled; face pay is off"),
            },
            Command::Prompt(p) => {
                debug!(prompt = ?p, "prompt");
            }
            Command::Alert { kind, message } => warn!(?kind, %message, "operator alert"),
            Command::Publish { sid, phase, .. } => {
                debug!(?sid, phase = phase.name(), "phase");
                let led = match phase {
                    Phase::Idle => LedPattern::Idle,
                    Phase::Vending { .. } | Phase::Authorising | Phase::Settling => {
                        LedPattern::Busy
                    }
                    Phase::Receipt => LedPattern::Ok,
                    _ => LedPattern::Idle,
                };
                let _ = self.panel.send(PanelMsg::Led(led));
            }
        }
    }

    fn publish(&self) {
        let snap = view::snapshot(&self.ctl, now_ms(), self.last_seq);
        self.snapshot.send_replace(snap);
    }

    /// Handles one input plus the follow-ups it causes.
    fn input(&mut self, input: Input) -> Result<Result<Ack, Reject>, JournalError> {
        let now = now_ms();
        if let Input::AuthResult { sid, .. } = &input {
            if let Some(t) = self.auth_started.remove(sid) {
                self.metrics.auth_latency.observe(t.elapsed());
            }
        }
        let res = self.ctl.handle_input(now, input);
        let out = match res {
            Ok(cmds) => {
                self.execute(cmds)?;
                Ok(Ack { seq: self.last_seq })
            }
            Err(rej) => {
                self.metrics
                    .rejected_inputs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(rej)
            }
        };
        while let Some(next) = self.follow_ups.pop_front() {
            if let Ok(cmds) = self.ctl.handle_input(now_ms(), next) {
                self.execute(cmds)?;
            }
        }
        self.publish();
        Ok(out)
    }

    /// One retention step when idle; a failure to archive is reported, a journal that
    /// refuses writes stops the daemon (systemd restarts it and recovery finishes the step).
    fn compact(&mut self, cfg: &crate::journal::RetentionConfig) -> Result<(), JournalError> {
        if !cfg.enabled || self.ctl.phase() != Phase::Idle {
            return Ok(());
        }
        match self.journal.compact(self.ctl.state(), cfg, now_ms()) {
            Ok(r) => {
                if r.archived > 0 || r.rewrote {
                    info!(
                        archived = r.archived,
                        rewrote = r.rewrote,
                        "journal retention"
                    );
                }
                Ok(())
            }
            Err(e) => {
                warn!(cause = %e, "journal retention failed; retrying later");
                if self.journal.refuses_writes() {
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    fn timeout(&mut self) -> Result<(), JournalError> {
        let cmds = self.ctl.handle_timeout(now_ms());
        self.execute(cmds)?;
        while let Some(next) = self.follow_ups.pop_front() {
            if let Ok(cmds) = self.ctl.handle_input(now_ms(), next) {
                self.execute(cmds)?;
            }
        }
        self.publish();
        Ok(())
    }
}

/// The daemon, started: the handle for the HTTP layer and the pieces `run` drives.
pub struct Started {
    /// Handle for the HTTP layer.
    pub handle: Handle,
    core: CoreLoop,
    rx: mpsc::Receiver<Request>,
    motor_thread: Option<JoinHandle<()>>,
    panel_thread: Option<JoinHandle<()>>,
    panel_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    link: Option<Link>,
    readers_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader_threads: Vec<JoinHandle<()>>,
    retention: crate::journal::RetentionConfig,
}

/// Opens the journal, recovers, builds the machine and the device threads.
///
/// # Errors
/// [`RuntimeError`] when the journal or the hardware cannot be opened.
pub fn start(cfg: &Config, opts: &Options) -> Result<Started, RuntimeError> {
    let journal = Journal::open(&opts.state_dir.join("journal"))?;
    if let Some(done) = journal.recovery().summary() {
        warn!(%done, "journal: finished what an interrupted write left (nothing was lost)");
    }
    let fresh = State::new(cfg.catalog.clone(), cfg.day_offset_s);
    let (state, replayed) = journal.load_state(fresh)?;
    info!(replayed, next_seq = journal.next_seq(), dir = %journal.dir().display(), "journal replayed");
    let mut ctl = Controller::new(cfg.core.clone(), state);
    let mut boot = ctl.start(now_ms(), VERSION, &cfg.catalog, &cfg.planogram_source);
    for d in &cfg.deny {
        if !ctl.state().deny.contains(d) {
            if let Ok(c) = ctl.handle_input(
                now_ms(),
                Input::Deny {
                    credential: d.clone(),
                    add: true,
                },
            ) {
                boot.extend(c);
            }
        }
    }

    let (machine, sim) = if opts.simulate || cfg.backend == Backend::Sim {
        let (m, h) = hw::sim_machine(&cfg.sim, cfg.machine.rows, cfg.machine.cols, opts.seed);
        // The physical machine holds what the journal believes it holds.
        for (id, s) in &ctl.state().catalog.slots {
            h.set_stock(addr(id), s.stock);
        }
        (m, Some(h))
    } else {
        let map = cfg.pinmap.as_ref().expect("validated: rpi has a pin map");
        (hw::rpi_machine(map)?, None)
    };
    let Machine {
        mut dispenser,
        door,
        lock,
        leds,
        presence,
    } = machine;
    dispenser.all_off()?;

    let (tx, rx) = mpsc::channel(QUEUE);
    let (motor_tx, motor_rx) = std_mpsc::channel::<MotorJob>();
    let timing: VendTiming = cfg.vend_timing.clone();
    let mtx = tx.clone();
    let motor_thread = std::thread::Builder::new()
        .name("motor".into())
        .spawn(move || motor_loop(dispenser, motor_rx, mtx, timing))
        .expect("spawn motor thread");
    let (panel_tx, panel_rx) = std_mpsc::channel::<PanelMsg>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ptx = tx.clone();
    let pstop = stop.clone();
    let initial_door = ctl.state().door_open;
    let present = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ppresent = present.clone();
    let panel_thread = std::thread::Builder::new()
        .name("panel".into())
        .spawn(move || {
            panel_loop(
                door,
                presence,
                leds,
                lock,
                panel_rx,
                ptx,
                pstop,
                initial_door,
                ppresent,
            )
        })
        .expect("spawn panel thread");

    let snap = view::snapshot(&ctl, now_ms(), 0);
    let (snap_tx, snap_rx) = watch::channel(snap);
    let (committed_tx, committed_rx) = watch::channel(0u64);
    let mut core = CoreLoop {
        ctl,
        journal,
        motor: Some(motor_tx),
        panel: panel_tx,
        follow_ups: VecDeque::new(),
        snapshot: snap_tx,
        committed: committed_tx,
        last_seq: 0,
        auth: None,
        face: None,
        metrics: std::sync::Arc::new(crate::metrics::Metrics::default()),
        auth_started: std::collections::HashMap::new(),
    };
    core.execute(boot)?;
    core.journal.checkpoint(core.ctl.state())?;
    core.journal.commit()?;
    core.publish();
    let diagnostics = std::sync::Arc::new(std::sync::OnceLock::new());
    let (link, link_rx) = match &cfg.mqtt {
        Some(m) => {
            let id = Identity {
                machine: cfg.machine.id.clone(),
                site: cfg.machine.site.clone(),
                firmware: VERSION.to_string(),
                config_version: cfg.planogram_source.clone(),
                currency: cfg.catalog.currency,
                rows: cfg.machine.rows,
                cols: cfg.machine.cols,
                config_path: (cfg.file != "<embedded>").then(|| PathBuf::from(&cfg.file)),
                dex: Some((cfg.machine.clone(), cfg.day_offset_s)),
            };
            let (status_tx, status_rx) = watch::channel(LinkStatus::default());
            let (auth_tx, auth_rx) = mpsc::unbounded_channel();
            core.auth = Some(auth_tx);
            let ch = Channels {
                diagnostics: diagnostics.clone(),
                committed: committed_rx,
                snapshot: snap_rx.clone(),
                status: status_tx,
                core: tx.clone(),
                auth: auth_rx,
            };
            let link = Link::new(m.clone(), id, core.journal.reader(), ch)?;
            (Some(link), Some(status_rx))
        }
        None => (None, None),
    };
    let secret = std::sync::Arc::new(cfg.device_secret.clone());
    let face = cfg.face.as_ref().map(|fc| {
        let path = fc
            .gallery
            .clone()
            .unwrap_or_else(|| opts.state_dir.join("face-gallery.bin"));
        std::sync::Arc::new(crate::facepay::FaceDesk::open(
            fc.clone(),
            path,
            &cfg.device_secret,
            &core.ctl.state().face_enrolled,
        ))
    });
    core.face = face.clone();
    let present_flag = present.clone();
    let readers = crate::readers::start(
        &cfg.nfc,
        &cfg.codes,
        crate::readers::ReaderDeps {
            tx: tx.clone(),
            snapshot: snap_rx.clone(),
            secret: secret.clone(),
            simulate: sim.is_some(),
            seed: opts.seed,
            present,
            face: face.clone(),
        },
    );
    let pay_qr = cfg.codes.merchant_qr.clone().map(|merchant| {
        std::sync::Arc::new(PayQr {
            merchant,
            machine_id: cfg.machine.id.clone(),
            shown: std::sync::Mutex::new(None),
        })
    });
    let mut extra_threads = Vec::new();
    let voice = cfg.kiosk.voice.as_ref().map(|vc| {
        let catalog = std::sync::Arc::new(
            crate::voice::catalog::Catalog::embedded()
                .expect("the embedded catalogue is valid (tested)")
                .with_currency(cfg.catalog.currency),
        );
        std::sync::Arc::new(crate::speech::Voice::start(vc, catalog, cfg.kiosk.language))
    });
    if let Some(v) = &voice {
        extra_threads.push(crate::speech::start_prompter(
            v.clone(),
            snap_rx.clone(),
            readers.stop.clone(),
        ));
    }
    #[cfg(feature = "vosk")]
    if let (Some(lc), Some(v)) = (&cfg.kiosk.listen, &voice) {
        extra_threads.push(crate::speech::start_listener(
            lc.clone(),
            v.clone(),
            snap_rx.clone(),
            tx.clone(),
            present_flag.clone(),
            readers.stop.clone(),
        ));
    }
    #[cfg(not(feature = "vosk"))]
    let _ = &present_flag;
    let kiosk = std::sync::Arc::new(crate::ui::kiosk::KioskState::new(cfg.kiosk.language, voice));
    let mut reader_threads = readers.threads;
    reader_threads.extend(extra_threads);
    let handle = Handle {
        tx,
        snapshot: snap_rx,
        sim,
        secret,
        matrix: (cfg.machine.rows, cfg.machine.cols),
        link: link_rx,
        readers: readers.status.clone(),
        nfc_sim: readers.nfc_sim.clone(),
        scene: readers.scene.clone(),
        pay_qr,
        face,
        kiosk,
        journal: core.journal.reader(),
        machine_id: cfg.machine.id.clone(),
        machine: cfg.machine.clone(),
        currency: cfg.catalog.currency,
        state_dir: opts.state_dir.clone(),
        day_offset_s: cfg.day_offset_s,
        metrics: core.metrics.clone(),
        listen_trigger: cfg.kiosk.listen.as_ref().map(|l| match l.trigger {
            crate::speech::Trigger::Presence => "presence",
            crate::speech::Trigger::PushToTalk => "push",
            crate::speech::Trigger::Always => "always",
        }),
    };
    // The link's `doctor` command reports from the handle.
    let _ = diagnostics.set(handle.clone());
    Ok(Started {
        handle,
        core,
        rx,
        motor_thread: Some(motor_thread),
        panel_thread: Some(panel_thread),
        panel_stop: stop,
        link,
        readers_stop: readers.stop,
        reader_threads,
        retention: cfg.retention.clone(),
    })
}

fn motor_loop(
    mut dispenser: Box<dyn hw::Dispenser>,
    rx: std_mpsc::Receiver<MotorJob>,
    tx: mpsc::Sender<Request>,
    timing: VendTiming,
) {
    while let Ok(job) = rx.recv() {
        let (outcome, motor_ms) = match dispenser.vend(job.addr, &timing) {
            Ok(r) => (
                match r.outcome {
                    hw::VendOutcome::Delivered { drops } => VendOutcome::Delivered { drops },
                    hw::VendOutcome::NoDrop => VendOutcome::NoDrop,
                    hw::VendOutcome::Jammed => VendOutcome::Jammed,
                    hw::VendOutcome::HomeSwitchStuck => VendOutcome::HomeSwitchStuck,
                },
                r.motor_ms,
            ),
            Err(e) => {
                error!(cause = %e, "dispenser error");
                (
                    VendOutcome::DeviceError {
                        message: e.to_string(),
                    },
                    0,
                )
            }
        };
        let input = Input::VendDone {
            sid: job.sid,
            item: job.item,
            attempt: job.attempt,
            outcome,
            motor_ms,
        };
        if tx.blocking_send(Request { input, reply: None }).is_err() {
            break;
        }
    }
    if let Err(e) = dispenser.all_off() {
        error!(cause = %e, "could not switch the motors off at shutdown");
    }
    info!("motor thread stopped; all motors off");
}

/// What the core loop asks of the panel thread.
#[derive(Debug)]
enum PanelMsg {
    /// Show an LED pattern.
    Led(LedPattern),
    /// Open the door lock for this long, then lock it again.
    Unlock(Duration),
}

#[allow(clippy::too_many_arguments)]
fn panel_loop(
    mut door: Box<dyn hw::DoorSwitch>,
    mut presence: Box<dyn hw::PresenceSensor>,
    mut leds: Box<dyn hw::Leds>,
    mut lock: Box<dyn hw::Lock>,
    rx: std_mpsc::Receiver<PanelMsg>,
    tx: mpsc::Sender<Request>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    initial_door: bool,
    present: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut last_door = initial_door;
    let mut last_presence = false;
    // When an operator unlock ends (the lock is open until then).
    let mut relock_at: Option<std::time::Instant> = None;
    let _ = lock.set_locked(true);
    let _ = leds.set(LedPattern::Idle);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(25)) {
            Ok(PanelMsg::Led(p)) => {
                let _ = leds.set(p);
            }
            Ok(PanelMsg::Unlock(d)) => match lock.set_locked(false) {
                Ok(()) => relock_at = Some(std::time::Instant::now() + d),
                Err(e) => warn!(cause = %e, "cannot open the door lock"),
            },
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if relock_at.is_some_and(|t| std::time::Instant::now() >= t) {
            match lock.set_locked(true) {
                Ok(()) => {
                    relock_at = None;
                    info!("door locked again after the operator unlock");
                }
                Err(e) => warn!(cause = %e, "cannot close the door lock; trying again"),
            }
        }
        match door.is_open() {
            Ok(open) if open != last_door => {
                last_door = open;
                if tx
                    .blocking_send(Request {
                        input: Input::Door { open },
                        reply: None,
                    })
                    .is_err()
                {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => warn!(cause = %e, "door switch read failed"),
        }
        if let Ok(p) = presence.is_present() {
            if p != last_presence {
                last_presence = p;
                present.store(p, std::sync::atomic::Ordering::Relaxed);
                debug!(present = p, "presence");
            }
        }
    }
    let _ = leds.set(LedPattern::Off);
    let _ = lock.set_locked(true);
}

impl Started {
    /// Runs the core loop until `shutdown` resolves, then stops the devices safely.
    ///
    /// # Errors
    /// A journal failure (the daemon must stop selling and let systemd restart it).
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RuntimeError> {
        tokio::pin!(shutdown);
        let (link_stop_tx, link_stop_rx) = watch::channel(false);
        let link_task = self.link.take().map(|l| tokio::spawn(l.run(link_stop_rx)));
        let wd = sysd::watchdog_interval();
        let mut tick = tokio::time::interval(wd.unwrap_or(Duration::from_secs(3600)));
        // Journal retention: archive and compact while nobody is shopping, a bounded batch
        // at a time (see src/journal/retention.rs).
        let mut retention = tokio::time::interval(RETENTION_EVERY);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result: Result<(), RuntimeError> = loop {
            let sleep = self.core.ctl.poll_timeout().map(|t| {
                let now = now_ms();
                Duration::from_millis(t.saturating_sub(now))
            });
            tokio::select! {
                biased;
                _ = &mut shutdown => break Ok(()),
                req = self.rx.recv() => {
                    let Some(req) = req else { break Ok(()) };
                    let res = tokio::task::block_in_place(|| self.core.input(req.input));
                    match res {
                        Ok(out) => { if let Some(r) = req.reply { let _ = r.send(out); } }
                        Err(e) => break Err(e.into()),
                    }
                }
                _ = tokio::time::sleep(sleep.unwrap_or(Duration::from_secs(3600))), if sleep.is_some() => {
                    if let Err(e) = tokio::task::block_in_place(|| self.core.timeout()) { break Err(e.into()); }
                }
                _ = tick.tick() => { if wd.is_some() { sysd::watchdog(); } }
                _ = retention.tick() => {
                    if let Err(e) = tokio::task::block_in_place(|| self.core.compact(&self.retention)) {
                        break Err(e.into());
                    }
                }
            }
        };
        sysd::stopping();
        self.shutdown().await;
        let _ = link_stop_tx.send(true);
        if let Some(t) = link_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        result
    }

    /// Lets a vend under way finish (or journals it through the watchdog), then stops the
    /// device threads; the motor thread switches every motor off as it exits.
    async fn shutdown(&mut self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_VEND_GRACE;
        while matches!(self.core.ctl.phase(), Phase::Vending { .. }) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(req)) => {
                    if matches!(req.input, Input::VendDone { .. }) {
                        let _ = tokio::task::block_in_place(|| self.core.input(req.input));
                    }
                }
                _ => break,
            }
        }
        self.core.motor = None; // closes the motor queue
        self.readers_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.panel_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.rx.close();
        let mut threads: Vec<JoinHandle<()>> = [self.motor_thread.take(), self.panel_thread.take()]
            .into_iter()
            .flatten()
            .collect();
        threads.append(&mut self.reader_threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        let _ = self.core.journal.commit();
        info!(prompt = ?Prompt::OutOfService, "stopped");
    }
}
