//! PN532 commands (NXP UM0701-02 §7): request builders and response parsers.
//!
//! A request is built as its frame payload `D4 CC params…` ([`Command::tfi_payload`]) or as
//! the whole frame ([`Command::to_frame`]). A response parser takes the payload of a
//! [`Frame::Data`](super::frame::Frame::Data) (`D5 CC+1 params…`), checks the TFI and the
//! response code, and returns a typed value or a [`CommandError`]; it never panics.

use thiserror::Error;

use super::frame::{encode, TFI_HOST_TO_PN532, TFI_PN532_TO_HOST};

/// Command code of GetFirmwareVersion.
pub const CMD_GET_FIRMWARE_VERSION: u8 = 0x02;
/// Command code of SAMConfiguration.
pub const CMD_SAM_CONFIGURATION: u8 = 0x14;
/// Command code of InDataExchange.
pub const CMD_IN_DATA_EXCHANGE: u8 = 0x40;
/// Command code of InListPassiveTarget.
pub const CMD_IN_LIST_PASSIVE_TARGET: u8 = 0x4A;
/// Command code of InRelease.
pub const CMD_IN_RELEASE: u8 = 0x52;
/// NTAG / MIFARE Ultralight READ: returns 16 bytes (4 pages) from the given page.
pub const NTAG_READ: u8 = 0x30;
/// Bytes returned by one NTAG READ.
pub const NTAG_READ_LEN: usize = 16;
/// IC byte of a PN532 in the GetFirmwareVersion answer.
pub const IC_PN532: u8 = 0x32;

/// SAMConfiguration mode (UM0701-02 §7.2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamMode {
    /// The SAM is not used (the only mode a vending reader needs).
    Normal = 0x01,
    /// The PN532 and SAM are seen as one card from outside.
    VirtualCard = 0x02,
    /// The host reaches the SAM through the PN532.
    WiredCard = 0x03,
    /// Both the PN532 and the SAM are visible from outside.
    DualCard = 0x04,
}

/// A PN532 command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// GetFirmwareVersion: `D4 02`.
    GetFirmwareVersion,
    /// SAMConfiguration: `D4 14 Mode Timeout IRQ`. `timeout` is in units of 50 ms and only
    /// matters in virtual-card mode; `use_irq` drives the P70_IRQ pin.
    SamConfiguration {
        mode: SamMode,
        timeout: u8,
        use_irq: bool,
    },
    /// InListPassiveTarget for ISO/IEC 14443 Type A at 106 kbps: `D4 4A MaxTg 00 [UID]`.
    /// `max_targets` is 1 or 2; `uid` optionally selects one card by its UID.
    InListPassiveTarget106A { max_targets: u8, uid: Vec<u8> },
    /// InDataExchange: `D4 40 Tg DataOut`.
    InDataExchange { target: u8, data: Vec<u8> },
    /// InRelease: `D4 52 Tg` (target 0 releases all).
    InRelease { target: u8 },
}

impl Command {
    /// SAMConfiguration in normal mode (no SAM), with the IRQ pin used or not.
    pub fn sam_normal(timeout: u8, use_irq: bool) -> Self {
        Command::SamConfiguration {
            mode: SamMode::Normal,
            timeout,
            use_irq,
        }
    }

    /// InListPassiveTarget for one ISO 14443A card at 106 kbps.
    pub fn list_one_14443a() -> Self {
        Command::InListPassiveTarget106A {
            max_targets: 1,
            uid: Vec::new(),
        }
    }

    /// InDataExchange carrying an NTAG/Ultralight READ of 4 pages from `page`.
    pub fn ntag_read(target: u8, page: u8) -> Self {
        Command::InDataExchange {
            target,
            data: vec![NTAG_READ, page],
        }
    }

