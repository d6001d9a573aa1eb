//! The PN532 driver over any [`Transport`], the de-bouncing [`Poller`], and the blocking
//! reader loop ([`run_reader`]) that turns cards into credential tokens.
//!
//! - [`Pn532`]: write a command frame, expect an ACK within a time-out, wait for the
//!   response, decode it with the [`FrameDecoder`], check TFI and response code. A response
//!   dropped for a bad checksum is asked for again with a NACK (a few times), then the
//!   command is aborted with an ACK; every dropped frame is counted, nothing panics.
//! - [`Poller`]: pure and clock-driven. It turns poll [`Observation`]s into de-bounced
//!   [`CardEvent::Arrived`] / [`CardEvent::Left`] and detects a wedged reader (K link
//!   failures in a row), asking for re-initialisation with exponential back-off.
//! - [`ReaderLoop`] / [`run_reader`]: one poll or recovery attempt per step, for a dedicated
//!   `std::thread`.
//!
//! A card's UID never leaves this module raw: [`SelectedCard`] keeps it private and its
//! `Debug` redacts it; events carry only `credential_token(secret, "nfc-ndef", text_or_uri)`
//! (a card with an NDEF Text or URI record) or `credential_token(secret, "nfc-uid", hex(uid))`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;
use tracing::{debug, info, warn};

use super::commands::{
    self, Command, CommandError, FirmwareVersion, Target14443A, IC_PN532, NTAG_READ_LEN,
};
use super::frame::{self, Frame, FrameDecoder, TFI_HOST_TO_PN532};
use super::ndef::{self, NdefRecord};
use super::transport::{Transport, TransportError};
use crate::token::credential_token;

/// Credential kind of a token taken from an NDEF Text or URI record.
pub const KIND_NDEF: &str = "nfc-ndef";
/// Credential kind of a token taken from the card's UID.
pub const KIND_UID: &str = "nfc-uid";

/// Command code of RFConfiguration (UM0701-02 §7.3.1).
const CMD_RF_CONFIGURATION: u8 = 0x32;
/// RFConfiguration item 5: MaxRetries.
const RF_ITEM_MAX_RETRIES: u8 = 0x05;
/// Page of the NTAG capability container.
const CC_PAGE: u8 = 3;
/// First byte of a capability container of an NDEF-formatted Type 2 tag.
const CC_NDEF_MAGIC: u8 = 0xE1;

/// Time-outs and retries of the [`Pn532`] driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// How long the PN532 has to ACK a command (it does so within about 1 ms).
    pub ack_timeout: Duration,
    /// How long a response may take after the ACK (an NTAG READ takes a few ms).
    pub response_timeout: Duration,
    /// How long InListPassiveTarget may take before it is aborted as "no card".
    pub list_timeout: Duration,
    /// NACKs sent for one response that arrived corrupted, before giving up.
    pub nack_retries: u32,
    /// MxRtyPassiveActivation set by [`Pn532::init`]: how often the PN532 retries to
    /// activate a card before answering "0 targets" (0xFF: forever).
    pub passive_activation_retries: u8,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            ack_timeout: Duration::from_millis(50),
            response_timeout: Duration::from_millis(200),
            list_timeout: Duration::from_millis(150),
            nack_retries: 2,
            passive_activation_retries: 0x02,
        }
    }
}

/// Why a driver operation failed. Messages never contain a UID.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NfcError {
    /// The bus failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The PN532 did not ACK the command in time.
    #[error("PN532 did not acknowledge the command")]
    NoAck,
    /// The PN532 ACKed but did not answer in time (the command was aborted).
    #[error("PN532 did not answer in time")]
    Timeout,
    /// The response stayed corrupted after the NACK retries (it was dropped and counted).
    #[error("PN532 response corrupted (dropped after retries)")]
    Corrupt,
    /// The PN532 answered with its application error frame (syntax error).
    #[error("PN532 reported a syntax error")]
    ErrorFrame,
    /// A well-formed frame with an unexpected or malformed answer, or a card-level error.
    #[error(transparent)]
    Protocol(#[from] CommandError),
    /// GetFirmwareVersion did not describe a PN532 that supports ISO 14443A.
    #[error("not a PN532 with ISO 14443A (IC {ic:#04x}, support {support:#04x})")]
    NotPn532 {
        /// The IC byte.
        ic: u8,
        /// The support byte.
        support: u8,
    },
}

impl NfcError {
    /// Whether the failure is the reader's or the link's (it counts towards a wedge), as
    /// opposed to a card that answered badly or left the field.
    pub fn is_link_failure(&self) -> bool {
        !matches!(
            self,
            NfcError::Protocol(
                CommandError::Status(_) | CommandError::Nak(_) | CommandError::WrongLength { .. }
            )
        )
    }
}

/// Link counters of the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// NACKs sent to ask for a response again.
    pub nacks_sent: u64,
    /// ACKs sent to abort a command.
    pub aborts_sent: u64,
    /// Frames cut short by a time-out.
    pub truncated_frames: u64,
    /// Well-formed frames that were not expected (a stray ACK, NACK or late response).
    pub unexpected_frames: u64,
}

/// A card found by InListPassiveTarget. The UID is private and redacted from `Debug`; it
/// leaves only as a keyed hash ([`SelectedCard::uid_token`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SelectedCard {
    /// The PN532's logical target number (for InDataExchange and InRelease).
    pub tg: u8,
    /// SENS_RES (ATQA).
    pub sens_res: [u8; 2],
    /// SEL_RES (SAK): 0x00 for NTAG / MIFARE Ultralight.
    pub sel_res: u8,
    uid: Vec<u8>,
}

impl fmt::Debug for SelectedCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectedCard")
            .field("tg", &self.tg)
            .field("sens_res", &self.sens_res)
            .field("sel_res", &self.sel_res)
            .field("uid", &format_args!("<{} bytes redacted>", self.uid.len()))
            .finish()
    }
}

impl SelectedCard {
    fn from_target(t: Target14443A) -> Self {
        SelectedCard {
            tg: t.tg,
            sens_res: t.sens_res,
            sel_res: t.sel_res,
            uid: t.nfcid,
        }
    }

    /// Length of the UID (4, 7 or 10 bytes).
    pub fn uid_len(&self) -> usize {
        self.uid.len()
    }

    /// `credential_token(secret, "nfc-uid", hex(uid))`.
    pub fn uid_token(&self, secret: &[u8]) -> String {
        credential_token(secret, KIND_UID, &hex::encode(&self.uid))
    }

    /// Whether the card is a Type 2 tag (NTAG, Ultralight) whose pages READ can fetch.
    pub fn is_type2(&self) -> bool {
        self.sel_res == 0x00
    }

    /// The raw UID, inside the crate only (tests compare it with the simulated card's).
    #[cfg(test)]
    pub(crate) fn uid(&self) -> &[u8] {
        &self.uid
    }
}

/// The credential token of a card: from its NDEF Text or URI record if it has one, else
/// from its UID.
pub fn token_for(secret: &[u8], uid: &[u8], record: Option<&NdefRecord>) -> String {
    match record {
        Some(NdefRecord::Text { text, .. }) => credential_token(secret, KIND_NDEF, text),
        Some(NdefRecord::Uri(uri)) => credential_token(secret, KIND_NDEF, uri),
        None => credential_token(secret, KIND_UID, &hex::encode(uid)),
    }
}

/// What one read of the PN532 produced.
enum ReadFrame {
    Frame(Frame),
    /// A frame was dropped (bad checksum, or cut short by the time-out).
    Dropped,
    /// Nothing (complete) arrived in time.
    TimedOut,
}

