//! PN532 transports on a Raspberry Pi through rppal: SPI, I2C and UART (HSU), each with an
//! optional reset pin (RSTPDN) and, for SPI and I2C, an optional IRQ pin (P70_IRQ, active
//! low) through rppal's GPIO. This is the only file of the NFC adapter that uses rppal.
//!
//! Constructors check that the device exists first and fail with
//! [`TransportError::Unavailable`] naming it (and how to enable it) when it does not, e.g. on
//! a development machine. The byte-level logic (bit reversal, the I2C ready byte, the UART
//! wake-up preamble) is in [`super::transport`] as pure, tested functions.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rppal::gpio::{Gpio, InputPin, OutputPin};
use rppal::i2c::I2c;
use rppal::spi::{Bus, Mode, Segment, SlaveSelect, Spi};
use rppal::uart::{Parity, Queue, Uart};

use super::transport::{
    i2c_strip_ready, spi_read_data, spi_read_request, spi_status_ready, spi_status_request,
    spi_write_packet, uart_wakeup_preamble, Transport, TransportError, I2C_ADDRESS, UART_BAUD,
};

/// How often the ready status is polled when no IRQ pin is wired.
const POLL_STEP: Duration = Duration::from_millis(1);
/// How long RSTPDN is held low by a hardware reset.
const RESET_LOW: Duration = Duration::from_millis(100);
/// How long the PN532 needs after reset or wake-up before it takes a command.
const WAKE_DELAY: Duration = Duration::from_millis(10);

fn io(e: impl std::fmt::Display) -> TransportError {
    TransportError::Io(e.to_string())
}

fn require_device(path: &Path, hint: &str) -> Result<(), TransportError> {
    if path.exists() {
        Ok(())
    } else {
        Err(TransportError::Unavailable(format!(
            "{} does not exist ({hint})",
            path.display()
        )))
    }
}

/// Optional GPIO lines of a PN532 breakout (BCM pin numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Pins {
    /// RSTPDN: driven low to reset the chip.
    pub reset: Option<u8>,
    /// P70_IRQ: low when a response is ready (SPI and I2C).
    pub irq: Option<u8>,
}

/// The opened GPIO lines.
#[derive(Debug, Default)]
struct Lines {
    reset: Option<OutputPin>,
    irq: Option<InputPin>,
}

impl Lines {
    fn open(pins: Pins) -> Result<Self, TransportError> {
        if pins.reset.is_none() && pins.irq.is_none() {
            return Ok(Lines::default());
        }
        let gpio = Gpio::new().map_err(|e| {
            TransportError::Unavailable(format!("GPIO (needs a Raspberry Pi): {e}"))
        })?;
        let get = |pin: u8| {
            gpio.get(pin)
                .map_err(|e| TransportError::Unavailable(format!("GPIO {pin}: {e}")))
        };
        Ok(Lines {
            reset: pins
                .reset
                .map(|p| get(p).map(|p| p.into_output_high()))
                .transpose()?,
            irq: pins
                .irq
                .map(|p| get(p).map(|p| p.into_input_pullup()))
                .transpose()?,
        })
    }

    fn hard_reset(&mut self) -> bool {
        let Some(pin) = self.reset.as_mut() else {
            return false;
        };
        pin.set_low();
        sleep(RESET_LOW);
        pin.set_high();
        sleep(WAKE_DELAY);
        true
    }

    /// `Some(ready)` when an IRQ pin is wired: waits for it to go low, at most `timeout`.
    fn wait_irq(&self, timeout: Duration) -> Option<bool> {
        let irq = self.irq.as_ref()?;
        let deadline = Instant::now() + timeout;
        loop {
            if irq.is_low() {
                return Some(true);
            }
            if Instant::now() >= deadline {
                return Some(false);
            }
            sleep(POLL_STEP);
        }
    }
}

/// Polls `ready` every millisecond until it says yes or `timeout` passes.
fn poll_until(
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool, TransportError>,
) -> Result<bool, TransportError> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        sleep(POLL_STEP);
    }
}

/// The PN532 on SPI (mode 0, LSB first done in software, up to 5 MHz; 1 MHz is safe).
#[derive(Debug)]
pub struct SpiTransport {
    spi: Spi,
    lines: Lines,
}