    /// The command code (the byte after the TFI).
    pub fn code(&self) -> u8 {
        match self {
            Command::GetFirmwareVersion => CMD_GET_FIRMWARE_VERSION,
            Command::SamConfiguration { .. } => CMD_SAM_CONFIGURATION,
            Command::InListPassiveTarget106A { .. } => CMD_IN_LIST_PASSIVE_TARGET,
            Command::InDataExchange { .. } => CMD_IN_DATA_EXCHANGE,
            Command::InRelease { .. } => CMD_IN_RELEASE,
        }
    }

    /// The response code the PN532 answers with (command code + 1).
    pub fn response_code(&self) -> u8 {
        self.code() + 1
    }

    /// The frame payload: `D4`, the command code and its parameters.
    pub fn tfi_payload(&self) -> Vec<u8> {
        let mut out = vec![TFI_HOST_TO_PN532, self.code()];
        match self {
            Command::GetFirmwareVersion => {}
            Command::SamConfiguration {
                mode,
                timeout,
                use_irq,
            } => out.extend_from_slice(&[*mode as u8, *timeout, u8::from(*use_irq)]),
            Command::InListPassiveTarget106A { max_targets, uid } => {
                out.extend_from_slice(&[*max_targets, 0x00]);
                out.extend_from_slice(uid);
            }
            Command::InDataExchange { target, data } => {
                out.push(*target);
                out.extend_from_slice(data);
            }
            Command::InRelease { target } => out.push(*target),
        }
        out
    }

    /// The whole frame, ready for the transport.
    ///
    /// # Panics
    /// If an InDataExchange or InListPassiveTarget carries more than
    /// [`MAX_PAYLOAD`](super::frame::MAX_PAYLOAD) bytes: a caller bug.
    pub fn to_frame(&self) -> Vec<u8> {
        encode(&self.tfi_payload())
    }
}

/// Error codes of the PN532's status byte (UM0701-02 §7.1, "Error handling").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Pn532Error {
    #[error("time out, the target has not answered")]
    Timeout,
    #[error("CRC error detected by the CIU")]
    Crc,
    #[error("parity error detected by the CIU")]
    Parity,
    #[error("erroneous bit count during anti-collision/select")]
    BitCount,
    #[error("framing error during MIFARE operation")]
    Framing,
    #[error("abnormal bit collision during bitwise anti-collision at 106 kbps")]
    Collision,
    #[error("communication buffer size insufficient")]
    BufferTooSmall,
    #[error("RF buffer overflow detected by the CIU")]
    RfBufferOverflow,
    #[error("RF field not switched on in time by the counterpart")]
    RfFieldNotOn,
    #[error("RF protocol error")]
    RfProtocol,
    #[error("temperature error: overheating")]
    Overheating,
    #[error("internal buffer overflow")]
    InternalBufferOverflow,
    #[error("invalid parameter")]
    InvalidParameter,
    #[error("DEP: received command not supported")]
    DepUnsupportedCommand,
    #[error("data format does not match the specification")]
    DataFormat,
    #[error("MIFARE authentication error")]
    MifareAuthentication,
    #[error("ISO 14443-3: UID check byte is wrong")]
    UidCheckByte,
    #[error("DEP: invalid device state")]
    DepInvalidState,
    #[error("operation not allowed in this configuration")]
    NotAllowed,
    #[error("command not acceptable in the current context")]
    NotAcceptable,
    #[error("the PN532 as target was released by its initiator")]
    Released,
    #[error("ISO 14443-3B: the card's ID does not match")]
    CardIdMismatch,
    #[error("ISO 14443-3B: the card previously activated has disappeared")]
    CardDisappeared,
    #[error("NFCID3 mismatch between initiator and target")]
    Nfcid3Mismatch,
    #[error("over-current event detected")]
    OverCurrent,
    #[error("NAD missing in DEP frame")]
    NadMissing,
    #[error("unknown PN532 error code {0:#04x}")]
    Unknown(u8),
}

