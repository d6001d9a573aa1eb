//! Journal records: the facts and decisions the controller writes ahead of acting.
//!
//! Every change to durable state is one of these records. The live controller and crash
//! recovery change state only through [`State::apply`](super::state::State::apply), so the
//! state after a restart is exactly the fold of the journal.

use super::catalog::{Catalog, SlotId};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. The core never reads a clock: callers pass it in.
pub type Millis = u64;

/// Session number, increasing from 1 over the machine's life.
pub type SessionId = u64;

/// How the shopper paid.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaymentMethod {
    /// A test credential (simulation and commissioning).
    TestCard,
    /// A closed-loop NFC card or token.
    Card,
    /// A code the shopper shows (wallet pay code).
    PayCode,
    /// A dynamic merchant-presented QR code the shopper scans.
    MerchantQr,
    /// Face recognition linked to an account.
    Face,
}

impl PaymentMethod {
    /// Every method, in display order.
    pub const ALL: [PaymentMethod; 5] = [
        PaymentMethod::TestCard,
        PaymentMethod::Card,
        PaymentMethod::PayCode,
        PaymentMethod::MerchantQr,
        PaymentMethod::Face,
    ];

    /// The kebab-case name used in config, JSON and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentMethod::TestCard => "test-card",
            PaymentMethod::Card => "card",
            PaymentMethod::PayCode => "pay-code",
            PaymentMethod::MerchantQr => "merchant-qr",
            PaymentMethod::Face => "face",
        }
    }
}

/// What one motor cycle achieved, as reported by the dispenser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VendOutcome {
    /// The drop sensor confirmed `drops` items (2 = double drop).
    Delivered {
        /// Debounced beam breaks counted.
        drops: u32,
    },
    /// A full motor turn and no drop seen: empty spiral or a missed drop.
    NoDrop,
    /// The motor left home but did not return in time.
    Jammed,
    /// The motor never left its home switch.
    HomeSwitchStuck,
    /// The dispenser did not answer before the controller's watchdog.
    NoAnswer,
    /// The dispenser reported a device error.
    DeviceError {
        /// The error as the adapter described it.
        message: String,
    },
}

impl VendOutcome {
    /// Items confirmed by the drop sensor.
    pub fn confirmed_drops(&self) -> u32 {
        match self {
            VendOutcome::Delivered { drops } => *drops,
            _ => 0,
        }
    }
}

/// Why a payment was declined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeclineReason {
    /// The credential is on the deny list.
    DenyListed,
    /// Offline, and the amount is above the per-transaction floor limit.
    OverFloorLimit {
        /// The limit in minor units.
        limit: i64,
    },
    /// Offline, and the unsettled offline total would pass its cap.
    OfflineTotalExceeded {
        /// The cap in minor units.
        cap: i64,
    },
    /// This credential was used too often today.
    DailyUsesExceeded {
        /// Uses allowed per day.
        limit: u32,
    },
    /// This payment method needs the network, which is down.
    NeedsOnline,
    /// The dynamic QR code shown for the checkout was not paid before its time ran out.
    NotPaidInTime,
    /// The online authoriser declined.
    Authoriser {
        /// Its reason, for the shopper prompt.
        reason: String,
    },
}

/// How a session ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Every item delivered.
    Completed,
    /// Some items delivered, the rest not charged.
    PartlyDelivered,
    /// Nothing delivered, nothing charged.
    NothingDelivered,
    /// The shopper cancelled.
    Cancelled,
    /// The shopper walked away.
    TimedOut,
    /// The machine went out of service (door opened) during the session.
    OutOfService,
    /// Closed by recovery after a restart.
    Recovered,
}

/// Kinds of operator alert.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A slot was taken out of service.
    SlotFault,
    /// A vend's outcome is unknown after a restart; the shopper was not charged.
    InterruptedVend,
    /// A session was closed by recovery after a restart.
    RecoveredSession,
    /// The sensor saw more items than the stock count held.
    StockMismatch,
    /// The service door opened while a motor was running.
    DoorOpenDuringVend,
    /// A deny-listed credential was presented.
    DenyListedCredential,
    /// A dispenser answer arrived after the watchdog gave up on it.
    LateVendResult,
    /// An approval arrived for a session that no longer waits for it; it was voided.
    StrayAuthorisation,
}

/// One cart line expanded to a unit at checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// Slot it is vended from.
    pub slot: SlotId,
    /// Price at checkout, minor units.
    pub price: i64,
}