impl SpiTransport {
    /// Opens `/dev/spidev{bus}.{slave_select}` at `clock_hz`, with optional GPIO lines.
    pub fn new(
        bus: u8,
        slave_select: u8,
        clock_hz: u32,
        pins: Pins,
    ) -> Result<Self, TransportError> {
        let dev = PathBuf::from(format!("/dev/spidev{bus}.{slave_select}"));
        require_device(&dev, "enable SPI with dtparam=spi=on on a Raspberry Pi")?;
        let bus = match bus {
            0 => Bus::Spi0,
            1 => Bus::Spi1,
            2 => Bus::Spi2,
            3 => Bus::Spi3,
            4 => Bus::Spi4,
            5 => Bus::Spi5,
            6 => Bus::Spi6,
            b => return Err(TransportError::Unavailable(format!("no SPI bus {b}"))),
        };
        let ss = match slave_select {
            0 => SlaveSelect::Ss0,
            1 => SlaveSelect::Ss1,
            2 => SlaveSelect::Ss2,
            s => return Err(TransportError::Unavailable(format!("no slave select {s}"))),
        };
        let spi = Spi::new(bus, ss, clock_hz, Mode::Mode0)
            .map_err(|e| TransportError::Unavailable(format!("{}: {e}", dev.display())))?;
        Ok(SpiTransport {
            spi,
            lines: Lines::open(pins)?,
        })
    }

    fn status_ready(&mut self) -> Result<bool, TransportError> {
        let tx = spi_status_request();
        let mut rx = [0u8; 2];
        self.spi.transfer(&mut rx, &tx).map_err(io)?;
        Ok(spi_status_ready(&rx))
    }
}

impl Transport for SpiTransport {
    fn wake(&mut self) -> Result<(), TransportError> {
        // A chip-select cycle wakes the PN532; it then needs a moment.
        let mut rx = [0u8; 2];
        self.spi
            .transfer(&mut rx, &spi_status_request())
            .map_err(io)?;
        sleep(WAKE_DELAY);
        Ok(())
    }

    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let packet = spi_write_packet(frame);
        self.spi
            .transfer_segments(&[Segment::with_write(&packet)])
            .map_err(io)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        if let Some(ready) = self.lines.wait_irq(timeout) {
            return Ok(ready);
        }
        poll_until(timeout, || self.status_ready())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let tx = spi_read_request(buf.len());
        let mut rx = vec![0u8; tx.len()];
        self.spi.transfer(&mut rx, &tx).map_err(io)?;
        let data = spi_read_data(&rx);
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }

    fn hard_reset(&mut self) -> Result<bool, TransportError> {
        Ok(self.lines.hard_reset())
    }
}

/// The PN532 on I2C at address 0x24 (standard mode 100 kHz is fine).
#[derive(Debug)]
pub struct I2cTransport {
    i2c: I2c,
    lines: Lines,
}

impl I2cTransport {
    /// Opens `/dev/i2c-{bus}` (bus 1 on most Pis), with optional GPIO lines.
    pub fn new(bus: u8, pins: Pins) -> Result<Self, TransportError> {
        let dev = PathBuf::from(format!("/dev/i2c-{bus}"));
        require_device(&dev, "enable I2C with dtparam=i2c_arm=on on a Raspberry Pi")?;
        let mut i2c = I2c::with_bus(bus)
            .map_err(|e| TransportError::Unavailable(format!("{}: {e}", dev.display())))?;
        i2c.set_slave_address(I2C_ADDRESS).map_err(io)?;
        Ok(I2cTransport {
            i2c,
            lines: Lines::open(pins)?,
        })
    }

    fn status_ready(&mut self) -> Result<bool, TransportError> {
        let mut status = [0u8; 1];
        match self.i2c.read(&mut status) {
            Ok(_) => Ok(i2c_strip_ready(&status).is_some()),
            // A busy or sleeping PN532 NACKs its address: not ready yet.
            Err(_) => Ok(false),
        }
    }
}

impl Transport for I2cTransport {
    fn wake(&mut self) -> Result<(), TransportError> {
        // Addressing the PN532 wakes it; it NACKs while waking, so the result is ignored.
        let _ = self.i2c.write(&[0x00]);
        sleep(WAKE_DELAY);
        Ok(())
    }

    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        self.i2c.write(frame).map(|_| ()).map_err(io)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        if let Some(ready) = self.lines.wait_irq(timeout) {
            return Ok(ready);
        }
        poll_until(timeout, || self.status_ready())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut rx = vec![0u8; buf.len() + 1];
        let got = self.i2c.read(&mut rx).map_err(io)?;
        let Some(data) = i2c_strip_ready(rx.get(..got).unwrap_or_default()) else {
            return Ok(0);
        };
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }

    fn hard_reset(&mut self) -> Result<bool, TransportError> {
        Ok(self.lines.hard_reset())
    }
}

