//! The session state machine.
//!
//! Design: methods only modify the state and return [`Command`]s; they never perform I/O,
//! read a clock or draw random numbers. Durable changes go through journal records that the
//! controller applies to its own [`State`] as it emits them, so a replay of the journal
//! rebuilds the same state. Callers follow this order:
//!
//! A. Build the state by replaying the journal ([`State::apply`]), then create the
//!    controller with [`Controller::new`] and call [`Controller::start`] once.
//! B. Feed facts with [`Controller::handle_input`]; carry out the returned commands in order.
//! C. Call [`Controller::handle_timeout`] when the time from [`Controller::poll_timeout`] has
//!    come.

use super::catalog::{Catalog, SlotId};
use super::io::{Command, FaceStep, Input, Phase, Prompt, Reject};
use super::policy::{decide_offline, deny_check, PolicyConfig};
use super::record::{
    AlertKind, CloseReason, DeclineReason, LineItem, Millis, PaymentMethod, Record, SessionId,
    Stamped, VendOutcome,
};
use super::state::{ItemStatus, State};
use serde::{Deserialize, Serialize};

/// Time-outs, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Shopping with no touch.
    pub shopping: u64,
    /// Waiting for card, code or face.
    pub credential: u64,
    /// Warn this long before a shopper time-out.
    pub warn_before: u64,
    /// Waiting for the online authoriser before the offline policy decides.
    pub authorising: u64,
    /// A motor cycle must answer within this (after that the outcome is unknown).
    pub vend_watchdog: u64,
    /// Waiting for the payment adapter to store capture and void.
    pub settling: u64,
    /// Receipt on screen.
    pub receipt: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            shopping: 60_000,
            credential: 45_000,
            warn_before: 15_000,
            authorising: 8_000,
            vend_watchdog: 20_000,
            settling: 10_000,
            receipt: 10_000,
        }
    }
}

/// Controller configuration (from the config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreConfig {
    /// Time-outs.
    pub timeouts: Timeouts,
    /// Motor cycles per item at most (a missed drop is retried until this).
    pub max_attempts: u32,
    /// Units in one cart at most.
    pub max_cart_items: u32,
    /// How often a shopper may extend a time-out.
    pub max_extends: u32,
    /// Offline policy.
    pub policy: PolicyConfig,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            timeouts: Timeouts::default(),
            max_attempts: 2,
            max_cart_items: 10,
            max_extends: 3,
            policy: PolicyConfig::default(),
        }
    }
}

/// What the shopper sees after a sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Session.
    pub sid: SessionId,
    /// Items and whether each was delivered.
    pub items: Vec<ReceiptLine>,
    /// Charged, minor units.
    pub charged: i64,
    /// Released, minor units.
    pub released: i64,
    /// Method.
    pub method: PaymentMethod,
}

/// One receipt line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptLine {
    /// Slot.
    pub slot: SlotId,
    /// Price.
    pub price: i64,
    /// Delivered (and charged)?
    pub delivered: bool,
}

/// A pending online authorisation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending {
    method: PaymentMethod,
    credential: String,
}

/// The online authoriser's answer, as [`Input::AuthResult`] carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AuthAnswer {
    sid: SessionId,
    approved: bool,
    amount: i64,
    auth_ref: String,
    reason: String,
}

/// The controller: durable [`State`] plus the live session. See the module docs.
#[derive(Clone, Debug)]
pub struct Controller {
    cfg: CoreConfig,
    state: State,
    phase: Phase,
    cart: Vec<(SlotId, u32)>,
    deadline: Option<Millis>,
    warned: bool,
    extends: u32,
    pending: Option<Pending>,
    online: bool,
    prompt: Prompt,
    receipt: Option<Receipt>,
    /// The operator's test vend running (slot, started), and the last one's outcome.
    test_vend: Option<(SlotId, Millis)>,
    last_test_vend: Option<(SlotId, VendOutcome)>,
    last_decline: Option<DeclineReason>,
}

type Out = Vec<Command>;

impl Controller {
    /// A controller over a replayed state. Call [`Controller::start`] next.
    pub fn new(cfg: CoreConfig, state: State) -> Self {
        Controller {
            cfg,
            state,
            phase: Phase::Idle,
            cart: Vec::new(),
            deadline: None,
            warned: false,
            extends: 0,
            pending: None,
            online: false,
            prompt: Prompt::Welcome,
            receipt: None,
            test_vend: None,
            last_test_vend: None,
            last_decline: None,
        }
    }

    /// The last operator test vend's slot and outcome (None before the first or while one
    /// runs).
    pub fn last_test_vend(&self) -> Option<&(SlotId, VendOutcome)> {
        self.last_test_vend.as_ref()
    }

    /// Durable state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The payment method being authorised (while authorising).
    pub fn pending_method(&self) -> Option<PaymentMethod> {
        self.pending.as_ref().map(|p| p.method)
    }

    /// Current cart (slot, quantity).
    pub fn cart(&self) -> &[(SlotId, u32)] {
        &self.cart
    }

    /// The prompt on screen.
    pub fn prompt(&self) -> &Prompt {
        &self.prompt
    }

    /// The last receipt while it is shown.
    pub fn receipt(&self) -> Option<&Receipt> {
        self.receipt.as_ref()
    }

    /// Deadline of the current phase, if any.
    pub fn deadline(&self) -> Option<Millis> {
        self.deadline
    }

    /// Has the shopper been warned of the coming time-out?
    pub fn warned(&self) -> bool {
        self.warned
    }

    /// The link state the controller believes.
    pub fn online(&self) -> bool {
        self.online
    }

    /// The last decline in this session, for the screen.
    pub fn last_decline(&self) -> Option<&DeclineReason> {
        self.last_decline.as_ref()
    }

    fn emit(&mut self, out: &mut Out, now: Millis, record: Record) {
        let st = Stamped { at: now, record };
        self.state.apply(&st);
        out.push(Command::Journal(st));
    }

    fn alert(
        &mut self,
        out: &mut Out,
        now: Millis,
        kind: AlertKind,
        sid: Option<SessionId>,
        slot: Option<SlotId>,
        message: String,
    ) {
        out.push(Command::Alert {
            kind,
            message: message.clone(),
        });
        self.emit(
            out,
            now,
            Record::Alert {
                kind,
                sid,
                slot,
                message,
            },
        );
    }