/// A journal record. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The daemon started.
    Boot {
        /// Firmware version.
        version: String,
    },
    /// The planogram (products, slots, prices, capacities, stock) was (re)defined.
    Planogram {
        /// The whole catalog.
        catalog: Catalog,
        /// Where it came from (`config:<hash>` or a remote command id).
        source: String,
    },
    /// A shopper started a session.
    SessionOpened {
        /// New session id.
        sid: SessionId,
    },
    /// The cart was fixed for payment.
    CheckedOut {
        /// Session.
        sid: SessionId,
        /// One entry per unit.
        items: Vec<LineItem>,
        /// Sum of prices, minor units.
        total: i64,
    },
    /// A credential was declined.
    Declined {
        /// Session.
        sid: SessionId,
        /// Method used.
        method: PaymentMethod,
        /// Why.
        reason: DeclineReason,
    },
    /// The cart total was authorised (held). Must end in one Capture and one Void.
    Authorised {
        /// Session.
        sid: SessionId,
        /// Held amount (the cart total), minor units.
        amount: i64,
        /// Method used.
        method: PaymentMethod,
        /// Keyed hash of the credential, never the raw identifier.
        credential: String,
        /// Decided by the offline policy rather than the online authoriser.
        offline: bool,
        /// Authoriser's reference (or a local one when offline).
        auth_ref: String,
    },
    /// Written and made durable before a motor runs.
    VendIntent {
        /// Session.
        sid: SessionId,
        /// Item index in the checked-out items.
        item: u32,
        /// Attempt, from 1.
        attempt: u32,
        /// Slot.
        slot: SlotId,
    },
    /// The dispenser's answer to a [`Record::VendIntent`].
    VendResult {
        /// Session.
        sid: SessionId,
        /// Item index.
        item: u32,
        /// Attempt.
        attempt: u32,
        /// Slot.
        slot: SlotId,
        /// What happened.
        outcome: VendOutcome,
        /// Motor run time.
        motor_ms: u32,
    },
    /// A dispenser answer that came after the watchdog had given up on that attempt.
    LateVendResult {
        /// Session.
        sid: SessionId,
        /// Item index.
        item: u32,
        /// Attempt.
        attempt: u32,
        /// Slot.
        slot: SlotId,
        /// What happened.
        outcome: VendOutcome,
    },
    /// An attempt whose outcome is unknown because the process stopped (recovery).
    InterruptedVend {
        /// Session.
        sid: SessionId,
        /// Item index.
        item: u32,
        /// Attempt.
        attempt: u32,
        /// Slot.
        slot: SlotId,
    },
    /// An item will not be delivered and is not charged.
    ItemFailed {
        /// Session.
        sid: SessionId,
        /// Item index.
        item: u32,
        /// Slot.
        slot: SlotId,
        /// Why, for the receipt and the operator.
        reason: String,
    },
    /// Money intent: capture what was delivered. Written before the money command.
    Capture {
        /// Session.
        sid: SessionId,
        /// Amount, minor units (0 when nothing was delivered).
        amount: i64,
        /// Idempotency key.
        key: String,
        /// Authorisation it settles.
        auth_ref: String,
    },
    /// Money intent: release the rest of the hold. Written before the money command.
    Void {
        /// Session.
        sid: SessionId,
        /// Amount, minor units (0 when everything was delivered).
        amount: i64,
        /// Idempotency key.
        key: String,
        /// Authorisation it releases.
        auth_ref: String,
    },
    /// An approval that arrived for a session no longer waiting; voided whole.
    StrayAuthVoided {
        /// Session it named.
        sid: SessionId,
        /// Amount approved and voided.
        amount: i64,
        /// Authoriser's reference.
        auth_ref: String,
        /// Idempotency key of the void.
        key: String,
    },
    /// The session ended.
    SessionClosed {
        /// Session.
        sid: SessionId,
        /// How.
        reason: CloseReason,
        /// Captured amount, minor units.
        captured: i64,
    },
    /// Stock count set by an operator (restock or count).
    StockSet {
        /// Slot.
        slot: SlotId,
        /// New count.
        count: u32,
        /// Why.
        reason: String,
    },
    /// Price changed.
    PriceSet {
        /// Slot.
        slot: SlotId,
        /// New price, minor units.
        price: i64,
    },
    /// Slot enabled or disabled by the operator.
    SlotEnabled {
        /// Slot.
        slot: SlotId,
        /// New state.
        enabled: bool,
    },
    /// Slot taken out of service.
    SlotFaulted {
        /// Slot.
        slot: SlotId,
        /// Why.
        reason: String,
    },
    /// Fault cleared by an operator.
    FaultCleared {
        /// Slot.
        slot: SlotId,
    },
    /// Service door opened or closed.
    Door {
        /// Open now?
        open: bool,
    },
    /// Something an operator must look at.
    Alert {
        /// Kind.
        kind: AlertKind,
        /// Session, if one.
        sid: Option<SessionId>,
        /// Slot, if one.
        slot: Option<SlotId>,
        /// Plain-language description.
        message: String,
    },
    /// The "since last reset" audit counters were reset by an operator.
    CountersReset,
    /// A signed remote command from the operator was carried out (`ok`) or refused by the
    /// controller. Written in the same batch as its effects; its result is reported on
    /// `cmd/<name>/result` from here, and its id and nonce block replays until it expires.
    RemoteCommand {
        /// The command's unique id.
        id: String,
        /// Command name (`set_prices`, …).
        name: String,
        /// Its nonce.
        nonce: String,
        /// When it stops being valid (replays are refused until then).
        expires_at: Millis,
        /// SHA-256 of the signed bytes, for the audit trail.
        digest: String,
        /// Carried out?
        ok: bool,
        /// Result code (`ok` or the reason it was refused).
        code: String,
        /// Plain-language result.
        message: String,
    },
    /// The capture of an offline-approved session reached the operator (the broker
    /// acknowledged it): its value no longer counts against the offline cap.
    OfflineUploaded {
        /// Session.
        sid: SessionId,
    },
    /// Money given back for a closed session that captured money (a remote `refund`).
    /// Never more than the capture minus earlier refunds; reported to the authoriser on
    /// `payments/refund`, idempotent by key.
    Refund {
        /// Session.
        sid: SessionId,
        /// Amount, minor units (> 0).
        amount: i64,
        /// Idempotency key, `<sid>:refund:<command id>`.
        key: String,
        /// Authorisation the refunded capture settled.
        auth_ref: String,
    },
    /// The door lock was opened for `seconds` by an operator (a remote `unlock_door`);
    /// written and made durable before the lock opens. The runtime locks again after
    /// `seconds` (and at start-up: the lock is always closed when the daemon starts).
    Unlock {
        /// How long the lock stays open.
        seconds: u32,
    },
    /// A credential hash was added to or removed from the deny list.
    DenyList {
        /// Keyed hash of the credential.
        credential: String,
        /// Added (true) or removed.
        add: bool,
    },
    /// A face was enrolled (linked to an account) with the shopper's consent.
    FaceEnrolled {
        /// The account (keyed hash of the proving credential).
        account: String,
        /// Masked display name.
        masked_name: String,
        /// Captures averaged.
        captures: u32,
        /// How the account was proved.
        proof: PaymentMethod,
    },
    /// An operator test vend is about to run a slot's motor (durable before it runs).
    TestVend {
        /// Slot.
        slot: SlotId,
    },
    /// The outcome of an operator test vend (what dropped comes off the stock count).
    TestVendResult {
        /// Slot.
        slot: SlotId,
        /// Outcome.
        outcome: VendOutcome,
    },
    /// A face enrolment was erased.
    FaceErased {
        /// The account.
        account: String,
        /// Who asked.
        by: super::io::EraseBy,
    },
}

