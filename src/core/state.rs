//! Durable state: the fold of the journal.
//!
//! Design: [`State::apply`] is the only way durable state changes. It does no I/O and makes
//! no decisions: it records what a record says. The controller decides, writes records, and
//! applies them to itself; recovery applies the stored records to a fresh state. Both paths
//! therefore end in the same state.

use super::catalog::{Catalog, SlotId};
use super::record::{LineItem, Millis, PaymentMethod, Record, SessionId, Stamped, VendOutcome};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Count and value of something sold.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// Total value, minor units.
    pub value: i64,
}

impl Tally {
    fn add(&mut self, count: u64, value: i64) {
        self.count += count;
        self.value += value;
    }
}

/// One set of audit counters (lifetime, or since the last reset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSet {
    /// Paid vends per slot.
    pub by_slot: BTreeMap<SlotId, Tally>,
    /// Paid vends per payment method (count = items, value = captured).
    pub by_method: BTreeMap<PaymentMethod, Tally>,
    /// All paid vends.
    pub paid: Tally,
    /// Items that failed to vend (not charged).
    pub failed_vends: u64,
    /// Sessions that captured money.
    pub sales: u64,
    /// Declined credentials.
    pub declines: u64,
    /// Door openings.
    pub door_openings: u64,
    /// Deny-listed credentials presented.
    pub denied_credentials: u64,
    /// Money given back by operator refunds (count = refunds, value = amount).
    #[serde(default)]
    pub refunds: Tally,
}

/// Audit counters for DEX and reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Since the machine was first started.
    pub lifetime: CounterSet,
    /// Since the operator's last reset.
    pub since_reset: CounterSet,
    /// Number of resets so far.
    pub resets: u64,
}

impl Counters {
    fn each(&mut self, f: impl Fn(&mut CounterSet)) {
        f(&mut self.lifetime);
        f(&mut self.since_reset);
    }
}

/// What the offline payment policy remembers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineLedger {
    /// Per credential hash: (day number, approvals that day). Only today's entries are kept.
    pub uses: BTreeMap<String, (u32, u32)>,
    /// Value of offline approvals not yet uploaded (captured part), minor units.
    pub unsettled_offline: i64,
    /// The same per session, so an upload is counted once however often it is reported.
    #[serde(default)]
    pub unsettled_by_session: BTreeMap<SessionId, i64>,
}

/// The state of one item of a checked-out session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemStatus {
    /// Not vended yet.
    Pending,
    /// The drop sensor confirmed it.
    Delivered {
        /// Items seen falling.
        drops: u32,
    },
    /// Will not be delivered; not charged.
    Failed {
        /// Why.
        reason: String,
    },
}

/// An item of a session with its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionItem {
    /// Slot and price.
    #[serde(flatten)]
    pub line: LineItem,
    /// Status.
    pub status: ItemStatus,
}

/// The authorisation held for a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Held amount.
    pub amount: i64,
    /// Method.
    pub method: PaymentMethod,
    /// Credential hash.
    pub credential: String,
    /// Decided offline?
    pub offline: bool,
    /// Reference.
    pub auth_ref: String,
}

/// The open session as the journal knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    /// Id.
    pub sid: SessionId,
    /// Items, empty until checkout.
    pub items: Vec<SessionItem>,
    /// Checked out?
    pub checked_out: bool,
    /// The hold, once authorised.
    pub hold: Option<Hold>,
    /// An attempt with a journaled intent and no result yet: (item, attempt).
    pub in_flight: Option<(u32, u32)>,
    /// Capture intent written (amount, key).
    pub capture: Option<(i64, String)>,
    /// Void intent written (amount, key).
    pub void: Option<(i64, String)>,
}

impl OpenSession {
    /// Sum of the prices of the items the drop sensor confirmed.
    pub fn delivered_value(&self) -> i64 {
        self.items
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Delivered { .. }))
            .map(|i| i.line.price)
            .sum()
    }
}

/// Most recent captures kept for refunds ([`State::captures`]): older sessions cannot be
/// refunded by a remote command (the operator refunds them at the payment provider).
pub const MAX_REFUNDABLE: usize = 4096;

/// A closed (or closing) session's capture, for refunds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    /// Captured amount, minor units (> 0).
    pub amount: i64,
    /// Refunded so far, minor units.
    pub refunded: i64,
    /// Authorisation the capture settled.
    pub auth_ref: String,
}

