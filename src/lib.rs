//! vendd: the controller of an unattended vending machine.
//!
//! # Layout
//! - [`core`]: the pure state machine (sessions, cart, money, offline policy, records,
//!   invariants). No I/O.
//! - [`journal`]: the sled write-ahead journal: durable commit points, replay, checkpoints,
//!   export and verification.
//! - [`hw`]: device traits with the simulated machine and the Raspberry Pi (rppal) backend.
//! - [`config`]: the TOML configuration, validated once at start-up.
//! - [`runtime`]: the tokio driver: one event queue into the core, adapters as tasks.
//! - [`ui`]: the HTTP API (axum) on loopback, with the sim API in simulate mode.
//! - [`camera`]: V4L2, replay and simulated frame sources and the capture loop.
//! - [`nfc`]: the PN532 reader: frame codec, commands, transports, simulator, poller.
//! - [`sysd`]: systemd notify and watchdog.
#![warn(unreachable_pub, unused_qualifications)]

pub mod camera;
pub mod config;
pub mod core;
pub mod dex;
pub mod doctor;
pub mod face;
pub mod facepay;
pub mod hw;
pub mod journal;
pub mod metrics;
pub mod nfc;
pub mod payment;
pub mod qr;
pub mod readers;
pub mod report;
pub mod reports;
pub mod runtime;
pub mod speech;
pub mod sysd;
pub mod token;
pub mod ui;
pub mod voice;
