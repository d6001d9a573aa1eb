//! PN532 NFC reader: the pure protocol layer, the transports, the simulated reader and the
//! polling loop.
//!
//! - [`frame`]: the host-link frame codec (normal, extended, ACK, NACK, error frames) and a
//!   streaming decoder that resynchronises on garbage and counts what it drops.
//! - [`commands`]: SAMConfiguration, GetFirmwareVersion, InListPassiveTarget (ISO 14443A,
//!   106 kbps), InDataExchange (with NTAG/Ultralight READ) and InRelease.
//! - [`ndef`]: the NDEF message on NTAG user memory: one well-known Text or URI record.
//!
//! The protocol layer does no I/O. On top of it:
//!
//! - [`transport`]: the blocking host-link [`transport::Transport`] trait and the pure byte
//!   logic of the buses (SPI bit reversal, I2C ready byte, UART wake-up).
//! - [`rpi`]: SPI, I2C and UART transports through rppal (the only rppal user here), with an
//!   optional reset pin and IRQ pin.
//! - [`sim`]: a simulated PN532 with an NTAG213, at the byte level, with fault injection.
//! - [`reader`]: the transport-independent driver [`reader::Pn532`], the de-bouncing
//!   [`reader::Poller`] and the blocking [`reader::run_reader`] loop that emits
//!   [`reader::CardEvent`]s carrying credential tokens.
//!
//! Decoders and parsers return errors on any malformed input and never panic
//! (checked by property tests and the `pn532_frame` fuzz target in `fuzz/`).
//!
//! A card's UID ([`commands::Target14443A::nfcid`]) is sensitive: it must be turned into a
//! keyed-hash credential before it leaves the NFC adapter, and never be logged or stored.

pub mod commands;
pub mod frame;
pub mod ndef;
pub mod reader;
pub mod rpi;
pub mod sim;
pub mod transport;
