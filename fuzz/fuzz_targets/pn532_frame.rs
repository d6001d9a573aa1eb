//! Arbitrary bytes into the PN532 stream decoder (split into chunks by the first byte), the
//! one-shot decoder, every response parser and the NDEF parser. Any panic is a bug; the
//! decoder's buffer must stay within its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vendd::nfc::{commands, frame, ndef};

fn parse_all(payload: &[u8]) {
    let _ = commands::parse_firmware_version(payload);
    let _ = commands::parse_sam_configuration(payload);
    let _ = commands::parse_in_list_passive_target(payload);
    let _ = commands::parse_in_data_exchange(payload);
    let _ = commands::parse_ntag_read(payload);
    let _ = commands::parse_in_release(payload);
    let _ = ndef::parse_ntag_user_memory(payload);
    let _ = ndef::parse_single_record(payload);
}

fuzz_target!(|data: &[u8]| {
    let _ = frame::decode(data);
    parse_all(data);

    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut decoder = frame::FrameDecoder::new();
    for piece in data.chunks(chunk) {
        for f in decoder.push(piece) {
            if let frame::Frame::Data(payload) = f {
                assert!(!payload.is_empty());
                // A decoded payload re-encodes to a frame that decodes to the same payload.
                let again = frame::decode(&frame::encode(&payload));
                assert_eq!(again, Ok(frame::Frame::Data(payload.clone())));
                parse_all(&payload);
            }
        }
        assert!(decoder.buffered_len() <= frame::DECODER_BUFFER_BOUND);
    }
});
