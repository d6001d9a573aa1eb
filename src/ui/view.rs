//! What the shopper's page and the API see: a serialisable snapshot of the controller,
//! published after every batch of commands.

use crate::core::state::ItemStatus;
use crate::core::{Controller, DeclineReason, Millis, Phase, Prompt, Receipt};
use serde::Serialize;

/// Everything the API shows, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The session.
    pub session: SessionView,
    /// The catalog.
    pub catalog: CatalogView,
    /// Audit counters (lifetime and since the last reset).
    pub counters: crate::core::state::Counters,
    /// Remote commands seen and not yet expired (for replay checks off the core loop).
    #[serde(skip)]
    pub seen_commands: std::collections::BTreeMap<String, (Millis, bool, String, String)>,
}

/// The live session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// Phase name (`idle`, `shopping`, …).
    pub phase: &'static str,
    /// Item index and attempt while vending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vending: Option<VendingView>,
    /// Session id, when one is open.
    pub sid: Option<u64>,
    /// Cart lines (before payment).
    pub cart: Vec<CartLineView>,
    /// Cart or hold total, minor units.
    pub total: i64,
    /// Currency code.
    pub currency: String,
    /// Checked-out items and their status.
    pub items: Vec<ItemView>,
    /// Current prompt.
    pub prompt: Prompt,
    /// The prompt's catalogue entry and its arguments (what the page shows and the voice
    /// says): `{"id": "declined.over_floor_limit", "args": {"amount": 200}}`.
    pub prompt_key: serde_json::Value,
    /// Milliseconds until the current phase times out.
    pub deadline_in_ms: Option<u64>,
    /// The shopper was warned of the time-out.
    pub warned: bool,
    /// The receipt, while shown.
    pub receipt: Option<Receipt>,
    /// The last decline in this session.
    pub last_decline: Option<DeclineReason>,
    /// The method being authorised (`merchant_qr`: the dynamic QR is on screen).
    pub paying_by: Option<crate::core::PaymentMethod>,
    /// Link to the authoriser up?
    pub online: bool,
    /// Service door open?
    pub door_open: bool,
    /// The last operator test vend: slot and outcome.
    pub last_test_vend: Option<(String, crate::core::VendOutcome)>,
    /// Last journal sequence number written.
    pub journal_seq: u64,
}

/// Vending progress.
#[derive(Debug, Clone, Serialize)]
pub struct VendingView {
    /// Item index from 0.
    pub item: u32,
    /// Attempt from 1.
    pub attempt: u32,
}

/// A cart line.
#[derive(Debug, Clone, Serialize)]
pub struct CartLineView {
    /// Slot.
    pub slot: String,
    /// Product name.
    pub name: String,
    /// Quantity.
    pub qty: u32,
    /// Unit price.
    pub price: i64,
}

/// A checked-out item.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    /// Slot.
    pub slot: String,
    /// Price.
    pub price: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    /// Failure reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The catalog for the shopper and the operator.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogView {
    /// Currency code.
    pub currency: String,
    /// Decimals of the minor unit.
    pub exponent: u32,
    /// Slots in order.
    pub slots: Vec<SlotView>,
}

/// One slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    /// Slot name.
    pub id: String,
    /// Product code.
    pub product: String,
    /// Product name.
    pub name: String,
    /// Price, minor units.
    pub price: i64,
    /// Stock the controller believes.
    pub stock: u32,
    /// Capacity.
    pub capacity: u32,
    /// Enabled by the operator.
    pub enabled: bool,
    /// Fault, if any.
    pub fault: Option<String>,
    /// Can be bought now.
    pub available: bool,
}

/// Builds the snapshot.
pub fn snapshot(ctl: &Controller, now: Millis, journal_seq: u64) -> Snapshot {
    let st = ctl.state();
    let cat = &st.catalog;
    let name = |pid: &str| {
        cat.products
            .get(pid)
            .map_or_else(|| pid.to_string(), |p| p.name.clone())
    };
    let cart: Vec<CartLineView> = ctl
        .cart()
        .iter()
        .map(|(s, q)| {
            let slot = &cat.slots[s];
            CartLineView {
                slot: s.to_string(),
                name: name(&slot.product),
                qty: *q,
                price: slot.price,
            }
        })
        .collect();
    let items: Vec<ItemView> = st
        .open
        .as_ref()
        .map(|o| {
            o.items
                .iter()
                .map(|i| {
                    let (status, reason) = match &i.status {
                        ItemStatus::Pending => ("pending", None),
                        ItemStatus::Delivered { .. } => ("delivered", None),
                        ItemStatus::Failed { reason } => ("failed", Some(reason.clone())),
                    };
                    ItemView {
                        slot: i.line.slot.to_string(),
                        price: i.line.price,
                        status,
                        reason,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let total = if items.is_empty() {
        cart.iter().map(|l| l.price * i64::from(l.qty)).sum()
    } else {
        items.iter().map(|i| i.price).sum()
    };
    let phase = ctl.phase();
    let session = SessionView {
        phase: phase.name(),
        vending: match phase {
            Phase::Vending { item, attempt } => Some(VendingView { item, attempt }),
            _ => None,
        },
        sid: st
            .open
            .as_ref()
            .map(|o| o.sid)
            .or(ctl.receipt().map(|r| r.sid)),
        cart,
        total,
        currency: cat.currency.to_string(),
        items,
        prompt: ctl.prompt().clone(),
        prompt_key: {
            let (id, args) = crate::voice::catalog::prompt_key(ctl.prompt());
            serde_json::json!({"id": id, "args": args.to_json()})
        },
        deadline_in_ms: ctl.deadline().map(|d| d.saturating_sub(now)),
        warned: ctl.warned(),
        receipt: ctl.receipt().cloned(),
        last_decline: ctl.last_decline().cloned(),
        paying_by: ctl.pending_method(),
        online: ctl.online(),
        door_open: st.door_open,
        last_test_vend: ctl
            .last_test_vend()
            .map(|(s, o)| (s.to_string(), o.clone())),
        journal_seq,
    };
    let catalog = CatalogView {
        currency: cat.currency.to_string(),
        exponent: cat.currency.exponent(),
        slots: cat
            .slots
            .values()
            .map(|s| SlotView {
                id: s.id.to_string(),
                product: s.product.clone(),
                name: name(&s.product),
                price: s.price,
                stock: s.stock,
                capacity: s.capacity,
                enabled: s.enabled,
                fault: s.fault.clone(),
                available: s.sellable() && s.stock > 0 && !st.door_open,
            })
            .collect(),
    };
    Snapshot {
        session,
        catalog,
        counters: st.counters.clone(),
        seen_commands: st.seen_commands.clone(),
    }
}
