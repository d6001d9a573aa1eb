//! A simulated PN532 with an NTAG213 in (or out of) its field, at the byte level.
//!
//! [`SimPn532`] implements [`Transport`]: it decodes the host's frames with the real
//! [`FrameDecoder`], ACKs valid commands and answers them as UM0701-02 says, streaming the
//! bytes of one frame at a time (like the ready/read cycle of SPI and I2C). A cheap cloneable
//! [`SimReaderHandle`] shared with the sim API and tests puts a [`SimCard`] in the field,
//! takes it away, and injects faults: line noise, corrupted checksums, a wedged reader, a
//! card that leaves mid-read, flaky presence at the edge of the field.
//!
//! Faithful details: GetFirmwareVersion answers IC 0x32, version 1, revision 6, support 7;
//! InListPassiveTarget at 106 kbps type A answers `01 | 01 00 44 00 07 UID` for an NTAG213;
//! with no card it answers 0 targets once RFConfiguration (item 5) has set a finite
//! MxRtyPassiveActivation, and never (until the host aborts with an ACK) with the default
//! 0xFF; NTAG READ returns 16 bytes and rolls over from the last page to page 0; a host NACK
//! re-sends the last response; an ACK aborts the pending command.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::commands::{
    CMD_GET_FIRMWARE_VERSION, CMD_IN_DATA_EXCHANGE, CMD_IN_LIST_PASSIVE_TARGET, CMD_IN_RELEASE,
    CMD_SAM_CONFIGURATION, IC_PN532, NTAG_READ,
};
use super::frame::{self, Frame, FrameDecoder, TFI_HOST_TO_PN532, TFI_PN532_TO_HOST};
use super::ndef::{self, NdefRecord};
use super::reader::token_for;
use super::transport::{Transport, TransportError};

/// Command code of RFConfiguration (UM0701-02 §7.3.1).
pub const CMD_RF_CONFIGURATION: u8 = 0x32;
/// RFConfiguration item: MaxRetries (MxRtyATR, MxRtyPSL, MxRtyPassiveActivation).
pub const RF_ITEM_MAX_RETRIES: u8 = 0x05;

/// Pages of an NTAG213 (0x00..=0x2C).
pub const NTAG213_PAGES: usize = 45;
/// Bytes of NDEF data area of an NTAG213 (pages 4..=39), as its CC says (0x12 × 8).
pub const NTAG213_DATA_BYTES: usize = 144;
/// NTAG213 capability container (page 3): NDEF magic, version 1.0, 144 bytes, read/write.
const NTAG213_CC: [u8; 4] = [0xE1, 0x10, 0x12, 0x00];

// ---------------------------------------------------------------------------------------
// NDEF encoding (the inverse of `ndef`, for the simulator and tests)

/// URI identifier codes the encoder abbreviates (a subset of the NFC Forum URI RTD table,
/// longest prefixes first so the longest match wins).
const URI_ABBREVIATIONS: [(u8, &str); 6] = [
    (0x02, "https://www."),
    (0x01, "http://www."),
    (0x04, "https://"),
    (0x03, "http://"),
    (0x05, "tel:"),
    (0x06, "mailto:"),
];

