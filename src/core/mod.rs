//! The pure core: money, catalog, the session state machine, the offline payment policy,
//! journal records and their invariants.
//!
//! No I/O, no clock, no randomness: inputs are events plus the current time, outputs are
//! commands. This module imports no tokio, sled, rppal or rumqttc (see house-style.md).
#![warn(missing_docs)]

pub mod catalog;
pub mod controller;
pub mod io;
pub mod money;
pub mod policy;
pub mod record;
pub mod state;
pub mod verify;

pub use catalog::{Catalog, Product, Slot, SlotId};
pub use controller::{Controller, CoreConfig, Receipt, ReceiptLine, Timeouts};
pub use io::{Command, EraseBy, FaceStep, HeadTurn, Input, Phase, Prompt, Reject};
pub use money::{Currency, Money};
pub use policy::PolicyConfig;
pub use record::{
    AlertKind, CloseReason, DeclineReason, LineItem, Millis, PaymentMethod, Record, SessionId,
    Stamped, VendOutcome,
};
pub use state::State;
pub use verify::{Verifier, Violation};
