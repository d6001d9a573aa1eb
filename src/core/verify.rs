//! The journal invariants, checked over a stream of records.
//!
//! Used by `vendctl journal verify` on a real journal, by the property tests on what the
//! controller writes, and by the crash test after every restart. Each violation names the
//! sequence number of the record that broke a rule.
//!
//! The rules:
//! - (a) every vend result follows a journaled intent for the same attempt, one intent in
//!   flight at a time, and each intent gets at most one answer;
//! - (b) the captured amount equals the prices of the items the drop sensor confirmed;
//! - (c) every authorisation ends in exactly one capture and one void that add up to the hold;
//! - (d) stock falls only on a confirmed drop (or an operator count / planogram);
//! - (e) an item whose outcome is unknown (interrupted, no answer) is never charged.

use super::catalog::SlotId;
use super::record::{Record, SessionId, Stamped, VendOutcome};
use super::state::State;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Sequence number of the record that broke it (0 for end-of-journal checks).
    pub seq: u64,
    /// Which rule, `a`–`e`, or `seq` / `session` for structural problems.
    pub rule: &'static str,
    /// What is wrong.
    pub message: String,
}

#[derive(Default, Debug)]
struct Sess {
    prices: Vec<i64>,
    hold: Option<i64>,
    intents: BTreeSet<(u32, u32)>,
    answered: BTreeSet<(u32, u32)>,
    delivered: BTreeSet<u32>,
    unknown: BTreeSet<u32>,
    captures: Vec<i64>,
    voids: Vec<i64>,
}

/// Checks records one at a time. See the module docs.
#[derive(Debug)]
pub struct Verifier {
    state: Option<State>,
    last_seq: Option<u64>,
    sessions: BTreeMap<SessionId, Sess>,
    in_flight: Option<(SessionId, u32, u32)>,
    /// Slot of each journaled intent of the open sessions: a drop may lower only that slot.
    intent_slots: BTreeMap<(SessionId, u32, u32), SlotId>,
    violations: Vec<Violation>,
    records: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// A verifier for a journal that starts at its first record.
    pub fn new() -> Self {
        Verifier {
            state: None,
            last_seq: None,
            sessions: BTreeMap::new(),
            in_flight: None,
            intent_slots: BTreeMap::new(),
            violations: Vec::new(),
            records: 0,
        }
    }