/// Encodes `record` as a one-record NDEF message (MB, ME, short record when the payload
/// fits 255 bytes). Text records are UTF-8 with a language code of at most 63 bytes
/// (longer ones are cut).
pub fn encode_ndef_record(record: &NdefRecord) -> Vec<u8> {
    let (kind, payload) = match record {
        NdefRecord::Text { language, text } => {
            let lang = &language.as_bytes()[..language.len().min(63)];
            let mut p = vec![lang.len() as u8];
            p.extend_from_slice(lang);
            p.extend_from_slice(text.as_bytes());
            (b'T', p)
        }
        NdefRecord::Uri(uri) => {
            let (code, rest) = URI_ABBREVIATIONS
                .iter()
                .find_map(|(code, prefix)| uri.strip_prefix(prefix).map(|rest| (*code, rest)))
                .unwrap_or((0x00, uri.as_str()));
            let mut p = vec![code];
            p.extend_from_slice(rest.as_bytes());
            (b'U', p)
        }
    };
    let mut out = Vec::with_capacity(payload.len() + 7);
    if let Ok(short) = u8::try_from(payload.len()) {
        out.extend_from_slice(&[0xD1, 0x01, short]);
    } else {
        out.extend_from_slice(&[0xC1, 0x01]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    }
    out.push(kind);
    out.extend(payload);
    out
}

/// Wraps an NDEF message in Type 2 Tag TLVs: `03 L message FE` (three-byte length above 254).
pub fn ndef_tlv(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0x03];
    match u8::try_from(message.len()) {
        Ok(l) if l < 0xFF => out.push(l),
        _ => {
            out.push(0xFF);
            out.extend_from_slice(&(message.len().min(0xFFFF) as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(message);
    out.push(0xFE);
    out
}

// ---------------------------------------------------------------------------------------
// Cards

/// Why a [`SimCard`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimCardError {
    /// The NDEF TLV does not fit the NTAG213's 144-byte data area.
    #[error("NDEF message of {0} bytes does not fit an NTAG213 (144 bytes)")]
    TooLarge(usize),
}

/// A simulated NTAG213: a 7-byte UID and 45 pages of memory. Its `Debug` never shows the UID.
#[derive(Clone, PartialEq, Eq)]
pub struct SimCard {
    uid: [u8; 7],
    memory: Vec<u8>,
}

impl fmt::Debug for SimCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCard")
            .field("uid", &"<redacted>")
            .field("pages", &(self.memory.len() / 4))
            .finish()
    }
}

impl SimCard {
    /// An NTAG213 with this UID (byte 0 is the manufacturer; NXP is 0x04) holding `record`
    /// as its NDEF message, or an empty NDEF TLV (`03 00 FE`, a freshly formatted tag).
    pub fn ntag213(uid: [u8; 7], record: Option<&NdefRecord>) -> Result<Self, SimCardError> {
        let tlv = match record {
            Some(r) => ndef_tlv(&encode_ndef_record(r)),
            None => vec![0x03, 0x00, 0xFE],
        };
        if tlv.len() > NTAG213_DATA_BYTES {
            return Err(SimCardError::TooLarge(tlv.len()));
        }
        let mut memory = vec![0u8; NTAG213_PAGES * 4];
        let bcc0 = 0x88 ^ uid[0] ^ uid[1] ^ uid[2];
        let bcc1 = uid[3] ^ uid[4] ^ uid[5] ^ uid[6];
        memory[0..4].copy_from_slice(&[uid[0], uid[1], uid[2], bcc0]);
        memory[4..8].copy_from_slice(&uid[3..7]);
        memory[8..12].copy_from_slice(&[bcc1, 0x48, 0x00, 0x00]);
        memory[12..16].copy_from_slice(&NTAG213_CC);
        memory[16..16 + tlv.len()].copy_from_slice(&tlv);
        // Dynamic lock, CFG0, CFG1, PWD, PACK (pages 0x28..=0x2C) as shipped.
        memory[0x28 * 4..0x29 * 4].copy_from_slice(&[0x00, 0x00, 0x00, 0xBD]);
        memory[0x29 * 4..0x2A * 4].copy_from_slice(&[0x04, 0x00, 0x00, 0xFF]);
        memory[0x2A * 4..0x2B * 4].copy_from_slice(&[0x00, 0x05, 0x00, 0x00]);
        memory[0x2B * 4..0x2C * 4].copy_from_slice(&[0xFF; 4]);
        Ok(SimCard { uid, memory })
    }

    /// An NTAG213 with a UID derived from `id` (SHA-256, NXP manufacturer byte), so the sim
    /// API can name cards (`"alice"`) without choosing UIDs; `record` as in [`Self::ntag213`].
    pub fn from_id(id: &str, record: Option<&NdefRecord>) -> Result<Self, SimCardError> {
        let h = Sha256::digest(id.as_bytes());
        let uid = [0x04, h[0], h[1], h[2], h[3], h[4], h[5]];
        Self::ntag213(uid, record)
    }

    /// The credential token a reader with this device `secret` computes for this card (for
    /// accounts files and deny lists): see [`card_token`].
    pub fn token(&self, secret: &[u8]) -> String {
        card_token(secret, self)
    }

    /// The UID (tests only: it is sensitive and must not leave the NFC adapter).
    #[cfg(test)]
    pub(crate) fn uid(&self) -> &[u8] {
        &self.uid
    }

    /// The card's 180 bytes of memory (pages 0..=44), including the UID pages (tests only).
    #[cfg(test)]
    pub(crate) fn memory(&self) -> &[u8] {
        &self.memory
    }

    /// The NTAG READ answer for `page`: 16 bytes with roll-over past the last page, or the
    /// 4-bit NAK 0x0 for an address beyond the last page.
    fn read4(&self, page: u8) -> Vec<u8> {
        let pages = self.memory.len() / 4;
        if usize::from(page) >= pages {
            return vec![0x00];
        }
        (0..4)
            .flat_map(|i| {
                let p = (usize::from(page) + i) % pages;
                self.memory[p * 4..p * 4 + 4].to_vec()
            })
            .collect()
    }
}

/// The credential token a reader with the device `secret` computes for `card`: from its NDEF
/// Text or URI record if it has one, else from its UID (see [`token_for`]).
pub fn card_token(secret: &[u8], card: &SimCard) -> String {
    let size = usize::from(card.memory[14]) * 8;
    let user = card.memory.get(16..16 + size).unwrap_or_default();
    let record = ndef::parse_ntag_user_memory(user).ok();
    token_for(secret, &card.uid, record.as_ref())
}

// ---------------------------------------------------------------------------------------
// The simulated chip

/// Counters of what the simulated PN532 has seen, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Valid command frames received (and ACKed).
    pub commands: u64,
    /// Host NACKs (each re-sent the last response).
    pub nacks_received: u64,
    /// Host ACKs (each aborted the pending command).
    pub aborts: u64,
    /// Responses sent with a corrupted checksum.
    pub corrupted: u64,
    /// Host frames dropped by the sim's decoder (bad checksums from the host).
    pub bad_host_frames: u64,
    /// Hardware resets through the reset pin.
    pub hard_resets: u64,
    /// Wake-ups.
    pub wakes: u64,
    /// Commands ignored while wedged.
    pub ignored_while_wedged: u64,
    /// NTAG READs answered with data.
    pub page_reads: u64,
}

