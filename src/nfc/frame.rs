//! PN532 host-link frames (NXP UM0701-02 §6.2.1): encoding, a one-shot decoder and a
//! streaming decoder that resynchronises on garbage.
//!
//! Wire formats (every frame starts with the start code `00 FF`, usually after a `00`
//! preamble, and usually ends with a `00` postamble):
//!
//! | frame | bytes |
//! | --- | --- |
//! | normal information | `00 00 FF LEN LCS TFI PD0..PDn DCS 00` |
//! | extended information | `00 00 FF FF FF LENM LENL LCS TFI PD0..PDn DCS 00` |
//! | ACK | `00 00 FF 00 FF 00` |
//! | NACK | `00 00 FF FF 00 00` |
//! | application error | `00 00 FF 01 FF 7F 81 00` |
//!
//! `LEN` counts `TFI` and the data bytes; `LEN + LCS ≡ 0` and `TFI + PD0 + … + PDn + DCS ≡ 0`
//! (mod 256). In this module a frame's *payload* is `TFI PD0..PDn` (what [`encode`] takes and
//! what [`Frame::Data`] carries).
//!
//! The decoders never panic on any input. Zero bytes outside a frame are the bus's idle fill
//! (preamble, postamble, an I2C/SPI read of nothing) and are skipped silently; any other byte
//! outside a frame is garbage, skipped and counted.

use thiserror::Error;

/// TFI of a frame from the host controller to the PN532.
pub const TFI_HOST_TO_PN532: u8 = 0xD4;
/// TFI of a frame from the PN532 to the host controller.
pub const TFI_PN532_TO_HOST: u8 = 0xD5;
/// TFI of the specific application-level error frame.
pub const TFI_ERROR: u8 = 0x7F;

/// Largest payload (TFI + data) carried by a normal frame; longer ones use an extended frame.
pub const MAX_NORMAL_PAYLOAD: usize = 255;
/// Largest payload (TFI + data) this codec encodes or accepts. The PN532's own frame buffer
/// holds 264 bytes, so this leaves headroom while keeping the decoder's buffer small.
pub const MAX_PAYLOAD: usize = 512;
/// Bytes of an extended frame from the start code to LCS: `00 FF FF FF LENM LENL LCS`.
const EXTENDED_HEADER: usize = 7;
/// Bytes of a normal frame from the start code to LCS: `00 FF LEN LCS`.
const NORMAL_HEADER: usize = 4;
/// The streaming decoder never holds more than this many bytes: the largest acceptable frame
/// from its start code to its DCS.
pub const DECODER_BUFFER_BOUND: usize = EXTENDED_HEADER + MAX_PAYLOAD + 1;

const ACK: [u8; 6] = [0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00];
const NACK: [u8; 6] = [0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00];
const ERROR_FRAME: [u8; 8] = [0x00, 0x00, 0xFF, 0x01, 0xFF, TFI_ERROR, 0x81, 0x00];

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `00 00 FF 00 FF 00`: the command was received.
    Ack,
    /// `00 00 FF FF 00 00`: ask the other side to send its last frame again.
    Nack,
    /// The application-level error frame (payload `7F`): the PN532 found a syntax error.
    Error,
    /// An information frame (normal or extended): `TFI PD0..PDn`, checksums verified.
    Data(Vec<u8>),
}

/// Why [`decode`] or [`try_encode`] refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The bytes end before the frame does.
    #[error("frame truncated")]
    Truncated,
    /// Something other than zero fill precedes the start code `00 FF`.
    #[error("no start code 00 FF at the start of the frame")]
    MissingStartCode,
    /// `LEN + LCS` (or `LENM + LENL + LCS`) is not 0 mod 256.
    #[error("length checksum mismatch (length {len}, LCS {lcs:#04x})")]
    LengthChecksum { len: usize, lcs: u8 },
    /// `TFI + PD0 + … + PDn + DCS` is not 0 mod 256.
    #[error("data checksum mismatch (DCS {dcs:#04x})")]
    DataChecksum { dcs: u8 },
    /// An information frame with no TFI (`LEN = 0` with `LCS = 0`, or an extended zero).
    #[error("information frame of length zero")]
    ZeroLength,
    /// The declared or requested payload is longer than [`MAX_PAYLOAD`].
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    /// Non-zero bytes follow the frame.
    #[error("{0} unexpected bytes after the frame")]
    TrailingBytes(usize),
    /// [`try_encode`] needs at least the TFI byte.
    #[error("an information frame needs at least a TFI byte")]
    EmptyPayload,
}

