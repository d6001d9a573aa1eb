//! Catalog and planogram: which product sits in which slot, at what price, how many.
//!
//! A slot is addressed by a row letter and a 1-based column number (`A1` … `F10` on a
//! 6×10 machine); the motor matrix address is derived from it. Stock is the controller's
//! belief, changed only by the journal: an operator count, or a drop the sensor confirmed.

use super::money::{Currency, Money};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// A slot name such as `A3`: row letter `A`–`Z`, column `1`–`99`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId {
    row: u8,
    col: u8,
}

/// Why a slot name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a slot name: use a row letter and a column number, e.g. A3 or F10")]
pub struct SlotIdError(pub String);

impl SlotId {
    /// Parses `A3`, `f10` (case-insensitive letter).
    ///
    /// # Errors
    /// [`SlotIdError`] for anything but a letter followed by 1–99.
    pub fn parse(s: &str) -> Result<SlotId, SlotIdError> {
        let err = || SlotIdError(s.to_string());
        let mut chars = s.chars();
        let letter = chars.next().ok_or_else(err)?.to_ascii_uppercase();
        if !letter.is_ascii_uppercase() {
            return Err(err());
        }
        let rest = chars.as_str();
        if rest.is_empty() || rest.len() > 2 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let col: u8 = rest.parse().map_err(|_| err())?;
        if col == 0 || rest.starts_with('0') {
            return Err(err());
        }
        Ok(SlotId {
            row: letter as u8 - b'A',
            col: col - 1,
        })
    }

    /// A slot at a 0-based matrix position.
    pub fn from_matrix(row: u8, col: u8) -> SlotId {
        SlotId { row, col }
    }

    /// 0-based motor matrix row.
    pub fn row(&self) -> u8 {
        self.row
    }

    /// 0-based motor matrix column.
    pub fn col(&self) -> u8 {
        self.col
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", (b'A' + self.row) as char, self.col + 1)
    }
}

impl Serialize for SlotId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SlotId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SlotId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A product as sold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Stable product code (used in reports and DEX).
    pub id: String,
    /// Name shown to the shopper.
    pub name: String,
}

/// One slot of the planogram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Slot name.
    pub id: SlotId,
    /// Product code; must exist in [`Catalog::products`].
    pub product: String,
    /// Price in minor units of the catalog currency. Invariant: `>= 0`.
    pub price: i64,
    /// Spiral capacity. Invariant: `stock <= capacity`.
    pub capacity: u32,
    /// Items the controller believes are in the slot.
    #[serde(default)]
    pub stock: u32,
    /// Operator switch: a disabled slot is not sold.
    pub enabled: bool,
    /// Set when the slot jammed, missed drops or was interrupted; cleared by an operator.
    pub fault: Option<String>,
}

impl Slot {
    /// Can a shopper buy from this slot now (ignoring stock)?
    pub fn sellable(&self) -> bool {
        self.enabled && self.fault.is_none()
    }
}

/// Products, slots and prices. Changed only by applying journal records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Currency of every price.
    pub currency: Currency,
    /// Products by code.
    pub products: BTreeMap<String, Product>,
    /// Slots by name.
    pub slots: BTreeMap<SlotId, Slot>,
}

impl Catalog {
    /// A slot's price as [`Money`].
    pub fn price(&self, slot: &SlotId) -> Option<Money> {
        self.slots
            .get(slot)
            .map(|s| Money::new(s.price, self.currency))
    }

    /// Checks the catalog's own invariants; returns a description of each problem.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.slots.values() {
            if !self.products.contains_key(&s.product) {
                out.push(format!(
                    "slot {} names unknown product `{}`",
                    s.id, s.product
                ));
            }
            if s.price < 0 {
                out.push(format!("slot {} has a negative price", s.id));
            }
            if s.stock > s.capacity {
                out.push(format!(
                    "slot {} holds {} but its capacity is {}",
                    s.id, s.stock, s.capacity
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_round_trip_and_map_to_the_matrix() {
        let s = SlotId::parse("F10").unwrap();
        assert_eq!((s.row(), s.col()), (5, 9));
        assert_eq!(s.to_string(), "F10");
        assert_eq!(SlotId::parse("a3").unwrap().to_string(), "A3");
    }

    #[test]
    fn malformed_slot_names_are_refused() {
        for bad in ["", "A", "3A", "A0", "A01", "A100", "Ä1", "A-1", "AA1"] {
            assert!(SlotId::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