/// The chip's state. No `Debug`: its buffers hold the UID.
struct SimState {
    card: Option<SimCard>,
    selected: Option<u8>,
    max_retries_passive: u8,
    decoder: FrameDecoder,
    /// Frames queued for the host; the front one is what a read returns.
    out: VecDeque<Vec<u8>>,
    /// Bytes of the front frame already read.
    out_pos: usize,
    /// The last information frame sent, for a NACK.
    last_response: Option<Vec<u8>>,
    /// An InListPassiveTarget waiting for a card (default MaxRetries 0xFF).
    waiting_for_card: bool,
    has_reset_pin: bool,
    // faults
    corrupt_next: u32,
    noise_next: Vec<u8>,
    wedged: bool,
    /// Broken (a dead chip, a cut cable): silent, and a reset does not help.
    dead: bool,
    leave_after_reads: Option<u32>,
    flaky: Vec<bool>,
    flaky_pos: usize,
    stats: SimStats,
}

impl SimState {
    fn new(has_reset_pin: bool) -> Self {
        SimState {
            card: None,
            selected: None,
            max_retries_passive: 0xFF,
            decoder: FrameDecoder::new(),
            out: VecDeque::new(),
            out_pos: 0,
            last_response: None,
            waiting_for_card: false,
            has_reset_pin,
            corrupt_next: 0,
            noise_next: Vec::new(),
            wedged: false,
            dead: false,
            leave_after_reads: None,
            flaky: Vec::new(),
            flaky_pos: 0,
            stats: SimStats::default(),
        }
    }

    /// Power-on state of the chip (the field and the faults that model the world stay).
    fn chip_reset(&mut self) {
        self.selected = None;
        self.max_retries_passive = 0xFF;
        self.decoder.reset();
        self.out.clear();
        self.out_pos = 0;
        self.last_response = None;
        self.waiting_for_card = false;
        self.wedged = false;
    }

    fn card_in_field(&mut self) -> bool {
        if self.card.is_none() {
            return false;
        }
        if self.flaky.is_empty() {
            return true;
        }
        let seen = self.flaky[self.flaky_pos % self.flaky.len()];
        self.flaky_pos = self.flaky_pos.wrapping_add(1);
        seen
    }