/// Sum of bytes mod 256.
fn checksum_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

/// Encodes `TFI PD0..PDn` as an information frame: a normal frame up to
/// [`MAX_NORMAL_PAYLOAD`] bytes (TFI + 254 data bytes), an extended frame above.
pub fn try_encode(tfi_payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = tfi_payload.len();
    if len == 0 {
        return Err(FrameError::EmptyPayload);
    }
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLong {
            len,
            max: MAX_PAYLOAD,
        });
    }
    let mut out = Vec::with_capacity(len + 10);
    out.extend_from_slice(&[0x00, 0x00, 0xFF]);
    if len <= MAX_NORMAL_PAYLOAD {
        let l = len as u8;
        out.push(l);
        out.push(l.wrapping_neg());
    } else {
        let [m, l] = (len as u16).to_be_bytes();
        out.extend_from_slice(&[0xFF, 0xFF, m, l, m.wrapping_add(l).wrapping_neg()]);
    }
    out.extend_from_slice(tfi_payload);
    out.push(checksum_sum(tfi_payload).wrapping_neg());
    out.push(0x00);
    Ok(out)
}

/// [`try_encode`] for payloads known to be valid (every command builder's).
///
/// # Panics
/// If `tfi_payload` is empty or longer than [`MAX_PAYLOAD`]: a caller bug, never input data.
pub fn encode(tfi_payload: &[u8]) -> Vec<u8> {
    match try_encode(tfi_payload) {
        Ok(frame) => frame,
        Err(e) => panic!("pn532 encode: {e}"),
    }
}

/// The ACK frame `00 00 FF 00 FF 00`.
pub fn ack() -> Vec<u8> {
    ACK.to_vec()
}

/// The NACK frame `00 00 FF FF 00 00`.
pub fn nack() -> Vec<u8> {
    NACK.to_vec()
}

/// The application error frame `00 00 FF 01 FF 7F 81 00`.
pub fn error_frame() -> Vec<u8> {
    ERROR_FRAME.to_vec()
}

/// Result of looking at bytes that begin with a start code.
enum Parse {
    /// More bytes are needed.
    Incomplete,
    /// A frame spanning `consumed` bytes from the start code through DCS (or ACK/NACK's LCS).
    Complete(Frame, usize),
    /// Not a valid frame: the start code was a false one or the frame is corrupt.
    Bad(FrameError),
}

/// Parses a frame at `buf`, which starts with `00 FF`.
fn parse_at(buf: &[u8]) -> Parse {
    debug_assert!(buf.starts_with(&[0x00, 0xFF]));
    let (Some(&len), Some(&lcs)) = (buf.get(2), buf.get(3)) else {
        return Parse::Incomplete;
    };
    let (header, n) = match (len, lcs) {
        (0x00, 0xFF) => return Parse::Complete(Frame::Ack, NORMAL_HEADER),
        (0xFF, 0x00) => return Parse::Complete(Frame::Nack, NORMAL_HEADER),
        (0xFF, 0xFF) => {
            let (Some(&m), Some(&l), Some(&lcs)) = (buf.get(4), buf.get(5), buf.get(6)) else {
                return Parse::Incomplete;
            };
            let n = usize::from(u16::from_be_bytes([m, l]));
            if m.wrapping_add(l).wrapping_add(lcs) != 0 {
                return Parse::Bad(FrameError::LengthChecksum { len: n, lcs });
            }
            (EXTENDED_HEADER, n)
        }
        _ => {
            if len.wrapping_add(lcs) != 0 {
                return Parse::Bad(FrameError::LengthChecksum {
                    len: usize::from(len),
                    lcs,
                });
            }
            (NORMAL_HEADER, usize::from(len))
        }
    };
    if n == 0 {
        return Parse::Bad(FrameError::ZeroLength);
    }
    if n > MAX_PAYLOAD {
        return Parse::Bad(FrameError::TooLong {
            len: n,
            max: MAX_PAYLOAD,
        });
    }
    let (Some(payload), Some(&dcs)) = (buf.get(header..header + n), buf.get(header + n)) else {
        return Parse::Incomplete;
    };
    if checksum_sum(payload).wrapping_add(dcs) != 0 {
        return Parse::Bad(FrameError::DataChecksum { dcs });
    }
    let frame = if payload == [TFI_ERROR] {
        Frame::Error
    } else {
        Frame::Data(payload.to_vec())
    };
    Parse::Complete(frame, header + n + 1)
}