/// Whether Type 2 tag memory read so far (from page 4) ends before the NDEF message TLV is
/// complete and before a terminator TLV: more pages are needed.
fn tlv_needs_more(mem: &[u8]) -> bool {
    let mut i = 0usize;
    loop {
        let Some(&tag) = mem.get(i) else {
            return true;
        };
        match tag {
            0x00 => i += 1,
            0xFE => return false,
            _ => {
                let (len, header) = match (mem.get(i + 1), mem.get(i + 2), mem.get(i + 3)) {
                    (None, _, _) => return true,
                    (Some(0xFF), Some(hi), Some(lo)) => {
                        (usize::from(u16::from_be_bytes([*hi, *lo])), 4)
                    }
                    (Some(0xFF), _, _) => return true,
                    (Some(l), _, _) => (usize::from(*l), 2),
                };
                let end = i + header + len;
                if tag == 0x03 || end > mem.len() {
                    return end > mem.len();
                }
                i = end;
            }
        }
    }
}

/// A PN532 driven over a [`Transport`].
pub struct Pn532<T: Transport> {
    transport: T,
    cfg: DriverConfig,
    decoder: FrameDecoder,
    pending: VecDeque<Frame>,
    link: LinkStats,
    buf: Vec<u8>,
}

impl<T: Transport> fmt::Debug for Pn532<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pn532")
            .field("cfg", &self.cfg)
            .field("link", &self.link)
            .field("decoder", &self.decoder.stats)
            .finish()
    }
}

/// Bytes asked of the transport per read: the largest response this driver expects
/// (InListPassiveTarget with a 10-byte UID and an ATS) with preamble and postamble.
const READ_CHUNK: usize = 96;
/// Bytes asked for an ACK frame.
const ACK_LEN: usize = 6;

impl<T: Transport> Pn532<T> {
    /// A driver over `transport`; call [`Self::init`] before anything else.
    pub fn new(transport: T, cfg: DriverConfig) -> Self {
        Pn532 {
            transport,
            cfg,
            decoder: FrameDecoder::new(),
            pending: VecDeque::new(),
            link: LinkStats::default(),
            buf: vec![0; READ_CHUNK],
        }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The driver's configuration.
    pub fn config(&self) -> &DriverConfig {
        &self.cfg
    }

    /// Link counters (NACKs, aborts, truncated and unexpected frames).
    pub fn link_stats(&self) -> &LinkStats {
        &self.link
    }

    /// Frames dropped so far: bad length or data checksums, zero or oversize lengths,
    /// frames cut short by a time-out, and stray frames.
    pub fn dropped_frames(&self) -> u64 {
        self.decoder.stats.dropped_frames()
            + self.link.truncated_frames
            + self.link.unexpected_frames
    }

    /// Non-zero bytes outside any frame (line noise) skipped so far.
    pub fn garbage_bytes(&self) -> u64 {
        self.decoder.stats.dropped_garbage_bytes
    }

    /// Wakes the chip and configures it: SAMConfiguration (normal mode), RFConfiguration
    /// MaxRetries, then GetFirmwareVersion, which must describe a PN532 with ISO 14443A.
    pub fn init(&mut self) -> Result<FirmwareVersion, NfcError> {
        self.decoder.reset();
        self.pending.clear();
        self.transport.wake()?;
        self.sam_configuration()?;
        self.set_passive_activation_retries(self.cfg.passive_activation_retries)?;
        let fw = self.firmware_version()?;
        if fw.ic != IC_PN532 || !fw.supports_iso14443a() {
            return Err(NfcError::NotPn532 {
                ic: fw.ic,
                support: fw.support,
            });
        }
        Ok(fw)
    }

    /// Recovery from a wedged reader: a hardware reset if the transport has a reset pin,
    /// then [`Self::init`]. Returns whether a hardware reset was done and the firmware.
    pub fn reset(&mut self) -> Result<(bool, FirmwareVersion), NfcError> {
        let hard = self.transport.hard_reset()?;
        Ok((hard, self.init()?))
    }

    /// Reads one frame (or gives up at `deadline`), keeping further frames for later.
    fn read_frame(&mut self, deadline: Instant, len: usize) -> Result<ReadFrame, NfcError> {
        if let Some(f) = self.pending.pop_front() {
            return Ok(ReadFrame::Frame(f));
        }
        let len = len.clamp(1, READ_CHUNK);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.transport.wait_ready(left)? {
                let n = self.transport.read(&mut self.buf[..len])?;
                let dropped_before = self.decoder.stats.dropped_frames();
                let bytes = self.buf.get(..n).unwrap_or_default();
                self.pending.extend(self.decoder.push(bytes));
                if let Some(f) = self.pending.pop_front() {
                    return Ok(ReadFrame::Frame(f));
                }
                if self.decoder.stats.dropped_frames() > dropped_before {
                    return Ok(ReadFrame::Dropped);
                }
                if Instant::now() < deadline {
                    continue;
                }
                // Past the deadline with bytes still streaming in (e.g. noise): give up.
            }
            // One buffered byte is a trailing 00 (fill); more is a frame cut short.
            if self.decoder.buffered_len() > 1 {
                self.decoder.reset();
                self.link.truncated_frames += 1;
                return Ok(ReadFrame::Dropped);
            }
            return Ok(ReadFrame::TimedOut);
        }
    }

    /// Sends an ACK to abort the command in progress.
    fn abort(&mut self) -> Result<(), NfcError> {
        self.link.aborts_sent += 1;
        self.transport.write(&frame::ack())?;
        self.decoder.reset();
        self.pending.clear();
        Ok(())
    }