impl Pn532Error {
    /// The error in a status byte's low 6 bits, or `None` for success.
    pub fn from_status(status: u8) -> Option<Self> {
        use Pn532Error::*;
        Some(match status & 0x3F {
            0x00 => return None,
            0x01 => Timeout,
            0x02 => Crc,
            0x03 => Parity,
            0x04 => BitCount,
            0x05 => Framing,
            0x06 => Collision,
            0x07 => BufferTooSmall,
            0x09 => RfBufferOverflow,
            0x0A => RfFieldNotOn,
            0x0B => RfProtocol,
            0x0D => Overheating,
            0x0E => InternalBufferOverflow,
            0x10 => InvalidParameter,
            0x12 => DepUnsupportedCommand,
            0x13 => DataFormat,
            0x14 => MifareAuthentication,
            0x23 => UidCheckByte,
            0x25 => DepInvalidState,
            0x26 => NotAllowed,
            0x27 => NotAcceptable,
            0x29 => Released,
            0x2A => CardIdMismatch,
            0x2B => CardDisappeared,
            0x2C => Nfcid3Mismatch,
            0x2D => OverCurrent,
            0x2E => NadMissing,
            other => Unknown(other),
        })
    }

    /// Errors after which the card is most likely no longer in the field.
    pub fn card_probably_gone(&self) -> bool {
        matches!(
            self,
            Pn532Error::Timeout
                | Pn532Error::Crc
                | Pn532Error::Parity
                | Pn532Error::Framing
                | Pn532Error::RfFieldNotOn
                | Pn532Error::CardDisappeared
        )
    }
}

/// Why a response was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("response too short ({0} bytes)")]
    TooShort(usize),
    #[error("response TFI {0:#04x}, expected 0xd5")]
    WrongTfi(u8),
    #[error("response code {got:#04x}, expected {expected:#04x}")]
    UnexpectedResponse { expected: u8, got: u8 },
    #[error("PN532 reported: {0}")]
    Status(Pn532Error),
    #[error("{0} bytes after the response")]
    TrailingBytes(usize),
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("{0} targets reported, the PN532 handles at most 2")]
    TooManyTargets(u8),
    #[error("NFCID1 length {0}, expected 4, 7 or 10")]
    InvalidUidLength(u8),
    #[error("ATS length byte {0} invalid")]
    InvalidAts(u8),
    #[error("card answered NAK {0:#x}")]
    Nak(u8),
    #[error("card answered {got} bytes, expected {expected}")]
    WrongLength { expected: usize, got: usize },
}

/// Checks `D5 code+1` and returns the parameters after it.
pub fn response_params(payload: &[u8], command_code: u8) -> Result<&[u8], CommandError> {
    let expected = command_code.wrapping_add(1);
    match payload {
        [TFI_PN532_TO_HOST, code, params @ ..] if *code == expected => Ok(params),
        [TFI_PN532_TO_HOST, code, ..] => Err(CommandError::UnexpectedResponse {
            expected,
            got: *code,
        }),
        [tfi, _, ..] => Err(CommandError::WrongTfi(*tfi)),
        _ => Err(CommandError::TooShort(payload.len())),
    }
}

fn no_trailing(rest: &[u8]) -> Result<(), CommandError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(CommandError::TrailingBytes(rest.len()))
    }
}

/// The answer to GetFirmwareVersion: `D5 03 IC Ver Rev Support`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareVersion {
    /// 0x32 for a PN532.
    pub ic: u8,
    pub version: u8,
    pub revision: u8,
    /// Bit 0: ISO 14443 Type A, bit 1: Type B, bit 2: ISO 18092.
    pub support: u8,
}

impl FirmwareVersion {
    /// Whether the chip says it supports ISO/IEC 14443 Type A.
    pub fn supports_iso14443a(&self) -> bool {
        self.support & 0x01 != 0
    }
}

/// Parses the GetFirmwareVersion answer.
pub fn parse_firmware_version(payload: &[u8]) -> Result<FirmwareVersion, CommandError> {
    match response_params(payload, CMD_GET_FIRMWARE_VERSION)? {
        [ic, version, revision, support] => Ok(FirmwareVersion {
            ic: *ic,
            version: *version,
            revision: *revision,
            support: *support,
        }),
        p if p.len() < 4 => Err(CommandError::Truncated("firmware version")),
        p => Err(CommandError::TrailingBytes(p.len() - 4)),
    }
}

