//! Operator reports from the journal (`vendctl report …`): sales by slot, product, payment
//! method and day; the refill list for a route driver (what to bring to this machine);
//! fault history; refunds. One pass over the records; JSON or CSV.

use crate::core::record::{Record, Stamped, VendOutcome};
use crate::core::{Catalog, PaymentMethod, SessionId};
use crate::journal::export::utc_day;
use serde::Serialize;
use std::collections::BTreeMap;

/// Items and money.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sum {
    /// Items (or sales, for days and methods: see the field docs).
    pub items: u64,
    /// Value, minor units.
    pub value: i64,
}

/// Sales.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SalesReport {
    /// Items delivered and charged, by slot.
    pub by_slot: BTreeMap<String, Sum>,
    /// Items delivered and charged, by product code (the planogram of the time of sale).
    pub by_product: BTreeMap<String, Sum>,
    /// Items delivered and charged, by payment method.
    pub by_method: BTreeMap<String, Sum>,
    /// By local day (`YYYY-MM-DD`, the machine's day offset): items and value.
    pub by_day: BTreeMap<String, Sum>,
    /// Everything.
    pub total: Sum,
}

/// One line of the refill list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefillLine {
    /// Slot.
    pub slot: String,
    /// Product code.
    pub product: String,
    /// Product name.
    pub name: String,
    /// In the slot now (the journal's count).
    pub stock: u32,
    /// Spiral capacity.
    pub capacity: u32,
    /// To bring: capacity − stock.
    pub bring: u32,
    /// A fault to clear while there, if any.
    pub fault: Option<String>,
}

/// One fault event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultLine {
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Slot, if one.
    pub slot: Option<String>,
    /// `faulted`, `cleared` or the alert kind.
    pub event: String,
    /// Reason or message.
    pub detail: String,
}

/// One refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundLine {
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Session.
    pub sid: SessionId,
    /// Amount, minor units.
    pub amount: i64,
    /// Idempotency key.
    pub key: String,
}

/// Every report, from one pass over the records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reports {
    /// Sales.
    pub sales: SalesReport,
    /// Refill list, by slot (only slots that need something).
    pub refill: Vec<RefillLine>,
    /// What to bring, by product code: units.
    pub refill_by_product: BTreeMap<String, u32>,
    /// Faults in time order.
    pub faults: Vec<FaultLine>,
    /// Refunds in time order.
    pub refunds: Vec<RefundLine>,
}