    fn set_phase(&mut self, out: &mut Out, now: Millis, phase: Phase, deadline: Option<u64>) {
        self.phase = phase;
        self.deadline = deadline.map(|d| now + d);
        self.warned = false;
        out.push(Command::Publish {
            sid: self.state.open.as_ref().map(|s| s.sid),
            phase,
            at: now,
        });
    }

    fn say(&mut self, out: &mut Out, p: Prompt) {
        self.prompt = p.clone();
        out.push(Command::Prompt(p));
    }

    fn sid(&self) -> Option<SessionId> {
        self.state.open.as_ref().map(|s| s.sid)
    }

    fn cart_units(&self) -> u32 {
        self.cart.iter().map(|(_, q)| q).sum()
    }

    fn cart_total(&self) -> i64 {
        self.cart
            .iter()
            .map(|(s, q)| self.state.catalog.slots.get(s).map_or(0, |x| x.price) * *q as i64)
            .sum()
    }

    /// Start-up: records the boot, applies a changed configured planogram, and recovers an
    /// interrupted session. `planogram` is the configured catalog and `source` identifies it
    /// (a hash of the config section); it replaces the journal's only when `source` differs
    /// from the last applied one, and stock counts carry over for slots that remain.
    pub fn start(&mut self, now: Millis, version: &str, planogram: &Catalog, source: &str) -> Out {
        let mut out = Vec::new();
        // The planogram comes first: on a fresh journal every other record (the verifier
        // and a replay from `State::new`) needs a catalog to refer to.
        // Compared with the last *config* planogram: a remote one (`cmd:…`) stays until the
        // config file's planogram changes.
        if self.state.config_source() != source {
            let mut cat = planogram.clone();
            if !self.state.planogram_source.is_empty() {
                for (id, slot) in cat.slots.iter_mut() {
                    if let Some(old) = self.state.catalog.slots.get(id) {
                        slot.stock = old.stock.min(slot.capacity);
                        slot.fault = old.fault.clone();
                    }
                }
            }
            self.emit(
                &mut out,
                now,
                Record::Planogram {
                    catalog: cat,
                    source: source.to_string(),
                },
            );
        }
        self.emit(
            &mut out,
            now,
            Record::Boot {
                version: version.to_string(),
            },
        );
        out.extend(self.recover(now));
        out
    }

    /// Recovery after a restart (rule 3): an attempt whose outcome is unknown is not
    /// charged, its slot is taken out of service and an alert is raised; no motor runs.
    /// Delivered items are captured, the rest of the hold is voided, with the same
    /// idempotency keys as before so a repeated money command cannot charge twice.
    fn recover(&mut self, now: Millis) -> Out {
        let mut out = Vec::new();
        // Stray-approval voids written ahead whose command may not have run: send them
        // again (same key), then mark them carried out with their alert.
        for (key, (sid, amount, auth_ref)) in self.state.pending_stray_voids.clone() {
            out.push(Command::Void {
                sid,
                amount,
                key,
                auth_ref: auth_ref.clone(),
            });
            self.alert(
                &mut out,
                now,
                AlertKind::StrayAuthorisation,
                Some(sid),
                None,
                format!("the void of a late approval ({auth_ref}) for session {sid} was sent again after a restart"),
            );
        }
        let Some(open) = self.state.open.clone() else {
            return out;
        };
        let sid = open.sid;
        if let Some((item, attempt)) = open.in_flight {
            let slot = open.items[item as usize].line.slot.clone();
            self.emit(
                &mut out,
                now,
                Record::InterruptedVend {
                    sid,
                    item,
                    attempt,
                    slot: slot.clone(),
                },
            );
            self.fail_item(
                &mut out,
                now,
                sid,
                item,
                "vend outcome unknown after a restart",
            );
            self.fault_slot(&mut out, now, &slot, "vend interrupted by a restart");
            self.alert(
                &mut out,
                now,
                AlertKind::InterruptedVend,
                Some(sid),
                Some(slot.clone()),
                format!(
                    "session {sid}: vend from {slot} was interrupted; shopper not charged for it"
                ),
            );
        }
        if open.hold.is_some() {
            for (i, it) in open.items.iter().enumerate() {
                let idx = i as u32;
                let in_flight = open.in_flight.is_some_and(|(x, _)| x == idx);
                if matches!(it.status, ItemStatus::Pending) && !in_flight {
                    self.fail_item(
                        &mut out,
                        now,
                        sid,
                        idx,
                        "not vended: session interrupted by a restart",
                    );
                }
            }
            self.settle_money(&mut out, now);
        }
        let captured = self
            .state
            .open
            .as_ref()
            .and_then(|s| s.capture.as_ref().map(|c| c.0))
            .unwrap_or(0);
        self.alert(
            &mut out,
            now,
            AlertKind::RecoveredSession,
            Some(sid),
            None,
            format!("session {sid} was closed after a restart; captured {captured}"),
        );
        self.emit(
            &mut out,
            now,
            Record::SessionClosed {
                sid,
                reason: CloseReason::Recovered,
                captured,
            },
        );
        out
    }