    /// Selects the card in the field as target 1 and answers InListPassiveTarget with it:
    /// `D5 4B 01 | 01 SENS_RES(00 44) SEL_RES(00) 07 UID`.
    fn send_target(&mut self) {
        let uid = self.card.as_ref().map(|c| c.uid).unwrap_or_default();
        let mut r = vec![
            TFI_PN532_TO_HOST,
            CMD_IN_LIST_PASSIVE_TARGET + 1,
            0x01,
            0x01,
            0x00,
            0x44,
            0x00,
            0x07,
        ];
        r.extend_from_slice(&uid);
        self.selected = Some(1);
        self.send_response(&r);
    }

    fn send_response(&mut self, payload: &[u8]) {
        let f = frame::encode(payload);
        self.last_response = Some(f.clone());
        self.emit(f);
    }

    /// Queues a response frame, applying pending line faults.
    fn emit(&mut self, mut f: Vec<u8>) {
        if self.corrupt_next > 0 {
            self.corrupt_next -= 1;
            self.stats.corrupted += 1;
            // Flip the DCS (the byte before the postamble).
            if let Some(i) = f.len().checked_sub(2) {
                f[i] ^= 0x5A;
            }
        }
        if !self.noise_next.is_empty() {
            let mut noisy = std::mem::take(&mut self.noise_next);
            noisy.extend(f);
            f = noisy;
        }
        self.out.push_back(f);
    }

    fn host_bytes(&mut self, bytes: &[u8]) {
        if self.wedged || self.dead {
            self.stats.ignored_while_wedged += 1;
            return;
        }
        let before = self.decoder.stats.dropped_frames();
        let frames = self.decoder.push(bytes);
        self.stats.bad_host_frames += self.decoder.stats.dropped_frames() - before;
        for f in frames {
            match f {
                Frame::Ack => {
                    self.stats.aborts += 1;
                    self.out.clear();
                    self.out_pos = 0;
                    self.waiting_for_card = false;
                }
                Frame::Nack => {
                    self.stats.nacks_received += 1;
                    self.out.clear();
                    self.out_pos = 0;
                    if let Some(last) = self.last_response.clone() {
                        self.emit(last);
                    }
                }
                Frame::Error => self.out.push_back(frame::error_frame()),
                Frame::Data(payload) => {
                    self.stats.commands += 1;
                    self.out.clear();
                    self.out_pos = 0;
                    self.waiting_for_card = false;
                    self.out.push_back(frame::ack());
                    self.command(&payload);
                }
            }
        }
    }

    fn command(&mut self, payload: &[u8]) {
        let [TFI_HOST_TO_PN532, code, params @ ..] = payload else {
            self.out.push_back(frame::error_frame());
            return;
        };
        let rc = code.wrapping_add(1);
        match (*code, params) {
            (CMD_GET_FIRMWARE_VERSION, []) => {
                self.send_response(&[TFI_PN532_TO_HOST, rc, IC_PN532, 0x01, 0x06, 0x07])
            }
            (CMD_SAM_CONFIGURATION, [mode, ..]) if (1..=4).contains(mode) && params.len() <= 3 => {
                self.send_response(&[TFI_PN532_TO_HOST, rc])
            }
            (CMD_RF_CONFIGURATION, [RF_ITEM_MAX_RETRIES, _atr, _psl, passive]) => {
                self.max_retries_passive = *passive;
                self.send_response(&[TFI_PN532_TO_HOST, rc]);
            }
            (CMD_RF_CONFIGURATION, [_item, ..]) => self.send_response(&[TFI_PN532_TO_HOST, rc]),
            (CMD_IN_LIST_PASSIVE_TARGET, [max_tg, brty, ..]) if (1..=2).contains(max_tg) => {
                self.selected = None;
                if *brty != 0x00 {
                    // Only 106 kbps type A is simulated: no target of another kind answers.
                    self.send_response(&[TFI_PN532_TO_HOST, rc, 0x00]);
                } else if self.card_in_field() {
                    self.send_target();
                } else if self.max_retries_passive == 0xFF {
                    self.waiting_for_card = true;
                } else {
                    self.send_response(&[TFI_PN532_TO_HOST, rc, 0x00]);
                }
            }
            (CMD_IN_DATA_EXCHANGE, [tg, data @ ..]) => {
                let answer = self.exchange(*tg, data);
                let mut r = vec![TFI_PN532_TO_HOST, rc];
                r.extend(answer);
                self.send_response(&r);
            }
            (CMD_IN_RELEASE, [tg]) => {
                if *tg == 0 || self.selected == Some(*tg) {
                    self.selected = None;
                }
                self.send_response(&[TFI_PN532_TO_HOST, rc, 0x00]);
            }
            _ => self.out.push_back(frame::error_frame()),
        }
    }