    /// Sends `payload` (`D4 CC params…`) and returns the response payload (`D5 CC+1 …`).
    fn exchange(&mut self, payload: &[u8], timeout: Duration) -> Result<Vec<u8>, NfcError> {
        self.decoder.reset();
        self.pending.clear();
        let request = frame::try_encode(payload).map_err(|_| NfcError::ErrorFrame)?;
        self.transport.write(&request)?;

        // ACK stage.
        let ack_deadline = Instant::now() + self.cfg.ack_timeout;
        let mut resent = false;
        loop {
            match self.read_frame(ack_deadline, ACK_LEN)? {
                ReadFrame::Frame(Frame::Ack) => break,
                ReadFrame::Frame(Frame::Nack) if !resent => {
                    // The PN532 saw our frame corrupted: send it once more.
                    resent = true;
                    self.transport.write(&request)?;
                }
                ReadFrame::Frame(_) => self.link.unexpected_frames += 1,
                ReadFrame::Dropped => {}
                ReadFrame::TimedOut => {
                    // Clear whatever the chip may still be doing with the command.
                    self.abort()?;
                    return Err(NfcError::NoAck);
                }
            }
        }

        // Response stage.
        let mut nacks = 0;
        let mut deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline, READ_CHUNK)? {
                ReadFrame::Frame(Frame::Data(p)) => {
                    if p.get(1).copied() == payload.get(1).map(|c| c.wrapping_add(1)) {
                        return Ok(p);
                    }
                    // A stale answer to an earlier command; keep waiting for ours.
                    self.link.unexpected_frames += 1;
                }
                ReadFrame::Frame(Frame::Error) => return Err(NfcError::ErrorFrame),
                ReadFrame::Frame(_) => self.link.unexpected_frames += 1,
                ReadFrame::Dropped if nacks < self.cfg.nack_retries => {
                    nacks += 1;
                    self.link.nacks_sent += 1;
                    debug!(nacks, "PN532 response corrupted, sending NACK");
                    self.decoder.reset();
                    self.transport.write(&frame::nack())?;
                    deadline = Instant::now() + timeout;
                }
                ReadFrame::Dropped => {
                    self.abort()?;
                    return Err(NfcError::Corrupt);
                }
                ReadFrame::TimedOut => {
                    self.abort()?;
                    return Err(NfcError::Timeout);
                }
            }
        }
    }

    fn command(&mut self, cmd: &Command, timeout: Duration) -> Result<Vec<u8>, NfcError> {
        self.exchange(&cmd.tfi_payload(), timeout)
    }

    /// SAMConfiguration in normal mode (no SAM), P70_IRQ driven.
    pub fn sam_configuration(&mut self) -> Result<(), NfcError> {
        let p = self.command(&Command::sam_normal(0x14, true), self.cfg.response_timeout)?;
        Ok(commands::parse_sam_configuration(&p)?)
    }

    /// GetFirmwareVersion.
    pub fn firmware_version(&mut self) -> Result<FirmwareVersion, NfcError> {
        let p = self.command(&Command::GetFirmwareVersion, self.cfg.response_timeout)?;
        Ok(commands::parse_firmware_version(&p)?)
    }

    /// RFConfiguration MaxRetries: MxRtyATR 0xFF, MxRtyPSL 0x01 (the defaults) and
    /// MxRtyPassiveActivation `retries` (0xFF: InListPassiveTarget waits for a card forever).
    pub fn set_passive_activation_retries(&mut self, retries: u8) -> Result<(), NfcError> {
        let payload = [
            TFI_HOST_TO_PN532,
            CMD_RF_CONFIGURATION,
            RF_ITEM_MAX_RETRIES,
            0xFF,
            0x01,
            retries,
        ];
        let p = self.exchange(&payload, self.cfg.response_timeout)?;
        match commands::response_params(&p, CMD_RF_CONFIGURATION)? {
            [] => Ok(()),
            rest => Err(CommandError::TrailingBytes(rest.len()).into()),
        }
    }

    /// InListPassiveTarget for one ISO 14443A card at 106 kbps. `None` when no card
    /// answered: the PN532 said 0 targets, or it was still searching at the list time-out
    /// (the command is then aborted with an ACK).
    pub fn list_passive_target(&mut self) -> Result<Option<SelectedCard>, NfcError> {
        let p = match self.command(&Command::list_one_14443a(), self.cfg.list_timeout) {
            Err(NfcError::Timeout) => return Ok(None),
            other => other?,
        };
        let targets = commands::parse_in_list_passive_target(&p)?;
        Ok(targets.into_iter().next().map(SelectedCard::from_target))
    }

    /// NTAG/Ultralight READ: 16 bytes (4 pages) from `page` of target `tg`.
    pub fn ntag_read(&mut self, tg: u8, page: u8) -> Result<[u8; NTAG_READ_LEN], NfcError> {
        let p = self.command(&Command::ntag_read(tg, page), self.cfg.response_timeout)?;
        Ok(commands::parse_ntag_read(&p)?)
    }

    /// Reads the NDEF message of a Type 2 tag: the capability container (page 3), then user
    /// pages from 4 until the NDEF TLV is complete, a terminator TLV, or the data area size
    /// in the CC. `Ok(None)` when the tag is not NDEF-formatted or holds no single Text or
    /// URI record; an error when the card stopped answering (e.g. it left mid-read).
    pub fn read_ndef(&mut self, tg: u8) -> Result<Option<NdefRecord>, NfcError> {
        let first = self.ntag_read(tg, CC_PAGE)?;
        let (cc, user) = first.split_at(4);
        if cc[0] != CC_NDEF_MAGIC {
            return Ok(None);
        }
        let size = usize::from(cc[2]) * 8;
        let mut mem = user.to_vec();
        let mut page = u16::from(CC_PAGE) + 4;
        while mem.len() < size && tlv_needs_more(&mem) {
            let Ok(p) = u8::try_from(page) else { break };
            mem.extend_from_slice(&self.ntag_read(tg, p)?);
            page += 4;
        }
        mem.truncate(size);
        Ok(ndef::parse_ntag_user_memory(&mem).ok())
    }

    /// InRelease of target `tg` (0: all).
    pub fn release(&mut self, tg: u8) -> Result<(), NfcError> {
        let p = self.command(
            &Command::InRelease { target: tg },
            self.cfg.response_timeout,
        )?;
        Ok(commands::parse_in_release(&p)?)
    }

    /// The credential token of a selected card: NDEF Text/URI if the tag has one, else its
    /// UID (also for cards that are not Type 2 tags or refuse READ). `Ok(None)` when the
    /// card stopped answering mid-read (no token: the NDEF may have been missed).
    pub fn read_card_token(
        &mut self,
        card: &SelectedCard,
        secret: &[u8],
    ) -> Result<Option<String>, NfcError> {
        if !card.is_type2() {
            return Ok(Some(card.uid_token(secret)));
        }
        match self.read_ndef(card.tg) {
            Ok(record) => Ok(Some(token_for(secret, &card.uid, record.as_ref()))),
            Err(NfcError::Protocol(CommandError::Nak(_))) => Ok(Some(card.uid_token(secret))),
            Err(e) if e.is_link_failure() => Err(e),
            Err(e) => {
                debug!(error = %e, "card read failed");
                Ok(None)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Poller

/// What the reader loop wants to hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CardEvent {
    /// A card arrived (de-bounced); `token` is its credential token, never its UID.
    Arrived {
        /// `credential_token(secret, "nfc-ndef" | "nfc-uid", …)`.
        token: String,
    },
    /// The card that arrived has left.
    Left,
    /// The reader's health changed.
    Health(ReaderHealth),
}

/// The reader's health, sent as [`CardEvent::Health`] whenever it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReaderHealth {
    /// Initialised and answering.
    pub ok: bool,
    /// Declared wedged (K link failures in a row, or initialisation failed); recovery runs.
    pub wedged: bool,
    /// Recovery attempts (hardware reset if wired, wake-up, SAMConfiguration, firmware
    /// check) made after the first initialisation.
    pub resets: u64,
    /// Frames dropped by the driver (bad checksums, truncated, unexpected).
    pub dropped_frames: u64,
}

/// The identity of a card between polls: the keyed hash of its UID (never the UID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardKey(pub String);

/// The result of one poll, as the [`Poller`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// No card answered.
    Absent,
    /// A card answered. `token` is `None` when reading it failed (it may be leaving).
    Present {
        /// The card's identity.
        card: CardKey,
        /// Its credential token, when known.
        token: Option<String>,
    },
    /// The reader or the link failed (time-out, no ACK, corrupted response, bus error).
    LinkError,
}

/// De-bounce, wedge and back-off settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollerConfig {
    /// Consecutive sightings of the same card (with its token read) before it arrives (N).
    pub arrive_after: u32,
    /// Consecutive polls without the card before it has left (M).
    pub leave_after: u32,
    /// Consecutive link failures before the reader is declared wedged (K).
    pub wedge_after: u32,
    /// Time between polls.
    pub poll_interval_ms: u64,
    /// First delay between failed recovery attempts; doubled after each failure.
    pub backoff_initial_ms: u64,
    /// Longest delay between recovery attempts.
    pub backoff_max_ms: u64,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            arrive_after: 2,
            leave_after: 3,
            wedge_after: 3,
            poll_interval_ms: 100,
            backoff_initial_ms: 250,
            backoff_max_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CardState {
    Idle,
    Candidate {
        card: CardKey,
        sightings: u32,
        token: Option<String>,
    },
    Present {
        card: CardKey,
        misses: u32,
    },
}

/// The pure, clock-driven poll state machine (see the module docs).
#[derive(Debug, Clone)]
pub struct Poller {
    cfg: PollerConfig,
    state: CardState,
    link_errors: u32,
    started: bool,
    next_reset_ms: u64,
    backoff_ms: u64,
    health: ReaderHealth,
}

