//! DEX/UCS + EVA-DTS audit files: the export that route operators' handhelds and back
//! offices read, and a reader that checks such a file.
//!
//! The file is built from the journal's audit counters ([`Counters`], the fold of the
//! journal), never from a second tally, so its totals are the journal's by construction.
//! Format (standards.md section B, and the real sample `dex-sample-cvendbox.txt`):
//! one segment per line ending in CRLF, elements separated by `*`, money in minor units
//! with `ID4` giving the decimal places and the currency. `G85` carries the CRC-16/ARC of
//! the bytes from `ST*` through the CRLF of the segment before `G85`; `SE` counts the
//! segments from `ST` through `SE` inclusive.
//!
//! What goes where:
//! - `VA1`: all paid vends ([`CounterSet::paid`]), since initialisation and since reset.
//! - `DA1`/`DA2`: this daemon is the machine's one cashless device, so every payment
//!   method sells through it; `DA2` is the sum over [`CounterSet::by_method`]. EVA-DTS has
//!   device slots (`DA`, `DB`), not payment methods, so the per-method split goes into
//!   manufacturer-specific `MA5*PAYMENT*<method>*...` segments.
//! - `PA1`/`PA2`: one pair per selection (slot name), from [`CounterSet::by_slot`].
//! - `EA1`/`EA2`: door open (`EGS`), product delivery failure (`ELA`), card in the hot
//!   list (`EKJ`) from the counters; temperature (`EOA`) and event times from
//!   [`DexEvents`], which the caller fills because the counters do not hold them.
//!
//! [`Counters`]: crate::core::state::Counters
//! [`CounterSet::paid`]: crate::core::state::CounterSet::paid
//! [`CounterSet::by_method`]: crate::core::state::CounterSet::by_method
//! [`CounterSet::by_slot`]: crate::core::state::CounterSet::by_slot

mod export;
mod parse;

pub use export::{export, DexEvent, DexEventKind, DexEvents, DexIdentity, EventCount};
pub use parse::{parse, DexError, DexFile, EventTotals, Id4, Segment, Selection};

use crate::core::state::Tally;

/// CRC-16/ARC (polynomial 0x8005 reflected as 0xA001, initial value 0, no final XOR), the
/// checksum EVA-DTS puts in `G85`. The check value of `"123456789"` is `0xBB3D`.
pub fn crc16_arc(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The four counters EVA-DTS keeps for a kind of sale: count and value since the machine
/// was initialised, and since the last reset. Values are minor units of the `ID4` currency.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DexTotals {
    /// Items since initialisation.
    pub count_init: u64,
    /// Value since initialisation, minor units.
    pub value_init: i64,
    /// Items since the last reset.
    pub count_reset: u64,
    /// Value since the last reset, minor units.
    pub value_reset: i64,
}

impl DexTotals {
    /// The totals of a lifetime and a since-reset [`Tally`].
    pub fn from_tallies(lifetime: Tally, since_reset: Tally) -> Self {
        DexTotals {
            count_init: lifetime.count,
            value_init: lifetime.value,
            count_reset: since_reset.count,
            value_reset: since_reset.value,
        }
    }

    fn add(&mut self, other: &DexTotals) {
        self.count_init = self.count_init.saturating_add(other.count_init);
        self.value_init = self.value_init.saturating_add(other.value_init);
        self.count_reset = self.count_reset.saturating_add(other.count_reset);
        self.value_reset = self.value_reset.saturating_add(other.value_reset);
    }
}

#[cfg(test)]
mod tests;

/// The DEX file of a machine from its journal: the audit counters and planogram replayed
/// from the records, events from the records, identity from the configuration.
///
/// # Errors
/// A damaged journal record.
pub fn from_journal(
    journal: &crate::journal::Journal,
    cfg: &crate::config::Config,
    now_ms: u64,
) -> crate::journal::Result<String> {
    let (machine, day_offset_s) = (&cfg.machine, cfg.day_offset_s);
    let fresh = crate::core::State::new(cfg.catalog.clone(), day_offset_s);
    let (state, _) = journal.load_state(fresh)?;
    let mut records = Vec::new();
    for r in journal.iter_from(1) {
        records.push(r?.1);
    }
    let mut events = DexEvents::from_journal(records.iter(), 20);
    events.door_open_now = state.door_open;
    let identity = identity(machine, day_offset_s);
    Ok(export(
        &identity,
        &state.catalog,
        &state.counters,
        &events,
        now_ms,
    ))
}

/// The DEX file of a running machine, from a reader of its journal: every record replayed
/// onto a fresh state (the first record is the planogram), so the counters are the
/// journal's own.
///
/// # Errors
/// A damaged journal record.
pub fn from_reader(
    reader: &crate::journal::JournalReader,
    machine: &crate::config::Machine,
    currency: crate::core::Currency,
    day_offset_s: i64,
    now_ms: u64,
) -> crate::journal::Result<String> {
    let empty = crate::core::Catalog {
        currency,
        products: Default::default(),
        slots: Default::default(),
    };
    let mut state = crate::core::State::new(empty, day_offset_s);
    let mut records = Vec::new();
    for r in reader.iter_from(1) {
        let st = r?.1;
        state.apply(&st);
        records.push(st);
    }
    let mut events = DexEvents::from_journal(records.iter(), 20);
    events.door_open_now = state.door_open;
    Ok(export(
        &identity(machine, day_offset_s),
        &state.catalog,
        &state.counters,
        &events,
        now_ms,
    ))
}

/// The DEX identity of a configured machine.
pub fn identity(machine: &crate::config::Machine, day_offset_s: i64) -> DexIdentity {
    // DXS communication id: three letters and seven digits by convention ("VND" + the
    // digits of the serial, padded).
    let digits: String = machine
        .serial
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let digits = format!("{:0>7}", digits);
    DexIdentity {
        comm_id: format!("VND{}", &digits[digits.len() - 7..]),
        serial: machine.serial.clone(),
        model: machine.model.clone(),
        location: machine.location.clone(),
        asset: machine.id.clone(),
        software_version: crate::runtime::VERSION.to_string(),
        utc_offset_s: day_offset_s,
    }
}