/// Decodes exactly one frame. Zero bytes (preamble, postamble, fill) may surround it;
/// anything else is refused.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    let Some(first_nonzero) = bytes.iter().position(|&b| b != 0) else {
        return Err(FrameError::Truncated);
    };
    if first_nonzero == 0 || bytes[first_nonzero] != 0xFF {
        return Err(FrameError::MissingStartCode);
    }
    let start = first_nonzero - 1;
    match parse_at(&bytes[start..]) {
        Parse::Incomplete => Err(FrameError::Truncated),
        Parse::Bad(e) => Err(e),
        Parse::Complete(frame, consumed) => {
            let trailing = bytes[start + consumed..]
                .iter()
                .filter(|&&b| b != 0)
                .count();
            if trailing > 0 {
                Err(FrameError::TrailingBytes(trailing))
            } else {
                Ok(frame)
            }
        }
    }
}

/// What the streaming decoder has seen. Counters only grow; [`FrameDecoder::reset`] keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Frames delivered (ACK, NACK, error and information frames).
    pub frames: u64,
    /// Frames dropped because `LEN + LCS` (or `LENM + LENL + LCS`) was not 0.
    pub dropped_length_checksum: u64,
    /// Frames dropped because the data checksum DCS did not match.
    pub dropped_checksum: u64,
    /// Information frames dropped because they declared a length of zero.
    pub dropped_zero_length: u64,
    /// Frames dropped because they declared more than [`MAX_PAYLOAD`] bytes.
    pub dropped_oversize: u64,
    /// Non-zero bytes skipped outside any frame while looking for a start code.
    pub dropped_garbage_bytes: u64,
}

impl DecoderStats {
    /// Frames dropped for any reason.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_length_checksum
            + self.dropped_checksum
            + self.dropped_zero_length
            + self.dropped_oversize
    }
}