    /// InDataExchange: the status byte and the card's answer.
    fn exchange(&mut self, tg: u8, data: &[u8]) -> Vec<u8> {
        if self.selected != Some(tg) {
            return vec![0x27]; // not acceptable in this context
        }
        let Some(card) = self.card.as_ref() else {
            self.selected = None;
            return vec![0x01]; // the target has not answered
        };
        match data {
            [NTAG_READ, page] => {
                let pages = card.read4(*page);
                let mut r = vec![0x00];
                r.extend(pages);
                self.stats.page_reads += 1;
                if let Some(n) = self.leave_after_reads.as_mut() {
                    if *n == 0 {
                        self.card = None;
                        self.selected = None;
                        self.leave_after_reads = None;
                        return vec![0x01];
                    }
                    *n -= 1;
                }
                r
            }
            _ => vec![0x00, 0x00], // the card NAKs what it does not know
        }
    }

    fn ready(&mut self) -> bool {
        if self.wedged || self.dead {
            return false;
        }
        if self.waiting_for_card && self.out.is_empty() && self.card_in_field() {
            // The pending InListPassiveTarget finds the card that just arrived.
            self.waiting_for_card = false;
            self.send_target();
        }
        !self.out.is_empty()
    }
}

/// A cloneable handle on a simulated PN532: what the sim API and tests use.
#[derive(Clone)]
pub struct SimReaderHandle {
    state: Arc<Mutex<SimState>>,
}

impl fmt::Debug for SimReaderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimReaderHandle")
            .field("card_present", &self.card_present())
            .finish()
    }
}

impl SimReaderHandle {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic elsewhere while holding the lock leaves consistent plain data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `card` in the field (replacing any card there).
    pub fn tap(&self, card: SimCard) {
        let mut s = self.lock();
        s.card = Some(card);
        s.selected = None;
        s.flaky_pos = 0;
    }

    /// Takes the card out of the field.
    pub fn remove(&self) {
        let mut s = self.lock();
        s.card = None;
        s.selected = None;
    }

    /// Whether a card is in the field.
    pub fn card_present(&self) -> bool {
        self.lock().card.is_some()
    }

    /// Corrupts the data checksum of the next `n` response frames (re-sends included).
    pub fn corrupt_next_responses(&self, n: u32) {
        self.lock().corrupt_next = n;
    }

    /// Puts line noise (garbage bytes) before the next response frame.
    pub fn noise_before_next_response(&self, noise: &[u8]) {
        self.lock().noise_next = noise.to_vec();
    }

    /// Wedges the reader: it ignores everything (no ACK, no answer) until a hardware reset
    /// (if it has a reset pin) or [`Self::unwedge`].
    pub fn wedge(&self) {
        let mut s = self.lock();
        s.wedged = true;
        s.out.clear();
        s.out_pos = 0;
    }

    /// Un-wedges the reader as if it recovered by itself (power glitch over).
    pub fn unwedge(&self) {
        self.lock().wedged = false;
    }

    /// Breaks the reader for good (a dead chip or a cut cable): it answers nothing and a
    /// reset does not revive it, until [`Self::repair`].
    pub fn break_down(&self) {
        let mut s = self.lock();
        s.dead = true;
        s.out.clear();
        s.out_pos = 0;
    }

    /// The broken reader is replaced.
    pub fn repair(&self) {
        self.lock().dead = false;
    }

    /// Whether the reader is wedged.
    pub fn is_wedged(&self) -> bool {
        self.lock().wedged
    }

    /// The card leaves the field after `n` more successful page reads (the next one fails).
    pub fn leave_after_reads(&self, n: u32) {
        self.lock().leave_after_reads = Some(n);
    }

