//! Payment methods that are pure data handling, kept apart from the devices that carry them.
//!
//! - [`emvco`]: EMVCo merchant-presented QR payloads (issue 4, item 6): the TLV codec with
//!   CRC-16/CCITT-FALSE, validation of the mandatory tags and formats, and generation of the
//!   dynamic payload shown for a checkout. Rendering the payload as an image lives with the
//!   QR decoder, not here.
//!
//! Nothing here does I/O; like `core`, it can be tested with strings alone.
#![warn(missing_docs)]

pub mod emvco;
pub mod paycode;

pub use emvco::{
    dynamic_payload, parse, session_reference, EmvError, Field, MerchantConfig, Payload,
    PointOfInitiation, Value,
};