/// Everything durable. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Catalog with current stock, prices and faults.
    pub catalog: Catalog,
    /// Last session id used.
    pub last_sid: SessionId,
    /// The session the journal has open, if any.
    pub open: Option<OpenSession>,
    /// Audit counters.
    pub counters: Counters,
    /// Offline policy memory.
    pub ledger: OfflineLedger,
    /// Deny-listed credential hashes.
    pub deny: BTreeSet<String>,
    /// Service door open?
    pub door_open: bool,
    /// Accounts with a face enrolled (account → masked name). The embeddings are in the
    /// encrypted gallery file; this is what the journal says should be there.
    #[serde(default)]
    pub face_enrolled: BTreeMap<String, String>,
    /// Day offset for "per day" limits, seconds east of UTC.
    pub day_offset_s: i64,
    /// Source of the last planogram applied (empty before the first).
    pub planogram_source: String,
    /// Authorisation references this machine accepted as a hold, with the day accepted;
    /// kept for two days so that a duplicated approval (at-least-once delivery) is
    /// recognised and not voided as a stray one.
    #[serde(default)]
    pub accepted_auth_refs: BTreeMap<String, u32>,
    /// Voids of stray approvals written ahead and not yet known to be carried out, by
    /// idempotency key: (session, amount, authorisation). The alert that follows the void
    /// command marks it carried out; start-up sends the rest again.
    #[serde(default)]
    pub pending_stray_voids: BTreeMap<String, (SessionId, i64, String)>,
    /// Remote commands seen, by id and by nonce (`id:…` / `nonce:…`), until they expire:
    /// (expires_at, ok, code, message) — replays are refused and answered with the original
    /// result. Pruned as time passes, so it stays small.
    #[serde(default)]
    pub seen_commands: BTreeMap<String, (Millis, bool, String, String)>,
    /// Source of the last planogram taken from the config file (`Planogram` records whose
    /// source is not `cmd:…`). Start-up replaces the planogram only when the config's
    /// changes, so a remote planogram survives a restart with an unchanged config.
    #[serde(default)]
    pub config_planogram_source: String,
    /// The last [`MAX_REFUNDABLE`] sessions that captured money, by session.
    #[serde(default)]
    pub captures: BTreeMap<SessionId, Captured>,
}

/// The day number (local days since the epoch) of a timestamp.
pub fn day_of(at: Millis, offset_s: i64) -> u32 {
    ((at as i64 / 1000 + offset_s).max(0) / 86_400) as u32
}

impl State {
    /// A fresh state with `catalog` (used only when the journal is empty).
    pub fn new(catalog: Catalog, day_offset_s: i64) -> Self {
        State {
            catalog,
            last_sid: 0,
            open: None,
            counters: Counters::default(),
            ledger: OfflineLedger::default(),
            deny: BTreeSet::new(),
            door_open: false,
            face_enrolled: BTreeMap::new(),
            day_offset_s,
            planogram_source: String::new(),
            accepted_auth_refs: BTreeMap::new(),
            pending_stray_voids: BTreeMap::new(),
            seen_commands: BTreeMap::new(),
            config_planogram_source: String::new(),
            captures: BTreeMap::new(),
        }
    }

    /// The config planogram source last applied (for journals written before
    /// [`State::config_planogram_source`] existed, the last non-remote source).
    pub fn config_source(&self) -> &str {
        if self.config_planogram_source.is_empty() && !self.planogram_source.starts_with("cmd:") {
            &self.planogram_source
        } else {
            &self.config_planogram_source
        }
    }

    fn session_mut(&mut self, sid: SessionId) -> Option<&mut OpenSession> {
        self.open.as_mut().filter(|s| s.sid == sid)
    }