    /// The next time [`Controller::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let d = self.deadline?;
        if self.warnable() && !self.warned {
            Some(d.saturating_sub(self.cfg.timeouts.warn_before))
        } else {
            Some(d)
        }
    }

    fn warnable(&self) -> bool {
        matches!(self.phase, Phase::Shopping | Phase::AwaitingCredential)
    }

    /// Handles the passing of time: warnings, shopper time-outs, the authoriser's time-out
    /// (the offline policy then decides), the vend watchdog, settling and receipt.
    pub fn handle_timeout(&mut self, now: Millis) -> Out {
        let mut out = Vec::new();
        let Some(deadline) = self.deadline else {
            return out;
        };
        if self.warnable()
            && !self.warned
            && now + self.cfg.timeouts.warn_before >= deadline
            && now < deadline
        {
            self.warned = true;
            let seconds = (deadline - now).div_ceil(1000) as u32;
            self.say(&mut out, Prompt::TimeoutWarning { seconds });
            return out;
        }
        if now < deadline {
            return out;
        }
        match self.phase {
            Phase::Idle => self.deadline = None,
            Phase::Shopping | Phase::AwaitingCredential => {
                self.close_unpaid(&mut out, now, CloseReason::TimedOut);
                self.say(&mut out, Prompt::TimedOut);
            }
            Phase::Authorising => {
                if let Some(p) = self.pending.take() {
                    if p.method == PaymentMethod::MerchantQr {
                        // Nobody paid the code in time; a late approval is voided as stray.
                        self.decline(&mut out, now, p.method, DeclineReason::NotPaidInTime);
                    } else {
                        self.decide_locally(&mut out, now, p.method, p.credential);
                    }
                }
            }
            Phase::Vending { item, attempt } => {
                let outcome = VendOutcome::NoAnswer;
                self.vend_result(&mut out, now, item, attempt, outcome, 0);
            }
            Phase::Settling => self.show_receipt(&mut out, now),
            Phase::Receipt => {
                self.receipt = None;
                self.set_phase(&mut out, now, Phase::Idle, None);
                self.say(&mut out, Prompt::Welcome);
            }
        }
        out
    }

    /// Handles a fact. Shopper and operator inputs that cannot apply now are refused with
    /// a [`Reject`] and change nothing; device inputs are never refused (stale ones are
    /// journaled and alerted where money or stock is concerned, and otherwise ignored).
    ///
    /// # Errors
    /// [`Reject`] with a stable code and a plain-language message.
    pub fn handle_input(&mut self, now: Millis, input: Input) -> Result<Out, Reject> {
        let mut out = Vec::new();
        match input {
            Input::AddItem { slot, qty } => self.add_item(&mut out, now, slot, qty)?,
            Input::RemoveItem { slot } => self.remove_item(&mut out, now, slot)?,
            Input::Checkout => self.checkout(&mut out, now)?,
            Input::Cancel => self.cancel(&mut out, now)?,
            Input::Extend => {
                if !self.warnable() {
                    return Err(Reject::new("nothing_to_extend", "no time-out is running"));
                }
                if self.extends >= self.cfg.max_extends {
                    return Err(Reject::new(
                        "no_more_time",
                        format!("more time can be asked for {} times", self.cfg.max_extends),
                    ));
                }
                self.extends += 1;
                let t = match self.phase {
                    Phase::Shopping => self.cfg.timeouts.shopping,
                    _ => self.cfg.timeouts.credential,
                };
                self.deadline = Some(now + t);
                self.warned = false;
            }
            Input::Dismiss => {
                if self.phase != Phase::Receipt {
                    return Err(Reject::new("no_receipt", "no receipt is shown"));
                }
                self.receipt = None;
                self.set_phase(&mut out, now, Phase::Idle, None);
                self.say(&mut out, Prompt::Welcome);
            }
            Input::Credential { method, credential } => {
                self.credential(&mut out, now, method, credential)?
            }
            Input::UnrecognisedCode => {
                if self.phase != Phase::AwaitingCredential {
                    return Err(Reject::new(
                        "not_awaiting_payment",
                        "a code is read only while the machine waits for payment",
                    ));
                }
                self.say(&mut out, Prompt::CodeNotRecognised);
            }
            Input::AuthResult {
                sid,
                approved,
                amount,
                auth_ref,
                reason,
            } => {
                let answer = AuthAnswer {
                    sid,
                    approved,
                    amount,
                    auth_ref,
                    reason,
                };
                self.auth_result(&mut out, now, answer)
            }
            Input::VendDone {
                sid,
                item,
                attempt,
                outcome,
                motor_ms,
            } => {
                // "Delivered" with no beam break counted is not a confirmed drop.
                let outcome = match outcome {
                    VendOutcome::Delivered { drops: 0 } => VendOutcome::NoDrop,
                    other => other,
                };
                if sid == 0 && self.test_vend.is_some() {
                    let (slot, _) = self.test_vend.take().expect("checked");
                    self.emit(
                        &mut out,
                        now,
                        Record::TestVendResult {
                            slot: slot.clone(),
                            outcome: outcome.clone(),
                        },
                    );
                    let fault = match &outcome {
                        VendOutcome::Jammed => Some("jammed"),
                        VendOutcome::HomeSwitchStuck => Some("home switch stuck"),
                        VendOutcome::DeviceError { .. } => Some("device error"),
                        _ => None,
                    };
                    if let Some(reason) = fault {
                        self.fault_slot(&mut out, now, &slot, reason);
                    }
                    self.last_test_vend = Some((slot, outcome));
                } else if self.phase == (Phase::Vending { item, attempt })
                    && self.sid() == Some(sid)
                {
                    self.vend_result(&mut out, now, item, attempt, outcome, motor_ms);
                } else {
                    self.late_vend(&mut out, now, sid, item, attempt, outcome);
                }
            }
            Input::Settled { sid } => {
                if self.phase == Phase::Settling
                    && self.receipt.as_ref().is_some_and(|r| r.sid == sid)
                {
                    self.show_receipt(&mut out, now);
                }
            }
            Input::Door { open } => self.door(&mut out, now, open),
            Input::Link { online } => self.online = online,
            Input::Restock { slot, count } => {
                let cap = self.operator_slot(&slot)?.capacity;
                if count > cap {
                    return Err(Reject::new(
                        "over_capacity",
                        format!("slot {slot} holds at most {cap}"),
                    ));
                }
                self.idle_for_operator()?;
                let reason = "operator count".to_string();
                self.emit(
                    &mut out,
                    now,
                    Record::StockSet {
                        slot,
                        count,
                        reason,
                    },
                );
            }
            Input::SetPrice { slot, price } => {
                self.operator_slot(&slot)?;
                if !(0..=100_000_000).contains(&price) {
                    return Err(Reject::new(
                        "bad_price",
                        "a price is 0 to 100000000 minor units",
                    ));
                }
                self.idle_for_operator()?;
                self.emit(&mut out, now, Record::PriceSet { slot, price });
            }
            Input::SetEnabled { slot, enabled } => {
                self.operator_slot(&slot)?;
                self.idle_for_operator()?;
                self.emit(&mut out, now, Record::SlotEnabled { slot, enabled });
            }
            Input::ClearFault { slot } => {
                if self.operator_slot(&slot)?.fault.is_none() {
                    return Err(Reject::new("no_fault", format!("slot {slot} has no fault")));
                }
                self.idle_for_operator()?;
                self.emit(&mut out, now, Record::FaultCleared { slot });
            }
            Input::ResetCounters => self.emit(&mut out, now, Record::CountersReset),
            Input::OfflineUploaded { sid } => {
                // Only a session still counted (and closed: its capture is final) is recorded.
                let open = self.state.open.as_ref().is_some_and(|s| s.sid == sid);
                if !open && self.state.ledger.unsettled_by_session.contains_key(&sid) {
                    self.emit(&mut out, now, Record::OfflineUploaded { sid });
                }
            }
            Input::RemoteCommand {
                id,
                name,
                nonce,
                expires_at,
                digest,
                inputs,
            } => self.remote_command(&mut out, now, id, name, nonce, expires_at, digest, inputs)?,
            Input::SetPlanogram {
                catalog,
                source,
                rows,
                cols,
                stock_given,
            } => self.set_planogram(&mut out, now, catalog, source, (rows, cols), stock_given)?,
            Input::Refund { sid, amount, key } => self.refund(&mut out, now, sid, amount, key)?,
            Input::VoidSession { sid } => {
                if self.sid() == Some(sid) {
                    return Err(Reject::new(
                        "busy",
                        format!(
                            "session {sid} is still in progress: it settles its hold itself \
                             (capture and void) when it ends"
                        ),
                    ));
                }
                if sid == 0 || sid > self.state.last_sid {
                    return Err(Reject::new(
                        "unknown_session",
                        format!("there is no session {sid} on this machine"),
                    ));
                }
                return Err(Reject::new(
                    "nothing_to_void",
                    format!(
                        "session {sid} is closed: its hold was released when it closed (or by \
                         recovery after a restart); to give captured money back use refund"
                    ),
                ));
            }
            Input::UnlockDoor { seconds } => {
                if !(1..=300).contains(&seconds) {
                    return Err(Reject::new(
                        "bad_duration",
                        "the door can be unlocked for 1 to 300 seconds",
                    ));
                }
                self.idle_for_operator()?;
                self.emit(&mut out, now, Record::Unlock { seconds });
                out.push(Command::Unlock { seconds });
            }
            Input::Deny { credential, add } => {
                if credential.is_empty() || credential.len() > 128 {
                    return Err(Reject::new(
                        "bad_credential",
                        "a credential hash is 1 to 128 characters",
                    ));
                }
                self.emit(&mut out, now, Record::DenyList { credential, add });
            }
            Input::Face { step } => {
                if self.phase != Phase::AwaitingCredential {
                    return Err(Reject::new(
                        "not_awaiting_payment",
                        "a face is looked for only while the machine waits for payment",
                    ));
                }
                let p = match step {
                    FaceStep::Recognised { masked_name, turn } => {
                        Prompt::FaceTurnHead { masked_name, turn }
                    }
                    FaceStep::NotRecognised => Prompt::FaceNotRecognised,
                    FaceStep::NotLive => Prompt::FaceNotLive,
                };
                self.say(&mut out, p);
            }
            Input::FaceEnrolled {
                account,
                masked_name,
                captures,
                proof,
            } => {
                check_account(&account)?;
                if masked_name.is_empty() || masked_name.chars().count() > 64 {
                    return Err(Reject::new(
                        "bad_name",
                        "a masked name is 1 to 64 characters",
                    ));
                }
                if captures == 0 {
                    return Err(Reject::new("no_captures", "an enrolment needs captures"));
                }
                if !matches!(
                    proof,
                    PaymentMethod::Card | PaymentMethod::PayCode | PaymentMethod::TestCard
                ) {
                    return Err(Reject::new(
                        "bad_proof",
                        "an account is proved by a card or a pay code",
                    ));
                }
                if self.state.deny.contains(&account) {
                    return Err(Reject::new(
                        "deny_listed",
                        "this card or code is blocked; it cannot be linked to a face",
                    ));
                }
                self.emit(
                    &mut out,
                    now,
                    Record::FaceEnrolled {
                        account,
                        masked_name,
                        captures,
                        proof,
                    },
                );
            }
            Input::TestVend { slot } => {
                if !self.state.door_open {
                    return Err(Reject::new(
                        "door_closed",
                        "a test vend runs in service mode: open the service door first",
                    ));
                }
                if self.phase != Phase::Idle {
                    return Err(Reject::new("busy", "a sale is open"));
                }
                // An unanswered test vend blocks the next one for the vend watchdog's time.
                if self.test_vend.as_ref().is_some_and(|(_, at)| {
                    now.saturating_sub(*at) < self.cfg.timeouts.vend_watchdog
                }) {
                    return Err(Reject::new("busy", "a test vend is running"));
                }
                self.operator_slot(&slot)?;
                self.emit(&mut out, now, Record::TestVend { slot: slot.clone() });
                self.test_vend = Some((slot.clone(), now));
                self.last_test_vend = None;
                out.push(Command::RunMotor {
                    sid: 0,
                    item: 0,
                    attempt: 1,
                    slot,
                });
            }
            Input::FaceErased { account, by } => {
                check_account(&account)?;
                if !self.state.face_enrolled.contains_key(&account) {
                    return Err(Reject::new(
                        "not_enrolled",
                        "no face is enrolled for this account",
                    ));
                }
                self.emit(
                    &mut out,
                    now,
                    Record::FaceErased {
                        account: account.clone(),
                        by,
                    },
                );
                out.push(Command::EraseFace { account });
            }
        }
        Ok(out)
    }

    /// Applies a verified remote command's inputs all or nothing (on a copy first), then
    /// records the outcome. Nested remote commands are refused.
    #[allow(clippy::too_many_arguments)]
    fn remote_command(
        &mut self,
        out: &mut Out,
        now: Millis,
        id: String,
        name: String,
        nonce: String,
        expires_at: Millis,
        digest: String,
        inputs: Vec<Input>,
    ) -> Result<(), Reject> {
        let live = |k: &String| {
            self.state
                .seen_commands
                .get(k)
                .is_some_and(|(exp, ..)| *exp >= now)
        };
        if live(&format!("id:{id}")) || live(&format!("nonce:{nonce}")) {
            return Err(Reject::new(
                "replayed",
                format!("command {id} was already received"),
            ));
        }
        let mut trial = self.clone();
        let mut effects = Vec::new();
        let mut failure = None;
        for input in inputs {
            if matches!(input, Input::RemoteCommand { .. }) {
                failure = Some(Reject::new(
                    "invalid_args",
                    "a command cannot contain a command",
                ));
                break;
            }
            match trial.handle_input(now, input) {
                Ok(c) => effects.extend(c),
                Err(r) => {
                    failure = Some(r);
                    break;
                }
            }
        }
        let (ok, code, message) = match failure {
            None => {
                *self = trial;
                out.extend(effects);
                (true, "ok".to_string(), format!("{name} carried out"))
            }
            Some(r) => (false, r.code.to_string(), r.message),
        };
        self.emit(
            out,
            now,
            Record::RemoteCommand {
                id,
                name,
                nonce,
                expires_at,
                digest,
                ok,
                code,
                message,
            },
        );
        Ok(())
    }

    /// Replaces the planogram (see [`Input::SetPlanogram`]): all checks first, then one
    /// `Planogram` record.
    fn set_planogram(
        &mut self,
        out: &mut Out,
        now: Millis,
        mut catalog: Catalog,
        source: String,
        (rows, cols): (u8, u8),
        stock_given: Vec<SlotId>,
    ) -> Result<(), Reject> {
        if self.phase != Phase::Idle || self.state.open.is_some() {
            return Err(Reject::new(
                "busy",
                "a shopper is using the machine; send the planogram again when it is idle",
            ));
        }
        if catalog.currency != self.state.catalog.currency {
            return Err(Reject::new(
                "wrong_currency",
                format!(
                    "the planogram is in {} but this machine sells in {}",
                    catalog.currency.code(),
                    self.state.catalog.currency.code()
                ),
            ));
        }
        if catalog.slots.is_empty() {
            return Err(Reject::new("bad_planogram", "the planogram has no slots"));
        }
        if let Some(s) = catalog
            .slots
            .keys()
            .find(|s| s.row() >= rows || s.col() >= cols)
        {
            return Err(Reject::new(
                "bad_planogram",
                format!("slot {s} is outside this machine's {rows}×{cols} motor matrix"),
            ));
        }
        let problems = catalog.problems();
        if !problems.is_empty() {
            return Err(Reject::new("bad_planogram", problems.join("; ")));
        }
        for (id, slot) in catalog.slots.iter_mut() {
            if let Some(old) = self.state.catalog.slots.get(id) {
                if old.product == slot.product && !stock_given.contains(id) {
                    slot.stock = old.stock.min(slot.capacity);
                }
                slot.fault = old.fault.clone();
            }
        }
        self.emit(out, now, Record::Planogram { catalog, source });
        Ok(())
    }

    /// Gives money back for a closed session that captured money: at most the capture
    /// minus earlier refunds.
    fn refund(
        &mut self,
        out: &mut Out,
        now: Millis,
        sid: SessionId,
        amount: Option<i64>,
        key: String,
    ) -> Result<(), Reject> {
        if self.sid() == Some(sid) {
            return Err(Reject::new(
                "session_open",
                format!("session {sid} is still in progress: refund it once it has closed"),
            ));
        }
        let Some(c) = self.state.captures.get(&sid) else {
            return Err(Reject::new(
                "nothing_captured",
                format!(
                    "session {sid} captured no money on this machine (or is older than the last \
                     {} sales kept for refunds)",
                    super::state::MAX_REFUNDABLE
                ),
            ));
        };
        let left = c.amount - c.refunded;
        if left <= 0 {
            return Err(Reject::new(
                "already_refunded",
                format!("session {sid} was already refunded in full ({})", c.amount),
            ));
        }
        let amount = amount.unwrap_or(left);
        if amount <= 0 || amount > left {
            return Err(Reject::new(
                "over_refund",
                format!(
                    "refund of {amount} is more than session {sid} has left to refund ({left} of \
                     {} captured)",
                    c.amount
                ),
            ));
        }
        let auth_ref = c.auth_ref.clone();
        self.emit(
            out,
            now,
            Record::Refund {
                sid,
                amount,
                key,
                auth_ref,
            },
        );
        Ok(())
    }

    fn operator_slot(&self, slot: &SlotId) -> Result<&super::catalog::Slot, Reject> {
        self.state
            .catalog
            .slots
            .get(slot)
            .ok_or_else(|| Reject::new("unknown_slot", format!("there is no slot {slot}")))
    }

    fn idle_for_operator(&self) -> Result<(), Reject> {
        match self.phase {
            Phase::Idle | Phase::Receipt | Phase::Shopping => Ok(()),
            _ => Err(Reject::new(
                "busy",
                "a sale is being paid or vended; try again when it has finished",
            )),
        }
    }

    fn add_item(
        &mut self,
        out: &mut Out,
        now: Millis,
        slot: SlotId,
        qty: u32,
    ) -> Result<(), Reject> {
        match self.phase {
            Phase::Idle | Phase::Shopping | Phase::Receipt => {}
            _ => {
                return Err(Reject::new(
                    "cart_locked",
                    "the cart is fixed once payment has started; cancel to change it",
                ))
            }
        }
        if self.state.door_open {
            return Err(Reject::new(
                "out_of_service",
                "the machine is being serviced",
            ));
        }
        if qty == 0 {
            return Err(Reject::new("bad_quantity", "quantity must be at least 1"));
        }
        let s = self
            .state
            .catalog
            .slots
            .get(&slot)
            .ok_or_else(|| Reject::new("unknown_slot", format!("there is no slot {slot}")))?;
        if !s.sellable() {
            return Err(Reject::new(
                "slot_unavailable",
                format!("slot {slot} is not available"),
            ));
        }
        let in_cart = self
            .cart
            .iter()
            .find(|(x, _)| *x == slot)
            .map_or(0, |(_, q)| *q);
        let units = if self.phase == Phase::Shopping {
            self.cart_units()
        } else {
            0
        };
        let in_cart = if self.phase == Phase::Shopping {
            in_cart
        } else {
            0
        };
        if in_cart.saturating_add(qty) > s.stock {
            return Err(Reject::new(
                "out_of_stock",
                format!("slot {slot} has {} left", s.stock.saturating_sub(in_cart)),
            ));
        }
        if units.saturating_add(qty) > self.cfg.max_cart_items {
            return Err(Reject::new(
                "cart_full",
                format!("a cart holds at most {} items", self.cfg.max_cart_items),
            ));
        }
        if self.phase != Phase::Shopping {
            self.receipt = None;
            self.cart.clear();
            self.extends = 0;
            self.last_decline = None;
            let sid = self.state.last_sid + 1;
            self.emit(out, now, Record::SessionOpened { sid });
        }
        match self.cart.iter_mut().find(|(x, _)| *x == slot) {
            Some((_, q)) => *q += qty,
            None => self.cart.push((slot, qty)),
        }
        self.set_phase(out, now, Phase::Shopping, Some(self.cfg.timeouts.shopping));
        let total = self.cart_total();
        self.say(out, Prompt::CartUpdated { total });
        Ok(())
    }

    fn remove_item(&mut self, out: &mut Out, now: Millis, slot: SlotId) -> Result<(), Reject> {
        if self.phase != Phase::Shopping {
            return Err(Reject::new("cart_locked", "there is no cart to change"));
        }
        let Some(pos) = self.cart.iter().position(|(x, _)| *x == slot) else {
            return Err(Reject::new(
                "not_in_cart",
                format!("slot {slot} is not in the cart"),
            ));
        };
        self.cart.remove(pos);
        self.set_phase(out, now, Phase::Shopping, Some(self.cfg.timeouts.shopping));
        let total = self.cart_total();
        self.say(out, Prompt::CartUpdated { total });
        Ok(())
    }

    fn checkout(&mut self, out: &mut Out, now: Millis) -> Result<(), Reject> {
        if self.phase != Phase::Shopping {
            return Err(Reject::new("no_cart", "add an item before paying"));
        }
        if self.cart.is_empty() {
            return Err(Reject::new("empty_cart", "the cart is empty"));
        }
        let mut items = Vec::new();
        for (slot, qty) in &self.cart {
            let s = &self.state.catalog.slots[slot];
            if !s.sellable() || s.stock < *qty {
                return Err(Reject::new(
                    "slot_unavailable",
                    format!("slot {slot} can no longer supply {qty}; remove it from the cart"),
                ));
            }
            for _ in 0..*qty {
                items.push(LineItem {
                    slot: slot.clone(),
                    price: s.price,
                });
            }
        }
        let total = items.iter().map(|i| i.price).sum();
        let sid = self.sid().expect("a shopping session is open");
        self.emit(out, now, Record::CheckedOut { sid, items, total });
        self.set_phase(
            out,
            now,
            Phase::AwaitingCredential,
            Some(self.cfg.timeouts.credential),
        );
        self.say(out, Prompt::PresentCredential { total });
        Ok(())
    }

    fn cancel(&mut self, out: &mut Out, now: Millis) -> Result<(), Reject> {
        match self.phase {
            Phase::Shopping | Phase::AwaitingCredential | Phase::Authorising => {
                self.close_unpaid(out, now, CloseReason::Cancelled);
                self.say(out, Prompt::Cancelled);
                Ok(())
            }
            Phase::Idle | Phase::Receipt => {
                Err(Reject::new("nothing_to_cancel", "no sale is open"))
            }
            Phase::Vending { .. } | Phase::Settling => Err(Reject::new(
                "vending",
                "your items are being vended; anything not delivered is not charged",
            )),
        }
    }

    /// Ends a session that holds no money.
    fn close_unpaid(&mut self, out: &mut Out, now: Millis, reason: CloseReason) {
        if let Some(sid) = self.sid() {
            self.emit(
                out,
                now,
                Record::SessionClosed {
                    sid,
                    reason,
                    captured: 0,
                },
            );
        }
        self.cart.clear();
        self.pending = None;
        self.set_phase(out, now, Phase::Idle, None);
    }

    fn credential(
        &mut self,
        out: &mut Out,
        now: Millis,
        method: PaymentMethod,
        credential: String,
    ) -> Result<(), Reject> {
        if self.phase != Phase::AwaitingCredential {
            return Err(Reject::new(
                "not_awaiting_payment",
                "choose items and press pay before presenting a card, code or face",
            ));
        }
        if credential.is_empty() || credential.len() > 128 {
            return Err(Reject::new(
                "bad_credential",
                "a credential hash is 1 to 128 characters",
            ));
        }
        let sid = self.sid().expect("a session awaiting payment is open");
        if let Err(reason) = deny_check(&self.state, &credential) {
            self.decline(out, now, method, reason);
            self.alert(
                out,
                now,
                AlertKind::DenyListedCredential,
                Some(sid),
                None,
                format!(
                    "session {sid}: a deny-listed {} credential was presented",
                    method.as_str()
                ),
            );
            return Ok(());
        }
        if self.online {
            let amount = self.hold_amount();
            self.pending = Some(Pending {
                method,
                credential: credential.clone(),
            });
            // A dynamic QR code waits for the shopper to scan and pay it on their phone.
            let wait = if method == PaymentMethod::MerchantQr {
                self.cfg.timeouts.credential
            } else {
                self.cfg.timeouts.authorising
            };
            self.set_phase(out, now, Phase::Authorising, Some(wait));
            self.say(out, Prompt::Authorising);
            out.push(Command::RequestAuth {
                sid,
                amount,
                method,
                credential,
            });
        } else {
            self.decide_locally(out, now, method, credential);
        }
        Ok(())
    }

    fn hold_amount(&self) -> i64 {
        self.state
            .open
            .as_ref()
            .map_or(0, |s| s.items.iter().map(|i| i.line.price).sum())
    }

    fn decide_locally(
        &mut self,
        out: &mut Out,
        now: Millis,
        method: PaymentMethod,
        credential: String,
    ) {
        let amount = self.hold_amount();
        match decide_offline(
            &self.cfg.policy,
            &self.state,
            now,
            method,
            &credential,
            amount,
        ) {
            Ok(()) => {
                let sid = self.sid().expect("session open");
                let auth_ref = format!("offline-{sid}");
                self.authorised(out, now, method, credential, true, auth_ref);
            }
            Err(reason) => self.decline(out, now, method, reason),
        }
    }

    fn decline(
        &mut self,
        out: &mut Out,
        now: Millis,
        method: PaymentMethod,
        reason: DeclineReason,
    ) {
        let sid = self.sid().expect("session open");
        self.emit(
            out,
            now,
            Record::Declined {
                sid,
                method,
                reason: reason.clone(),
            },
        );
        self.last_decline = Some(reason.clone());
        self.pending = None;
        self.set_phase(
            out,
            now,
            Phase::AwaitingCredential,
            Some(self.cfg.timeouts.credential),
        );
        self.say(out, Prompt::Declined { reason });
    }

    fn auth_result(&mut self, out: &mut Out, now: Millis, answer: AuthAnswer) {
        let AuthAnswer {
            sid,
            approved,
            amount,
            auth_ref,
            reason,
        } = answer;
        if self.phase == Phase::Authorising && self.sid() == Some(sid) {
            let p = self
                .pending
                .take()
                .expect("authorising has a pending credential");
            if approved {
                self.authorised(out, now, p.method, p.credential, false, auth_ref);
            } else {
                self.decline(out, now, p.method, DeclineReason::Authoriser { reason });
            }
        } else if approved && !self.state.accepted_auth_refs.contains_key(&auth_ref) {
            // An approval nobody waits for any more (time-out, cancel): release it whole.
            // A repeated delivery of an approval already accepted as a hold is not stray:
            // voiding it would release money the capture still needs.
            let key = format!("{sid}:stray:{auth_ref}");
            let record = Record::StrayAuthVoided {
                sid,
                amount,
                auth_ref: auth_ref.clone(),
                key: key.clone(),
            };
            self.emit(out, now, record);
            out.push(Command::Void {
                sid,
                amount,
                key,
                auth_ref: auth_ref.clone(),
            });
            self.alert(
                out,
                now,
                AlertKind::StrayAuthorisation,
                Some(sid),
                None,
                format!("an approval ({auth_ref}) for session {sid} came too late and was voided"),
            );
        }
    }

    fn authorised(
        &mut self,
        out: &mut Out,
        now: Millis,
        method: PaymentMethod,
        credential: String,
        offline: bool,
        auth_ref: String,
    ) {
        let sid = self.sid().expect("session open");
        let amount = self.hold_amount();
        self.emit(
            out,
            now,
            Record::Authorised {
                sid,
                amount,
                method,
                credential,
                offline,
                auth_ref,
            },
        );
        self.cart.clear();
        self.next_item(out, now, 0);
    }

    /// Starts the first pending item at or after `from`, or settles when none is left.
    fn next_item(&mut self, out: &mut Out, now: Millis, from: u32) {
        let open = self.state.open.clone().expect("session open");
        for idx in from..open.items.len() as u32 {
            let it = &open.items[idx as usize];
            if !matches!(it.status, ItemStatus::Pending) {
                continue;
            }
            let slot = it.line.slot.clone();
            let s = &self.state.catalog.slots[&slot];
            if !s.sellable() {
                self.fail_item(out, now, open.sid, idx, "slot out of service");
                self.say(out, Prompt::VendFailedNotCharged { slot });
                continue;
            }
            if s.stock == 0 {
                self.fail_item(out, now, open.sid, idx, "sold out");
                self.say(out, Prompt::VendFailedNotCharged { slot });
                continue;
            }
            self.start_attempt(out, now, idx, 1);
            return;
        }
        self.settle(out, now);
    }

    fn start_attempt(&mut self, out: &mut Out, now: Millis, item: u32, attempt: u32) {
        let open = self.state.open.as_ref().expect("session open");
        let sid = open.sid;
        let of = open.items.len() as u32;
        let slot = open.items[item as usize].line.slot.clone();
        self.emit(
            out,
            now,
            Record::VendIntent {
                sid,
                item,
                attempt,
                slot: slot.clone(),
            },
        );
        self.set_phase(
            out,
            now,
            Phase::Vending { item, attempt },
            Some(self.cfg.timeouts.vend_watchdog),
        );
        self.say(
            out,
            Prompt::Vending {
                item: item + 1,
                of,
                slot: slot.clone(),
            },
        );
        out.push(Command::RunMotor {
            sid,
            item,
            attempt,
            slot,
        });
    }

    fn fail_item(&mut self, out: &mut Out, now: Millis, sid: SessionId, item: u32, reason: &str) {
        let slot = self.state.open.as_ref().expect("session open").items[item as usize]
            .line
            .slot
            .clone();
        self.emit(
            out,
            now,
            Record::ItemFailed {
                sid,
                item,
                slot,
                reason: reason.to_string(),
            },
        );
    }

    fn fault_slot(&mut self, out: &mut Out, now: Millis, slot: &SlotId, reason: &str) {
        self.emit(
            out,
            now,
            Record::SlotFaulted {
                slot: slot.clone(),
                reason: reason.to_string(),
            },
        );
    }

    fn vend_result(
        &mut self,
        out: &mut Out,
        now: Millis,
        item: u32,
        attempt: u32,
        outcome: VendOutcome,
        motor_ms: u32,
    ) {
        let sid = self.sid().expect("vending session open");
        let slot = self.state.open.as_ref().expect("open").items[item as usize]
            .line
            .slot
            .clone();
        let believed = self.state.catalog.slots[&slot].stock;
        self.emit(
            out,
            now,
            Record::VendResult {
                sid,
                item,
                attempt,
                slot: slot.clone(),
                outcome: outcome.clone(),
                motor_ms,
            },
        );
        match outcome {
            VendOutcome::Delivered { drops } => {
                if drops > believed {
                    self.alert(
                        out,
                        now,
                        AlertKind::StockMismatch,
                        Some(sid),
                        Some(slot.clone()),
                        format!("slot {slot}: {drops} items fell but the count was {believed}; recount the slot"),
                    );
                }
                self.say(out, Prompt::TakeItem);
                self.next_item(out, now, item + 1);
            }
            VendOutcome::NoDrop if attempt < self.cfg.max_attempts => {
                self.start_attempt(out, now, item, attempt + 1);
            }
            other => {
                let why = match other {
                    VendOutcome::NoDrop => format!("no drop seen after {attempt} attempts"),
                    VendOutcome::Jammed => "motor jammed".to_string(),
                    VendOutcome::HomeSwitchStuck => {
                        "motor did not leave its home switch".to_string()
                    }
                    VendOutcome::NoAnswer => {
                        "dispenser did not answer; outcome unknown".to_string()
                    }
                    VendOutcome::DeviceError { message } => format!("device error: {message}"),
                    VendOutcome::Delivered { .. } => unreachable!("handled above"),
                };
                self.fail_item(out, now, sid, item, &why);
                self.fault_slot(out, now, &slot, &why);
                self.alert(
                    out,
                    now,
                    AlertKind::SlotFault,
                    Some(sid),
                    Some(slot.clone()),
                    format!("slot {slot}: {why}"),
                );
                self.say(out, Prompt::VendFailedNotCharged { slot });
                self.next_item(out, now, item + 1);
            }
        }
    }

    fn late_vend(
        &mut self,
        out: &mut Out,
        now: Millis,
        sid: SessionId,
        item: u32,
        attempt: u32,
        outcome: VendOutcome,
    ) {
        // Only answers to attempts that were given up on are worth a record: find the slot
        // from the open session, if it is still the same one.
        let slot = self
            .state
            .open
            .as_ref()
            .filter(|s| s.sid == sid)
            .and_then(|s| s.items.get(item as usize))
            .map(|i| i.line.slot.clone());
        let Some(slot) = slot else {
            return;
        };
        self.emit(
            out,
            now,
            Record::LateVendResult {
                sid,
                item,
                attempt,
                slot: slot.clone(),
                outcome: outcome.clone(),
            },
        );
        self.alert(
            out,
            now,
            AlertKind::LateVendResult,
            Some(sid),
            Some(slot.clone()),
            format!("slot {slot}: a late dispenser answer ({outcome:?}) after the watchdog; not charged"),
        );
    }

    /// Writes capture and void intents for the open session (if not written yet) and
    /// emits the money commands (again, with the same keys, when they were).
    fn settle_money(&mut self, out: &mut Out, now: Millis) {
        let open = self.state.open.clone().expect("session open");
        let Some(hold) = open.hold.clone() else {
            return;
        };
        let sid = open.sid;
        let delivered = open.delivered_value();
        let auth_ref = hold.auth_ref.clone();
        let (camount, ckey) = match open.capture {
            Some(c) => c,
            None => {
                let key = format!("{sid}:capture");
                let r = Record::Capture {
                    sid,
                    amount: delivered,
                    key: key.clone(),
                    auth_ref: auth_ref.clone(),
                };
                self.emit(out, now, r);
                (delivered, key)
            }
        };
        let (vamount, vkey) = match open.void {
            Some(v) => v,
            None => {
                let key = format!("{sid}:void");
                let amount = hold.amount - camount;
                let r = Record::Void {
                    sid,
                    amount,
                    key: key.clone(),
                    auth_ref: auth_ref.clone(),
                };
                self.emit(out, now, r);
                (amount, key)
            }
        };
        out.push(Command::Capture {
            sid,
            amount: camount,
            key: ckey,
            auth_ref: auth_ref.clone(),
        });
        out.push(Command::Void {
            sid,
            amount: vamount,
            key: vkey,
            auth_ref,
        });
    }

    fn settle(&mut self, out: &mut Out, now: Millis) {
        let open = self.state.open.clone().expect("session open");
        let hold = open.hold.clone().expect("vending session is authorised");
        self.settle_money(out, now);
        let delivered = open.delivered_value();
        let n_ok = open
            .items
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Delivered { .. }))
            .count();
        let reason = if n_ok == open.items.len() {
            CloseReason::Completed
        } else if n_ok > 0 {
            CloseReason::PartlyDelivered
        } else {
            CloseReason::NothingDelivered
        };
        let items = open
            .items
            .iter()
            .map(|i| ReceiptLine {
                slot: i.line.slot.clone(),
                price: i.line.price,
                delivered: matches!(i.status, ItemStatus::Delivered { .. }),
            })
            .collect();
        self.emit(
            out,
            now,
            Record::SessionClosed {
                sid: open.sid,
                reason,
                captured: delivered,
            },
        );
        self.receipt = Some(Receipt {
            sid: open.sid,
            items,
            charged: delivered,
            released: hold.amount - delivered,
            method: hold.method,
        });
        self.set_phase(out, now, Phase::Settling, Some(self.cfg.timeouts.settling));
        self.say(out, Prompt::Settling);
    }

    fn show_receipt(&mut self, out: &mut Out, now: Millis) {
        self.set_phase(out, now, Phase::Receipt, Some(self.cfg.timeouts.receipt));
        let (charged, released) = self
            .receipt
            .as_ref()
            .map_or((0, 0), |r| (r.charged, r.released));
        self.say(out, Prompt::Receipt { charged, released });
    }

    fn door(&mut self, out: &mut Out, now: Millis, open: bool) {
        if open == self.state.door_open {
            return;
        }
        self.emit(out, now, Record::Door { open });
        if !open {
            if self.phase == Phase::Idle {
                self.say(out, Prompt::Welcome);
            }
            return;
        }
        match self.phase {
            Phase::Shopping | Phase::AwaitingCredential | Phase::Authorising => {
                self.close_unpaid(out, now, CloseReason::OutOfService);
                self.say(out, Prompt::OutOfService);
            }
            Phase::Vending { .. } => {
                let sid = self.sid();
                self.alert(
                    out,
                    now,
                    AlertKind::DoorOpenDuringVend,
                    sid,
                    None,
                    "the service door opened while a motor was running".to_string(),
                );
            }
            Phase::Idle | Phase::Receipt => {
                self.receipt = None;
                self.set_phase(out, now, Phase::Idle, None);
                self.say(out, Prompt::OutOfService);
            }
            Phase::Settling => {}
        }
    }
}

/// An account (a credential's keyed hash) is 1 to 128 characters.
fn check_account(account: &str) -> Result<(), Reject> {
    if account.is_empty() || account.len() > 128 {
        return Err(Reject::new(
            "bad_account",
            "an account is a credential hash of 1 to 128 characters",
        ));
    }
    Ok(())
}