/// Parses the SAMConfiguration answer `D5 15`.
pub fn parse_sam_configuration(payload: &[u8]) -> Result<(), CommandError> {
    no_trailing(response_params(payload, CMD_SAM_CONFIGURATION)?)
}

/// Parses the InRelease answer `D5 53 Status`.
pub fn parse_in_release(payload: &[u8]) -> Result<(), CommandError> {
    match response_params(payload, CMD_IN_RELEASE)? {
        [status] => match Pn532Error::from_status(*status) {
            None => Ok(()),
            Some(e) => Err(CommandError::Status(e)),
        },
        [] => Err(CommandError::Truncated("status")),
        [_, rest @ ..] => Err(CommandError::TrailingBytes(rest.len())),
    }
}

/// One ISO 14443A target found by InListPassiveTarget at 106 kbps. Its `Debug` redacts the
/// UID (and the ATS, which can carry card-specific bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Target14443A {
    /// Logical number the PN532 gave the target (used by InDataExchange).
    pub tg: u8,
    /// SENS_RES (ATQA), as sent (2 bytes).
    pub sens_res: [u8; 2],
    /// SEL_RES (SAK).
    pub sel_res: u8,
    /// NFCID1 (UID): 4, 7 or 10 bytes. Sensitive: never log or store it raw.
    pub nfcid: Vec<u8>,
    /// The ATS, including its length byte TL, for ISO 14443-4 cards.
    pub ats: Option<Vec<u8>>,
}