/// Builds the reports from the records (in order) and the catalog now (stock counts).
pub fn build<'a>(
    records: impl IntoIterator<Item = &'a Stamped>,
    now_catalog: &Catalog,
    day_offset_s: i64,
) -> Reports {
    let mut r = Reports::default();
    let mut product_of: BTreeMap<String, String> = BTreeMap::new();
    let mut lines: BTreeMap<SessionId, Vec<(String, i64)>> = BTreeMap::new();
    let mut method: BTreeMap<SessionId, PaymentMethod> = BTreeMap::new();
    let mut delivered: BTreeMap<SessionId, Vec<u32>> = BTreeMap::new();
    let iso = crate::report::event::rfc3339_utc_ms;
    for st in records {
        match &st.record {
            Record::Planogram { catalog, .. } => {
                product_of = catalog
                    .slots
                    .iter()
                    .map(|(id, s)| (id.to_string(), s.product.clone()))
                    .collect();
            }
            Record::CheckedOut { sid, items, .. } => {
                lines.insert(
                    *sid,
                    items
                        .iter()
                        .map(|l| (l.slot.to_string(), l.price))
                        .collect(),
                );
            }
            Record::Authorised { sid, method: m, .. } => {
                method.insert(*sid, *m);
            }
            Record::VendResult {
                sid, item, outcome, ..
            } if outcome.confirmed_drops() > 0 => {
                delivered.entry(*sid).or_default().push(*item);
            }
            Record::Capture { sid, amount, .. } if *amount > 0 => {
                let ls = lines.remove(sid).unwrap_or_default();
                let m = method
                    .remove(sid)
                    .map_or_else(|| "unknown".to_string(), |m| m.as_str().to_string());
                let day = utc_day((st.at as i64 + day_offset_s * 1000).max(0) as u64);
                for i in delivered.remove(sid).unwrap_or_default() {
                    if let Some((slot, price)) = ls.get(i as usize) {
                        let product = product_of.get(slot).cloned().unwrap_or_default();
                        for (map, key) in [
                            (&mut r.sales.by_slot, slot.clone()),
                            (&mut r.sales.by_product, product),
                            (&mut r.sales.by_method, m.clone()),
                            (&mut r.sales.by_day, day.clone()),
                        ] {
                            let e = map.entry(key).or_default();
                            e.items += 1;
                            e.value += price;
                        }
                        r.sales.total.items += 1;
                        r.sales.total.value += price;
                    }
                }
            }
            Record::SessionClosed { sid, .. } => {
                lines.remove(sid);
                method.remove(sid);
                delivered.remove(sid);
            }
            Record::SlotFaulted { slot, reason } => r.faults.push(FaultLine {
                at: iso(st.at),
                slot: Some(slot.to_string()),
                event: "faulted".into(),
                detail: reason.clone(),
            }),
            Record::FaultCleared { slot } => r.faults.push(FaultLine {
                at: iso(st.at),
                slot: Some(slot.to_string()),
                event: "cleared".into(),
                detail: String::new(),
            }),
            Record::TestVendResult { slot, outcome }
                if !matches!(outcome, VendOutcome::Delivered { .. }) =>
            {
                r.faults.push(FaultLine {
                    at: iso(st.at),
                    slot: Some(slot.to_string()),
                    event: "test_vend_failed".into(),
                    detail: serde_json::to_string(outcome).unwrap_or_default(),
                });
            }
            Record::Refund {
                sid, amount, key, ..
            } => r.refunds.push(RefundLine {
                at: iso(st.at),
                sid: *sid,
                amount: *amount,
                key: key.clone(),
            }),
            _ => {}
        }
    }
    for (id, s) in &now_catalog.slots {
        let bring = s.capacity.saturating_sub(s.stock);
        if bring > 0 || s.fault.is_some() {
            r.refill.push(RefillLine {
                slot: id.to_string(),
                product: s.product.clone(),
                name: now_catalog
                    .products
                    .get(&s.product)
                    .map_or_else(String::new, |p| p.name.clone()),
                stock: s.stock,
                capacity: s.capacity,
                bring,
                fault: s.fault.clone(),
            });
            if bring > 0 {
                *r.refill_by_product.entry(s.product.clone()).or_default() += bring;
            }
        }
    }
    r
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Reports {
    /// One report as CSV (`sales`, `refill`, `faults`, `refunds`), with a header line.
    pub fn csv(&self, which: &str) -> Option<String> {
        let mut out = String::new();
        match which {
            "sales" => {
                out.push_str("by,key,items,value_minor\n");
                for (by, map) in [
                    ("slot", &self.sales.by_slot),
                    ("product", &self.sales.by_product),
                    ("method", &self.sales.by_method),
                    ("day", &self.sales.by_day),
                ] {
                    for (k, v) in map {
                        out.push_str(&format!("{by},{},{},{}\n", csv_field(k), v.items, v.value));
                    }
                }
                out.push_str(&format!(
                    "total,,{},{}\n",
                    self.sales.total.items, self.sales.total.value
                ));
            }
            "refill" => {
                out.push_str("slot,product,name,stock,capacity,bring,fault\n");
                for l in &self.refill {
                    out.push_str(&format!(
                        "{},{},{},{},{},{},{}\n",
                        l.slot,
                        csv_field(&l.product),
                        csv_field(&l.name),
                        l.stock,
                        l.capacity,
                        l.bring,
                        csv_field(l.fault.as_deref().unwrap_or(""))
                    ));
                }
            }
            "faults" => {
                out.push_str("at,slot,event,detail\n");
                for f in &self.faults {
                    out.push_str(&format!(
                        "{},{},{},{}\n",
                        f.at,
                        f.slot.as_deref().unwrap_or(""),
                        f.event,
                        csv_field(&f.detail)
                    ));
                }
            }
            "refunds" => {
                out.push_str("at,sid,amount_minor,key\n");
                for f in &self.refunds {
                    out.push_str(&format!(
                        "{},{},{},{}\n",
                        f.at,
                        f.sid,
                        f.amount,
                        csv_field(&f.key)
                    ));
                }
            }
            _ => return None,
        }
        Some(out)
    }

    /// One report as JSON.
    pub fn json(&self, which: &str) -> Option<serde_json::Value> {
        let v = match which {
            "sales" => serde_json::to_value(&self.sales),
            "refill" => serde_json::to_value(serde_json::json!({
                "slots": self.refill, "by_product": self.refill_by_product
            })),
            "faults" => serde_json::to_value(&self.faults),
            "refunds" => serde_json::to_value(&self.refunds),
            _ => return None,
        };
        v.ok()
    }
}
