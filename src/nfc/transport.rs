//! The host link to a PN532, below the frame level: one blocking [`Transport`] trait that the
//! SPI, I2C and UART transports ([`super::rpi`]) and the simulated reader ([`super::sim`])
//! implement. Framing, ACK/NACK handling and command logic live in the transport-independent
//! driver [`super::reader::Pn532`].
//!
//! How the three buses fit one trait (NXP UM0701-02 §6.2.5):
//!
//! | bus | `write` | `wait_ready` | `read` |
//! | --- | --- | --- | --- |
//! | SPI | `01` + frame, bit-reversed (LSB first) | status read `02` → `01` | data read `03`, bit-reversed |
//! | I2C (0x24) | the frame | one-byte read, bit 0 set | read n+1 bytes, drop the ready byte |
//! | UART (HSU) | the frame | bytes have arrived | the streamed bytes |
//!
//! A `read` returns bytes of the response the PN532 has ready (the driver feeds them to a
//! [`FrameDecoder`](super::frame::FrameDecoder), so zero fill and chunking do not matter).

use std::time::Duration;

use thiserror::Error;

/// A transport failure (the PN532 protocol itself is checked by the driver).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransportError {
    /// The device (bus, serial port, GPIO) does not exist or cannot be opened here.
    #[error("PN532 transport unavailable: {0}")]
    Unavailable(String),
    /// An I/O error on an open bus.
    #[error("PN532 transport I/O error: {0}")]
    Io(String),
}

/// A blocking host link to one PN532.
pub trait Transport {
    /// Wakes the PN532 from power-down (after power-up or a hardware reset): the UART
    /// wake-up preamble, an SPI chip select or an I2C address cycle. Idempotent.
    fn wake(&mut self) -> Result<(), TransportError>;

    /// Writes one whole frame (information, ACK or NACK frame, as built by
    /// [`frame`](super::frame)).
    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError>;

    /// Waits until the PN532 has bytes ready for the host (an ACK or a response), at most
    /// `timeout`. `Ok(false)` when nothing became ready in time.
    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, TransportError>;

    /// Reads up to `buf.len()` bytes of what the PN532 has ready, without any bus status
    /// byte; returns how many were written to `buf` (0 when nothing is ready).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;

    /// Pulses the PN532's reset line (RSTPDN) if this transport has one wired; `Ok(false)`
    /// when it has none. The caller wakes and re-initialises the chip afterwards.
    fn hard_reset(&mut self) -> Result<bool, TransportError> {
        Ok(false)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn wake(&mut self) -> Result<(), TransportError> {
        (**self).wake()
    }
    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        (**self).write(frame)
    }
    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        (**self).wait_ready(timeout)
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        (**self).read(buf)
    }
    fn hard_reset(&mut self) -> Result<bool, TransportError> {
        (**self).hard_reset()
    }
}

/// `BIT_REVERSE[b]` is `b` with its bit order reversed (bit 0 ↔ bit 7, …): the PN532 talks
/// SPI LSB first and the Raspberry Pi's SPI controller only does MSB first.
pub const BIT_REVERSE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut r = 0u8;
        let mut bit = 0;
        while bit < 8 {
            if b & (1 << bit) != 0 {
                r |= 0x80 >> bit;
            }
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

/// Reverses the bit order of every byte in place (see [`BIT_REVERSE`]).
pub fn reverse_bits_in_place(bytes: &mut [u8]) {
    for b in bytes {
        *b = BIT_REVERSE[usize::from(*b)];
    }
}

/// SPI operation byte: status read.
pub const SPI_STATUS_READ: u8 = 0x02;
/// SPI operation byte: data write.
pub const SPI_DATA_WRITE: u8 = 0x01;
/// SPI operation byte: data read.
pub const SPI_DATA_READ: u8 = 0x03;
/// The ready bit of the SPI status byte and of the I2C status byte.
pub const READY_BIT: u8 = 0x01;
/// The PN532's 7-bit I2C address.
pub const I2C_ADDRESS: u16 = 0x24;
/// The PN532's HSU (UART) speed after reset, 8N1.
pub const UART_BAUD: u32 = 115_200;

/// The bytes to clock out (MSB first) for an SPI data write of `frame`: `01` + frame, every
/// byte bit-reversed.
pub fn spi_write_packet(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 1);
    out.push(SPI_DATA_WRITE);
    out.extend_from_slice(frame);
    reverse_bits_in_place(&mut out);
    out
}

/// The bytes to clock out for an SPI status read: `02` and one dummy byte, bit-reversed.
pub fn spi_status_request() -> [u8; 2] {
    [BIT_REVERSE[usize::from(SPI_STATUS_READ)], 0x00]
}

/// Whether the bytes clocked in during [`spi_status_request`] say "response ready".
pub fn spi_status_ready(rx: &[u8]) -> bool {
    rx.get(1)
        .is_some_and(|b| BIT_REVERSE[usize::from(*b)] & READY_BIT != 0)
}