impl std::fmt::Debug for Target14443A {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target14443A")
            .field("tg", &self.tg)
            .field("sens_res", &self.sens_res)
            .field("sel_res", &self.sel_res)
            .field(
                "nfcid",
                &format_args!("<{} bytes redacted>", self.nfcid.len()),
            )
            .field("ats", &self.ats.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// SEL_RES bit saying the card is ISO 14443-4 compliant (and so sends an ATS).
const SEL_RES_ISO14443_4: u8 = 0x20;

/// Parses the InListPassiveTarget answer for 106 kbps Type A: `D5 4B NbTg TargetData…`,
/// each `Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1 [ATS]`. The ATS is read when SEL_RES
/// says ISO 14443-4 and bytes follow. No card gives an empty list.
pub fn parse_in_list_passive_target(payload: &[u8]) -> Result<Vec<Target14443A>, CommandError> {
    let params = response_params(payload, CMD_IN_LIST_PASSIVE_TARGET)?;
    let [nb_tg, rest @ ..] = params else {
        return Err(CommandError::Truncated("number of targets"));
    };
    let mut rest = rest;
    if *nb_tg > 2 {
        return Err(CommandError::TooManyTargets(*nb_tg));
    }
    let mut targets = Vec::with_capacity(usize::from(*nb_tg));
    for _ in 0..*nb_tg {
        let [tg, s0, s1, sel_res, uid_len, after @ ..] = rest else {
            return Err(CommandError::Truncated("target data"));
        };
        if !matches!(uid_len, 4 | 7 | 10) {
            return Err(CommandError::InvalidUidLength(*uid_len));
        }
        let Some((nfcid, after)) = after.split_at_checked(usize::from(*uid_len)) else {
            return Err(CommandError::Truncated("NFCID1"));
        };
        rest = after;
        let mut ats = None;
        if sel_res & SEL_RES_ISO14443_4 != 0 {
            if let [tl, ..] = rest {
                if *tl == 0 {
                    return Err(CommandError::InvalidAts(*tl));
                }
                let Some((a, after)) = rest.split_at_checked(usize::from(*tl)) else {
                    return Err(CommandError::Truncated("ATS"));
                };
                ats = Some(a.to_vec());
                rest = after;
            }
        }
        targets.push(Target14443A {
            tg: *tg,
            sens_res: [*s0, *s1],
            sel_res: *sel_res,
            nfcid: nfcid.to_vec(),
            ats,
        });
    }
    no_trailing(rest)?;
    Ok(targets)
}

/// A successful InDataExchange answer: `D5 41 Status DataIn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataExchange {
    /// MI bit: the target has more data (chaining); issue another exchange.
    pub more_information: bool,
    /// The bytes the card answered.
    pub data: Vec<u8>,
}

/// Parses the InDataExchange answer; a non-zero error code becomes [`CommandError::Status`].
pub fn parse_in_data_exchange(payload: &[u8]) -> Result<DataExchange, CommandError> {
    let [status, data @ ..] = response_params(payload, CMD_IN_DATA_EXCHANGE)? else {
        return Err(CommandError::Truncated("status"));
    };
    if let Some(e) = Pn532Error::from_status(*status) {
        return Err(CommandError::Status(e));
    }
    Ok(DataExchange {
        more_information: status & 0x40 != 0,
        data: data.to_vec(),
    })
}

/// Parses the answer to [`Command::ntag_read`]: exactly 16 bytes (4 pages). A one-byte
/// answer below 0x10 is the card's 4-bit NAK (e.g. page out of range).
pub fn parse_ntag_read(payload: &[u8]) -> Result<[u8; NTAG_READ_LEN], CommandError> {
    let ex = parse_in_data_exchange(payload)?;
    if let [nak] = ex.data[..] {
        if nak < 0x10 {
            return Err(CommandError::Nak(nak));
        }
    }
    ex.data
        .as_slice()
        .try_into()
        .map_err(|_| CommandError::WrongLength {
            expected: NTAG_READ_LEN,
            got: ex.data.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfc::frame::{decode, Frame};

    fn data(frame: &[u8]) -> Vec<u8> {
        match decode(frame) {
            Ok(Frame::Data(d)) => d,
            other => panic!("not a data frame: {other:?}"),
        }
    }

    #[test]
    fn request_frames_have_the_manuals_bytes() {
        assert_eq!(
            Command::GetFirmwareVersion.to_frame(),
            [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00]
        );
        // SAMConfiguration normal mode, 1 s, IRQ: D4 14 01 14 01, DCS = 0x02.
        assert_eq!(
            Command::sam_normal(0x14, true).to_frame(),
            [0x00, 0x00, 0xFF, 0x05, 0xFB, 0xD4, 0x14, 0x01, 0x14, 0x01, 0x02, 0x00]
        );
        // InListPassiveTarget, 1 target, 106 kbps type A: D4 4A 01 00, DCS = 0xE1.
        assert_eq!(
            Command::list_one_14443a().to_frame(),
            [0x00, 0x00, 0xFF, 0x04, 0xFC, 0xD4, 0x4A, 0x01, 0x00, 0xE1, 0x00]
        );
        assert_eq!(
            Command::ntag_read(1, 4).tfi_payload(),
            [0xD4, 0x40, 0x01, 0x30, 0x04]
        );
        assert_eq!(
            Command::InRelease { target: 1 }.tfi_payload(),
            [0xD4, 0x52, 0x01]
        );
        assert_eq!(
            Command::SamConfiguration {
                mode: SamMode::VirtualCard,
                timeout: 0,
                use_irq: false
            }
            .tfi_payload(),
            [0xD4, 0x14, 0x02, 0x00, 0x00]
        );
    }

    #[test]
    fn every_response_code_is_the_command_code_plus_one() {
        for c in [
            Command::GetFirmwareVersion,
            Command::sam_normal(0, false),
            Command::list_one_14443a(),
            Command::ntag_read(1, 0),
            Command::InRelease { target: 0 },
        ] {
            assert_eq!(c.response_code(), c.tfi_payload()[1] + 1);
        }
    }

    #[test]
    fn the_manuals_firmware_version_response_parses_to_pn532_1_6() {
        let d = data(&[
            0x00, 0x00, 0xFF, 0x06, 0xFA, 0xD5, 0x03, 0x32, 0x01, 0x06, 0x07, 0xE8, 0x00,
        ]);
        let v = parse_firmware_version(&d).unwrap();
        assert_eq!(
            v,
            FirmwareVersion {
                ic: IC_PN532,
                version: 1,
                revision: 6,
                support: 7
            }
        );
        assert!(v.supports_iso14443a());
    }

    #[test]
    fn a_response_with_the_wrong_tfi_or_code_or_length_is_refused() {
        assert_eq!(
            parse_firmware_version(&[0xD4, 0x03, 0x32, 0x01, 0x06, 0x07]),
            Err(CommandError::WrongTfi(0xD4))
        );
        assert_eq!(
            parse_firmware_version(&[0xD5, 0x15]),
            Err(CommandError::UnexpectedResponse {
                expected: 0x03,
                got: 0x15
            })
        );
        assert_eq!(
            parse_firmware_version(&[0xD5]),
            Err(CommandError::TooShort(1))
        );
        assert!(matches!(
            parse_firmware_version(&[0xD5, 0x03, 0x32]),
            Err(CommandError::Truncated(_))
        ));
        assert_eq!(
            parse_firmware_version(&[0xD5, 0x03, 0x32, 1, 6, 7, 9]),
            Err(CommandError::TrailingBytes(1))
        );
    }

    #[test]
    fn sam_configuration_and_in_release_answers_parse_and_report_errors() {
        assert_eq!(parse_sam_configuration(&[0xD5, 0x15]), Ok(()));
        assert_eq!(
            parse_sam_configuration(&[0xD5, 0x15, 0x00]),
            Err(CommandError::TrailingBytes(1))
        );
        assert_eq!(parse_in_release(&[0xD5, 0x53, 0x00]), Ok(()));
        assert_eq!(
            parse_in_release(&[0xD5, 0x53, 0x27]),
            Err(CommandError::Status(Pn532Error::NotAcceptable))
        );
        assert!(parse_in_release(&[0xD5, 0x53]).is_err());
    }

    #[test]
    fn an_ultralight_found_by_in_list_passive_target_gives_its_7_byte_uid() {
        // Manual example shape: D5 4B 01 | 01 00 44 00 07 04 …
        let p = [
            0xD5, 0x4B, 0x01, 0x01, 0x00, 0x44, 0x00, 0x07, 0x04, 0x92, 0x2E, 0x5A, 0xB1, 0x2B,
            0x80,
        ];
        let t = parse_in_list_passive_target(&p).unwrap();
        assert_eq!(
            t,
            [Target14443A {
                tg: 1,
                sens_res: [0x00, 0x44],
                sel_res: 0x00,
                nfcid: vec![0x04, 0x92, 0x2E, 0x5A, 0xB1, 0x2B, 0x80],
                ats: None,
            }]
        );
    }

    #[test]
    fn a_targets_debug_output_does_not_show_its_uid() {
        let t = Target14443A {
            tg: 1,
            sens_res: [0x00, 0x44],
            sel_res: 0x00,
            nfcid: vec![0x04, 0x92, 0x2E, 0x5A, 0xB1, 0x2B, 0x80],
            ats: Some(vec![0x02, 0x99]),
        };
        let dbg = format!("{t:?} {t:#?}");
        assert!(!dbg.to_lowercase().contains("922e5a"), "{dbg}");
        assert!(!dbg.contains("146, 46, 90"), "{dbg}");
        assert!(!dbg.contains("0x92"), "{dbg}");
        assert!(!dbg.contains("153"), "{dbg}");
        assert!(dbg.contains("7 bytes redacted"), "{dbg}");
    }

    #[test]
    fn an_iso14443_4_card_in_the_list_carries_its_ats() {
        // DESFire: SEL_RES 0x20, ATS 06 75 77 81 02 80 (TL counts itself).
        let p = [
            0xD5, 0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07, 0x04, 0x45, 0x75, 0x9A, 0x31, 0x22,
            0x80, 0x06, 0x75, 0x77, 0x81, 0x02, 0x80,
        ];
        let t = parse_in_list_passive_target(&p).unwrap();
        assert_eq!(
            t[0].ats.as_deref(),
            Some(&[0x06, 0x75, 0x77, 0x81, 0x02, 0x80][..])
        );
        let mut lying = p;
        lying[15] = 0x09;
        assert_eq!(
            parse_in_list_passive_target(&lying),
            Err(CommandError::Truncated("ATS"))
        );
    }

    #[test]
    fn two_targets_no_target_and_malformed_lists_are_told_apart() {
        let two = [
            0xD5, 0x4B, 0x02, 0x01, 0x00, 0x04, 0x08, 0x04, 1, 2, 3, 4, 0x02, 0x00, 0x44, 0x00,
            0x07, 1, 2, 3, 4, 5, 6, 7,
        ];
        let t = parse_in_list_passive_target(&two).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].nfcid, [1, 2, 3, 4]);
        assert_eq!(t[1].tg, 2);
        assert_eq!(
            parse_in_list_passive_target(&[0xD5, 0x4B, 0x00]),
            Ok(vec![])
        );
        assert_eq!(
            parse_in_list_passive_target(&[0xD5, 0x4B, 0x03]),
            Err(CommandError::TooManyTargets(3))
        );
        assert_eq!(
            parse_in_list_passive_target(&two[..20]),
            Err(CommandError::Truncated("NFCID1"))
        );
        assert_eq!(
            parse_in_list_passive_target(&[
                0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x05, 1, 2, 3, 4, 5
            ]),
            Err(CommandError::InvalidUidLength(5))
        );
        let mut extra = two.to_vec();
        extra.push(0x99);
        assert_eq!(
            parse_in_list_passive_target(&extra),
            Err(CommandError::TrailingBytes(1))
        );
    }

    #[test]
    fn in_data_exchange_status_bytes_map_to_the_manuals_error_table() {
        for (code, err) in [
            (0x01, Pn532Error::Timeout),
            (0x02, Pn532Error::Crc),
            (0x03, Pn532Error::Parity),
            (0x05, Pn532Error::Framing),
            (0x0A, Pn532Error::RfFieldNotOn),
            (0x14, Pn532Error::MifareAuthentication),
            (0x2B, Pn532Error::CardDisappeared),
            (0x3F, Pn532Error::Unknown(0x3F)),
        ] {
            assert_eq!(
                parse_in_data_exchange(&[0xD5, 0x41, code]),
                Err(CommandError::Status(err))
            );
            // The NAD (bit 7) and MI (bit 6) flags do not hide the error code.
            assert_eq!(
                parse_in_data_exchange(&[0xD5, 0x41, code | 0xC0]),
                Err(CommandError::Status(err))
            );
        }
        assert!(Pn532Error::Timeout.card_probably_gone());
        assert!(!Pn532Error::InvalidParameter.card_probably_gone());
        let ok = parse_in_data_exchange(&[0xD5, 0x41, 0x40, 0xAA]).unwrap();
        assert!(ok.more_information);
        assert_eq!(ok.data, [0xAA]);
    }

    #[test]
    fn an_ntag_read_returns_exactly_16_bytes_and_refuses_naks_and_short_answers() {
        let mut p = vec![0xD5, 0x41, 0x00];
        p.extend(0u8..16);
        let pages = parse_ntag_read(&p).unwrap();
        assert_eq!(pages[15], 15);
        assert_eq!(
            parse_ntag_read(&[0xD5, 0x41, 0x00, 0x00]),
            Err(CommandError::Nak(0))
        );
        assert_eq!(
            parse_ntag_read(&p[..10]),
            Err(CommandError::WrongLength {
                expected: 16,
                got: 7
            })
        );
        assert_eq!(
            parse_ntag_read(&[0xD5, 0x41, 0x01]),
            Err(CommandError::Status(Pn532Error::Timeout))
        );
    }
}
