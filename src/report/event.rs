//! Journal records → MQTT event reports (`events/<kind>`), without any I/O.
//!
//! Why: the journal is the system of record and MQTT delivery is at-least-once, so reports
//! are *derived* from journal records rather than queued separately. A [`Reporter`] is fed
//! every record in journal order and answers with the [`Report`]s that record causes. Each
//! report carries the record's sequence number, and its `event_id` is
//! `"<machine_id>:<seq>"`, so re-deriving the same records after a restart yields the same
//! ids and consumers can de-duplicate. The schema of every payload is
//! `docs/events.schema.json` (version [`SCHEMA_VERSION`]).
//!
//! What is never reported: credential hashes, card identifiers, authorisation references,
//! face data or any secret. Only the fields listed on [`EventBody`] leave the machine.
//!
//! # Memory
//! The reporter keeps one entry per slot (product, price, stock) and the context of the one
//! open session (its checked-out items, which were delivered, the hold's method and offline
//! flag, the released amount). A new `session_opened` replaces the old context and a
//! `session_closed` drops it, so memory does not grow with the journal.
//!
//! # Order of calls, and warming up after a restart
//! 1. Build it with [`Reporter::new`].
//! 2. Bring its context to the outbox cursor *without emitting*, by one of:
//!    - [`Reporter::rebuild_from`] over every record from the start of the journal up to
//!      and including the cursor (cheap: no I/O, a few map updates per record); or
//!    - [`Reporter::seed`] with a [`State`] folded up to some sequence `s <= cursor` (a
//!      checkpoint that is not newer than the cursor), then [`Reporter::rebuild_from`]
//!      over the records `s+1 ..= cursor`; or, when neither is at hand,
//!    - [`Reporter::seed`] with the latest state's catalog for product names (stock may be
//!      off until the next planogram or count) and [`Reporter::rebuild_from`] over the
//!      records from the last `session_opened` at or before the cursor.
//! 3. [`Reporter::feed`] every record after the cursor, in order, and hand the reports to
//!    the outbox (`outbox.offer(seq, reporter.feed(seq, &st))`).