    /// Applies one journal record. Records that name an unknown slot or a session that is
    /// not open change nothing (the verifier reports them).
    pub fn apply(&mut self, st: &Stamped) {
        let at = st.at;
        match &st.record {
            Record::Boot { .. } | Record::Declined { .. } | Record::Alert { .. } => {
                if let Record::Alert {
                    kind: super::record::AlertKind::StrayAuthorisation,
                    sid: Some(sid),
                    ..
                } = &st.record
                {
                    self.pending_stray_voids.retain(|_, (s, _, _)| s != sid);
                }
                if let Record::Declined { reason, .. } = &st.record {
                    let deny = matches!(reason, super::record::DeclineReason::DenyListed);
                    self.counters.each(|c| {
                        c.declines += 1;
                        if deny {
                            c.denied_credentials += 1;
                        }
                    });
                }
            }
            Record::Planogram { catalog, source } => {
                self.catalog = catalog.clone();
                self.planogram_source = source.clone();
                if !source.starts_with("cmd:") {
                    self.config_planogram_source = source.clone();
                }
            }
            Record::SessionOpened { sid } => {
                self.last_sid = (*sid).max(self.last_sid);
                self.open = Some(OpenSession {
                    sid: *sid,
                    items: Vec::new(),
                    checked_out: false,
                    hold: None,
                    in_flight: None,
                    capture: None,
                    void: None,
                });
            }
            Record::CheckedOut { sid, items, .. } => {
                if let Some(s) = self.session_mut(*sid) {
                    s.items = items
                        .iter()
                        .map(|l| SessionItem {
                            line: l.clone(),
                            status: ItemStatus::Pending,
                        })
                        .collect();
                    s.checked_out = true;
                }
            }
            Record::Authorised {
                sid,
                amount,
                method,
                credential,
                offline,
                auth_ref,
            } => {
                let day = day_of(at, self.day_offset_s);
                self.ledger.uses.retain(|_, (d, _)| *d >= day);
                let e = self
                    .ledger
                    .uses
                    .entry(credential.clone())
                    .or_insert((day, 0));
                e.1 += 1;
                if *offline {
                    self.ledger.unsettled_offline += amount;
                    self.ledger.unsettled_by_session.insert(*sid, *amount);
                }
                self.accepted_auth_refs.retain(|_, d| *d + 1 >= day);
                self.accepted_auth_refs.insert(auth_ref.clone(), day);
                if let Some(s) = self.session_mut(*sid) {
                    s.hold = Some(Hold {
                        amount: *amount,
                        method: *method,
                        credential: credential.clone(),
                        offline: *offline,
                        auth_ref: auth_ref.clone(),
                    });
                }
            }
            Record::VendIntent {
                sid, item, attempt, ..
            } => {
                if let Some(s) = self.session_mut(*sid) {
                    s.in_flight = Some((*item, *attempt));
                }
            }
            Record::VendResult {
                sid,
                item,
                outcome,
                slot,
                ..
            } => {
                self.take_drops(slot, outcome);
                if let Some(s) = self.session_mut(*sid) {
                    s.in_flight = None;
                    if let (VendOutcome::Delivered { drops }, Some(it)) =
                        (outcome, s.items.get_mut(*item as usize))
                    {
                        it.status = ItemStatus::Delivered { drops: *drops };
                    }
                }
            }
            Record::LateVendResult { slot, outcome, .. } => self.take_drops(slot, outcome),
            Record::InterruptedVend { sid, .. } => {
                if let Some(s) = self.session_mut(*sid) {
                    s.in_flight = None;
                }
            }
            Record::ItemFailed {
                sid, item, reason, ..
            } => {
                self.counters.each(|c| c.failed_vends += 1);
                if let Some(s) = self.session_mut(*sid) {
                    if let Some(it) = s.items.get_mut(*item as usize) {
                        it.status = ItemStatus::Failed {
                            reason: reason.clone(),
                        };
                    }
                }
            }
            Record::Capture {
                sid, amount, key, ..
            } => self.apply_capture(*sid, *amount, key),
            Record::Void {
                sid, amount, key, ..
            } => {
                let mut offline = false;
                if let Some(s) = self.session_mut(*sid) {
                    s.void = Some((*amount, key.clone()));
                    offline = s.hold.as_ref().is_some_and(|h| h.offline);
                }
                if offline {
                    self.ledger.unsettled_offline -= amount;
                    if let Some(v) = self.ledger.unsettled_by_session.get_mut(sid) {
                        *v -= amount;
                    }
                }
            }
            Record::StrayAuthVoided {
                sid,
                amount,
                auth_ref,
                key,
            } => {
                self.pending_stray_voids
                    .insert(key.clone(), (*sid, *amount, auth_ref.clone()));
            }
            Record::SessionClosed { sid, .. } => {
                if self.open.as_ref().is_some_and(|s| s.sid == *sid) {
                    self.open = None;
                }
            }
            Record::StockSet { slot, count, .. } => {
                if let Some(s) = self.catalog.slots.get_mut(slot) {
                    s.stock = *count;
                }
            }
            Record::PriceSet { slot, price } => {
                if let Some(s) = self.catalog.slots.get_mut(slot) {
                    s.price = *price;
                }
            }
            Record::SlotEnabled { slot, enabled } => {
                if let Some(s) = self.catalog.slots.get_mut(slot) {
                    s.enabled = *enabled;
                }
            }
            Record::SlotFaulted { slot, reason } => {
                if let Some(s) = self.catalog.slots.get_mut(slot) {
                    s.fault = Some(reason.clone());
                }
            }
            Record::FaultCleared { slot } => {
                if let Some(s) = self.catalog.slots.get_mut(slot) {
                    s.fault = None;
                }
            }
            Record::Door { open } => {
                if *open && !self.door_open {
                    self.counters.each(|c| c.door_openings += 1);
                }
                self.door_open = *open;
            }
            Record::CountersReset => {
                self.counters.since_reset = CounterSet::default();
                self.counters.resets += 1;
            }
            Record::RemoteCommand {
                id,
                nonce,
                expires_at,
                ok,
                code,
                message,
                ..
            } => {
                self.seen_commands.retain(|_, (exp, ..)| *exp >= at);
                let v = (*expires_at, *ok, code.clone(), message.clone());
                self.seen_commands.insert(format!("id:{id}"), v.clone());
                self.seen_commands.insert(format!("nonce:{nonce}"), v);
            }
            Record::OfflineUploaded { sid } => {
                if let Some(v) = self.ledger.unsettled_by_session.remove(sid) {
                    self.ledger.unsettled_offline -= v;
                }
            }
            Record::Refund { sid, amount, .. } => {
                if let Some(c) = self.captures.get_mut(sid) {
                    c.refunded += amount;
                }
                self.counters.each(|c| c.refunds.add(1, *amount));
            }
            Record::Unlock { .. } => {}
            Record::DenyList { credential, add } => {
                if *add {
                    self.deny.insert(credential.clone());
                } else {
                    self.deny.remove(credential);
                }
            }
            Record::FaceEnrolled {
                account,
                masked_name,
                ..
            } => {
                self.face_enrolled
                    .insert(account.clone(), masked_name.clone());
            }
            Record::TestVend { .. } => {}
            Record::TestVendResult { slot, outcome } => self.take_drops(slot, outcome),
            Record::FaceErased { account, .. } => {
                self.face_enrolled.remove(account);
            }
        }
    }

