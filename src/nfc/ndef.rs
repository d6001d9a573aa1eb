//! NDEF on NTAG/Ultralight user memory (NFC Forum Type 2 Tag TLVs, NDEF records, RTD Text
//! and URI). Only what a payment token needs: the first NDEF message TLV and a single
//! well-known Text ("T") or URI ("U") record. Malformed input is refused, never panics.

use thiserror::Error;

/// First page of user memory on NTAG21x / Ultralight (pages 0–2 UID and lock, 3 the CC).
pub const USER_MEMORY_FIRST_PAGE: u8 = 4;

const TLV_NULL: u8 = 0x00;
const TLV_NDEF_MESSAGE: u8 = 0x03;
const TLV_TERMINATOR: u8 = 0xFE;

const FLAG_MB: u8 = 0x80;
const FLAG_ME: u8 = 0x40;
const FLAG_CF: u8 = 0x20;
const FLAG_SR: u8 = 0x10;
const FLAG_IL: u8 = 0x08;
const TNF_WELL_KNOWN: u8 = 0x01;

/// URI identifier codes 0x00..=0x23 (NFC Forum URI RTD, table 3).
const URI_PREFIXES: [&str; 36] = [
    "",
    "http://www.",
    "https://www.",
    "http://",
    "https://",
    "tel:",
    "mailto:",
    "ftp://anonymous:anonymous@",
    "ftp://ftp.",
    "ftps://",
    "sftp://",
    "smb://",
    "nfs://",
    "ftp://",
    "dav://",
    "news:",
    "telnet://",
    "imap:",
    "rtsp://",
    "urn:",
    "pop:",
    "sip:",
    "sips:",
    "tftp:",
    "btspp://",
    "btl2cap://",
    "btgoep://",
    "tcpobex://",
    "irdaobex://",
    "file://",
    "urn:epc:id:",
    "urn:epc:tag:",
    "urn:epc:pat:",
    "urn:epc:raw:",
    "urn:epc:",
    "urn:nfc:",
];

/// A parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdefRecord {
    /// RTD Text: IANA language code and the text.
    Text { language: String, text: String },
    /// RTD URI with its prefix expanded.
    Uri(String),
}

/// Why NDEF data was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NdefError {
    #[error("no NDEF message TLV before the terminator or end of memory")]
    NoNdefMessage,
    #[error("TLV {tag:#04x} truncated or its length runs past the end of memory")]
    TruncatedTlv { tag: u8 },
    #[error("NDEF message is empty")]
    EmptyMessage,
    #[error("NDEF record truncated or its lengths run past the message")]
    TruncatedRecord,
    #[error("record is not a single record (MB/ME not both set)")]
    NotSingleRecord,
    #[error("chunked records are not supported")]
    Chunked,
    #[error("{0} bytes after the record")]
    TrailingBytes(usize),
    #[error("TNF {0} is not well-known (1)")]
    UnsupportedTnf(u8),
    #[error("well-known type {0:?} is neither T nor U")]
    UnsupportedType(Vec<u8>),
    #[error("text record payload is malformed")]
    BadText,
    #[error("UTF-16 text records are not supported")]
    Utf16Unsupported,
    #[error("text or URI is not valid UTF-8")]
    InvalidUtf8,
    #[error("URI identifier code {0:#04x} is reserved")]
    UnknownUriPrefix(u8),
    #[error("URI record payload is empty")]
    EmptyUri,
}

fn take(bytes: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    bytes.split_at_checked(n)
}

/// Finds the value of the first NDEF message TLV (tag 0x03) in user memory, skipping NULL
/// TLVs and other TLVs (lock/memory control, proprietary) by their length. Lengths are one
/// byte, or `FF` and two bytes big-endian.
pub fn find_ndef_message(user_memory: &[u8]) -> Result<&[u8], NdefError> {
    let mut rest = user_memory;
    loop {
        let [tag, after @ ..] = rest else {
            return Err(NdefError::NoNdefMessage);
        };
        let tag = *tag;
        match tag {
            TLV_NULL => {
                rest = after;
                continue;
            }
            TLV_TERMINATOR => return Err(NdefError::NoNdefMessage),
            _ => {}
        }
        let (len, after) = match after {
            [0xFF, hi, lo, after @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), after),
            [0xFF, ..] | [] => return Err(NdefError::TruncatedTlv { tag }),
            [len, after @ ..] => (usize::from(*len), after),
        };
        let (value, after) = take(after, len).ok_or(NdefError::TruncatedTlv { tag })?;
        if tag == TLV_NDEF_MESSAGE {
            return Ok(value);
        }
        rest = after;
    }
}