/// A streaming frame decoder: feed it whatever the transport read, in any chunks.
///
/// It looks for the start code `00 FF`, checks LCS and DCS, and on a bad frame drops only the
/// start code and searches again from the next byte, so a real frame hidden behind a false
/// start is still found. Its buffer never exceeds [`DECODER_BUFFER_BOUND`] bytes.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Counters of delivered and dropped frames and skipped bytes.
    pub stats: DecoderStats,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the frames they completed, in order.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let room = DECODER_BUFFER_BOUND - self.buf.len();
            let take = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.process(&mut frames);
            if self.buf.len() >= DECODER_BUFFER_BOUND {
                // Unreachable by construction (a full buffer always holds a whole frame),
                // kept so that a logic error can never stall or grow the decoder.
                self.buf.drain(..2);
                self.stats.dropped_oversize += 1;
            }
        }
        frames
    }

    /// Bytes currently held (a partial frame or a possible start of one).
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Forgets a partial frame (e.g. after a transport time-out); counters are kept.
    pub fn reset(&mut self) {
        self.buf.clear();
    }

    fn skip(&mut self, n: usize) {
        let garbage = self.buf[..n].iter().filter(|&&b| b != 0).count();
        self.stats.dropped_garbage_bytes += garbage as u64;
        self.buf.drain(..n);
    }

    fn process(&mut self, frames: &mut Vec<Frame>) {
        loop {
            match self.buf.windows(2).position(|w| w == [0x00, 0xFF]) {
                Some(i) => self.skip(i),
                None => {
                    // Keep a trailing 00: it may be the first half of a start code.
                    let keep = usize::from(self.buf.last() == Some(&0x00));
                    self.skip(self.buf.len() - keep);
                    return;
                }
            }
            match parse_at(&self.buf) {
                Parse::Incomplete => return,
                Parse::Complete(frame, consumed) => {
                    self.stats.frames += 1;
                    frames.push(frame);
                    self.buf.drain(..consumed);
                }
                Parse::Bad(e) => {
                    match e {
                        FrameError::LengthChecksum { .. } => {
                            self.stats.dropped_length_checksum += 1
                        }
                        FrameError::DataChecksum { .. } => self.stats.dropped_checksum += 1,
                        FrameError::ZeroLength => self.stats.dropped_zero_length += 1,
                        _ => self.stats.dropped_oversize += 1,
                    }
                    // Drop the false start code only; a real frame may begin inside.
                    self.buf.drain(..2);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FW_REQUEST: [u8; 9] = [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00];
    const FW_RESPONSE: [u8; 13] = [
        0x00, 0x00, 0xFF, 0x06, 0xFA, 0xD5, 0x03, 0x32, 0x01, 0x06, 0x07, 0xE8, 0x00,
    ];

    fn feed_all(bytes: &[u8]) -> (Vec<Frame>, FrameDecoder) {
        let mut d = FrameDecoder::new();
        let frames = d.push(bytes);
        (frames, d)
    }

    #[test]
    fn the_manuals_get_firmware_version_request_is_encoded_byte_for_byte() {
        assert_eq!(encode(&[0xD4, 0x02]), FW_REQUEST);
    }

    #[test]
    fn the_manuals_get_firmware_version_response_decodes_to_its_payload() {
        let payload = vec![0xD5, 0x03, 0x32, 0x01, 0x06, 0x07];
        assert_eq!(decode(&FW_RESPONSE), Ok(Frame::Data(payload.clone())));
        assert_eq!(encode(&payload), FW_RESPONSE);
    }

    #[test]
    fn ack_nack_and_error_frames_have_the_manuals_bytes_and_decode_as_such() {
        assert_eq!(ack(), [0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00]);
        assert_eq!(nack(), [0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00]);
        assert_eq!(
            error_frame(),
            [0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00]
        );
        assert_eq!(decode(&ack()), Ok(Frame::Ack));
        assert_eq!(decode(&nack()), Ok(Frame::Nack));
        assert_eq!(decode(&error_frame()), Ok(Frame::Error));
        let mut stream = ack();
        stream.extend(nack());
        stream.extend(error_frame());
        let (frames, d) = feed_all(&stream);
        assert_eq!(frames, [Frame::Ack, Frame::Nack, Frame::Error]);
        assert_eq!(d.stats.dropped_frames(), 0);
        assert_eq!(d.stats.dropped_garbage_bytes, 0);
    }

    #[test]
    fn frames_without_preamble_or_postamble_still_decode() {
        assert_eq!(decode(&FW_RESPONSE[1..12]), decode(&FW_RESPONSE));
        let (frames, _) = feed_all(&FW_RESPONSE[1..12]);
        assert_eq!(frames.len(), 1);
    }

    #[test]
    fn a_bad_lcs_is_refused_by_decode_and_dropped_and_counted_by_the_stream() {
        let mut bad = FW_RESPONSE;
        bad[4] = 0xFB;
        assert!(matches!(
            decode(&bad),
            Err(FrameError::LengthChecksum { len: 6, lcs: 0xFB })
        ));
        let mut stream = bad.to_vec();
        stream.extend_from_slice(&FW_RESPONSE);
        let (frames, d) = feed_all(&stream);
        assert_eq!(frames, [decode(&FW_RESPONSE).unwrap()]);
        assert_eq!(d.stats.dropped_length_checksum, 1);
        assert_eq!(d.stats.frames, 1);
    }

    #[test]
    fn a_bad_dcs_is_refused_by_decode_and_dropped_and_counted_by_the_stream() {
        let mut bad = FW_RESPONSE;
        bad[11] = 0xE9;
        assert_eq!(decode(&bad), Err(FrameError::DataChecksum { dcs: 0xE9 }));
        let mut stream = bad.to_vec();
        stream.extend_from_slice(&FW_RESPONSE);
        let (frames, d) = feed_all(&stream);
        assert_eq!(frames.len(), 1);
        assert_eq!(d.stats.dropped_checksum, 1);
        assert_eq!(d.stats.dropped_length_checksum, 0);
    }

    #[test]
    fn a_corrupted_data_byte_is_caught_by_the_dcs() {
        let mut bad = FW_RESPONSE;
        bad[8] ^= 0x10;
        assert!(matches!(decode(&bad), Err(FrameError::DataChecksum { .. })));
    }

    #[test]
    fn garbage_before_and_between_frames_is_skipped_and_counted() {
        let mut stream = vec![0x13, 0x37, 0xFF, 0xFE];
        stream.extend_from_slice(&FW_RESPONSE);
        stream.extend_from_slice(&[0xAA, 0xBB, 0xCC]);
        stream.extend(ack());
        stream.extend_from_slice(&[0x55]);
        let (frames, d) = feed_all(&stream);
        assert_eq!(frames.len(), 2);
        assert!(matches!(frames[0], Frame::Data(_)));
        assert_eq!(frames[1], Frame::Ack);
        assert_eq!(d.stats.dropped_garbage_bytes, 8);
        assert_eq!(d.stats.dropped_frames(), 0);
        assert_eq!(d.buffered_len(), 0);
    }

    #[test]
    fn a_false_start_code_in_garbage_does_not_hide_the_real_frame_after_it() {
        // `00 FF 05 FB` claims a 5-byte frame that would swallow the real frame's start.
        let mut stream = vec![0x00, 0xFF, 0x05, 0xFB, 0x02];
        stream.extend_from_slice(&FW_RESPONSE);
        let (frames, d) = feed_all(&stream);
        assert_eq!(frames, [decode(&FW_RESPONSE).unwrap()]);
        assert_eq!(d.stats.dropped_checksum, 1);
    }

    #[test]
    fn decode_refuses_truncated_frames_leading_garbage_and_trailing_bytes() {
        for cut in 0..FW_RESPONSE.len() - 1 {
            assert!(decode(&FW_RESPONSE[..cut]).is_err(), "cut at {cut}");
        }
        let mut leading = vec![0x42];
        leading.extend_from_slice(&FW_RESPONSE);
        assert_eq!(decode(&leading), Err(FrameError::MissingStartCode));
        let mut trailing = FW_RESPONSE.to_vec();
        trailing.push(0x42);
        assert_eq!(decode(&trailing), Err(FrameError::TrailingBytes(1)));
        assert_eq!(
            decode(&[0x00, 0x00, 0xFF, 0x00, 0x00, 0x00]),
            Err(FrameError::ZeroLength)
        );
    }

    #[test]
    fn a_frame_split_across_pushes_at_every_split_point_decodes_once() {
        let mut stream = FW_RESPONSE.to_vec();
        stream.extend(ack());
        stream.extend(encode(&[0xD5; 300]));
        for a in 0..stream.len() {
            for b in a..stream.len() {
                let mut d = FrameDecoder::new();
                let mut frames = d.push(&stream[..a]);
                frames.extend(d.push(&stream[a..b]));
                frames.extend(d.push(&stream[b..]));
                assert_eq!(frames.len(), 3, "split at {a}/{b}");
                assert_eq!(d.stats.dropped_frames(), 0);
            }
        }
        let mut d = FrameDecoder::new();
        let frames: Vec<Frame> = stream.iter().flat_map(|b| d.push(&[*b])).collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2], Frame::Data(vec![0xD5; 300]));
    }

    #[test]
    fn payloads_above_255_bytes_use_the_extended_frame() {
        let payload: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let f = encode(&payload);
        assert_eq!(&f[..8], &[0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x2C, 0xD3]);
        assert_eq!(f.len(), 300 + 10);
        assert_eq!(decode(&f), Ok(Frame::Data(payload)));
        // 255 bytes (TFI + 254 data bytes) still fit a normal frame.
        let f = encode(&[0xD4; 255]);
        assert_eq!(&f[..5], &[0x00, 0x00, 0xFF, 0xFF, 0x01]);
        assert_eq!(decode(&f), Ok(Frame::Data(vec![0xD4; 255])));
    }

    #[test]
    fn an_extended_frame_with_a_short_length_is_accepted() {
        // Extended framing of a 2-byte payload: allowed by the manual.
        let f = [
            0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x00, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00,
        ];
        assert_eq!(decode(&f), Ok(Frame::Data(vec![0xD4, 0x02])));
    }

    #[test]
    fn an_extended_frame_with_a_bad_lcs_or_oversize_length_is_dropped() {
        let bad_lcs = [0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x2C, 0xD4];
        assert!(matches!(
            decode(&bad_lcs),
            Err(FrameError::LengthChecksum { .. })
        ));
        let huge = [0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01];
        assert!(matches!(decode(&huge), Err(FrameError::TooLong { .. })));
        let mut stream = bad_lcs.to_vec();
        stream.extend_from_slice(&huge);
        stream.extend_from_slice(&FW_RESPONSE);
        let (frames, d) = feed_all(&stream);
        assert_eq!(frames.len(), 1);
        assert_eq!(d.stats.dropped_length_checksum, 1);
        assert_eq!(d.stats.dropped_oversize, 1);
    }

    #[test]
    fn encode_refuses_empty_and_oversize_payloads() {
        assert_eq!(try_encode(&[]), Err(FrameError::EmptyPayload));
        assert!(matches!(
            try_encode(&[0; MAX_PAYLOAD + 1]),
            Err(FrameError::TooLong { .. })
        ));
        assert!(try_encode(&[0; MAX_PAYLOAD]).is_ok());
    }

    #[test]
    fn a_long_garbage_stream_keeps_the_buffer_at_most_one_byte() {
        let mut d = FrameDecoder::new();
        for _ in 0..100 {
            assert!(d.push(&[0xAB; 1000]).is_empty());
            assert!(d.buffered_len() <= 1);
        }
        assert_eq!(d.stats.dropped_garbage_bytes, 100_000);
    }

    fn expected(payload: &[u8]) -> Frame {
        if payload == [TFI_ERROR] {
            Frame::Error
        } else {
            Frame::Data(payload.to_vec())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_payload_of_1_to_300_bytes_round_trips_through_encode_and_decode(
            payload in proptest::collection::vec(any::<u8>(), 1..=300),
            chunk in 1usize..64,
        ) {
            let f = encode(&payload);
            prop_assert_eq!(decode(&f), Ok(expected(&payload)));
            let mut d = FrameDecoder::new();
            let frames: Vec<Frame> = f.chunks(chunk).flat_map(|c| d.push(c)).collect();
            prop_assert_eq!(frames, vec![expected(&payload)]);
            prop_assert_eq!(d.stats.dropped_frames(), 0);
            prop_assert_eq!(d.stats.dropped_garbage_bytes, 0);
        }

        #[test]
        // Garbage has no 00 or FF: with a frame's 00 postamble, an FF would form a start code.
        fn frames_between_garbage_without_00_or_ff_are_all_recovered(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..=300), 1..5),
            garbage in proptest::collection::vec(proptest::collection::vec(1u8..=0xFE, 0..40), 5),
        ) {
            let mut stream = Vec::new();
            let mut garbage_count = 0;
            for (p, g) in payloads.iter().zip(&garbage) {
                stream.extend_from_slice(g);
                garbage_count += g.len() as u64;
                stream.extend(encode(p));
            }
            let (frames, d) = feed_all(&stream);
            let want: Vec<Frame> = payloads.iter().map(|p| expected(p)).collect();
            prop_assert_eq!(frames, want);
            prop_assert_eq!(d.stats.dropped_garbage_bytes, garbage_count);
        }

        #[test]
        fn random_bytes_never_panic_the_decoder_nor_grow_its_buffer_past_the_bound(
            chunks in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![any::<u8>(), Just(0x00u8), Just(0xFFu8)], 0..700),
                1..8,
            ),
        ) {
            let mut d = FrameDecoder::new();
            for c in &chunks {
                let _ = d.push(c);
                prop_assert!(d.buffered_len() <= DECODER_BUFFER_BOUND);
                let _ = decode(c);
            }
        }
    }
}
