//! Export as JSON lines, verification, and sales reports over a journal.

use super::{Journal, Result};
use crate::core::{Record, Verifier, Violation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// Writes every record as one JSON object per line: `{"seq":N,"at":MS,"type":...,...}`.
///
/// # Errors
/// A damaged record, or a write error on `out`.
pub fn export_jsonl(j: &Journal, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut n = 0;
    for r in j.iter_from(1) {
        let (seq, st) = r?;
        let mut v = serde_json::to_value(&st)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("seq".into(), seq.into());
        }
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

/// The result of verifying a journal.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Records checked.
    pub records: u64,
    /// Rules broken.
    pub violations: Vec<Violation>,
    /// Does the checkpoint agree with a full replay?
    pub checkpoint_consistent: bool,
}

/// Checks every invariant over the whole journal, and that the stored checkpoint agrees
/// with a full replay.
///
/// # Errors
/// A record that does not decode (reported as an error, not a violation, because nothing
/// after it can be trusted).
pub fn verify(j: &Journal) -> Result<Report> {
    let mut v = Verifier::new();
    for r in j.iter_from(1) {
        let (seq, st) = r?;
        v.feed(seq, &st);
    }
    let replayed = v.state().cloned();
    let records = v.records();
    let checkpoint_consistent = match replayed {
        Some(full) => {
            let fresh = crate::core::State::new(full.catalog.clone(), full.day_offset_s);
            let (via_cp, _) = j.load_state(fresh)?;
            // The verifier folds with a zero day offset; compare what does not depend on it.
            via_cp.catalog == full.catalog
                && via_cp.counters == full.counters
                && via_cp.open == full.open
                && via_cp.last_sid == full.last_sid
        }
        None => true,
    };
    Ok(Report {
        records,
        violations: v.finish(),
        checkpoint_consistent,
    })
}

/// Sales per slot and per day (UTC), from the captures in the journal.
#[derive(Debug, Default, Serialize)]
pub struct Sales {
    /// Slot → (items, value in minor units).
    pub by_slot: BTreeMap<String, (u64, i64)>,
    /// Day (YYYY-MM-DD, UTC) → (sales, value in minor units).
    pub by_day: BTreeMap<String, (u64, i64)>,
}

/// Sums sales from the journal.
///
/// # Errors
/// A damaged record.
pub fn sales(j: &Journal) -> Result<Sales> {
    let mut s = Sales::default();
    let mut items: BTreeMap<u64, Vec<(String, i64)>> = BTreeMap::new();
    let mut delivered: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for r in j.iter_from(1) {
        let (_, st) = r?;
        match st.record {
            Record::CheckedOut { sid, items: it, .. } => {
                items.insert(
                    sid,
                    it.iter().map(|l| (l.slot.to_string(), l.price)).collect(),
                );
            }
            Record::VendResult {
                sid, item, outcome, ..
            } if outcome.confirmed_drops() > 0 => {
                delivered.entry(sid).or_default().push(item);
            }
            Record::Capture { sid, amount, .. } if amount > 0 => {
                let lines = items.remove(&sid).unwrap_or_default();
                for i in delivered.remove(&sid).unwrap_or_default() {
                    if let Some((slot, price)) = lines.get(i as usize) {
                        let e = s.by_slot.entry(slot.clone()).or_default();
                        e.0 += 1;
                        e.1 += price;
                    }
                }
                let e = s.by_day.entry(utc_day(st.at)).or_default();
                e.0 += 1;
                e.1 += amount;
            }
            Record::SessionClosed { sid, .. } => {
                items.remove(&sid);
                delivered.remove(&sid);
            }
            _ => {}
        }
    }
    Ok(s)
}

/// `YYYY-MM-DD` of a Unix millisecond timestamp (proleptic Gregorian, UTC).
pub fn utc_day(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::utc_day;

    #[test]
    fn utc_days_are_calendar_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(1_795_737_600_000), "2026-11-27");
    }
}