    /// The state folded so far (after the first planogram).
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// Records checked so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn v(&mut self, seq: u64, rule: &'static str, message: String) {
        self.violations.push(Violation { seq, rule, message });
    }

    /// Checks one record with its sequence number.
    pub fn feed(&mut self, seq: u64, st: &Stamped) {
        self.records += 1;
        if let Some(last) = self.last_seq {
            if seq != last + 1 {
                self.v(seq, "seq", format!("sequence jumps from {last} to {seq}"));
            }
        }
        self.last_seq = Some(seq);
        self.check_session_rules(seq, &st.record);
        self.check_stock(seq, st);
    }

    fn check_stock(&mut self, seq: u64, st: &Stamped) {
        if let Record::Planogram { catalog, .. } = &st.record {
            if self.state.is_none() {
                self.state = Some(State::new(catalog.clone(), 0));
            }
        }
        let Some(state) = self.state.as_mut() else {
            if !matches!(st.record, Record::Boot { .. }) {
                self.v(
                    seq,
                    "seq",
                    format!("{} record before any planogram", st.record.kind()),
                );
            }
            return;
        };
        let before: BTreeMap<SlotId, u32> = state
            .catalog
            .slots
            .iter()
            .map(|(k, s)| (k.clone(), s.stock))
            .collect();
        state.apply(st);
        let allowed: Option<(&SlotId, u32)> = match &st.record {
            Record::VendResult {
                sid,
                item,
                attempt,
                slot,
                outcome,
                ..
            }
            | Record::LateVendResult {
                sid,
                item,
                attempt,
                slot,
                outcome,
            } => {
                // Only the slot whose motor ran for this attempt can have lost items.
                let ran = self.intent_slots.get(&(*sid, *item, *attempt)) == Some(slot);
                Some((slot, if ran { outcome.confirmed_drops() } else { 0 }))
            }
            Record::StockSet { .. } | Record::Planogram { .. } => return,
            _ => None,
        };
        let mut bad = Vec::new();
        for (id, s) in &state.catalog.slots {
            let old = before.get(id).copied().unwrap_or(s.stock);
            if s.stock < old {
                let ok = allowed.is_some_and(|(slot, drops)| slot == id && old - s.stock <= drops);
                if !ok {
                    bad.push(format!(
                        "stock of {id} fell from {old} to {} on a {} record",
                        s.stock,
                        st.record.kind()
                    ));
                }
            }
        }
        for m in bad {
            self.v(seq, "d", m);
        }
    }

    fn check_session_rules(&mut self, seq: u64, r: &Record) {
        match r {
            Record::SessionOpened { sid } => {
                let reopened = self.sessions.insert(*sid, Sess::default()).is_some();
                if reopened {
                    self.v(seq, "session", format!("session {sid} opened twice"));
                }
            }
            Record::CheckedOut { sid, items, total } => {
                let sum: i64 = items.iter().map(|i| i.price).sum();
                if sum != *total {
                    self.v(seq, "b", format!("session {sid}: checkout total {total} is not the sum of its prices {sum}"));
                }
                match self.sessions.get_mut(sid) {
                    Some(s) => s.prices = items.iter().map(|i| i.price).collect(),
                    None => self.v(
                        seq,
                        "session",
                        format!("checkout for session {sid} that is not open"),
                    ),
                }
            }
            Record::Authorised { sid, amount, .. } => {
                let total: Option<i64> = self.sessions.get(sid).map(|s| s.prices.iter().sum());
                match (self.sessions.get_mut(sid), total) {
                    (Some(s), Some(t)) if s.hold.is_none() => {
                        s.hold = Some(*amount);
                        if *amount != t {
                            self.v(
                                seq,
                                "c",
                                format!("session {sid}: authorised {amount} but the cart is {t}"),
                            );
                        }
                    }
                    _ => self.v(
                        seq,
                        "c",
                        format!(
                            "session {sid}: authorisation without an open, unauthorised checkout"
                        ),
                    ),
                }
            }
            Record::VendIntent {
                sid,
                item,
                attempt,
                slot,
            } => {
                if let Some((s, i, a)) = self.in_flight {
                    self.v(seq, "a", format!("intent for session {sid} item {item} while session {s} item {i} attempt {a} is unanswered"));
                }
                let ok = self
                    .sessions
                    .get(sid)
                    .is_some_and(|s| s.hold.is_some() && (*item as usize) < s.prices.len());
                if !ok {
                    self.v(
                        seq,
                        "a",
                        format!("session {sid}: vend intent without an authorised item {item}"),
                    );
                }
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.intents.insert((*item, *attempt));
                }
                self.intent_slots
                    .insert((*sid, *item, *attempt), slot.clone());
                self.in_flight = Some((*sid, *item, *attempt));
            }
            Record::VendResult {
                sid,
                item,
                attempt,
                outcome,
                ..
            } => {
                let key = (*item, *attempt);
                let has_intent = self
                    .sessions
                    .get(sid)
                    .is_some_and(|s| s.intents.contains(&key));
                let fresh = self
                    .sessions
                    .get(sid)
                    .is_some_and(|s| !s.answered.contains(&key));
                if !has_intent {
                    self.v(seq, "a", format!("session {sid} item {item} attempt {attempt}: result without a journaled intent"));
                } else if !fresh {
                    self.v(
                        seq,
                        "a",
                        format!("session {sid} item {item} attempt {attempt}: answered twice"),
                    );
                }
                if self.in_flight == Some((*sid, *item, *attempt)) {
                    self.in_flight = None;
                }
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.answered.insert(key);
                    match outcome {
                        VendOutcome::Delivered { .. } => {
                            s.delivered.insert(*item);
                        }
                        VendOutcome::NoAnswer => {
                            s.unknown.insert(*item);
                        }
                        _ => {}
                    }
                }
            }
            Record::InterruptedVend {
                sid, item, attempt, ..
            } => {
                if self.in_flight == Some((*sid, *item, *attempt)) {
                    self.in_flight = None;
                } else {
                    self.v(seq, "a", format!("session {sid} item {item}: interrupted-vend record for an attempt not in flight"));
                }
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.answered.insert((*item, *attempt));
                    s.unknown.insert(*item);
                }
            }
            Record::Capture { sid, amount, .. } => {
                let Some(s) = self.sessions.get_mut(sid) else {
                    self.v(
                        seq,
                        "c",
                        format!("capture for session {sid} that is not open"),
                    );
                    return;
                };
                s.captures.push(*amount);
                let delivered: i64 = s
                    .delivered
                    .iter()
                    .filter_map(|i| s.prices.get(*i as usize))
                    .sum();
                let unknown_charged: Vec<u32> =
                    s.unknown.intersection(&s.delivered).copied().collect();
                let (hold, n) = (s.hold, s.captures.len());
                if hold.is_none() {
                    self.v(
                        seq,
                        "c",
                        format!("session {sid}: capture without an authorisation"),
                    );
                }
                if n > 1 {
                    self.v(seq, "c", format!("session {sid}: {n} captures"));
                }
                if *amount != delivered {
                    self.v(seq, "b", format!("session {sid}: captured {amount} but the confirmed items are worth {delivered}"));
                }
                if !unknown_charged.is_empty() {
                    self.v(seq, "e", format!("session {sid}: items {unknown_charged:?} had an unknown outcome and were charged"));
                }
            }
            Record::Void { sid, amount, .. } => {
                let Some(s) = self.sessions.get_mut(sid) else {
                    self.v(seq, "c", format!("void for session {sid} that is not open"));
                    return;
                };
                s.voids.push(*amount);
                let (hold, n, cap) = (s.hold, s.voids.len(), s.captures.first().copied());
                match (hold, cap) {
                    (Some(h), Some(c)) if c + amount == h && n == 1 => {}
                    _ => self.v(seq, "c", format!("session {sid}: void {amount} (#{n}) does not release the rest of hold {hold:?} after capture {cap:?}")),
                }
            }
            Record::SessionClosed { sid, captured, .. } => {
                self.intent_slots.retain(|k, _| k.0 != *sid);
                let Some(s) = self.sessions.remove(sid) else {
                    self.v(seq, "session", format!("session {sid} closed but not open"));
                    return;
                };
                if s.hold.is_some() && (s.captures.len() != 1 || s.voids.len() != 1) {
                    self.v(
                        seq,
                        "c",
                        format!(
                            "session {sid} closed with {} captures and {} voids",
                            s.captures.len(),
                            s.voids.len()
                        ),
                    );
                }
                if s.captures.first().copied().unwrap_or(0) != *captured {
                    self.v(seq, "b", format!("session {sid} closed saying {captured} was captured, the capture was {:?}", s.captures.first()));
                }
                let unanswered: Vec<_> = s.intents.difference(&s.answered).collect();
                if !unanswered.is_empty() {
                    self.v(
                        seq,
                        "e",
                        format!(
                            "session {sid} closed with unanswered vend attempts {unanswered:?}"
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    /// Ends the check and returns every violation found.
    pub fn finish(self) -> Vec<Violation> {
        self.violations
    }
}