    /// Stock falls by the confirmed drops, never below zero.
    fn take_drops(&mut self, slot: &SlotId, outcome: &VendOutcome) {
        let drops = outcome.confirmed_drops();
        if let Some(s) = self.catalog.slots.get_mut(slot) {
            s.stock = s.stock.saturating_sub(drops);
        }
    }

    fn apply_capture(&mut self, sid: SessionId, amount: i64, key: &str) {
        let Some(s) = self.session_mut(sid) else {
            return;
        };
        s.capture = Some((amount, key.to_string()));
        let Some((method, auth_ref)) = s.hold.as_ref().map(|h| (h.method, h.auth_ref.clone()))
        else {
            return;
        };
        if amount > 0 {
            self.captures.insert(
                sid,
                Captured {
                    amount,
                    refunded: 0,
                    auth_ref,
                },
            );
            while self.captures.len() > MAX_REFUNDABLE {
                self.captures.pop_first();
            }
        }
        let Some(s) = self.session_mut(sid) else {
            return;
        };
        let delivered: Vec<(SlotId, i64)> = s
            .items
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Delivered { .. }))
            .map(|i| (i.line.slot.clone(), i.line.price))
            .collect();
        if delivered.is_empty() {
            return;
        }
        self.counters.each(|c| {
            for (slot, price) in &delivered {
                c.by_slot.entry(slot.clone()).or_default().add(1, *price);
            }
            c.by_method
                .entry(method)
                .or_default()
                .add(delivered.len() as u64, amount);
            c.paid.add(delivered.len() as u64, amount);
            c.sales += 1;
        });
    }
}