/// The bytes to clock out for an SPI data read of `n` bytes: `03` and `n` dummy bytes.
pub fn spi_read_request(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n + 1];
    out[0] = BIT_REVERSE[usize::from(SPI_DATA_READ)];
    out
}

/// The data of an SPI data read: the bytes clocked in after the operation byte,
/// bit-reversed back to their LSB-first meaning.
pub fn spi_read_data(rx: &[u8]) -> Vec<u8> {
    let mut data = rx.get(1..).unwrap_or_default().to_vec();
    reverse_bits_in_place(&mut data);
    data
}

/// An I2C read starts with the PN532's status byte: returns the data after it if its ready
/// bit is set, `None` if the PN532 was not ready (the rest is then meaningless).
pub fn i2c_strip_ready(rx: &[u8]) -> Option<&[u8]> {
    match rx {
        [status, data @ ..] if status & READY_BIT != 0 => Some(data),
        _ => None,
    }
}

/// The HSU wake-up sequence (UM0701-02 §6.2.2, and the PN532 application note): `55 55`
/// followed by zeros long enough for the chip's oscillator to start, sent before the first
/// command after power-down. It holds no start code, so the PN532 ignores it as a frame.
pub fn uart_wakeup_preamble() -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 0x55;
    p[1] = 0x55;
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfc::frame::{ack, decode, FrameDecoder};

    #[test]
    fn the_bit_reversal_table_reverses_known_bytes_and_is_an_involution() {
        assert_eq!(BIT_REVERSE[0x01], 0x80);
        assert_eq!(BIT_REVERSE[0x02], 0x40);
        assert_eq!(BIT_REVERSE[0x03], 0xC0);
        assert_eq!(BIT_REVERSE[0xD4], 0x2B);
        assert_eq!(BIT_REVERSE[0xF0], 0x0F);
        assert_eq!(BIT_REVERSE[0x00], 0x00);
        assert_eq!(BIT_REVERSE[0xFF], 0xFF);
        for b in 0..=255u8 {
            let r = BIT_REVERSE[usize::from(b)];
            assert_eq!(r, b.reverse_bits(), "byte {b:#04x}");
            assert_eq!(BIT_REVERSE[usize::from(r)], b);
            assert_eq!(r.count_ones(), b.count_ones());
        }
    }

    #[test]
    fn an_spi_write_is_the_data_write_byte_and_the_frame_lsb_first() {
        let frame = [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00];
        let p = spi_write_packet(&frame);
        assert_eq!(p.len(), 10);
        assert_eq!(p[0], 0x80); // 0x01 LSB first
        assert_eq!(p[3], 0xFF);
        assert_eq!(p[4], 0x40); // LEN 0x02
        assert_eq!(p[6], 0x2B); // TFI 0xD4
        let mut back = p[1..].to_vec();
        reverse_bits_in_place(&mut back);
        assert_eq!(back, frame);
    }

    #[test]
    fn spi_status_and_data_reads_decode_what_the_pn532_clocks_out() {
        assert_eq!(spi_status_request(), [0x40, 0x00]);
        // The PN532 answers status 0x01 (ready) LSB first, i.e. 0x80 on an MSB-first bus.
        assert!(spi_status_ready(&[0x00, 0x80]));
        assert!(!spi_status_ready(&[0x00, 0x01]));
        assert!(!spi_status_ready(&[0x00, 0x00]));
        assert!(!spi_status_ready(&[0x00]));
        let req = spi_read_request(6);
        assert_eq!(req, [0xC0, 0, 0, 0, 0, 0, 0]);
        let mut on_wire = vec![0xFF]; // whatever is clocked in during the operation byte
        let mut a = ack();
        reverse_bits_in_place(&mut a);
        on_wire.extend(a);
        assert_eq!(spi_read_data(&on_wire), ack());
        assert!(spi_read_data(&[]).is_empty());
    }

    #[test]
    fn an_i2c_read_is_passed_on_only_when_its_ready_byte_is_set() {
        let mut rx = vec![0x01];
        rx.extend(ack());
        assert_eq!(i2c_strip_ready(&rx), Some(&ack()[..]));
        assert!(decode(i2c_strip_ready(&rx).unwrap()).is_ok());
        let mut not_ready = rx.clone();
        not_ready[0] = 0x00;
        assert_eq!(i2c_strip_ready(&not_ready), None);
        assert_eq!(i2c_strip_ready(&[]), None);
        assert_eq!(i2c_strip_ready(&[0x01]), Some(&[][..]));
    }

    #[test]
    fn the_uart_wake_up_starts_55_55_and_is_ignored_by_a_frame_decoder() {
        let p = uart_wakeup_preamble();
        assert_eq!(&p[..2], &[0x55, 0x55]);
        assert!(p[2..].iter().all(|&b| b == 0));
        assert!(p.len() >= 5);
        let mut d = FrameDecoder::new();
        let mut stream = p.to_vec();
        stream.extend(ack());
        assert_eq!(d.push(&stream).len(), 1);
        assert_eq!(d.stats.dropped_frames(), 0);
    }
}