/// Parses an NDEF message holding exactly one well-known Text or URI record (short or
/// normal, with or without an ID).
pub fn parse_single_record(message: &[u8]) -> Result<NdefRecord, NdefError> {
    let [header, type_len, rest @ ..] = message else {
        return Err(if message.is_empty() {
            NdefError::EmptyMessage
        } else {
            NdefError::TruncatedRecord
        });
    };
    if header & FLAG_CF != 0 {
        return Err(NdefError::Chunked);
    }
    if header & (FLAG_MB | FLAG_ME) != FLAG_MB | FLAG_ME {
        return Err(NdefError::NotSingleRecord);
    }
    let (payload_len, rest) = if header & FLAG_SR != 0 {
        let (l, rest) = take(rest, 1).ok_or(NdefError::TruncatedRecord)?;
        (usize::from(l[0]), rest)
    } else {
        let (l, rest) = take(rest, 4).ok_or(NdefError::TruncatedRecord)?;
        let l = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
        (usize::try_from(l).unwrap_or(usize::MAX), rest)
    };
    let (id_len, rest) = if header & FLAG_IL != 0 {
        let (l, rest) = take(rest, 1).ok_or(NdefError::TruncatedRecord)?;
        (usize::from(l[0]), rest)
    } else {
        (0, rest)
    };
    let (record_type, rest) =
        take(rest, usize::from(*type_len)).ok_or(NdefError::TruncatedRecord)?;
    let (_id, rest) = take(rest, id_len).ok_or(NdefError::TruncatedRecord)?;
    let (payload, rest) = take(rest, payload_len).ok_or(NdefError::TruncatedRecord)?;
    if !rest.is_empty() {
        return Err(NdefError::TrailingBytes(rest.len()));
    }
    let tnf = header & 0x07;
    if tnf != TNF_WELL_KNOWN {
        return Err(NdefError::UnsupportedTnf(tnf));
    }
    match record_type {
        b"T" => parse_text(payload),
        b"U" => parse_uri(payload),
        other => Err(NdefError::UnsupportedType(other.to_vec())),
    }
}

fn parse_text(payload: &[u8]) -> Result<NdefRecord, NdefError> {
    let [status, rest @ ..] = payload else {
        return Err(NdefError::BadText);
    };
    if status & 0x80 != 0 {
        return Err(NdefError::Utf16Unsupported);
    }
    if status & 0x40 != 0 {
        // Reserved bit must be zero.
        return Err(NdefError::BadText);
    }
    let (lang, text) = take(rest, usize::from(status & 0x3F)).ok_or(NdefError::BadText)?;
    let language = std::str::from_utf8(lang).map_err(|_| NdefError::InvalidUtf8)?;
    if !language.is_ascii() {
        return Err(NdefError::BadText);
    }
    let text = std::str::from_utf8(text).map_err(|_| NdefError::InvalidUtf8)?;
    Ok(NdefRecord::Text {
        language: language.to_owned(),
        text: text.to_owned(),
    })
}

fn parse_uri(payload: &[u8]) -> Result<NdefRecord, NdefError> {
    let [code, rest @ ..] = payload else {
        return Err(NdefError::EmptyUri);
    };
    let prefix = URI_PREFIXES
        .get(usize::from(*code))
        .ok_or(NdefError::UnknownUriPrefix(*code))?;
    let rest = std::str::from_utf8(rest).map_err(|_| NdefError::InvalidUtf8)?;
    Ok(NdefRecord::Uri(format!("{prefix}{rest}")))
}