impl Poller {
    /// A poller for a reader that has not been initialised yet ([`Self::needs_reset`]).
    pub fn new(cfg: PollerConfig) -> Self {
        let backoff_ms = cfg.backoff_initial_ms.max(1);
        Poller {
            cfg,
            state: CardState::Idle,
            link_errors: 0,
            started: false,
            next_reset_ms: 0,
            backoff_ms,
            health: ReaderHealth::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PollerConfig {
        &self.cfg
    }

    /// The current health.
    pub fn health(&self) -> &ReaderHealth {
        &self.health
    }

    /// Whether a card has arrived and not left.
    pub fn card_present(&self) -> bool {
        matches!(self.state, CardState::Present { .. })
    }

    /// Whether the reader must be (re-)initialised before polling: not started yet, or wedged.
    pub fn needs_reset(&self) -> bool {
        !self.started || self.health.wedged
    }

    /// Whether a (re-)initialisation attempt is due at `now_ms` (back-off respected).
    pub fn reset_due(&self, now_ms: u64) -> bool {
        self.needs_reset() && now_ms >= self.next_reset_ms
    }

    /// When the next step (poll or recovery attempt) is due, after one at `now_ms`.
    pub fn next_step_ms(&self, now_ms: u64) -> u64 {
        if self.needs_reset() {
            self.next_reset_ms.max(now_ms)
        } else {
            now_ms + self.cfg.poll_interval_ms
        }
    }

    fn health_change(&self, before: &ReaderHealth) -> Vec<CardEvent> {
        if *before == self.health {
            Vec::new()
        } else {
            vec![CardEvent::Health(self.health.clone())]
        }
    }

    /// Records the result of a (re-)initialisation attempt at `now_ms`.
    pub fn reset_done(&mut self, now_ms: u64, ok: bool) -> Vec<CardEvent> {
        let before = self.health.clone();
        if self.started {
            self.health.resets += 1;
        }
        self.started = true;
        if ok {
            self.health.ok = true;
            self.health.wedged = false;
            self.link_errors = 0;
            self.backoff_ms = self.cfg.backoff_initial_ms.max(1);
        } else {
            self.health.ok = false;
            self.health.wedged = true;
            self.next_reset_ms = now_ms.saturating_add(self.backoff_ms);
            self.backoff_ms = (self.backoff_ms.saturating_mul(2)).min(self.cfg.backoff_max_ms);
        }
        self.health_change(&before)
    }

    /// Records the driver's dropped-frame count (a health change if it grew).
    pub fn set_dropped_frames(&mut self, dropped: u64) -> Vec<CardEvent> {
        let before = self.health.clone();
        self.health.dropped_frames = dropped;
        self.health_change(&before)
    }

    /// Feeds the result of one poll at `now_ms`; returns the events it causes.
    pub fn observe(&mut self, now_ms: u64, obs: Observation) -> Vec<CardEvent> {
        let before = self.health.clone();
        let mut events = Vec::new();
        match obs {
            Observation::LinkError => {
                self.link_errors = self.link_errors.saturating_add(1);
                if self.link_errors >= self.cfg.wedge_after.max(1) && !self.health.wedged {
                    warn!(errors = self.link_errors, "PN532 wedged, recovering");
                    self.health.ok = false;
                    self.health.wedged = true;
                    self.next_reset_ms = now_ms;
                    self.backoff_ms = self.cfg.backoff_initial_ms.max(1);
                }
                // Link failures say nothing about the card: its state is kept.
            }
            Observation::Absent => {
                self.link_errors = 0;
                self.state = match std::mem::replace(&mut self.state, CardState::Idle) {
                    CardState::Present { card, misses } => {
                        let misses = misses + 1;
                        if misses >= self.cfg.leave_after.max(1) {
                            events.push(CardEvent::Left);
                            CardState::Idle
                        } else {
                            CardState::Present { card, misses }
                        }
                    }
                    CardState::Idle | CardState::Candidate { .. } => CardState::Idle,
                };
            }
            Observation::Present { card, token } => {
                self.link_errors = 0;
                self.state = match std::mem::replace(&mut self.state, CardState::Idle) {
                    CardState::Present { card: c, .. } if c == card => {
                        CardState::Present { card, misses: 0 }
                    }
                    CardState::Present { .. } => {
                        // Another card took its place.
                        events.push(CardEvent::Left);
                        CardState::Candidate {
                            card,
                            sightings: 1,
                            token,
                        }
                    }
                    CardState::Candidate {
                        card: c,
                        sightings,
                        token: t,
                    } if c == card => CardState::Candidate {
                        card,
                        sightings: sightings + 1,
                        token: token.or(t),
                    },
                    CardState::Candidate { .. } | CardState::Idle => CardState::Candidate {
                        card,
                        sightings: 1,
                        token,
                    },
                };
                if let CardState::Candidate {
                    card,
                    sightings,
                    token: Some(token),
                } = &self.state
                {
                    if *sightings >= self.cfg.arrive_after.max(1) {
                        events.push(CardEvent::Arrived {
                            token: token.clone(),
                        });
                        self.state = CardState::Present {
                            card: card.clone(),
                            misses: 0,
                        };
                    }
                }
            }
        }
        events.extend(self.health_change(&before));
        events
    }
}

// ---------------------------------------------------------------------------------------
// The loop

/// A driver, a poller and the device secret: one [`Self::step`] polls once or makes one
/// recovery attempt. [`run_reader`] runs it against the wall clock; tests against their own.
pub struct ReaderLoop<T: Transport> {
    pn532: Pn532<T>,
    poller: Poller,
    secret: Vec<u8>,
    /// The token last read, by card identity, so a card staying in the field is not re-read.
    cache: Option<(CardKey, String)>,
}

impl<T: Transport> fmt::Debug for ReaderLoop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaderLoop")
            .field("pn532", &self.pn532)
            .field("poller", &self.poller)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl<T: Transport> ReaderLoop<T> {
    /// A loop over `pn532` (not yet initialised: the first step does it).
    pub fn new(pn532: Pn532<T>, cfg: PollerConfig, secret: &[u8]) -> Self {
        ReaderLoop {
            pn532,
            poller: Poller::new(cfg),
            secret: secret.to_vec(),
            cache: None,
        }
    }

    /// The poller (health, presence).
    pub fn poller(&self) -> &Poller {
        &self.poller
    }

    /// The driver.
    pub fn driver(&self) -> &Pn532<T> {
        &self.pn532
    }

    /// When the next step is due, after one at `now_ms`.
    pub fn next_step_ms(&self, now_ms: u64) -> u64 {
        self.poller.next_step_ms(now_ms)
    }

    /// One step at `now_ms`: a recovery attempt if one is due, else a poll if the reader is
    /// healthy, else nothing.
    pub fn step(&mut self, now_ms: u64) -> Vec<CardEvent> {
        let mut events = if self.poller.needs_reset() {
            if !self.poller.reset_due(now_ms) {
                return Vec::new();
            }
            let r = self.pn532.reset();
            match &r {
                Ok((hard, fw)) => info!(
                    hard_reset = hard,
                    "PN532 ready: firmware {}.{}", fw.version, fw.revision
                ),
                Err(e) => warn!(error = %e, "PN532 initialisation failed"),
            }
            self.poller.reset_done(now_ms, r.is_ok())
        } else {
            let obs = self.poll_once();
            self.poller.observe(now_ms, obs)
        };
        if events.iter().any(|e| matches!(e, CardEvent::Left)) {
            self.cache = None;
        }
        events.extend(self.poller.set_dropped_frames(self.pn532.dropped_frames()));
        events
    }

    fn poll_once(&mut self) -> Observation {
        let card = match self.pn532.list_passive_target() {
            Ok(Some(card)) => card,
            Ok(None) => return Observation::Absent,
            Err(e) => {
                debug!(error = %e, "poll failed");
                return Observation::LinkError;
            }
        };
        let key = CardKey(card.uid_token(&self.secret));
        let token = match &self.cache {
            Some((k, t)) if *k == key => Some(t.clone()),
            _ => match self.pn532.read_card_token(&card, &self.secret) {
                Ok(Some(t)) => {
                    self.cache = Some((key.clone(), t.clone()));
                    Some(t)
                }
                Ok(None) => None,
                Err(e) => {
                    debug!(error = %e, "card read failed on the link");
                    return Observation::LinkError;
                }
            },
        };
        if let Err(e) = self.pn532.release(card.tg) {
            debug!(error = %e, "InRelease failed");
            if e.is_link_failure() {
                return Observation::LinkError;
            }
        }
        Observation::Present { card: key, token }
    }
}

/// Runs the reader until `stop` is set: polls every `cfg.poll_interval_ms`, recovers a
/// wedged reader with back-off, and hands every [`CardEvent`] to `sink`. Blocking: run it on
/// a dedicated `std::thread`, not on the async runtime.
pub fn run_reader<T: Transport>(
    pn532: Pn532<T>,
    cfg: PollerConfig,
    secret: &[u8],
    stop: &AtomicBool,
    mut sink: impl FnMut(CardEvent),
) {
    const SLICE: Duration = Duration::from_millis(20);
    let start = Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut rl = ReaderLoop::new(pn532, cfg, secret);
    while !stop.load(Ordering::Relaxed) {
        let at = now_ms();
        for e in rl.step(at) {
            sink(e);
        }
        let next = rl.next_step_ms(at);
        while !stop.load(Ordering::Relaxed) {
            let now = now_ms();
            if now >= next {
                break;
            }
            std::thread::sleep(SLICE.min(Duration::from_millis(next - now)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfc::commands::Pn532Error;
    use crate::nfc::sim::{card_token, SimCard, SimPn532, SimReaderHandle};
    use proptest::prelude::*;

    const SECRET: &[u8] = b"device-secret-for-tests";

    fn text(t: &str) -> NdefRecord {
        NdefRecord::Text {
            language: "en".into(),
            text: t.into(),
        }
    }

    fn card(id: &str, record: Option<NdefRecord>) -> SimCard {
        SimCard::from_id(id, record.as_ref()).unwrap()
    }

    fn driver(reset_pin: bool) -> (Pn532<SimPn532>, SimReaderHandle) {
        let (sim, handle) = SimPn532::new(reset_pin);
        (Pn532::new(sim, DriverConfig::default()), handle)
    }

    fn ready_driver() -> (Pn532<SimPn532>, SimReaderHandle) {
        let (mut d, h) = driver(true);
        d.init().unwrap();
        (d, h)
    }

    // --- driver against the simulated PN532 -------------------------------------------

    #[test]
    fn init_configures_the_sam_and_reads_the_firmware_version() {
        let (mut d, h) = driver(true);
        let fw = d.init().unwrap();
        assert_eq!(
            fw,
            FirmwareVersion {
                ic: 0x32,
                version: 1,
                revision: 6,
                support: 7
            }
        );
        let s = h.stats();
        assert_eq!(
            s.commands, 3,
            "SAMConfiguration, RFConfiguration, GetFirmwareVersion"
        );
        assert_eq!(s.wakes, 1);
        assert_eq!(s.bad_host_frames, 0);
        d.sam_configuration().unwrap();
        assert_eq!(d.firmware_version().unwrap(), fw);
        assert_eq!(d.dropped_frames(), 0);
        // A command the PN532 does not know: its syntax-error frame becomes an error.
        assert_eq!(
            d.exchange(&[TFI_HOST_TO_PN532, 0x99], Duration::from_millis(10)),
            Err(NfcError::ErrorFrame)
        );
        assert_eq!(d.link_stats(), &LinkStats::default());
    }

    #[test]
    fn a_tapped_ntag213_is_listed_read_page_by_page_and_released() {
        let (mut d, h) = ready_driver();
        let c = card("alice", Some(text("tok-alice")));
        h.tap(c.clone());
        let t = d.list_passive_target().unwrap().expect("a card");
        assert_eq!(t.tg, 1);
        assert_eq!(t.sens_res, [0x00, 0x44]);
        assert_eq!(t.sel_res, 0x00);
        assert_eq!(t.uid_len(), 7);
        assert_eq!(t.uid(), c.uid());
        assert_eq!(d.ntag_read(t.tg, 0).unwrap()[..], c.memory()[..16]);
        assert_eq!(d.ntag_read(t.tg, 3).unwrap()[..4], [0xE1, 0x10, 0x12, 0x00]);
        // Roll-over: pages 0x2B, 0x2C, 0x00, 0x01.
        let wrap = d.ntag_read(t.tg, 0x2B).unwrap();
        assert_eq!(wrap[8..], c.memory()[..8]);
        assert_eq!(
            d.ntag_read(t.tg, 0x2D),
            Err(NfcError::Protocol(CommandError::Nak(0)))
        );
        assert_eq!(d.read_ndef(t.tg).unwrap(), Some(text("tok-alice")));
        d.release(t.tg).unwrap();
        // Released: the target is no longer selected.
        assert_eq!(
            d.ntag_read(t.tg, 4),
            Err(NfcError::Protocol(CommandError::Status(
                Pn532Error::NotAcceptable
            )))
        );
        assert_eq!(d.dropped_frames(), 0);
    }

    #[test]
    fn an_ndef_uri_record_is_read_and_reading_stops_at_the_end_of_the_message() {
        let (mut d, h) = ready_driver();
        let uri = NdefRecord::Uri("https://pay.example/t/0123456789abcdef0123456789".into());
        h.tap(card("bob", Some(uri.clone())));
        let t = d.list_passive_target().unwrap().unwrap();
        let before = h.stats().page_reads;
        assert_eq!(d.read_ndef(t.tg).unwrap(), Some(uri.clone()));
        // TLV: 03 L + 4-byte header + 44 payload bytes + FE = 51 bytes: page 3 gives 12,
        // three more READs give 48 more (60 ≥ 51): 4 READs, not the 9 for the whole area.
        assert_eq!(h.stats().page_reads - before, 4);
        let tok = d.read_card_token(&t, SECRET).unwrap().unwrap();
        assert_eq!(
            tok,
            credential_token(
                SECRET,
                KIND_NDEF,
                "https://pay.example/t/0123456789abcdef0123456789"
            )
        );
    }

    #[test]
    fn a_blank_tag_gets_its_uid_token_and_other_cards_get_distinct_tokens() {
        let (mut d, h) = ready_driver();
        let blank = card("carol", None);
        h.tap(blank.clone());
        let t = d.list_passive_target().unwrap().unwrap();
        assert_eq!(d.read_ndef(t.tg).unwrap(), None);
        let tok = d.read_card_token(&t, SECRET).unwrap().unwrap();
        assert_eq!(
            tok,
            credential_token(SECRET, KIND_UID, &hex::encode(blank.uid()))
        );
        assert_eq!(tok, card_token(SECRET, &blank));
        assert_eq!(tok, t.uid_token(SECRET));
        assert_ne!(tok, card_token(b"another secret", &blank));
        let other = card("dave", None);
        assert_ne!(card_token(SECRET, &other), tok);
        assert_eq!(
            card_token(SECRET, &card("x", Some(text("same")))),
            card_token(SECRET, &card("y", Some(text("same")))),
            "the NDEF token does not depend on the UID"
        );
    }

    #[test]
    fn no_card_gives_an_empty_list_both_with_finite_retries_and_after_the_list_timeout() {
        let (mut d, h) = ready_driver();
        assert_eq!(d.list_passive_target().unwrap(), None);
        assert_eq!(h.stats().aborts, 0, "0 targets answered at once");
        // With the PN532's default MxRtyPassiveActivation (0xFF) it searches forever: the
        // driver gives up at the list time-out and aborts the command with an ACK.
        d.set_passive_activation_retries(0xFF).unwrap();
        assert_eq!(d.list_passive_target().unwrap(), None);
        assert_eq!(h.stats().aborts, 1);
        assert_eq!(d.link_stats().aborts_sent, 1);
        h.tap(card("erin", None));
        assert!(d.list_passive_target().unwrap().is_some());
    }

    #[test]
    fn a_corrupted_response_is_nacked_and_the_resend_is_used() {
        let (mut d, h) = ready_driver();
        h.corrupt_next_responses(1);
        assert_eq!(d.firmware_version().unwrap().ic, 0x32);
        assert_eq!(d.link_stats().nacks_sent, 1);
        assert_eq!(h.stats().nacks_received, 1);
        assert_eq!(d.dropped_frames(), 1);
        h.corrupt_next_responses(2);
        assert!(d.firmware_version().is_ok());
        assert_eq!(d.dropped_frames(), 3);
    }

    #[test]
    fn a_response_corrupted_past_the_retries_is_dropped_counted_and_an_error() {
        let (mut d, h) = ready_driver();
        h.corrupt_next_responses(3);
        assert_eq!(d.firmware_version(), Err(NfcError::Corrupt));
        assert!(NfcError::Corrupt.is_link_failure());
        assert_eq!(d.dropped_frames(), 3);
        assert_eq!(d.link_stats().nacks_sent, 2);
        assert_eq!(d.link_stats().aborts_sent, 1);
        assert_eq!(h.stats().aborts, 1);
        // The link is usable again at once.
        assert!(d.firmware_version().is_ok());
    }

    #[test]
    fn line_noise_before_a_response_is_skipped_even_with_a_false_start_code() {
        let (mut d, h) = ready_driver();
        h.noise_before_next_response(&[0x13, 0x37, 0xAA]);
        assert!(d.firmware_version().is_ok());
        assert_eq!(d.garbage_bytes(), 3);
        assert_eq!(d.dropped_frames(), 0);
        // `00 FF 05 00` is a false start with a bad LCS: dropped, counted, the real frame
        // right behind it is still found.
        h.noise_before_next_response(&[0x00, 0xFF, 0x05]);
        assert!(d.firmware_version().is_ok());
        assert_eq!(d.dropped_frames(), 1);
        assert_eq!(d.link_stats().nacks_sent, 0);
    }

    #[test]
    fn a_wedged_reader_does_not_ack_and_a_hardware_reset_revives_it() {
        let (mut d, h) = ready_driver();
        h.wedge();
        assert_eq!(d.firmware_version(), Err(NfcError::NoAck));
        assert_eq!(d.list_passive_target(), Err(NfcError::NoAck));
        assert!(NfcError::NoAck.is_link_failure());
        let (hard, fw) = d.reset().unwrap();
        assert!(hard);
        assert_eq!(fw.ic, 0x32);
        assert_eq!(h.stats().hard_resets, 1);
        assert!(!h.is_wedged());
        // Without a reset pin the reset cannot reach a wedged chip.
        let (mut d, h) = driver(false);
        d.init().unwrap();
        h.wedge();
        assert_eq!(d.reset(), Err(NfcError::NoAck));
        h.unwedge();
        assert!(!d.reset().unwrap().0);
    }

    #[test]
    fn a_card_leaving_mid_read_gives_no_token_and_the_next_tap_works() {
        let (mut d, h) = ready_driver();
        let c = card("frank", Some(text(&"long-token-".repeat(8))));
        h.tap(c.clone());
        h.leave_after_reads(1);
        let t = d.list_passive_target().unwrap().unwrap();
        assert!(matches!(
            d.read_ndef(t.tg),
            Err(NfcError::Protocol(CommandError::Status(
                Pn532Error::Timeout
            )))
        ));
        assert!(!h.card_present());
        h.tap(c.clone());
        h.leave_after_reads(1);
        let t = d.list_passive_target().unwrap().unwrap();
        assert_eq!(d.read_card_token(&t, SECRET), Ok(None));
        h.tap(c.clone());
        let t = d.list_passive_target().unwrap().unwrap();
        assert_eq!(
            d.read_card_token(&t, SECRET).unwrap(),
            Some(card_token(SECRET, &c))
        );
    }

    /// A line that never stops babbling garbage, and may lie about how much it read.
    struct Babbler {
        lie: bool,
    }

    impl Transport for Babbler {
        fn wake(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
        fn write(&mut self, _frame: &[u8]) -> Result<(), TransportError> {
            Ok(())
        }
        fn wait_ready(&mut self, _timeout: Duration) -> Result<bool, TransportError> {
            Ok(true)
        }
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
            buf.fill(0xAB);
            Ok(if self.lie { usize::MAX } else { buf.len() })
        }
    }

    #[test]
    fn an_endlessly_babbling_or_lying_transport_times_out_instead_of_hanging_or_panicking() {
        let cfg = DriverConfig {
            ack_timeout: Duration::from_millis(20),
            ..DriverConfig::default()
        };
        for lie in [false, true] {
            let mut d = Pn532::new(Babbler { lie }, cfg.clone());
            let t0 = Instant::now();
            assert_eq!(d.firmware_version(), Err(NfcError::NoAck));
            assert!(t0.elapsed() < Duration::from_secs(2));
            assert_eq!(d.garbage_bytes() > 0, !lie);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the line does to the responses, the driver answers correctly or fails
        /// with an error; it never panics, and every failure is a counted drop or a time-out.
        #[test]
        fn random_line_noise_and_corruption_never_panic_the_driver(
            noise in proptest::collection::vec(prop_oneof![any::<u8>(), Just(0x00u8), Just(0xFFu8)], 0..48),
            corrupt in 0u32..5,
        ) {
            let (mut d, h) = ready_driver();
            h.tap(card("noisy", Some(text("n"))));
            h.noise_before_next_response(&noise);
            h.corrupt_next_responses(corrupt);
            match d.list_passive_target() {
                Ok(Some(t)) => prop_assert_eq!(t.uid_len(), 7),
                Ok(None) => {}
                Err(e) => prop_assert!(e.is_link_failure() || matches!(e, NfcError::Protocol(_))),
            }
            // Whatever happened, a clean exchange afterwards works.
            h.corrupt_next_responses(0);
            h.noise_before_next_response(&[]);
            prop_assert!(d.firmware_version().is_ok());
        }
    }

    // --- poller ------------------------------------------------------------------------

    fn seen(card: &str, token: Option<&str>) -> Observation {
        Observation::Present {
            card: CardKey(card.into()),
            token: token.map(str::to_owned),
        }
    }

    fn arrived(token: &str) -> CardEvent {
        CardEvent::Arrived {
            token: token.into(),
        }
    }

    /// A started poller and the card events of `obs` (health events left out).
    fn run(cfg: PollerConfig, obs: &[Observation]) -> Vec<CardEvent> {
        let mut p = Poller::new(cfg);
        p.reset_done(0, true);
        obs.iter()
            .enumerate()
            .flat_map(|(i, o)| p.observe(i as u64 * 100, o.clone()))
            .filter(|e| !matches!(e, CardEvent::Health(_)))
            .collect()
    }

    #[test]
    fn a_card_arrives_after_n_sightings_stays_without_refiring_and_leaves_after_m_misses() {
        let a = seen("A", Some("tA"));
        let mut obs = vec![a.clone()];
        assert_eq!(run(PollerConfig::default(), &obs), []);
        obs.push(a.clone());
        assert_eq!(run(PollerConfig::default(), &obs), [arrived("tA")]);
        obs.extend(std::iter::repeat_n(a.clone(), 20));
        obs.extend([Observation::Absent, Observation::Absent]);
        assert_eq!(run(PollerConfig::default(), &obs), [arrived("tA")]);
        obs.push(Observation::Absent);
        assert_eq!(
            run(PollerConfig::default(), &obs),
            [arrived("tA"), CardEvent::Left]
        );
        obs.extend([a.clone(), a.clone()]);
        assert_eq!(
            run(PollerConfig::default(), &obs),
            [arrived("tA"), CardEvent::Left, arrived("tA")],
            "the same card tapped again after leaving arrives again"
        );
    }

    #[test]
    fn a_flickering_card_produces_no_arrive_leave_pairs() {
        let a = seen("A", Some("tA"));
        let abs = Observation::Absent;
        // Before arrival: never two sightings in a row, never arrives.
        let flicker: Vec<_> = (0..40)
            .map(|i| if i % 2 == 0 { a.clone() } else { abs.clone() })
            .collect();
        assert_eq!(run(PollerConfig::default(), &flicker), []);
        // After arrival: misses never reach M in a row, never leaves.
        let mut obs = vec![a.clone(), a.clone()];
        for i in 0..60 {
            obs.push(if i % 3 == 2 { a.clone() } else { abs.clone() });
        }
        assert_eq!(run(PollerConfig::default(), &obs), [arrived("tA")]);
    }

    #[test]
    fn a_card_without_a_token_does_not_arrive_until_it_is_read() {
        let mut obs = vec![seen("A", None); 5];
        assert_eq!(run(PollerConfig::default(), &obs), []);
        obs.push(seen("A", Some("tA")));
        assert_eq!(run(PollerConfig::default(), &obs), [arrived("tA")]);
        let cfg = PollerConfig {
            arrive_after: 1,
            ..PollerConfig::default()
        };
        assert_eq!(run(cfg, &[seen("A", Some("tA"))]), [arrived("tA")]);
    }

    #[test]
    fn a_different_card_fires_a_leave_then_its_own_arrival() {
        let obs = [
            seen("A", Some("tA")),
            seen("A", Some("tA")),
            seen("B", Some("tB")),
            seen("B", Some("tB")),
            seen("B", Some("tB")),
        ];
        assert_eq!(
            run(PollerConfig::default(), &obs),
            [arrived("tA"), CardEvent::Left, arrived("tB")]
        );
    }

    #[test]
    fn link_errors_declare_the_reader_wedged_and_recovery_backs_off_exponentially() {
        let cfg = PollerConfig::default();
        let mut p = Poller::new(cfg.clone());
        assert!(p.needs_reset() && p.reset_due(0), "not initialised yet");
        let ev = p.reset_done(0, true);
        assert_eq!(
            ev,
            [CardEvent::Health(ReaderHealth {
                ok: true,
                wedged: false,
                resets: 0,
                dropped_frames: 0
            })]
        );
        assert!(!p.needs_reset());
        assert_eq!(p.next_step_ms(1000), 1000 + cfg.poll_interval_ms);
        assert!(p.observe(1000, Observation::LinkError).is_empty());
        assert!(
            p.observe(1100, Observation::Absent).is_empty(),
            "a success resets the count"
        );
        assert!(p.observe(1200, Observation::LinkError).is_empty());
        assert!(p.observe(1300, Observation::LinkError).is_empty());
        let ev = p.observe(1400, Observation::LinkError);
        assert!(matches!(&ev[..], [CardEvent::Health(h)] if h.wedged && !h.ok));
        assert!(p.reset_due(1400));
        let mut at = 1400;
        let mut delays = Vec::new();
        for _ in 0..9 {
            p.reset_done(at, false);
            let next = p.next_step_ms(at);
            assert!(!p.reset_due(next - 1));
            assert!(p.reset_due(next));
            delays.push(next - at);
            at = next;
        }
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]
        );
        let ev = p.reset_done(at, true);
        assert!(matches!(&ev[..], [CardEvent::Health(h)] if h.ok && !h.wedged && h.resets == 10));
        // Back-off starts over after a recovery.
        for i in 0..3 {
            p.observe(at + i, Observation::LinkError);
        }
        p.reset_done(at + 3, false);
        assert_eq!(p.next_step_ms(at + 3), at + 3 + 250);
    }

    #[test]
    fn link_errors_keep_the_card_state() {
        let a = seen("A", Some("tA"));
        let mut obs = vec![a.clone(), a.clone()];
        obs.extend(std::iter::repeat_n(Observation::LinkError, 10));
        obs.push(a.clone());
        assert_eq!(run(PollerConfig::default(), &obs), [arrived("tA")]);
    }

    fn observation() -> impl Strategy<Value = Observation> {
        prop_oneof![
            3 => Just(Observation::Absent),
            1 => Just(Observation::LinkError),
            4 => (0u8..3, proptest::bool::weighted(0.8)).prop_map(|(c, has_token)| {
                let name = format!("card{c}");
                Observation::Present {
                    token: has_token.then(|| format!("token-{name}")),
                    card: CardKey(name),
                }
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn events_strictly_alternate_arrived_and_left_for_any_presence_sequence(
            obs in proptest::collection::vec(observation(), 0..200),
            n in 1u32..4,
            m in 1u32..5,
        ) {
            let cfg = PollerConfig { arrive_after: n, leave_after: m, ..PollerConfig::default() };
            let mut p = Poller::new(cfg);
            p.reset_done(0, true);
            let mut present: Option<String> = None;
            for (i, o) in obs.iter().enumerate() {
                for e in p.observe(i as u64, o.clone()) {
                    match e {
                        CardEvent::Arrived { token } => {
                            prop_assert!(present.is_none(), "two Arrived without a Left");
                            // The token is the one of the card seen in this very poll.
                            let Observation::Present { card, .. } = o else {
                                return Err(TestCaseError::fail("arrival without a sighting"));
                            };
                            prop_assert_eq!(&token, &format!("token-{}", card.0));
                            present = Some(token);
                        }
                        CardEvent::Left => {
                            prop_assert!(present.is_some(), "Left without Arrived");
                            present = None;
                        }
                        CardEvent::Health(_) => {}
                    }
                }
                prop_assert_eq!(p.card_present(), present.is_some());
            }
        }
    }

    // --- the loop against the simulated reader ----------------------------------------

    fn reader_loop(reset_pin: bool) -> (ReaderLoop<SimPn532>, SimReaderHandle) {
        let (d, h) = driver(reset_pin);
        (ReaderLoop::new(d, PollerConfig::default(), SECRET), h)
    }

    /// Steps the loop `n` times at its own pace from `*now`; returns the card events.
    fn steps(rl: &mut ReaderLoop<SimPn532>, now: &mut u64, n: usize) -> Vec<CardEvent> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.extend(
                rl.step(*now)
                    .into_iter()
                    .filter(|e| !matches!(e, CardEvent::Health(_))),
            );
            *now = rl.next_step_ms(*now);
        }
        out
    }

    #[test]
    fn the_loop_initialises_then_reports_a_tap_once_and_its_removal() {
        let (mut rl, h) = reader_loop(true);
        let ev = rl.step(0);
        assert!(matches!(&ev[..], [CardEvent::Health(hl)] if hl.ok));
        let mut now = rl.next_step_ms(0);
        assert_eq!(now, 100);
        assert_eq!(steps(&mut rl, &mut now, 5), []);
        let c = card("grace", Some(text("grace-token")));
        h.tap(c.clone());
        let ev = steps(&mut rl, &mut now, 2);
        assert_eq!(ev, [arrived(&card_token(SECRET, &c))]);
        assert_eq!(
            card_token(SECRET, &c),
            credential_token(SECRET, KIND_NDEF, "grace-token")
        );
        let reads = h.stats().page_reads;
        assert_eq!(steps(&mut rl, &mut now, 20), []);
        assert_eq!(
            h.stats().page_reads,
            reads,
            "a card staying is not read again"
        );
        h.remove();
        assert_eq!(steps(&mut rl, &mut now, 2), []);
        assert_eq!(steps(&mut rl, &mut now, 1), [CardEvent::Left]);
        let other = card("heidi", None);
        h.tap(other.clone());
        assert_eq!(
            steps(&mut rl, &mut now, 2),
            [arrived(&card_token(SECRET, &other))]
        );
    }

    #[test]
    fn a_wedged_reader_is_declared_wedged_reset_and_polling_resumes() {
        let (mut rl, h) = reader_loop(true);
        let mut now = 0;
        steps(&mut rl, &mut now, 1);
        let c = card("ivan", None);
        h.tap(c.clone());
        assert_eq!(steps(&mut rl, &mut now, 2).len(), 1);
        h.wedge();
        let mut health = Vec::new();
        for _ in 0..4 {
            for e in rl.step(now) {
                match e {
                    CardEvent::Health(hl) => health.push(hl),
                    other => panic!("unexpected {other:?}"),
                }
            }
            now = rl.next_step_ms(now);
        }
        assert!(health.iter().any(|hl| hl.wedged), "{health:?}");
        let last = health.last().unwrap();
        assert!(last.ok && !last.wedged && last.resets == 1, "{last:?}");
        assert_eq!(
            h.stats().hard_resets,
            2,
            "init at start-up, then the recovery"
        );
        assert!(!h.is_wedged());
        // The card stayed: no new arrival; its removal is seen by the resumed polling.
        assert_eq!(steps(&mut rl, &mut now, 5), []);
        h.remove();
        assert_eq!(steps(&mut rl, &mut now, 3), [CardEvent::Left]);
    }

    #[test]
    fn without_a_reset_pin_recovery_retries_with_back_off_until_the_reader_answers() {
        let (mut rl, h) = reader_loop(false);
        let mut now = 0;
        steps(&mut rl, &mut now, 1);
        h.wedge();
        let mut times = Vec::new();
        for _ in 0..6 {
            if rl.poller().needs_reset() {
                times.push(now);
            }
            rl.step(now);
            now = rl.next_step_ms(now);
        }
        // Polls at 100, 200, 300 fail (wedged at 300); attempts at 300, 550, 1050.
        assert_eq!(
            times,
            [300, 550, 1050],
            "first attempt at once, then 250 ms, 500 ms"
        );
        assert!(rl.poller().health().wedged);
        h.unwedge();
        while rl.poller().needs_reset() {
            rl.step(now);
            now = rl.next_step_ms(now);
        }
        assert!(rl.poller().health().ok);
        h.tap(card("judy", None));
        assert_eq!(steps(&mut rl, &mut now, 2).len(), 1);
    }

    #[test]
    fn a_card_leaving_mid_read_gives_no_event_and_the_next_tap_arrives() {
        let (mut rl, h) = reader_loop(true);
        let mut now = 0;
        steps(&mut rl, &mut now, 1);
        let c = card("kim", Some(text(&"kim-".repeat(20))));
        h.tap(c.clone());
        h.leave_after_reads(2);
        assert_eq!(steps(&mut rl, &mut now, 10), []);
        assert!(!h.card_present());
        h.tap(c.clone());
        assert_eq!(
            steps(&mut rl, &mut now, 2),
            [arrived(&card_token(SECRET, &c))]
        );
    }

    #[test]
    fn a_card_at_the_edge_of_the_field_arrives_at_most_once_and_never_flaps() {
        let (mut rl, h) = reader_loop(true);
        let mut now = 0;
        steps(&mut rl, &mut now, 1);
        h.tap(card("leo", None));
        h.set_flaky(&[true, false]);
        assert_eq!(
            steps(&mut rl, &mut now, 30),
            [],
            "never two sightings in a row"
        );
        h.set_flaky(&[true, true, false, false, true]);
        let ev = steps(&mut rl, &mut now, 50);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(matches!(ev[0], CardEvent::Arrived { .. }));
    }

    #[test]
    fn line_faults_in_the_loop_are_counted_in_health_without_spurious_events() {
        let (mut rl, h) = reader_loop(true);
        let mut now = 0;
        steps(&mut rl, &mut now, 1);
        let c = card("mia", None);
        h.tap(c.clone());
        h.corrupt_next_responses(1);
        let mut ev = Vec::new();
        for _ in 0..3 {
            ev.extend(rl.step(now));
            now = rl.next_step_ms(now);
        }
        let cards: Vec<_> = ev
            .iter()
            .filter(|e| !matches!(e, CardEvent::Health(_)))
            .collect();
        assert_eq!(cards, [&arrived(&card_token(SECRET, &c))]);
        assert!(ev
            .iter()
            .any(|e| matches!(e, CardEvent::Health(hl) if hl.dropped_frames == 1)));
        assert_eq!(rl.poller().health().dropped_frames, 1);
    }

    #[test]
    fn run_reader_on_a_thread_reports_a_tap_and_stops_when_asked() {
        use std::sync::mpsc;
        use std::sync::Arc;
        let (d, h) = driver(true);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let cfg = PollerConfig {
            poll_interval_ms: 5,
            ..PollerConfig::default()
        };
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                run_reader(d, cfg, SECRET, &stop, |e| {
                    let _ = tx.send(e);
                })
            })
        };
        let c = card(
            "nina",
            Some(NdefRecord::Uri("https://t.example/nina".into())),
        );
        h.tap(c.clone());
        let wait = |want: &dyn Fn(&CardEvent) -> bool| loop {
            let e = rx.recv_timeout(Duration::from_secs(10)).expect("an event");
            if want(&e) {
                return e;
            }
        };
        let e = wait(&|e| matches!(e, CardEvent::Arrived { .. }));
        assert_eq!(e, arrived(&card_token(SECRET, &c)));
        h.remove();
        wait(&|e| *e == CardEvent::Left);
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }

    // --- redaction ---------------------------------------------------------------------

    #[test]
    fn debug_and_display_of_cards_events_and_errors_never_show_the_uid() {
        let (mut rl, h) = reader_loop(true);
        let c = card("olga", None);
        let uid = c.uid().to_vec();
        let forms = [
            hex::encode(&uid),
            hex::encode_upper(&uid),
            format!("{:?}", &uid[1..4]),
            format!("{:#04x?}", &uid[1..4]),
        ];
        let mut texts = vec![format!("{c:?}"), format!("{h:?}")];
        h.tap(c.clone());
        let mut now = 0;
        for _ in 0..4 {
            for e in rl.step(now) {
                texts.push(format!("{e:?}"));
            }
            now = rl.next_step_ms(now);
        }
        texts.push(format!("{rl:?}"));
        let (mut d, h2) = ready_driver();
        h2.tap(c.clone());
        let t = d.list_passive_target().unwrap().unwrap();
        texts.push(format!("{t:?} {t:#?}"));
        h2.remove();
        let err = d.read_ndef(t.tg).unwrap_err();
        texts.push(format!("{err} {err:?}"));
        assert!(texts.iter().any(|t| t.contains("Arrived")), "{texts:?}");
        for text in &texts {
            for form in &forms {
                assert!(!text.contains(form.as_str()), "{text} shows {form}");
            }
        }
    }

    #[test]
    fn tlv_scanning_asks_for_more_only_while_the_ndef_message_is_incomplete() {
        assert!(tlv_needs_more(&[]));
        assert!(tlv_needs_more(&[0x00, 0x00]));
        assert!(!tlv_needs_more(&[0x00, 0xFE]));
        assert!(tlv_needs_more(&[0x03, 0x05, 1, 2, 3]));
        assert!(!tlv_needs_more(&[0x03, 0x02, 1, 2]));
        assert!(tlv_needs_more(&[0x03, 0xFF, 0x01]));
        assert!(tlv_needs_more(&[0x03, 0xFF, 0x01, 0x00, 1]));
        // A lock-control TLV before the message is skipped by its length.
        assert!(tlv_needs_more(&[0x01, 0x03, 0xA0, 0x10, 0x44]));
        assert!(!tlv_needs_more(&[0x01, 0x03, 0xA0, 0x10, 0x44, 0x03, 0x00]));
    }
}