    /// Flaky presence at the edge of the field: successive InListPassiveTarget see the card
    /// according to `pattern`, cycled (empty: always seen).
    pub fn set_flaky(&self, pattern: &[bool]) {
        let mut s = self.lock();
        s.flaky = pattern.to_vec();
        s.flaky_pos = 0;
    }

    /// Counters of what the chip has seen.
    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }
}

/// The simulated PN532 as a [`Transport`]. Waiting never sleeps: when nothing is ready,
/// `wait_ready` answers `false` at once (the time-out has "passed").
#[derive(Debug)]
pub struct SimPn532 {
    handle: SimReaderHandle,
}

impl SimPn532 {
    /// A simulated reader with an empty field and its cloneable handle. `has_reset_pin`
    /// says whether [`Transport::hard_reset`] reaches the chip.
    pub fn new(has_reset_pin: bool) -> (Self, SimReaderHandle) {
        let handle = SimReaderHandle {
            state: Arc::new(Mutex::new(SimState::new(has_reset_pin))),
        };
        (
            SimPn532 {
                handle: handle.clone(),
            },
            handle,
        )
    }

    /// Another handle on this reader.
    pub fn handle(&self) -> SimReaderHandle {
        self.handle.clone()
    }
}

impl Transport for SimPn532 {
    fn wake(&mut self) -> Result<(), TransportError> {
        self.handle.lock().stats.wakes += 1;
        Ok(())
    }

    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        self.handle.lock().host_bytes(frame);
        Ok(())
    }

    fn wait_ready(&mut self, _timeout: Duration) -> Result<bool, TransportError> {
        Ok(self.handle.lock().ready())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut s = self.handle.lock();
        if s.wedged {
            return Ok(0);
        }
        let pos = s.out_pos;
        let Some(front) = s.out.front() else {
            return Ok(0);
        };
        let rest = &front[pos.min(front.len())..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        let done = n == rest.len();
        if done {
            s.out.pop_front();
            s.out_pos = 0;
        } else {
            s.out_pos += n;
        }
        Ok(n)
    }

    fn hard_reset(&mut self) -> Result<bool, TransportError> {
        let mut s = self.handle.lock();
        if !s.has_reset_pin {
            return Ok(false);
        }
        s.stats.hard_resets += 1;
        s.chip_reset();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfc::ndef::parse_ntag_user_memory;

    fn text(t: &str) -> NdefRecord {
        NdefRecord::Text {
            language: "en".into(),
            text: t.into(),
        }
    }

    #[test]
    fn encoded_text_and_uri_records_read_back_through_the_ndef_parser() {
        for r in [
            text("vend-token-7"),
            text(""),
            NdefRecord::Uri("https://www.example.com/t/42".into()),
            NdefRecord::Uri("https://pay.example/t?x=1".into()),
            NdefRecord::Uri("urn:x-vend:abc".into()),
            NdefRecord::Uri("tel:+4412345".into()),
        ] {
            let card = SimCard::ntag213([4, 1, 2, 3, 4, 5, 6], Some(&r)).unwrap();
            assert_eq!(parse_ntag_user_memory(&card.memory()[16..16 + 144]), Ok(r));
        }
        let long = text(&"é".repeat(200));
        let msg = encode_ndef_record(&long);
        assert_eq!(msg[0], 0xC1); // not a short record
        assert_eq!(
            parse_ntag_user_memory(&ndef_tlv(&msg)),
            Ok(long.clone()),
            "a long record with a 3-byte TLV length"
        );
        assert!(matches!(
            SimCard::ntag213([4, 1, 2, 3, 4, 5, 6], Some(&long)),
            Err(SimCardError::TooLarge(_))
        ));
    }

    #[test]
    fn an_ntag213_image_has_uid_check_bytes_cc_and_rolls_over_on_read() {
        let uid = [0x04, 0x92, 0x2E, 0x5A, 0xB1, 0x2B, 0x80];
        let c = SimCard::ntag213(uid, None).unwrap();
        let m = c.memory();
        assert_eq!(m.len(), 180);
        assert_eq!(m[3], 0x88 ^ 0x04 ^ 0x92 ^ 0x2E);
        assert_eq!(m[8], 0x5A ^ 0xB1 ^ 0x2B ^ 0x80);
        assert_eq!(&m[12..16], &[0xE1, 0x10, 0x12, 0x00]);
        assert_eq!(&m[16..19], &[0x03, 0x00, 0xFE]);
        let r = c.read4(0x2B);
        assert_eq!(r.len(), 16);
        assert_eq!(&r[..4], &m[0x2B * 4..0x2C * 4]);
        assert_eq!(&r[8..16], &m[0..8]);
        assert_eq!(c.read4(0x2D), vec![0x00]);
        assert_eq!(c.read4(3)[..4], NTAG213_CC);
    }

    /// Reads everything the sim has ready, frame by frame.
    fn frames(sim: &mut SimPn532) -> Vec<Frame> {
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        let mut buf = [0u8; 5]; // small reads: frames arrive in pieces
        while sim.wait_ready(Duration::ZERO).unwrap() {
            let n = sim.read(&mut buf).unwrap();
            out.extend(d.push(&buf[..n]));
        }
        assert_eq!(d.stats.dropped_frames(), 0);
        out
    }

    #[test]
    fn the_sim_acks_answers_resends_on_nack_and_refuses_bad_frames_at_the_byte_level() {
        let (mut sim, h) = SimPn532::new(false);
        sim.write(&frame::encode(&[0xD4, 0x02])).unwrap();
        let fw = Frame::Data(vec![0xD5, 0x03, 0x32, 0x01, 0x06, 0x07]);
        assert_eq!(frames(&mut sim), [Frame::Ack, fw.clone()]);
        sim.write(&frame::nack()).unwrap();
        assert_eq!(frames(&mut sim), [fw]);
        // An unknown command and a bad TFI get the application error frame.
        sim.write(&frame::encode(&[0xD4, 0x99])).unwrap();
        assert_eq!(frames(&mut sim), [Frame::Ack, Frame::Error]);
        sim.write(&frame::encode(&[0xD5, 0x02])).unwrap();
        assert_eq!(frames(&mut sim), [Frame::Ack, Frame::Error]);
        // A host frame with a bad checksum is dropped and not ACKed.
        let mut bad = frame::encode(&[0xD4, 0x02]);
        bad[7] ^= 1;
        sim.write(&bad).unwrap();
        assert_eq!(frames(&mut sim), []);
        assert_eq!(h.stats().bad_host_frames, 1);
        assert_eq!(h.stats().nacks_received, 1);
    }

    #[test]
    fn a_pending_list_with_default_retries_answers_when_a_card_arrives_or_is_aborted() {
        let (mut sim, h) = SimPn532::new(false);
        let list = frame::encode(&[0xD4, 0x4A, 0x01, 0x00]);
        sim.write(&list).unwrap();
        assert_eq!(frames(&mut sim), [Frame::Ack]);
        assert!(
            !sim.wait_ready(Duration::ZERO).unwrap(),
            "searching, no answer"
        );
        let c = SimCard::from_id("zoe", None).unwrap();
        h.tap(c.clone());
        let got = frames(&mut sim);
        let mut want = vec![0xD5, 0x4B, 0x01, 0x01, 0x00, 0x44, 0x00, 0x07];
        want.extend_from_slice(c.uid());
        assert_eq!(got, [Frame::Data(want)]);
        // Aborted with an ACK: the answer never comes even if a card shows up.
        h.remove();
        sim.write(&list).unwrap();
        assert_eq!(frames(&mut sim), [Frame::Ack]);
        sim.write(&frame::ack()).unwrap();
        h.tap(c);
        assert_eq!(frames(&mut sim), []);
        assert_eq!(h.stats().aborts, 1);
    }

    #[test]
    fn sim_cards_named_by_id_are_stable_and_distinct_and_debug_hides_the_uid() {
        let a = SimCard::from_id("alice", None).unwrap();
        assert_eq!(a, SimCard::from_id("alice", None).unwrap());
        assert_ne!(a.uid(), SimCard::from_id("bob", None).unwrap().uid());
        assert_eq!(a.uid()[0], 0x04);
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(&hex::encode(a.uid())));
        assert!(!dbg.contains(&format!("{:?}", a.uid())));
    }
}
