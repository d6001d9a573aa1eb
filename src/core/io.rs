//! What goes into the controller ([`Input`]) and what comes out ([`Command`]).
//!
//! The order of commands in one batch is part of the contract: a [`Command::Journal`] comes
//! before the [`Command::RunMotor`], [`Command::Capture`] or [`Command::Void`] that acts on
//! it, and the executor must make every journal record that precedes an acting command
//! durable before it carries that command out.

use super::catalog::SlotId;
use super::record::{
    AlertKind, DeclineReason, Millis, PaymentMethod, SessionId, Stamped, VendOutcome,
};
use serde::{Deserialize, Serialize};

/// A fact from the outside world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// Shopper adds `qty` of a slot's product.
    AddItem {
        /// Slot.
        slot: SlotId,
        /// Quantity, at least 1.
        qty: u32,
    },
    /// Shopper removes a slot's line from the cart.
    RemoveItem {
        /// Slot.
        slot: SlotId,
    },
    /// Shopper asks to pay.
    Checkout,
    /// Shopper cancels.
    Cancel,
    /// Shopper asks for more time after a time-out warning.
    Extend,
    /// Shopper closes the receipt.
    Dismiss,
    /// A reader produced a credential (already a keyed hash).
    Credential {
        /// Method.
        method: PaymentMethod,
        /// Keyed hash of the credential.
        credential: String,
    },
    /// The camera read a code that matches no accepted pay-code pattern (its content is
    /// not passed on: it may be sensitive).
    UnrecognisedCode,
    /// The face reader's progress while the machine waits for payment (what to tell the
    /// shopper). The payment itself comes as a [`Input::Credential`] with method `face`.
    Face {
        /// What happened.
        step: FaceStep,
    },
    /// A consenting shopper's face was linked to an account they proved by card or code;
    /// the encrypted gallery holds the embedding (written before this input is sent).
    FaceEnrolled {
        /// The account: the keyed hash of the proving credential.
        account: String,
        /// Masked display name ("A***e").
        masked_name: String,
        /// Captures averaged.
        captures: u32,
        /// How the account was proved.
        proof: PaymentMethod,
    },
    /// Operator (service mode, door open): run one slot's motor once with no sale, to check
    /// the spiral; answered by a [`Input::VendDone`] with session 0.
    TestVend {
        /// Slot.
        slot: SlotId,
    },
    /// Erase a face enrolment (the shopper at the kiosk, or the operator).
    FaceErased {
        /// The account.
        account: String,
        /// Who asked.
        by: EraseBy,
    },
    /// The online authoriser answered.
    AuthResult {
        /// Session it answers.
        sid: SessionId,
        /// Approved?
        approved: bool,
        /// Amount the authoriser approved (held), minor units.
        amount: i64,
        /// Authoriser's reference.
        auth_ref: String,
        /// Reason when declined.
        reason: String,
    },
    /// The dispenser finished an attempt.
    VendDone {
        /// Session.
        sid: SessionId,
        /// Item index.
        item: u32,
        /// Attempt.
        attempt: u32,
        /// Outcome.
        outcome: VendOutcome,
        /// Motor run time.
        motor_ms: u32,
    },
    /// The payment adapter has stored (or executed) the capture and void of a session.
    Settled {
        /// Session.
        sid: SessionId,
    },
    /// Service door changed.
    Door {
        /// Open now?
        open: bool,
    },
    /// The link to the authoriser changed.
    Link {
        /// Up?
        online: bool,
    },
    /// Operator: set a slot's stock count.
    Restock {
        /// Slot.
        slot: SlotId,
        /// Count.
        count: u32,
    },
    /// Operator: set a slot's price.
    SetPrice {
        /// Slot.
        slot: SlotId,
        /// Price, minor units.
        price: i64,
    },
    /// Operator: enable or disable a slot.
    SetEnabled {
        /// Slot.
        slot: SlotId,
        /// Enabled?
        enabled: bool,
    },
    /// Operator: clear a slot's fault.
    ClearFault {
        /// Slot.
        slot: SlotId,
    },
    /// Operator: reset the since-reset audit counters.
    ResetCounters,
    /// A verified remote command: its inputs are applied all or nothing, and a
    /// [`Record::RemoteCommand`](super::record::Record::RemoteCommand) records the outcome
    /// either way. Refused only when its id or nonce was seen before (a replay).
    RemoteCommand {
        /// Command id.
        id: String,
        /// Command name.
        name: String,
        /// Nonce.
        nonce: String,
        /// Expiry.
        expires_at: Millis,
        /// SHA-256 of the signed bytes.
        digest: String,
        /// What it does, as operator inputs (empty for commands with no core effect).
        inputs: Vec<Input>,
    },
    /// The capture of an offline-approved session was delivered to the operator.
    OfflineUploaded {
        /// Session.
        sid: SessionId,
    },
    /// Operator: replace the whole planogram (a remote `set_planogram`). Only when idle.
    /// Stock carries over for a slot that keeps its product unless the slot is listed in
    /// `stock_given`; faults carry over by slot.
    SetPlanogram {
        /// The new catalog.
        catalog: super::catalog::Catalog,
        /// Where it came from (`cmd:<command id>`).
        source: String,
        /// Rows of the motor matrix: every slot must lie inside it.
        rows: u8,
        /// Columns of the motor matrix.
        cols: u8,
        /// Slots whose stock the command gives (the others keep their count).
        #[serde(default)]
        stock_given: Vec<SlotId>,
    },
    /// Operator: give money back for a closed session that captured money.
    Refund {
        /// Session.
        sid: SessionId,
        /// Amount, minor units; `None` refunds what is left of the capture.
        amount: Option<i64>,
        /// Idempotency key (`<sid>:refund:<command id>`).
        key: String,
    },
    /// Operator: void a session's hold. Holds are settled when a session closes (and by
    /// recovery), so this is refused: `nothing_to_void` for a closed session.
    VoidSession {
        /// Session.
        sid: SessionId,
    },
    /// Operator: open the door lock for `seconds` (1..=300).
    UnlockDoor {
        /// Seconds.
        seconds: u32,
    },
    /// Operator: add or remove a credential hash on the deny list.
    Deny {
        /// Credential hash.
        credential: String,
        /// Add (true) or remove.
        add: bool,
    },
}