impl Record {
    /// The record's type name as stored (`"vend_intent"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Boot { .. } => "boot",
            Record::Planogram { .. } => "planogram",
            Record::SessionOpened { .. } => "session_opened",
            Record::CheckedOut { .. } => "checked_out",
            Record::Declined { .. } => "declined",
            Record::Authorised { .. } => "authorised",
            Record::VendIntent { .. } => "vend_intent",
            Record::VendResult { .. } => "vend_result",
            Record::LateVendResult { .. } => "late_vend_result",
            Record::InterruptedVend { .. } => "interrupted_vend",
            Record::ItemFailed { .. } => "item_failed",
            Record::Capture { .. } => "capture",
            Record::Void { .. } => "void",
            Record::StrayAuthVoided { .. } => "stray_auth_voided",
            Record::SessionClosed { .. } => "session_closed",
            Record::StockSet { .. } => "stock_set",
            Record::PriceSet { .. } => "price_set",
            Record::SlotEnabled { .. } => "slot_enabled",
            Record::SlotFaulted { .. } => "slot_faulted",
            Record::FaultCleared { .. } => "fault_cleared",
            Record::Door { .. } => "door",
            Record::Alert { .. } => "alert",
            Record::CountersReset => "counters_reset",
            Record::DenyList { .. } => "deny_list",
            Record::FaceEnrolled { .. } => "face_enrolled",
            Record::FaceErased { .. } => "face_erased",
            Record::TestVend { .. } => "test_vend",
            Record::TestVendResult { .. } => "test_vend_result",
            Record::RemoteCommand { .. } => "remote_command",
            Record::OfflineUploaded { .. } => "offline_uploaded",
            Record::Refund { .. } => "refund",
            Record::Unlock { .. } => "unlock",
        }
    }
}

/// A record with the time it was decided at, as stored in the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    /// When, ms since the Unix epoch.
    pub at: Millis,
    /// What.
    #[serde(flatten)]
    pub record: Record,
}
