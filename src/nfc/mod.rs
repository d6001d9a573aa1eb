//! PN532 NFC reader: the pure protocol layer.
//!
//! - [`frame`]: the host-link frame codec (normal, extended, ACK, NACK, error frames) and a
//!   streaming decoder that resynchronises on garbage and counts what it drops.
//! - [`commands`]: SAMConfiguration, GetFirmwareVersion, InListPassiveTarget (ISO 14443A,
//!   106 kbps), InDataExchange (with NTAG/Ultralight READ) and InRelease.
//! - [`ndef`]: the NDEF message on NTAG user memory: one well-known Text or URI record.
//!
//! Nothing here does I/O; transports (SPI, I2C, UART through rppal) and the simulated reader
//! build on it. Decoders and parsers return errors on any malformed input and never panic
//! (checked by property tests and the `pn532_frame` fuzz target in `fuzz/`).
//!
//! A card's UID ([`commands::Target14443A::nfcid`]) is sensitive: it must be turned into a
//! keyed-hash credential before it leaves the NFC adapter, and never be logged or stored.

pub mod commands;
pub mod frame;
pub mod ndef;