/// A step of payment by face.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum FaceStep {
    /// A face in view matched an enrolment; the shopper is asked to turn their head.
    Recognised {
        /// Masked display name ("A***e"): who was recognised, without naming them.
        masked_name: String,
        /// Which way to turn.
        turn: HeadTurn,
    },
    /// The face in view matches nobody enrolled (or not clearly enough).
    NotRecognised,
    /// The head turn was not seen in time, or the picture did not move like a head.
    NotLive,
}

/// Which way the shopper is asked to turn their head (their own left or right).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadTurn {
    /// Their left.
    Left,
    /// Their right.
    Right,
}

/// Who erased a face enrolment.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EraseBy {
    /// The shopper, at the kiosk, after proving the account again.
    Shopper,
    /// The operator (a signed remote command).
    Operator,
}

/// A shopper-facing message. The UI and the voice turn it into words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "id", rename_all = "snake_case")]
pub enum Prompt {
    /// Ready for a shopper.
    Welcome,
    /// Not selling (door open, nothing sellable).
    OutOfService,
    /// Cart changed.
    CartUpdated {
        /// Cart total, minor units.
        total: i64,
    },
    /// Present card, code or face.
    PresentCredential {
        /// Amount to pay, minor units.
        total: i64,
    },
    /// Waiting for the authoriser.
    Authorising,
    /// Payment declined; try another method.
    Declined {
        /// Why.
        reason: DeclineReason,
    },
    /// Vending an item.
    Vending {
        /// Item number from 1.
        item: u32,
        /// Items in the cart.
        of: u32,
        /// Slot.
        slot: SlotId,
    },
    /// An item fell: take it.
    TakeItem,
    /// An item could not be vended; it is not charged.
    VendFailedNotCharged {
        /// Slot.
        slot: SlotId,
    },
    /// Finishing the payment.
    Settling,
    /// Receipt.
    Receipt {
        /// Charged, minor units.
        charged: i64,
        /// Released (not charged), minor units.
        released: i64,
    },
    /// The session will end soon unless the shopper asks for more time.
    TimeoutWarning {
        /// Seconds left.
        seconds: u32,
    },
    /// The camera saw a code that is not a pay code this machine accepts.
    CodeNotRecognised,
    /// A face was recognised (shown masked); turn the head to confirm, or cancel.
    FaceTurnHead {
        /// Masked display name.
        masked_name: String,
        /// Which way.
        turn: HeadTurn,
    },
    /// The face was not recognised: pay by card or code, or enrol.
    FaceNotRecognised,
    /// The head turn was not seen: try again, or pay by card or code.
    FaceNotLive,
    /// Cancelled by the shopper.
    Cancelled,
    /// Ended because nobody answered.
    TimedOut,
}