/// The PN532 on its HSU (UART) at 115200 8N1, e.g. `/dev/serial0` or a USB adapter.
#[derive(Debug)]
pub struct UartTransport {
    uart: Uart,
    lines: Lines,
    /// Bytes received while waiting for "ready", handed out by the next read.
    pending: Vec<u8>,
}

impl UartTransport {
    /// Opens the serial device at `path`, with an optional reset pin (the IRQ pin is not
    /// used on HSU: arriving bytes say "ready").
    pub fn new(path: &Path, pins: Pins) -> Result<Self, TransportError> {
        require_device(
            path,
            "enable the UART with enable_uart=1, or plug the adapter in",
        )?;
        let mut uart = Uart::with_path(path, UART_BAUD, Parity::None, 8, 1)
            .map_err(|e| TransportError::Unavailable(format!("{}: {e}", path.display())))?;
        // Non-blocking reads: wait_ready polls.
        uart.set_read_mode(0, Duration::ZERO).map_err(io)?;
        uart.set_write_mode(true).map_err(io)?;
        Ok(UartTransport {
            uart,
            lines: Lines::open(Pins {
                reset: pins.reset,
                irq: None,
            })?,
            pending: Vec::new(),
        })
    }

    fn fill(&mut self) -> Result<usize, TransportError> {
        let mut chunk = [0u8; 64];
        let n = self.uart.read(&mut chunk).map_err(io)?;
        self.pending
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n)
    }
}

impl Transport for UartTransport {
    fn wake(&mut self) -> Result<(), TransportError> {
        self.uart.flush(Queue::Input).map_err(io)?;
        self.pending.clear();
        self.uart.write(&uart_wakeup_preamble()).map_err(io)?;
        self.uart.drain().map_err(io)?;
        sleep(WAKE_DELAY);
        Ok(())
    }

    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let mut sent = 0;
        while sent < frame.len() {
            let n = self.uart.write(&frame[sent..]).map_err(io)?;
            if n == 0 {
                return Err(TransportError::Io("UART write made no progress".into()));
            }
            sent += n;
        }
        self.uart.drain().map_err(io)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        if !self.pending.is_empty() {
            return Ok(true);
        }
        poll_until(timeout, || Ok(self.fill()? > 0))
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        if self.pending.is_empty() {
            self.fill()?;
        }
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }

    fn hard_reset(&mut self) -> Result<bool, TransportError> {
        Ok(self.lines.hard_reset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transports_fail_clearly_where_the_devices_do_not_exist() {
        // On a Pi with the buses enabled these would open real devices: skip there.
        if Path::new("/dev/spidev0.0").exists() || Path::new("/dev/i2c-1").exists() {
            return;
        }
        let spi = SpiTransport::new(0, 0, 1_000_000, Pins::default()).unwrap_err();
        assert!(matches!(&spi, TransportError::Unavailable(m) if m.contains("/dev/spidev0.0")));
        let i2c = I2cTransport::new(1, Pins::default()).unwrap_err();
        assert!(matches!(&i2c, TransportError::Unavailable(m) if m.contains("/dev/i2c-1")));
        let uart =
            UartTransport::new(Path::new("/dev/nonexistent-pn532"), Pins::default()).unwrap_err();
        assert!(
            matches!(&uart, TransportError::Unavailable(m) if m.contains("/dev/nonexistent-pn532"))
        );
        assert!(uart.to_string().contains("unavailable"));
    }

    #[test]
    fn gpio_lines_fail_clearly_off_a_raspberry_pi() {
        assert!(
            Lines::open(Pins::default()).is_ok(),
            "no pins, no GPIO needed"
        );
        if Path::new("/proc/device-tree/model").exists() {
            return; // maybe a Pi: opening real pins here could disturb the hardware
        }
        let err = Lines::open(Pins {
            reset: Some(25),
            irq: None,
        })
        .unwrap_err();
        assert!(
            matches!(&err, TransportError::Unavailable(m) if m.contains("GPIO")),
            "{err}"
        );
    }
}