/// Finds the NDEF message in NTAG user memory (from page 4) and parses its single record.
pub fn parse_ntag_user_memory(user_memory: &[u8]) -> Result<NdefRecord, NdefError> {
    parse_single_record(find_ndef_message(user_memory)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pads to whole 4-byte pages with zeros, like a tag's unused memory.
    fn pages(bytes: &[u8], n_pages: usize) -> Vec<u8> {
        let mut v = bytes.to_vec();
        v.resize(n_pages * 4, 0);
        v
    }

    /// Short text record "en" / "Hello" in TLV 03 with terminator.
    const TEXT_HELLO: [u8; 17] = [
        0x03, 0x0C, 0xD1, 0x01, 0x08, b'T', 0x02, b'e', b'n', b'H', b'e', b'l', b'l', b'o', 0xFE,
        0x00, 0x00,
    ];

    #[test]
    fn a_short_text_record_on_an_ntag_page_image_reads_back() {
        let mem = pages(&TEXT_HELLO, 8);
        assert_eq!(
            parse_ntag_user_memory(&mem),
            Ok(NdefRecord::Text {
                language: "en".into(),
                text: "Hello".into()
            })
        );
    }

    #[test]
    fn a_uri_record_has_its_identifier_prefix_expanded() {
        // https://www. + "example.com/t/42"
        let mut rec = vec![0xD1, 0x01, 17, b'U', 0x02];
        rec.extend_from_slice(b"example.com/t/42");
        let mut mem = vec![0x03, rec.len() as u8];
        mem.extend(&rec);
        mem.push(0xFE);
        assert_eq!(
            parse_ntag_user_memory(&pages(&mem, 12)),
            Ok(NdefRecord::Uri("https://www.example.com/t/42".into()))
        );
        assert_eq!(
            parse_single_record(&[0xD1, 0x01, 0x04, b'U', 0x23, b'a', b':', b'b']),
            Ok(NdefRecord::Uri("urn:nfc:a:b".into()))
        );
        assert_eq!(
            parse_single_record(&[0xD1, 0x01, 0x02, b'U', 0x24, b'x']),
            Err(NdefError::UnknownUriPrefix(0x24))
        );
    }

    #[test]
    fn null_and_lock_control_tlvs_before_the_message_are_skipped() {
        let mut mem = vec![0x00, 0x00, 0x01, 0x03, 0xA0, 0x10, 0x44];
        mem.extend_from_slice(&TEXT_HELLO);
        assert!(matches!(
            parse_ntag_user_memory(&pages(&mem, 8)),
            Ok(NdefRecord::Text { .. })
        ));
    }

    #[test]
    fn a_three_byte_tlv_length_and_a_normal_record_with_an_id_are_read() {
        // Normal (non-short) record with IL: header 0xC9 (MB ME IL TNF=1).
        let text = "x".repeat(300);
        let mut payload = vec![0x02, b'd', b'e'];
        payload.extend_from_slice(text.as_bytes());
        let mut rec = vec![0xC9, 0x01];
        rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        rec.push(2); // ID length
        rec.push(b'T');
        rec.extend_from_slice(b"id");
        rec.extend(&payload);
        let mut mem = vec![0x03, 0xFF];
        mem.extend_from_slice(&(rec.len() as u16).to_be_bytes());
        mem.extend(&rec);
        mem.push(0xFE);
        assert_eq!(
            parse_ntag_user_memory(&pages(&mem, 100)),
            Ok(NdefRecord::Text {
                language: "de".into(),
                text
            })
        );
    }

    #[test]
    fn memory_without_an_ndef_tlv_is_refused() {
        assert_eq!(
            parse_ntag_user_memory(&[0xFE, 0x03, 0x00]),
            Err(NdefError::NoNdefMessage)
        );
        assert_eq!(
            parse_ntag_user_memory(&[0x00; 16]),
            Err(NdefError::NoNdefMessage)
        );
        assert_eq!(parse_ntag_user_memory(&[]), Err(NdefError::NoNdefMessage));
        assert_eq!(
            parse_ntag_user_memory(&[0x03, 0x00, 0xFE]),
            Err(NdefError::EmptyMessage)
        );
    }

    #[test]
    fn a_truncated_or_lying_tlv_length_is_refused() {
        // TLV says 0x30 bytes, memory has fewer.
        let mut lying = TEXT_HELLO;
        lying[1] = 0x30;
        assert_eq!(
            parse_ntag_user_memory(&lying),
            Err(NdefError::TruncatedTlv { tag: 0x03 })
        );
        assert_eq!(
            parse_ntag_user_memory(&[0x03, 0xFF, 0x01]),
            Err(NdefError::TruncatedTlv { tag: 0x03 })
        );
        assert_eq!(
            parse_ntag_user_memory(&[0x03]),
            Err(NdefError::TruncatedTlv { tag: 0x03 })
        );
        for cut in 2..14 {
            assert!(
                parse_ntag_user_memory(&TEXT_HELLO[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn lying_record_lengths_are_refused() {
        let good = &TEXT_HELLO[2..14];
        assert!(parse_single_record(good).is_ok());
        let mut long_payload = good.to_vec();
        long_payload[2] = 0x09;
        assert_eq!(
            parse_single_record(&long_payload),
            Err(NdefError::TruncatedRecord)
        );
        let mut short_payload = good.to_vec();
        short_payload[2] = 0x07;
        assert_eq!(
            parse_single_record(&short_payload),
            Err(NdefError::TrailingBytes(1))
        );
        let mut long_lang = good.to_vec();
        long_lang[4] = 0x09;
        assert_eq!(parse_single_record(&long_lang), Err(NdefError::BadText));
        let mut huge = vec![0xC1, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, b'T'];
        huge.extend_from_slice(b"\x02enHi");
        assert_eq!(parse_single_record(&huge), Err(NdefError::TruncatedRecord));
        for cut in 0..good.len() {
            assert!(parse_single_record(&good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn records_that_are_not_a_single_well_known_text_or_uri_are_refused() {
        let good = &TEXT_HELLO[2..14];
        let mut not_last = good.to_vec();
        not_last[0] = 0x91; // MB without ME
        assert_eq!(
            parse_single_record(&not_last),
            Err(NdefError::NotSingleRecord)
        );
        let mut chunked = good.to_vec();
        chunked[0] |= 0x20;
        assert_eq!(parse_single_record(&chunked), Err(NdefError::Chunked));
        let mut media = good.to_vec();
        media[0] = 0xD2;
        assert_eq!(
            parse_single_record(&media),
            Err(NdefError::UnsupportedTnf(2))
        );
        let mut sp = good.to_vec();
        sp[3] = b'S';
        assert_eq!(
            parse_single_record(&sp),
            Err(NdefError::UnsupportedType(b"S".to_vec()))
        );
        let mut utf16 = good.to_vec();
        utf16[4] |= 0x80;
        assert_eq!(
            parse_single_record(&utf16),
            Err(NdefError::Utf16Unsupported)
        );
        let mut bad_utf8 = good.to_vec();
        bad_utf8[7] = 0xFF;
        assert_eq!(parse_single_record(&bad_utf8), Err(NdefError::InvalidUtf8));
    }
}