/// Session phase (the state machine's state).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Nobody shopping.
    Idle,
    /// Filling the cart.
    Shopping,
    /// Waiting for card, code or face.
    AwaitingCredential,
    /// Waiting for the online authoriser.
    Authorising,
    /// A motor is turning for an item.
    Vending {
        /// Item index.
        item: u32,
        /// Attempt from 1.
        attempt: u32,
    },
    /// Waiting for the payment adapter to store capture and void.
    Settling,
    /// Showing the receipt.
    Receipt,
}

impl Phase {
    /// Snake-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Shopping => "shopping",
            Phase::AwaitingCredential => "awaiting_credential",
            Phase::Authorising => "authorising",
            Phase::Vending { .. } => "vending",
            Phase::Settling => "settling",
            Phase::Receipt => "receipt",
        }
    }
}

/// An intention for the adapters to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Append to the journal; durable before any later acting command runs.
    Journal(Stamped),
    /// Run one motor cycle (answer with [`Input::VendDone`]).
    RunMotor {
        /// Session.
        sid: SessionId,
        /// Item index.
        item: u32,
        /// Attempt.
        attempt: u32,
        /// Slot.
        slot: SlotId,
    },
    /// Ask the online authoriser (answer with [`Input::AuthResult`]).
    RequestAuth {
        /// Session.
        sid: SessionId,
        /// Amount, minor units.
        amount: i64,
        /// Method.
        method: PaymentMethod,
        /// Credential hash.
        credential: String,
    },
    /// Capture money (idempotent by key).
    Capture {
        /// Session.
        sid: SessionId,
        /// Amount.
        amount: i64,
        /// Idempotency key.
        key: String,
        /// Authorisation.
        auth_ref: String,
    },
    /// Release a hold (idempotent by key).
    Void {
        /// Session.
        sid: SessionId,
        /// Amount.
        amount: i64,
        /// Idempotency key.
        key: String,
        /// Authorisation.
        auth_ref: String,
    },
    /// Tell the shopper (screen and voice).
    Prompt(Prompt),
    /// Tell the operator (also journaled as a record).
    Alert {
        /// Kind.
        kind: AlertKind,
        /// Description.
        message: String,
    },
    /// Open the door lock for `seconds`, then lock it again (journaled first).
    Unlock {
        /// Seconds.
        seconds: u32,
    },
    /// Remove an account's face from the encrypted gallery (the erasure is journaled
    /// first; start-up erases again whatever the journal says is erased).
    EraseFace {
        /// The account.
        account: String,
    },
    /// Live state changed (for the UI and monitoring).
    Publish {
        /// Session, if any.
        sid: Option<SessionId>,
        /// New phase.
        phase: Phase,
        /// When.
        at: Millis,
    },
}

impl Command {
    /// Does this command act on the world (motor, money or the door lock)? Such a command may only run
    /// once every journal record before it is durable.
    pub fn acts(&self) -> bool {
        matches!(
            self,
            Command::RunMotor { .. }
                | Command::Capture { .. }
                | Command::Void { .. }
                | Command::Unlock { .. }
                | Command::EraseFace { .. }
        )
    }
}

/// A refused input: a clear error, and nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// Stable machine-readable code, e.g. `out_of_stock`.
    pub code: &'static str,
    /// Plain-language message.
    pub message: String,
}

impl Reject {
    /// A rejection with a code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Reject {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