use crate::core::catalog::{Catalog, SlotId};
use crate::core::money::Currency;
use crate::core::record::{
    AlertKind, CloseReason, DeclineReason, LineItem, Millis, PaymentMethod, Record, SessionId,
    Stamped,
};
use crate::core::state::{ItemStatus, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the event payload schema (`schema` field; `docs/events.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// One message to publish, relative to the machine's topic root.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Topic below the root `vend/v1/<site>/<machine>/`, e.g. `events/sale`.
    pub topic_suffix: String,
    /// The JSON payload (an [`Event`] for `events/*`).
    pub payload: serde_json::Value,
    /// Journal sequence number of the record it was derived from.
    pub seq: u64,
    /// Publish with the MQTT retain flag? (false for events.)
    pub retain: bool,
}

impl Report {
    /// The payload's `event_id`, if it has one.
    pub fn event_id(&self) -> Option<&str> {
        self.payload.get("event_id").and_then(|v| v.as_str())
    }
}

/// The envelope every event payload has, with its kind-specific body flattened in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// `"<machine_id>:<seq>"`: stable across resends; consumers de-duplicate by it.
    pub event_id: String,
    /// Journal sequence number.
    pub seq: u64,
    /// When the record was decided, ms since the Unix epoch.
    pub ts: Millis,
    /// The same instant in RFC 3339 UTC with milliseconds (`2023-11-14T22:13:20.000Z`).
    pub ts_iso: String,
    /// Machine id.
    pub machine: String,
    /// Site id.
    pub site: String,
    /// Kind (`kind` field) and kind-specific fields.
    #[serde(flatten)]
    pub body: EventBody,
}

/// One item of a sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleItem {
    /// Slot it was vended from.
    pub slot: SlotId,
    /// Product code, when the planogram was known.
    pub product: Option<String>,
    /// Price at checkout, minor units.
    pub price: i64,
    /// Confirmed by the drop sensor (and charged)?
    pub delivered: bool,
}

/// Where a refund came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundSource {
    /// The undelivered part of a session's hold was released.
    Void,
    /// An approval that came too late was voided whole.
    StrayAuthVoided,
    /// An operator refunded captured money (a remote `refund` command).
    Refund,
}

/// Raised or cleared.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultState {
    /// The slot was taken out of service.
    Raised,
    /// An operator cleared the fault.
    Cleared,
}

/// One slot as a planogram defines it (in a `config` event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSlot {
    /// Slot.
    pub slot: SlotId,
    /// Product code.
    pub product: String,
    /// Price, minor units.
    pub price: i64,
    /// Capacity.
    pub capacity: u32,
    /// Stock.
    pub stock: u32,
    /// Enabled?
    pub enabled: bool,
}

/// What a `config` event changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ConfigChange {
    /// The whole planogram was (re)defined.
    Planogram {
        /// Where it came from (`config:<hash>` or a command id).
        source: String,
        /// Every slot.
        slots: Vec<ConfigSlot>,
    },
    /// A slot's price changed.
    Price {
        /// Slot.
        slot: SlotId,
        /// New price, minor units.
        price: i64,
        /// Price before, when known.
        previous: Option<i64>,
    },
    /// A slot was enabled or disabled.
    SlotEnabled {
        /// Slot.
        slot: SlotId,
        /// New state.
        enabled: bool,
    },
}

/// The kind-specific part of an event; `kind` names it and the topic (`events/<kind>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A session captured money (`session_closed` with `captured > 0`).
    Sale {
        /// Session.
        sid: SessionId,
        /// How the session ended.
        reason: CloseReason,
        /// Checked-out items (empty if the context was lost, see the module docs).
        items: Vec<SaleItem>,
        /// Charged, minor units.
        captured: i64,
        /// Released from the hold (not charged), minor units.
        released: i64,
        /// ISO 4217 code.
        currency: String,
        /// Payment method, when the hold was seen.
        method: Option<PaymentMethod>,
        /// Approved by the offline policy?
        offline: bool,
    },
    /// An item will not be delivered and is not charged.
    VendFailed {
        /// Session.
        sid: SessionId,
        /// Item index in the checked-out items.
        item: u32,
        /// Slot.
        slot: SlotId,
        /// Product code, when known.
        product: Option<String>,
        /// Why.
        reason: String,
    },
    /// Money given back: a hold released or a stray approval voided.
    Refund {
        /// Which.
        source: RefundSource,
        /// Session.
        sid: SessionId,
        /// Amount, minor units (> 0).
        amount: i64,
        /// ISO 4217 code.
        currency: String,
        /// Idempotency key of the void.
        key: String,
    },
    /// The service door opened or closed.
    Door {
        /// Open now?
        open: bool,
    },
    /// A slot fault was raised or cleared.
    Fault {
        /// Slot.
        slot: SlotId,
        /// Raised or cleared.
        state: FaultState,
        /// Why (raised only).
        reason: Option<String>,
    },
    /// A delivered vend left a slot at or below the low-stock threshold.
    StockLow {
        /// Slot.
        slot: SlotId,
        /// Product code, when known.
        product: Option<String>,
        /// Items left.
        stock: u32,
        /// The configured threshold.
        threshold: u32,
    },
    /// Something an operator must look at.
    Alert {
        /// Alert kind.
        alert: AlertKind,
        /// Plain-language description.
        message: String,
        /// Session, if one.
        sid: Option<SessionId>,
        /// Slot, if one.
        slot: Option<SlotId>,
    },
    /// A payment was approved by the offline policy (to be uploaded when the link returns).
    OfflineApproval {
        /// Session.
        sid: SessionId,
        /// Held amount, minor units.
        amount: i64,
        /// ISO 4217 code.
        currency: String,
        /// Payment method.
        method: PaymentMethod,
    },
    /// A credential was declined.
    Declined {
        /// Session.
        sid: SessionId,
        /// Payment method.
        method: PaymentMethod,
        /// The reason's kind only (`deny_listed`, `over_floor_limit`, …).
        reason: String,
    },
    /// Operator configuration changed.
    Config {
        /// What changed.
        #[serde(flatten)]
        change: ConfigChange,
    },
}

impl EventBody {
    /// The `kind` name, also the last topic level.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Sale { .. } => "sale",
            EventBody::VendFailed { .. } => "vend_failed",
            EventBody::Refund { .. } => "refund",
            EventBody::Door { .. } => "door",
            EventBody::Fault { .. } => "fault",
            EventBody::StockLow { .. } => "stock_low",
            EventBody::Alert { .. } => "alert",
            EventBody::OfflineApproval { .. } => "offline_approval",
            EventBody::Declined { .. } => "declined",
            EventBody::Config { .. } => "config",
        }
    }
}

/// Who this machine is and how it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReporterConfig {
    /// Machine id (also the last level of the topic root).
    pub machine_id: String,
    /// Site id.
    pub site: String,
    /// Currency of amounts until a planogram names one.
    pub currency: Currency,
    /// A `stock_low` event is sent when a delivered vend leaves a slot with this many
    /// items or fewer (e.g. 2).
    pub low_stock: u32,
}

/// What the reporter remembers of a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotCtx {
    product: String,
    price: i64,
    stock: u32,
}

/// What the reporter remembers of the open session.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SessionCtx {
    sid: SessionId,
    /// Checked-out items with the product code at checkout.
    items: Vec<(LineItem, Option<String>)>,
    /// Per item: confirmed by the drop sensor?
    delivered: Vec<bool>,
    /// (amount, method, offline) of the hold.
    hold: Option<(i64, PaymentMethod, bool)>,
    /// Amount of the session's void record.
    released: Option<i64>,
}

impl SessionCtx {
    fn new(sid: SessionId) -> Self {
        SessionCtx {
            sid,
            items: Vec::new(),
            delivered: Vec::new(),
            hold: None,
            released: None,
        }
    }
}

/// Derives event reports from journal records. See the module docs for the call order.
///
/// Design: methods only update the small context described in the module docs and return
/// reports; nothing here reads a clock or does I/O, so the same records always give the
/// same reports.
#[derive(Clone, Debug)]
pub struct Reporter {
    cfg: ReporterConfig,
    currency: Currency,
    slots: BTreeMap<SlotId, SlotCtx>,
    open: Option<SessionCtx>,
    /// The current hold's payer, for the payment reports to the authoriser:
    /// (session, method, offline, credential hash, authorisation reference).
    payer: Option<(SessionId, PaymentMethod, bool, String, String)>,
}

impl Reporter {
    /// A reporter that knows no slots and no session yet.
    pub fn new(cfg: ReporterConfig) -> Self {
        Reporter {
            currency: cfg.currency,
            cfg,
            slots: BTreeMap::new(),
            open: None,
            payer: None,
        }
    }

    /// Sets the context from a folded [`State`]: catalog (products, prices, stock) and the
    /// open session with its items, deliveries and hold. Use a state folded up to a
    /// sequence at or before the outbox cursor, then warm the records after it.
    pub fn seed(&mut self, state: &State) {
        self.set_catalog(&state.catalog);
        self.open = state.open.as_ref().map(|s| {
            let mut ctx = SessionCtx::new(s.sid);
            for it in &s.items {
                let product = self.product(&it.line.slot);
                ctx.items.push((it.line.clone(), product));
                ctx.delivered
                    .push(matches!(it.status, ItemStatus::Delivered { .. }));
            }
            ctx.hold = s.hold.as_ref().map(|h| (h.amount, h.method, h.offline));
            self.payer = s.hold.as_ref().map(|h| {
                (
                    s.sid,
                    h.method,
                    h.offline,
                    h.credential.clone(),
                    h.auth_ref.clone(),
                )
            });
            ctx.released = s.void.as_ref().map(|v| v.0);
            ctx
        });
    }

    /// Warms the context with records that were already reported (at or before the outbox
    /// cursor), emitting nothing. Records must be in journal order.
    pub fn rebuild_from(&mut self, records: impl IntoIterator<Item = (u64, Stamped)>) {
        for (seq, st) in records {
            self.step(seq, &st, false);
        }
    }

    /// Warms the context with one already-reported record (see [`Reporter::rebuild_from`]).
    pub fn warm(&mut self, seq: u64, st: &Stamped) {
        self.step(seq, st, false);
    }

    /// Feeds the next journal record and returns the reports it causes (at most one for
    /// the current record types; none for records that are not reported).
    pub fn feed(&mut self, seq: u64, st: &Stamped) -> Vec<Report> {
        self.step(seq, st, true)
    }

    /// Number of slots and open sessions remembered (for tests and telemetry).
    pub fn context_size(&self) -> (usize, usize) {
        (self.slots.len(), usize::from(self.open.is_some()))
    }

    fn product(&self, slot: &SlotId) -> Option<String> {
        self.slots.get(slot).map(|s| s.product.clone())
    }

    fn set_catalog(&mut self, catalog: &Catalog) {
        self.currency = catalog.currency;
        self.slots = catalog
            .slots
            .iter()
            .map(|(id, s)| {
                let ctx = SlotCtx {
                    product: s.product.clone(),
                    price: s.price,
                    stock: s.stock,
                };
                (id.clone(), ctx)
            })
            .collect();
    }

    /// The open session's context if it is `sid`; a record for a session the reporter
    /// did not see open (a short warm-up window) starts a context for it.
    fn session(&mut self, sid: SessionId) -> &mut SessionCtx {
        if self.open.as_ref().is_none_or(|s| s.sid != sid) {
            self.open = Some(SessionCtx::new(sid));
        }
        self.open.get_or_insert_with(|| SessionCtx::new(sid))
    }

    /// Stock falls by the confirmed drops; returns the slot's new stock if it fell.
    fn take_drops(&mut self, slot: &SlotId, drops: u32) -> Option<u32> {
        let s = self.slots.get_mut(slot).filter(|_| drops > 0)?;
        s.stock = s.stock.saturating_sub(drops);
        Some(s.stock)
    }

    fn stock_low(&self, slot: &SlotId, stock: Option<u32>) -> Option<EventBody> {
        let stock = stock.filter(|s| *s <= self.cfg.low_stock)?;
        Some(EventBody::StockLow {
            slot: slot.clone(),
            product: self.product(slot),
            stock,
            threshold: self.cfg.low_stock,
        })
    }

    fn step(&mut self, seq: u64, st: &Stamped, emit: bool) -> Vec<Report> {
        if let Record::RemoteCommand {
            id,
            name,
            ok,
            code,
            message,
            ..
        } = &st.record
        {
            // The result of a signed command goes back on its own result topic (the same
            // shape as `command::CommandResult`), durably, through the outbox.
            let payload = serde_json::json!({
                "v": 1, "id": id, "name": name, "ok": ok, "code": code, "message": message,
                "at": st.at, "seq": seq, "machine": self.cfg.machine_id,
                "event_id": format!("{}:{seq}", self.cfg.machine_id),
            });
            let topic_suffix = format!("cmd/{name}/result");
            return if emit {
                vec![Report {
                    topic_suffix,
                    payload,
                    seq,
                    retain: false,
                }]
            } else {
                Vec::new()
            };
        }
        if let Record::Authorised {
            sid,
            method,
            credential,
            offline,
            auth_ref,
            ..
        } = &st.record
        {
            self.payer = Some((
                *sid,
                *method,
                *offline,
                credential.clone(),
                auth_ref.clone(),
            ));
        }
        let payment = self.payment(seq, st);
        let body = self.apply(&st.record);
        let mut out = match body {
            Some(body) if emit => vec![self.report(seq, st.at, body)],
            _ => Vec::new(),
        };
        if emit {
            out.extend(payment);
        }
        out
    }

    /// Capture, void and refund go to the operator's authoriser on `payments/capture`,
    /// `payments/void` and `payments/refund`, idempotent by key. This is the upload of offline approvals: an
    /// offline capture names the credential hash (a keyed hash, never the card's
    /// identifier), because the authoriser holds no authorisation for it.
    fn payment(&self, seq: u64, st: &Stamped) -> Option<Report> {
        let (kind, sid, amount, key, auth_ref) = match &st.record {
            Record::Capture {
                sid,
                amount,
                key,
                auth_ref,
            } => ("capture", sid, amount, key, auth_ref),
            Record::Void {
                sid,
                amount,
                key,
                auth_ref,
            } => ("void", sid, amount, key, auth_ref),
            Record::Refund {
                sid,
                amount,
                key,
                auth_ref,
            } => ("refund", sid, amount, key, auth_ref),
            _ => return None,
        };
        let payer = self.payer.as_ref().filter(|p| p.0 == *sid);
        let offline = payer.is_some_and(|p| p.2);
        let payload = serde_json::json!({
            "v": 1,
            "event_id": format!("{}:{seq}:{kind}", self.cfg.machine_id),
            "seq": seq,
            "ts": st.at,
            "machine": self.cfg.machine_id,
            "site": self.cfg.site,
            "sid": sid,
            "key": key,
            "amount": amount,
            "currency": self.currency.code(),
            "auth_ref": auth_ref,
            "offline": offline,
            "method": payer.map(|p| p.1.as_str()),
            "credential": payer.filter(|p| p.2).map(|p| p.3.clone()),
        });
        Some(Report {
            topic_suffix: format!("payments/{kind}"),
            payload,
            seq,
            retain: false,
        })
    }

    /// Updates the context with one record and returns the event it causes, if any.
    fn apply(&mut self, record: &Record) -> Option<EventBody> {
        let code = self.currency.code().to_string();
        match record {
            Record::Planogram { catalog, source } => {
                self.set_catalog(catalog);
                let slots = catalog
                    .slots
                    .values()
                    .map(|s| ConfigSlot {
                        slot: s.id.clone(),
                        product: s.product.clone(),
                        price: s.price,
                        capacity: s.capacity,
                        stock: s.stock,
                        enabled: s.enabled,
                    })
                    .collect();
                let source = source.clone();
                Some(config(ConfigChange::Planogram { source, slots }))
            }
            Record::SessionOpened { sid } => {
                self.open = Some(SessionCtx::new(*sid));
                None
            }
            Record::CheckedOut { sid, items, .. } => {
                let with_products: Vec<_> = items
                    .iter()
                    .map(|l| (l.clone(), self.product(&l.slot)))
                    .collect();
                let s = self.session(*sid);
                s.delivered = vec![false; with_products.len()];
                s.items = with_products;
                None
            }
            Record::Declined {
                sid,
                method,
                reason,
            } => Some(EventBody::Declined {
                sid: *sid,
                method: *method,
                reason: decline_kind(reason).to_string(),
            }),
            Record::Authorised {
                sid,
                amount,
                method,
                offline,
                ..
            } => {
                self.session(*sid).hold = Some((*amount, *method, *offline));
                offline.then(|| EventBody::OfflineApproval {
                    sid: *sid,
                    amount: *amount,
                    currency: code,
                    method: *method,
                })
            }
            Record::VendResult {
                sid,
                item,
                slot,
                outcome,
                ..
            } => {
                let drops = outcome.confirmed_drops();
                if drops > 0 {
                    if let Some(d) = self
                        .open
                        .as_mut()
                        .filter(|s| s.sid == *sid)
                        .and_then(|s| s.delivered.get_mut(*item as usize))
                    {
                        *d = true;
                    }
                }
                let stock = self.take_drops(slot, drops);
                self.stock_low(slot, stock)
            }
            Record::LateVendResult { slot, outcome, .. } => {
                let stock = self.take_drops(slot, outcome.confirmed_drops());
                self.stock_low(slot, stock)
            }
            Record::ItemFailed {
                sid,
                item,
                slot,
                reason,
            } => Some(EventBody::VendFailed {
                sid: *sid,
                item: *item,
                slot: slot.clone(),
                product: self.product(slot),
                reason: reason.clone(),
            }),
            Record::Void {
                sid, amount, key, ..
            } => {
                if let Some(s) = self.open.as_mut().filter(|s| s.sid == *sid) {
                    s.released = Some(*amount);
                }
                (*amount > 0).then(|| EventBody::Refund {
                    source: RefundSource::Void,
                    sid: *sid,
                    amount: *amount,
                    currency: code,
                    key: key.clone(),
                })
            }
            Record::Refund {
                sid, amount, key, ..
            } => Some(EventBody::Refund {
                source: RefundSource::Refund,
                sid: *sid,
                amount: *amount,
                currency: code,
                key: key.clone(),
            }),
            Record::StrayAuthVoided {
                sid, amount, key, ..
            } => (*amount > 0).then(|| EventBody::Refund {
                source: RefundSource::StrayAuthVoided,
                sid: *sid,
                amount: *amount,
                currency: code,
                key: key.clone(),
            }),
            Record::SessionClosed {
                sid,
                reason,
                captured,
            } => {
                let ctx = match self.open.take() {
                    Some(s) if s.sid == *sid => Some(s),
                    other => {
                        self.open = other;
                        None
                    }
                };
                (*captured > 0).then(|| sale(*sid, *reason, *captured, ctx, code))
            }
            Record::StockSet { slot, count, .. } => {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.stock = *count;
                }
                None
            }
            Record::PriceSet { slot, price } => {
                let previous = self.slots.get_mut(slot).map(|s| {
                    let old = s.price;
                    s.price = *price;
                    old
                });
                Some(config(ConfigChange::Price {
                    slot: slot.clone(),
                    price: *price,
                    previous,
                }))
            }
            Record::SlotEnabled { slot, enabled } => Some(config(ConfigChange::SlotEnabled {
                slot: slot.clone(),
                enabled: *enabled,
            })),
            Record::SlotFaulted { slot, reason } => Some(EventBody::Fault {
                slot: slot.clone(),
                state: FaultState::Raised,
                reason: Some(reason.clone()),
            }),
            Record::FaultCleared { slot } => Some(EventBody::Fault {
                slot: slot.clone(),
                state: FaultState::Cleared,
                reason: None,
            }),
            Record::Door { open } => Some(EventBody::Door { open: *open }),
            Record::Alert {
                kind,
                sid,
                slot,
                message,
            } => Some(EventBody::Alert {
                alert: *kind,
                message: message.clone(),
                sid: *sid,
                slot: slot.clone(),
            }),
            // Not reported: the sale, refund and alert events carry what matters of these,
            // and the deny list holds credential hashes, which never leave the machine.
            Record::Boot { .. }
            | Record::VendIntent { .. }
            | Record::InterruptedVend { .. }
            | Record::Capture { .. }
            | Record::CountersReset
            | Record::DenyList { .. }
            | Record::FaceEnrolled { .. }
            | Record::FaceErased { .. }
            | Record::TestVend { .. }
            | Record::TestVendResult { .. }
            | Record::RemoteCommand { .. }
            | Record::OfflineUploaded { .. }
            | Record::Unlock { .. } => None,
        }
    }

    fn report(&self, seq: u64, at: Millis, body: EventBody) -> Report {
        let topic_suffix = format!("events/{}", body.kind());
        let event = Event {
            schema: SCHEMA_VERSION,
            event_id: format!("{}:{seq}", self.cfg.machine_id),
            seq,
            ts: at,
            ts_iso: rfc3339_utc_ms(at),
            machine: self.cfg.machine_id.clone(),
            site: self.cfg.site.clone(),
            body,
        };
        // Serialising plain structs, strings and integers into a Value cannot fail.
        let payload = serde_json::to_value(&event).unwrap_or_default();
        Report {
            topic_suffix,
            payload,
            seq,
            retain: false,
        }
    }
}

fn config(change: ConfigChange) -> EventBody {
    EventBody::Config { change }
}

fn sale(
    sid: SessionId,
    reason: CloseReason,
    captured: i64,
    ctx: Option<SessionCtx>,
    currency: String,
) -> EventBody {
    let ctx = ctx.unwrap_or_else(|| SessionCtx::new(sid));
    let items = ctx
        .items
        .iter()
        .zip(&ctx.delivered)
        .map(|((line, product), delivered)| SaleItem {
            slot: line.slot.clone(),
            product: product.clone(),
            price: line.price,
            delivered: *delivered,
        })
        .collect();
    let released = ctx
        .released
        .or_else(|| ctx.hold.map(|(amount, _, _)| amount - captured))
        .unwrap_or(0);
    EventBody::Sale {
        sid,
        reason,
        items,
        captured,
        released,
        currency,
        method: ctx.hold.map(|h| h.1),
        offline: ctx.hold.is_some_and(|h| h.2),
    }
}

/// The kind name of a decline reason (the authoriser's free text is not reported).
fn decline_kind(reason: &DeclineReason) -> &'static str {
    match reason {
        DeclineReason::DenyListed => "deny_listed",
        DeclineReason::OverFloorLimit { .. } => "over_floor_limit",
        DeclineReason::OfflineTotalExceeded { .. } => "offline_total_exceeded",
        DeclineReason::DailyUsesExceeded { .. } => "daily_uses_exceeded",
        DeclineReason::NeedsOnline => "needs_online",
        DeclineReason::NotPaidInTime => "not_paid_in_time",
        DeclineReason::Authoriser { .. } => "authoriser",
    }
}

/// RFC 3339 UTC with milliseconds for ms since the Unix epoch, e.g.
/// `2023-11-14T22:13:20.000Z` (proleptic Gregorian calendar; no clock crate needed).
pub fn rfc3339_utc_ms(ms: Millis) -> String {
    let secs = ms / 1000;
    let sod = secs % 86_400;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms % 1000
    )
}

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic Gregorian; Howard
/// Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "events/event_tests.rs"]
mod tests;
