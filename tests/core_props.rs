//! Property and scenario tests of the pure core (`vendd::core`).
//!
//! The first half is a simulation harness in the style of quinn's sans-IO tests: a fake
//! world carries out the controller's commands (motors, authoriser, payment adapter), moves
//! fake time, injects shopper/operator/device inputs and crashes the controller at random
//! points (also in the middle of a batch of commands), rebuilding it from the journal. The
//! money and goods rules of ARCHITECTURE.md are checked against what the *world* saw, not
//! against the controller's own bookkeeping.
//!
//! The second half is scenario tests that read as sentences, and one test per verifier rule.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::collections::{BTreeMap, BTreeSet};
use vendd::core::*;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

const T0: Millis = 1_700_000_000_000;
const SOURCE: &str = "config:test";
const DAY: u64 = 86_400_000;

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn sid_of(name: &str) -> SlotId {
    SlotId::parse(name).unwrap()
}

/// A small machine: two cheap slots, an expensive one, and one that starts sold out.
fn catalog() -> Catalog {
    let mut products = BTreeMap::new();
    for (id, name) in [
        ("cola", "Cola"),
        ("chips", "Chips"),
        ("wine", "Wine"),
        ("gum", "Gum"),
    ] {
        products.insert(
            id.to_string(),
            Product {
                id: id.to_string(),
                name: name.to_string(),
            },
        );
    }
    let mut slots = BTreeMap::new();
    for (name, product, price, capacity, stock) in [
        ("A1", "cola", 120, 6, 4),
        ("A2", "chips", 250, 4, 2),
        ("B1", "wine", 700, 3, 1),
        ("B2", "gum", 90, 4, 0),
    ] {
        slots.insert(
            sid_of(name),
            Slot {
                id: sid_of(name),
                product: product.to_string(),
                price,
                capacity,
                stock,
                enabled: true,
                fault: None,
            },
        );
    }
    Catalog {
        currency: eur(),
        products,
        slots,
    }
}

/// Slot names the generators pick from; the last one does not exist.
const SLOTS: [&str; 5] = ["A1", "A2", "B1", "B2", "C9"];
/// Credential hashes the generators pick from; the last one is malformed (empty).
const CREDS: [&str; 5] = ["cred-0", "cred-1", "cred-2", "cred-3", ""];

/// Tight limits so that the offline rules are reached in short runs.
fn sim_config() -> CoreConfig {
    CoreConfig {
        timeouts: Timeouts::default(),
        max_attempts: 2,
        max_cart_items: 4,
        max_extends: 1,
        policy: PolicyConfig {
            floor_limit: 1000,
            max_offline_total: 1500,
            max_uses_per_day: 2,
            ..PolicyConfig::default()
        },
    }
}

fn replay(planogram: &Catalog, journal: &[Stamped]) -> State {
    let mut s = State::new(planogram.clone(), 0);
    for st in journal {
        s.apply(st);
    }
    s
}

fn verify(journal: &[Stamped]) -> Vec<Violation> {
    let mut v = Verifier::new();
    for (i, st) in journal.iter().enumerate() {
        v.feed(i as u64 + 1, st);
    }
    v.finish()
}

fn stocks(s: &State) -> BTreeMap<SlotId, u32> {
    s.catalog
        .slots
        .iter()
        .map(|(k, v)| (k.clone(), v.stock))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The simulated world
// ---------------------------------------------------------------------------------------

/// How the dispenser answers one motor cycle.
#[derive(Clone, Debug)]
enum Disp {
    /// Answers within the watchdog.
    Answer(VendOutcome, u64),
    /// Answers after the watchdog gave up (extra ms past it).
    Late(VendOutcome, u64),
    /// Never answers.
    Never,
}

/// How the online authoriser answers one request.
#[derive(Clone, Debug)]
enum Auth {
    Approve(u64),
    Decline(u64),
    /// Approves after the controller's time-out (extra ms past it).
    LateApprove(u64),
    /// The request is lost.
    Never,
    /// Approves, and the broker delivers the answer twice (at-least-once), `gap` ms apart.
    ApproveTwice(u64, u64),
}

/// One thing that happens in the world.
#[derive(Clone, Debug)]
enum Act {
    Add(u8, u32),
    Remove(u8),
    Checkout,
    Cancel,
    Extend,
    Dismiss,
    Credential(PaymentMethod, u8),
    Door(bool),
    Link(bool),
    Restock(u8, u32),
    SetPrice(u8, i64),
    SetEnabled(u8, bool),
    ClearFault(u8),
    Deny(u8, bool),
    ResetCounters,
    Wait(u64),
    /// A whole purchase attempt: add the lines, check out, present a credential, wait.
    Buy(Vec<(u8, u32)>, PaymentMethod, u8, u64),
}

/// A crash while this step runs: in its `batch`-th non-empty batch (mod the number of
/// batches), after `cmd` commands (mod len+1); `again` crashes the recovery batch too.
#[derive(Clone, Debug)]
struct Crash {
    batch: u8,
    cmd: u8,
    again: Option<u8>,
}

#[derive(Clone, Debug)]
struct Step {
    act: Act,
    crash: Option<Crash>,
}

#[derive(Clone, Debug)]
struct Script {
    steps: Vec<Step>,
    disp: Vec<Disp>,
    auth: Vec<Auth>,
    /// Does the payment adapter confirm settlement (else the settling time-out runs)?
    settle_confirms: bool,
    /// Start of time within the day, so that runs cross midnight at different points.
    t0: Millis,
}

/// Something the world will deliver to the controller at a time.
#[derive(Clone, Debug)]
enum Ev {
    Vend {
        epoch: u32,
        sid: SessionId,
        item: u32,
        attempt: u32,
        outcome: VendOutcome,
    },
    Auth {
        sid: SessionId,
        approved: bool,
        amount: i64,
        auth_ref: String,
    },
    Settled {
        epoch: u32,
        sid: SessionId,
    },
}

/// What the world saw of one money command key.
#[derive(Clone, Debug, PartialEq)]
struct MoneyCmd {
    capture: bool,
    sid: SessionId,
    amount: i64,
    auth_ref: String,
}

struct Sim {
    cfg: CoreConfig,
    planogram: Catalog,
    ctl: Controller,
    now: Millis,
    /// Durable journal (what survives a crash).
    journal: Vec<Stamped>,
    /// Journal folded incrementally, compared with the controller's state after each batch.
    replayed: State,
    events: Vec<(Millis, u64, Ev)>,
    ev_seq: u64,
    script: Script,
    disp_i: usize,
    auth_i: usize,
    auth_n: u64,
    online: bool,
    epoch: u32,
    /// The attempt the controller has running: RunMotor issued, result not journaled yet.
    motor: Option<(SessionId, u32, u32)>,
    /// Items whose drop the sensor confirmed to the controller in time (and it was recorded).
    confirmed: BTreeMap<SessionId, BTreeSet<u32>>,
    /// Items with an attempt whose outcome the controller could not know (crash, watchdog).
    unknown: BTreeMap<SessionId, BTreeSet<u32>>,
    /// Sessions interrupted by a crash while they held money or had a motor running.
    crashed_sids: BTreeSet<SessionId>,
    /// Money commands by idempotency key.
    money: BTreeMap<String, MoneyCmd>,
    /// Holds the online authoriser placed, by reference.
    holds: BTreeMap<String, i64>,
    /// Drops fed to the controller in the current step, per slot.
    step_drops: BTreeMap<SlotId, u32>,
    /// Commands carried out, across crashes.
    stream: Vec<Command>,
    /// Statistics, to show the generators reach the interesting paths.
    stats: Stats,
}

#[derive(Default, Debug, Clone)]
struct Stats {
    crashes: u64,
    captures_nonzero: u64,
    recovered_with_hold: u64,
    strays: u64,
    watchdogs: u64,
    rejects: u64,
    offline_auths: u64,
}

/// Raised by the executor when the step's crash point is reached.
struct Crashed;

impl Sim {
    fn new(script: Script) -> Sim {
        let cfg = sim_config();
        let planogram = catalog();
        let state = State::new(planogram.clone(), 0);
        let mut sim = Sim {
            ctl: Controller::new(cfg.clone(), state),
            replayed: State::new(planogram.clone(), 0),
            cfg,
            planogram,
            now: script.t0,
            journal: Vec::new(),
            events: Vec::new(),
            ev_seq: 0,
            script,
            disp_i: 0,
            auth_i: 0,
            auth_n: 0,
            online: false,
            epoch: 0,
            motor: None,
            confirmed: BTreeMap::new(),
            unknown: BTreeMap::new(),
            crashed_sids: BTreeSet::new(),
            money: BTreeMap::new(),
            holds: BTreeMap::new(),
            step_drops: BTreeMap::new(),
            stream: Vec::new(),
            stats: Stats::default(),
        };
        let out = sim
            .ctl
            .start(sim.now, "test", &sim.planogram.clone(), SOURCE);
        assert!(
            matches!(
                out.first(),
                Some(Command::Journal(Stamped {
                    record: Record::Planogram { .. },
                    ..
                }))
            ),
            "the first record after a fresh start must be the planogram: {out:?}"
        );
        let _ = sim.execute(out, None);
        sim.check_live_state();
        sim
    }

    fn schedule(&mut self, at: Millis, ev: Ev) {
        self.ev_seq += 1;
        self.events.push((at, self.ev_seq, ev));
    }

    fn checked_out_prices(&self, sid: SessionId) -> Vec<i64> {
        self.journal
            .iter()
            .find_map(|st| match &st.record {
                Record::CheckedOut { sid: s, items, .. } if *s == sid => {
                    Some(items.iter().map(|i| i.price).collect())
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    fn confirmed_value(&self, sid: SessionId) -> i64 {
        let prices = self.checked_out_prices(sid);
        self.confirmed
            .get(&sid)
            .map_or(0, |items| items.iter().map(|i| prices[*i as usize]).sum())
    }

    /// Carries out commands in order, as the runtime would. With `cut`, stops (crashes)
    /// after that many commands.
    fn execute(&mut self, out: Vec<Command>, cut: Option<usize>) -> Result<(), Crashed> {
        let mut journaled_in_batch = false;
        for (i, cmd) in out.into_iter().enumerate() {
            if cut == Some(i) {
                return Err(Crashed);
            }
            if cmd.acts() {
                assert!(
                    journaled_in_batch || !self.journal.is_empty(),
                    "acting command with no journal record before it: {cmd:?}"
                );
            }
            match &cmd {
                Command::Journal(st) => {
                    journaled_in_batch = true;
                    self.on_record(st);
                    self.journal.push(st.clone());
                    self.replayed.apply(st);
                }
                Command::RunMotor {
                    sid,
                    item,
                    attempt,
                    slot,
                } => self.on_motor(*sid, *item, *attempt, slot),
                Command::RequestAuth {
                    sid,
                    amount,
                    credential,
                    ..
                } => {
                    assert!(self.online, "authoriser asked while the link is down");
                    assert!(!credential.is_empty());
                    self.on_request_auth(*sid, *amount);
                }
                Command::Capture {
                    sid,
                    amount,
                    key,
                    auth_ref,
                } => self.on_money(true, *sid, *amount, key, auth_ref),
                Command::Void {
                    sid,
                    amount,
                    key,
                    auth_ref,
                } => self.on_money(false, *sid, *amount, key, auth_ref),
                Command::Prompt(_)
                | Command::Alert { .. }
                | Command::Publish { .. }
                | Command::Unlock { .. }
                | Command::EraseFace { .. } => {}
            }
            self.stream.push(cmd);
        }
        if cut.is_some() {
            // A cut at len: every command ran, then the process died.
            return Err(Crashed);
        }
        Ok(())
    }

    fn on_record(&mut self, st: &Stamped) {
        match &st.record {
            Record::VendResult {
                sid,
                item,
                attempt,
                outcome,
                ..
            } => {
                assert_eq!(
                    self.motor,
                    Some((*sid, *item, *attempt)),
                    "a vend result for an attempt whose motor the world did not run"
                );
                self.motor = None;
                if *outcome == VendOutcome::NoAnswer {
                    self.stats.watchdogs += 1;
                    self.unknown.entry(*sid).or_default().insert(*item);
                }
            }
            Record::InterruptedVend { sid, item, .. } => {
                self.unknown.entry(*sid).or_default().insert(*item);
            }
            Record::Authorised { offline: true, .. } => self.stats.offline_auths += 1,
            Record::StrayAuthVoided { .. } => self.stats.strays += 1,
            _ => {}
        }
    }

    fn on_motor(&mut self, sid: SessionId, item: u32, attempt: u32, slot: &SlotId) {
        // (a) write ahead: the intent for exactly this attempt is durable before the motor.
        let intent = self.journal.iter().rposition(|st| {
            st.record
                == Record::VendIntent {
                    sid,
                    item,
                    attempt,
                    slot: slot.clone(),
                }
        });
        assert!(
            intent.is_some(),
            "RunMotor {sid}/{item}/{attempt} without a journaled VendIntent"
        );
        // ... and nothing was answered for it since.
        let after = &self.journal[intent.unwrap() + 1..];
        assert!(
            !after.iter().any(|st| matches!(&st.record,
                Record::VendResult { sid: s, item: i, attempt: a, .. }
                | Record::InterruptedVend { sid: s, item: i, attempt: a, .. }
                if (*s, *i, *a) == (sid, item, attempt))),
            "RunMotor for an attempt that was already answered"
        );
        // (a) never two motors in flight.
        assert_eq!(
            self.motor, None,
            "RunMotor {sid}/{item}/{attempt} while another motor is in flight"
        );
        // Rule 3: a session interrupted by a restart never runs a motor again.
        assert!(
            !self.crashed_sids.contains(&sid),
            "motor re-run for interrupted session {sid}"
        );
        // The slot's price/stock at vend time come from the checked-out line.
        let prices = self.checked_out_prices(sid);
        assert!(
            (item as usize) < prices.len(),
            "RunMotor for item {item} of a cart of {}",
            prices.len()
        );
        self.motor = Some((sid, item, attempt));
        let d = if self.script.disp.is_empty() {
            Disp::Answer(VendOutcome::Delivered { drops: 1 }, 800)
        } else {
            self.script.disp[self.disp_i % self.script.disp.len()].clone()
        };
        self.disp_i += 1;
        let watchdog = self.cfg.timeouts.vend_watchdog;
        let (delay, outcome) = match d {
            Disp::Answer(o, delay) => (delay.min(watchdog - 1), o),
            Disp::Late(o, extra) => (watchdog + extra, o),
            Disp::Never => return,
        };
        let epoch = self.epoch;
        self.schedule(
            self.now + delay,
            Ev::Vend {
                epoch,
                sid,
                item,
                attempt,
                outcome,
            },
        );
    }

    fn on_request_auth(&mut self, sid: SessionId, amount: i64) {
        let a = if self.script.auth.is_empty() {
            Auth::Approve(300)
        } else {
            self.script.auth[self.auth_i % self.script.auth.len()].clone()
        };
        self.auth_i += 1;
        self.auth_n += 1;
        let auth_ref = format!("ar-{}", self.auth_n);
        let timeout = self.cfg.timeouts.authorising;
        let ev = |approved| Ev::Auth {
            sid,
            approved,
            amount,
            auth_ref: auth_ref.clone(),
        };
        match a {
            Auth::Approve(d) => {
                self.holds.insert(auth_ref.clone(), amount);
                self.schedule(self.now + d.min(timeout - 1), ev(true));
            }
            Auth::Decline(d) => self.schedule(self.now + d.min(timeout - 1), ev(false)),
            Auth::LateApprove(extra) => {
                self.holds.insert(auth_ref.clone(), amount);
                self.schedule(self.now + timeout + extra, ev(true));
            }
            Auth::Never => {}
            Auth::ApproveTwice(d, gap) => {
                self.holds.insert(auth_ref.clone(), amount);
                self.schedule(self.now + d.min(timeout - 1), ev(true));
                self.schedule(self.now + d.min(timeout - 1) + gap, ev(true));
            }
        }
    }

    fn on_money(&mut self, capture: bool, sid: SessionId, amount: i64, key: &str, auth_ref: &str) {
        // The money intent is durable before the money moves, with the same key and amount.
        let recorded = self.journal.iter().any(|st| match &st.record {
            Record::Capture {
                sid: s,
                amount: a,
                key: k,
                auth_ref: r,
            } if capture => (*s, *a, k.as_str(), r.as_str()) == (sid, amount, key, auth_ref),
            Record::Void {
                sid: s,
                amount: a,
                key: k,
                auth_ref: r,
            } if !capture => (*s, *a, k.as_str(), r.as_str()) == (sid, amount, key, auth_ref),
            Record::StrayAuthVoided {
                sid: s,
                amount: a,
                key: k,
                auth_ref: r,
            } if !capture => (*s, *a, k.as_str(), r.as_str()) == (sid, amount, key, auth_ref),
            _ => false,
        });
        assert!(
            recorded,
            "money command {key} ({amount}) without its journal record before it"
        );
        assert!(amount >= 0, "negative money command {key}: {amount}");
        let cmd = MoneyCmd {
            capture,
            sid,
            amount,
            auth_ref: auth_ref.to_string(),
        };
        match self.money.get(key) {
            // (c) a repeated command (after a restart) carries the same key and amount.
            Some(prev) => assert_eq!(
                prev, &cmd,
                "idempotency key {key} reused for a different command"
            ),
            None => {
                self.money.insert(key.to_string(), cmd);
            }
        }
        if capture {
            // (b) the capture is the value of the confirmed items, never more.
            let confirmed = self.confirmed_value(sid);
            assert_eq!(
                amount, confirmed,
                "session {sid} captured {amount}, confirmed drops are worth {confirmed}"
            );
            // (e) an item with an unknown outcome is not among the charged ones.
            let both: Vec<_> = self
                .unknown
                .get(&sid)
                .into_iter()
                .flatten()
                .filter(|i| self.confirmed.get(&sid).is_some_and(|c| c.contains(i)))
                .collect();
            assert!(
                both.is_empty(),
                "session {sid}: items {both:?} unknown yet charged"
            );
            if amount > 0 {
                self.stats.captures_nonzero += 1;
            }
        } else if self.script.settle_confirms && !key.contains("stray") {
            let epoch = self.epoch;
            self.schedule(self.now + 150, Ev::Settled { epoch, sid });
        }
    }

    /// The controller's state is the fold of its journal, and the journal keeps every rule.
    fn check_live_state(&self) {
        assert_eq!(
            self.ctl.state(),
            &self.replayed,
            "live state differs from the journal's fold"
        );
    }

    /// Runs one step's inputs and timers; `crash` says where the process dies.
    fn step(&mut self, step: &Step) {
        self.step_drops.clear();
        let before = self.ctl.state().clone();
        let mut batches = 0u8;
        let crash_at = step.crash.as_ref().map(|c| c.batch % 3);
        let r = self.run_act(&step.act, &mut |b: usize| {
            let this = batches;
            if b > 0 {
                batches += 1;
            }
            match (crash_at, &step.crash) {
                (Some(at), Some(c)) if b > 0 && this == at => Some(c.cmd as usize % (b + 1)),
                _ => None,
            }
        });
        if r.is_ok() {
            self.check_live_state();
        }
        self.check_stock_step(&before, step);
        if r.is_err() || step.crash.is_some() {
            self.crash_and_recover(step.crash.as_ref().and_then(|c| c.again));
        }
    }

    /// (d) stock never rises but by an operator count, and falls only by the drops fed in.
    fn check_stock_step(&self, before: &State, step: &Step) {
        let after = self.ctl.state();
        let counted = match step.act {
            Act::Restock(i, _) => Some(sid_of(SLOTS[i as usize % SLOTS.len()])),
            _ => None,
        };
        for (slot, old) in stocks(before) {
            let new = after.catalog.slots[&slot].stock;
            if counted.as_ref() == Some(&slot) {
                continue;
            }
            assert!(
                new <= old,
                "stock of {slot} rose from {old} to {new} without an operator count"
            );
            let fed = self.step_drops.get(&slot).copied().unwrap_or(0);
            assert!(
                old - new <= fed,
                "stock of {slot} fell by {} but only {fed} drops were confirmed",
                old - new
            );
            assert!(new <= after.catalog.slots[&slot].capacity);
        }
    }

    fn run_act(
        &mut self,
        act: &Act,
        cut: &mut dyn FnMut(usize) -> Option<usize>,
    ) -> Result<(), Crashed> {
        let slot = |i: &u8| sid_of(SLOTS[*i as usize % SLOTS.len()]);
        let cred = |i: &u8| CREDS[*i as usize % CREDS.len()].to_string();
        let input = match act {
            Act::Wait(ms) => return self.advance(self.now + ms, cut),
            Act::Buy(lines, m, c, wait) => {
                for (s, q) in lines {
                    self.feed(
                        Input::AddItem {
                            slot: slot(s),
                            qty: *q,
                        },
                        cut,
                    )?;
                }
                self.feed(Input::Checkout, cut)?;
                let credential = Input::Credential {
                    method: *m,
                    credential: cred(c),
                };
                self.feed(credential, cut)?;
                return self.advance(self.now + wait, cut);
            }
            Act::Add(s, q) => Input::AddItem {
                slot: slot(s),
                qty: *q,
            },
            Act::Remove(s) => Input::RemoveItem { slot: slot(s) },
            Act::Checkout => Input::Checkout,
            Act::Cancel => Input::Cancel,
            Act::Extend => Input::Extend,
            Act::Dismiss => Input::Dismiss,
            Act::Credential(m, c) => Input::Credential {
                method: *m,
                credential: cred(c),
            },
            Act::Door(open) => Input::Door { open: *open },
            Act::Link(online) => {
                self.online = *online;
                Input::Link { online: *online }
            }
            Act::Restock(s, n) => Input::Restock {
                slot: slot(s),
                count: *n,
            },
            Act::SetPrice(s, p) => Input::SetPrice {
                slot: slot(s),
                price: *p,
            },
            Act::SetEnabled(s, e) => Input::SetEnabled {
                slot: slot(s),
                enabled: *e,
            },
            Act::ClearFault(s) => Input::ClearFault { slot: slot(s) },
            Act::Deny(c, add) => Input::Deny {
                credential: cred(c),
                add: *add,
            },
            Act::ResetCounters => Input::ResetCounters,
        };
        self.feed(input, cut)
    }

    /// Feeds one input; a refused input must change nothing.
    fn feed(
        &mut self,
        input: Input,
        cut: &mut dyn FnMut(usize) -> Option<usize>,
    ) -> Result<(), Crashed> {
        let device = matches!(
            input,
            Input::VendDone { .. }
                | Input::AuthResult { .. }
                | Input::Settled { .. }
                | Input::Door { .. }
                | Input::Link { .. }
        );
        let snapshot = (
            self.ctl.state().clone(),
            self.ctl.phase(),
            self.ctl.cart().to_vec(),
            self.ctl.deadline(),
            self.ctl.prompt().clone(),
            self.ctl.receipt().cloned(),
        );
        match self.ctl.handle_input(self.now, input.clone()) {
            Ok(out) => {
                let c = cut(out.len());
                self.execute(out, c)
            }
            Err(rej) => {
                assert!(!device, "device input {input:?} refused: {rej}");
                self.stats.rejects += 1;
                let now = (
                    self.ctl.state().clone(),
                    self.ctl.phase(),
                    self.ctl.cart().to_vec(),
                    self.ctl.deadline(),
                    self.ctl.prompt().clone(),
                    self.ctl.receipt().cloned(),
                );
                assert!(
                    snapshot == now,
                    "refused input {input:?} ({rej}) changed the controller"
                );
                assert!(!rej.message.is_empty() && !rej.code.is_empty());
                Ok(())
            }
        }
    }

    /// Moves time to `to`, delivering world events and controller timers in time order.
    fn advance(
        &mut self,
        to: Millis,
        cut: &mut dyn FnMut(usize) -> Option<usize>,
    ) -> Result<(), Crashed> {
        for _ in 0..10_000 {
            let ev_at = self.events.iter().map(|(t, s, _)| (*t, *s)).min();
            let timer = self.ctl.poll_timeout();
            let next_ev = ev_at.filter(|(t, _)| *t <= to);
            let next_timer = timer.filter(|t| *t <= to);
            match (next_ev, next_timer) {
                (None, None) => {
                    self.now = self.now.max(to);
                    return Ok(());
                }
                // World events due at the same time as a timer come first.
                (Some((t, seq)), timer) if timer.is_none_or(|tt| t <= tt) => {
                    self.now = self.now.max(t);
                    let pos = self.events.iter().position(|(_, s, _)| *s == seq).unwrap();
                    let (_, _, ev) = self.events.remove(pos);
                    self.deliver(ev, cut)?;
                }
                (_, Some(t)) => {
                    self.now = self.now.max(t);
                    let before_phase = self.ctl.phase();
                    let before_deadline = self.ctl.deadline();
                    let out = self.ctl.handle_timeout(self.now);
                    assert!(
                        !out.is_empty()
                            || self.ctl.phase() != before_phase
                            || self.ctl.deadline() != before_deadline
                            || self.ctl.warned(),
                        "timer at {t} fired and did nothing (phase {before_phase:?})"
                    );
                    let c = cut(out.len());
                    self.execute(out, c)?;
                }
                _ => unreachable!(),
            }
            self.check_live_state();
        }
        panic!("time does not advance: timers keep firing");
    }

    fn deliver(
        &mut self,
        ev: Ev,
        cut: &mut dyn FnMut(usize) -> Option<usize>,
    ) -> Result<(), Crashed> {
        match ev {
            Ev::Vend {
                epoch,
                sid,
                item,
                attempt,
                outcome,
            } => {
                if epoch != self.epoch {
                    return Ok(()); // the dispenser adapter died with the process
                }
                let current = self.motor == Some((sid, item, attempt));
                let slot = self.checked_out_slot(sid, item);
                if let Some(slot) = &slot {
                    *self.step_drops.entry(slot.clone()).or_default() += outcome.confirmed_drops();
                }
                let input = Input::VendDone {
                    sid,
                    item,
                    attempt,
                    outcome: outcome.clone(),
                    motor_ms: 900,
                };
                let out = self
                    .ctl
                    .handle_input(self.now, input)
                    .expect("device inputs are never refused");
                if current {
                    assert!(
                        matches!(out.first(), Some(Command::Journal(Stamped { record: Record::VendResult { outcome: o, .. }, .. })) if *o == outcome),
                        "an answer for the running attempt must first be journaled as its result"
                    );
                }
                let c = cut(out.len());
                let recorded = c.is_none_or(|c| c > 0);
                if current && recorded && outcome.confirmed_drops() > 0 {
                    self.confirmed.entry(sid).or_default().insert(item);
                }
                self.execute(out, c)
            }
            Ev::Auth {
                sid,
                approved,
                amount,
                auth_ref,
            } => {
                let input = Input::AuthResult {
                    sid,
                    approved,
                    amount,
                    auth_ref: auth_ref.clone(),
                    reason: if approved {
                        String::new()
                    } else {
                        "insufficient funds".into()
                    },
                };
                let out = self
                    .ctl
                    .handle_input(self.now, input)
                    .expect("device inputs are never refused");
                let c = cut(out.len());
                if c == Some(0) && !out.is_empty() {
                    // Nothing became durable: the broker redelivers the unacknowledged answer.
                    self.schedule(
                        self.now + 500,
                        Ev::Auth {
                            sid,
                            approved,
                            amount,
                            auth_ref,
                        },
                    );
                }
                self.execute(out, c)
            }
            Ev::Settled { epoch, sid } => {
                if epoch != self.epoch {
                    return Ok(());
                }
                let out = self
                    .ctl
                    .handle_input(self.now, Input::Settled { sid })
                    .expect("never refused");
                let c = cut(out.len());
                self.execute(out, c)
            }
        }
    }

    fn checked_out_slot(&self, sid: SessionId, item: u32) -> Option<SlotId> {
        self.journal.iter().find_map(|st| match &st.record {
            Record::CheckedOut { sid: s, items, .. } if *s == sid => {
                items.get(item as usize).map(|l| l.slot.clone())
            }
            _ => None,
        })
    }

    /// Throws the controller away, rebuilds it from the journal and starts it again.
    fn crash_and_recover(&mut self, again: Option<u8>) {
        self.stats.crashes += 1;
        self.epoch += 1;
        if let Some((sid, item, _)) = self.motor.take() {
            // The world does not know what the motor did: its outcome is unknown.
            self.unknown.entry(sid).or_default().insert(item);
        }
        let mut again = again;
        loop {
            let state = replay(&self.planogram, &self.journal);
            // The state rebuilt from scratch equals the incremental fold.
            assert_eq!(
                state, self.replayed,
                "replay from scratch differs from the incremental fold"
            );
            if let Some(open) = &state.open {
                if open.hold.is_some() || open.in_flight.is_some() {
                    self.crashed_sids.insert(open.sid);
                    self.stats.recovered_with_hold += 1;
                }
            }
            self.ctl = Controller::new(self.cfg.clone(), state);
            let out = self
                .ctl
                .start(self.now, "test", &self.planogram.clone(), SOURCE);
            assert!(
                !out.iter().any(|c| matches!(c, Command::RunMotor { .. })),
                "start ran a motor: {out:?}"
            );
            assert!(
                !out.iter().any(|c| matches!(
                    c,
                    Command::Journal(Stamped {
                        record: Record::Planogram { .. },
                        ..
                    })
                )),
                "an unchanged planogram was written again"
            );
            let cut = again.take().map(|c| c as usize % (out.len() + 1));
            if self.execute(out, cut).is_ok() {
                break;
            }
            self.stats.crashes += 1;
        }
        assert_eq!(self.ctl.phase(), Phase::Idle);
        assert!(
            self.ctl.state().open.is_none(),
            "recovery left a session open"
        );
        self.check_live_state();
        if self.online {
            let out = self
                .ctl
                .handle_input(self.now, Input::Link { online: true })
                .unwrap();
            assert!(out.is_empty());
        }
    }

    /// Lets every session finish: no more shopper input, time runs for an hour.
    fn drain(&mut self) {
        let to = self.now + 3_600_000;
        self.advance(to, &mut |_| None)
            .ok()
            .expect("no crash while draining");
        assert!(
            self.events.is_empty(),
            "world events left after an hour: {:?}",
            self.events
        );
        assert!(
            self.ctl.state().open.is_none(),
            "a session is still open after an hour: {:?}",
            self.ctl.phase()
        );
        assert_eq!(self.ctl.phase(), Phase::Idle);
        self.check_live_state();
    }

    /// End-of-run checks over the whole journal and what the world saw.
    fn check_end(&self) {
        let violations = verify(&self.journal);
        assert!(violations.is_empty(), "verifier: {violations:#?}");
        assert_eq!(replay(&self.planogram, &self.journal), *self.ctl.state());
        // (c) every authorisation ends in exactly one capture and one void adding up to it,
        // and the world received both money commands with the journaled keys.
        for st in &self.journal {
            let Record::Authorised {
                sid,
                amount,
                auth_ref,
                ..
            } = &st.record
            else {
                continue;
            };
            let caps: Vec<_> = self
                .journal
                .iter()
                .filter_map(|r| match &r.record {
                    Record::Capture {
                        sid: s,
                        amount,
                        key,
                        auth_ref: a,
                    } if s == sid => Some((*amount, key.clone(), a.clone())),
                    _ => None,
                })
                .collect();
            let voids: Vec<_> = self
                .journal
                .iter()
                .filter_map(|r| match &r.record {
                    Record::Void {
                        sid: s,
                        amount,
                        key,
                        auth_ref: a,
                    } if s == sid => Some((*amount, key.clone(), a.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(
                (caps.len(), voids.len()),
                (1, 1),
                "session {sid}: captures {caps:?} voids {voids:?}"
            );
            assert_eq!(
                caps[0].0 + voids[0].0,
                *amount,
                "session {sid}: capture + void != hold"
            );
            assert_eq!((&caps[0].2, &voids[0].2), (auth_ref, auth_ref));
            for (amount, key, _) in [&caps[0], &voids[0]] {
                let seen = self.money.get(key).unwrap_or_else(|| {
                    panic!("money command {key} never reached the payment adapter")
                });
                assert_eq!(seen.amount, *amount);
            }
        }
        // Per authorisation reference, the world's captures and voids release exactly the hold.
        let mut by_ref: BTreeMap<&str, i64> = BTreeMap::new();
        for m in self.money.values() {
            *by_ref.entry(&m.auth_ref).or_default() += m.amount;
        }
        for (auth_ref, held) in &self.holds {
            let settled = by_ref.get(auth_ref.as_str()).copied().unwrap_or(0);
            assert_eq!(
                settled, *held,
                "authorisation {auth_ref}: held {held}, captured+voided {settled}"
            );
        }
        for (auth_ref, settled) in &by_ref {
            if !auth_ref.starts_with("offline-") {
                assert!(
                    self.holds.contains_key(*auth_ref),
                    "money moved on unknown authorisation {auth_ref} ({settled})"
                );
            }
        }
        // Audit counters agree with the money the world captured.
        let captured: i64 = self
            .money
            .values()
            .filter(|m| m.capture)
            .map(|m| m.amount)
            .sum();
        assert_eq!(self.ctl.state().counters.lifetime.paid.value, captured);
    }
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn outcome() -> impl Strategy<Value = VendOutcome> {
    prop_oneof![
        6 => Just(VendOutcome::Delivered { drops: 1 }),
        1 => Just(VendOutcome::Delivered { drops: 2 }),
        2 => Just(VendOutcome::NoDrop),
        1 => Just(VendOutcome::Jammed),
        1 => Just(VendOutcome::HomeSwitchStuck),
        1 => Just(VendOutcome::DeviceError { message: "motor driver fault".into() }),
    ]
}

fn disp() -> impl Strategy<Value = Disp> {
    prop_oneof![
        8 => (outcome(), 100u64..5_000).prop_map(|(o, d)| Disp::Answer(o, d)),
        1 => (outcome(), 0u64..10_000).prop_map(|(o, d)| Disp::Late(o, d)),
        1 => Just(Disp::Never),
    ]
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        5 => (50u64..3_000).prop_map(Auth::Approve),
        2 => (50u64..3_000).prop_map(Auth::Decline),
        1 => (0u64..60_000).prop_map(Auth::LateApprove),
        1 => Just(Auth::Never),
        1 => (50u64..3_000, 0u64..20_000).prop_map(|(d, g)| Auth::ApproveTwice(d, g)),
    ]
}

fn method() -> impl Strategy<Value = PaymentMethod> {
    prop_oneof![
        3 => Just(PaymentMethod::Card),
        1 => Just(PaymentMethod::TestCard),
        2 => Just(PaymentMethod::PayCode),
        1 => Just(PaymentMethod::MerchantQr),
        1 => Just(PaymentMethod::Face),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    let slot = prop_oneof![4 => 0u8..4, 1 => Just(4u8)];
    let cred = prop_oneof![6 => 0u8..4, 1 => Just(4u8)];
    prop_oneof![
        10 => (slot.clone(), prop_oneof![5 => Just(1u32), 2 => 2u32..4, 1 => 0u32..6]).prop_map(|(s, q)| Act::Add(s, q)),
        1 => slot.clone().prop_map(Act::Remove),
        7 => Just(Act::Checkout),
        2 => Just(Act::Cancel),
        1 => Just(Act::Extend),
        1 => Just(Act::Dismiss),
        7 => (method(), cred.clone()).prop_map(|(m, c)| Act::Credential(m, c)),
        1 => any::<bool>().prop_map(Act::Door),
        3 => any::<bool>().prop_map(Act::Link),
        4 => (slot.clone(), 0u32..8).prop_map(|(s, n)| Act::Restock(s, n)),
        1 => (slot.clone(), prop_oneof![0i64..1_500, Just(-5), Just(200_000_000)]).prop_map(|(s, p)| Act::SetPrice(s, p)),
        1 => (slot.clone(), any::<bool>()).prop_map(|(s, e)| Act::SetEnabled(s, e)),
        1 => slot.prop_map(Act::ClearFault),
        1 => (cred, any::<bool>()).prop_map(|(c, a)| Act::Deny(c, a)),
        1 => Just(Act::ResetCounters),
        8 => (
            prop::collection::vec((0u8..4, prop_oneof![4 => Just(1u32), 1 => 2u32..3]), 1..4),
            method(),
            0u8..4,
            prop_oneof![Just(0u64), 1_000u64..30_000, Just(120_000)],
        )
            .prop_map(|(l, m, c, w)| Act::Buy(l, m, c, w)),
        10 => prop_oneof![
            4 => 0u64..2_000,
            4 => 2_000u64..25_000,
            2 => 25_000u64..120_000,
            1 => Just(DAY),
        ].prop_map(Act::Wait),
    ]
}

fn crash() -> impl Strategy<Value = Option<Crash>> {
    prop_oneof![
        14 => Just(None),
        1 => (any::<u8>(), any::<u8>(), prop::option::weighted(0.2, any::<u8>()))
            .prop_map(|(batch, cmd, again)| Some(Crash { batch, cmd, again })),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (
        prop::collection::vec(
            (act(), crash()).prop_map(|(act, crash)| Step { act, crash }),
            1..40,
        ),
        prop::collection::vec(disp(), 1..6),
        prop::collection::vec(auth(), 1..4),
        prop::bool::weighted(0.8),
        0u64..DAY,
    )
        .prop_map(|(steps, disp, auth, settle_confirms, t)| Script {
            steps,
            disp,
            auth,
            settle_confirms,
            t0: T0 + t,
        })
}

fn run(script: Script) -> Sim {
    let steps = script.steps.clone();
    let mut sim = Sim::new(script);
    for step in &steps {
        sim.step(step);
    }
    sim.drain();
    sim.check_end();
    sim
}

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cfg())]

    /// (a)–(e), write-ahead, replay equality, verifier and refusals, over random runs with
    /// crashes: every check lives in the simulator and fires at the step that breaks it.
    #[test]
    fn random_runs_with_crashes_keep_money_and_goods_safe(script in script()) {
        run(script);
    }

    /// (a) in isolation, over the whole command stream after the fact: every RunMotor has
    /// its intent earlier in the stream, and motors never overlap.
    #[test]
    fn every_motor_run_follows_its_intent_and_runs_alone(script in script()) {
        let sim = run(script);
        let mut intents = BTreeSet::new();
        let mut running: Option<(SessionId, u32, u32)> = None;
        for c in &sim.stream {
            match c {
                Command::Journal(Stamped { record: Record::VendIntent { sid, item, attempt, .. }, .. }) => {
                    intents.insert((*sid, *item, *attempt));
                }
                Command::Journal(Stamped { record: Record::VendResult { sid, item, attempt, .. } | Record::InterruptedVend { sid, item, attempt, .. }, .. }) => {
                    running = running.filter(|r| *r != (*sid, *item, *attempt));
                }
                Command::RunMotor { sid, item, attempt, .. } => {
                    prop_assert!(intents.contains(&(*sid, *item, *attempt)));
                    prop_assert!(running.is_none(), "two motors in flight");
                    running = Some((*sid, *item, *attempt));
                }
                _ => {}
            }
        }
    }

    /// (b)+(e): per session, the capture is exactly the value of the on-time confirmed
    /// drops, and nothing with an unknown outcome is charged.
    #[test]
    fn captures_are_the_confirmed_items_and_never_the_unknown_ones(script in script()) {
        let sim = run(script);
        for m in sim.money.values().filter(|m| m.capture) {
            prop_assert_eq!(m.amount, sim.confirmed_value(m.sid));
            let prices = sim.checked_out_prices(m.sid);
            let unknown: i64 = sim.unknown.get(&m.sid).into_iter().flatten().map(|i| prices[*i as usize]).sum();
            let hold: i64 = prices.iter().sum();
            prop_assert!(m.amount <= hold - unknown);
        }
    }

    /// (d): stock only ever falls by drops the world reported, over the whole run.
    #[test]
    fn stock_accounts_for_every_drop_and_every_count(script in script()) {
        let sim = run(script);
        // Fold stock from the planogram with only operator counts and drop records.
        let mut stock = stocks(&State::new(catalog(), 0));
        for st in &sim.journal {
            match &st.record {
                Record::StockSet { slot, count, .. } => { stock.insert(slot.clone(), *count); }
                Record::VendResult { slot, outcome, .. } | Record::LateVendResult { slot, outcome, .. } => {
                    let s = stock.get_mut(slot).unwrap();
                    *s = s.saturating_sub(outcome.confirmed_drops());
                }
                _ => {}
            }
        }
        prop_assert_eq!(stock, stocks(sim.ctl.state()));
    }
}

/// The generators reach the paths the properties are about (a property that never sees a
/// crash mid-vend proves nothing about it).
#[test]
fn the_generators_reach_crashes_strays_watchdogs_and_offline_approvals() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 2_000,
        ..cfg()
    });
    let mut total = Stats::default();
    for _ in 0..2_000 {
        let s = script().new_tree(&mut runner).unwrap().current();
        let sim = run(s);
        total.crashes += sim.stats.crashes;
        total.captures_nonzero += sim.stats.captures_nonzero;
        total.recovered_with_hold += sim.stats.recovered_with_hold;
        total.strays += sim.stats.strays;
        total.watchdogs += sim.stats.watchdogs;
        total.rejects += sim.stats.rejects;
        total.offline_auths += sim.stats.offline_auths;
    }
    assert!(total.crashes > 1_000, "{total:?}");
    assert!(total.captures_nonzero > 400, "{total:?}");
    assert!(total.recovered_with_hold > 80, "{total:?}");
    assert!(total.strays > 25, "{total:?}");
    assert!(total.watchdogs > 150, "{total:?}");
    assert!(total.rejects > 1_000, "{total:?}");
    assert!(total.offline_auths > 500, "{total:?}");
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// One controller driven by hand, with its journal.
struct Rig {
    cfg: CoreConfig,
    ctl: Controller,
    now: Millis,
    journal: Vec<Stamped>,
}

impl Rig {
    fn new(cfg: CoreConfig) -> Rig {
        let mut ctl = Controller::new(cfg.clone(), State::new(catalog(), 0));
        let out = ctl.start(T0, "test", &catalog(), SOURCE);
        let mut rig = Rig {
            cfg,
            ctl,
            now: T0,
            journal: Vec::new(),
        };
        rig.absorb(&out);
        rig
    }

    fn absorb(&mut self, out: &[Command]) {
        for c in out {
            if let Command::Journal(st) = c {
                self.journal.push(st.clone());
            }
        }
        assert_eq!(self.ctl.state(), &replay(&catalog(), &self.journal));
    }

    fn try_send(&mut self, input: Input) -> Result<Vec<Command>, Reject> {
        let before = (self.ctl.state().clone(), self.ctl.phase());
        let r = self.ctl.handle_input(self.now, input);
        match &r {
            Ok(out) => self.absorb(out),
            Err(_) => assert_eq!(before, (self.ctl.state().clone(), self.ctl.phase())),
        }
        r
    }

    fn send(&mut self, input: Input) -> Vec<Command> {
        let i = input.clone();
        self.try_send(input)
            .unwrap_or_else(|e| panic!("{i:?} refused: {e}"))
    }

    /// Moves time forward by `ms`, firing every timer that falls due on the way.
    fn wait(&mut self, ms: u64) -> Vec<Command> {
        let to = self.now + ms;
        let mut all = Vec::new();
        while let Some(t) = self.ctl.poll_timeout().filter(|t| *t <= to) {
            self.now = self.now.max(t);
            let out = self.ctl.handle_timeout(self.now);
            self.absorb(&out);
            all.extend(out);
        }
        self.now = to;
        all
    }

    fn add(&mut self, slot: &str, qty: u32) {
        self.send(Input::AddItem {
            slot: sid_of(slot),
            qty,
        });
    }

    fn pay(&mut self, method: PaymentMethod, cred: &str) -> Vec<Command> {
        self.send(Input::Credential {
            method,
            credential: cred.to_string(),
        })
    }

    /// Adds one of each slot, checks out and pays offline with a card.
    fn buy(&mut self, slots: &[&str], cred: &str) -> Vec<Command> {
        for s in slots {
            self.add(s, 1);
        }
        self.send(Input::Checkout);
        self.pay(PaymentMethod::Card, cred)
    }

    /// Answers the running motor.
    fn vend(&mut self, outcome: VendOutcome) -> Vec<Command> {
        let Phase::Vending { item, attempt } = self.ctl.phase() else {
            panic!("no motor running: {:?}", self.ctl.phase());
        };
        let sid = self.ctl.state().open.as_ref().unwrap().sid;
        self.send(Input::VendDone {
            sid,
            item,
            attempt,
            outcome,
            motor_ms: 900,
        })
    }

    fn sid(&self) -> SessionId {
        self.ctl
            .state()
            .open
            .as_ref()
            .expect("a session is open")
            .sid
    }

    fn records(&self) -> Vec<&Record> {
        self.journal.iter().map(|s| &s.record).collect()
    }

    fn last_decline(&self) -> Option<DeclineReason> {
        self.journal.iter().rev().find_map(|s| match &s.record {
            Record::Declined { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    }

    fn authorised(&self) -> Vec<(SessionId, i64, bool, String)> {
        self.journal
            .iter()
            .filter_map(|s| match &s.record {
                Record::Authorised {
                    sid,
                    amount,
                    offline,
                    auth_ref,
                    ..
                } => Some((*sid, *amount, *offline, auth_ref.clone())),
                _ => None,
            })
            .collect()
    }

    fn stock(&self, slot: &str) -> u32 {
        self.ctl.state().catalog.slots[&sid_of(slot)].stock
    }

    fn assert_clean(&self) {
        let v = verify(&self.journal);
        assert!(v.is_empty(), "{v:#?}");
    }
}

fn money_cmds(out: &[Command]) -> Vec<(bool, i64, String)> {
    out.iter()
        .filter_map(|c| match c {
            Command::Capture { amount, key, .. } => Some((true, *amount, key.clone())),
            Command::Void { amount, key, .. } => Some((false, *amount, key.clone())),
            _ => None,
        })
        .collect()
}

fn delivered() -> VendOutcome {
    VendOutcome::Delivered { drops: 1 }
}

#[test]
fn a_three_item_cart_with_a_jam_and_a_missed_drop_captures_only_what_fell() {
    let mut r = Rig::new(CoreConfig::default());
    r.buy(&["A1", "A2", "B1"], "cred-0");
    assert_eq!(r.authorised().len(), 1);
    assert_eq!(r.authorised()[0].1, 120 + 250 + 700);
    // A1: the first turn drops nothing, the retry delivers.
    let out = r.vend(VendOutcome::NoDrop);
    assert!(out.iter().any(|c| matches!(
        c,
        Command::RunMotor {
            item: 0,
            attempt: 2,
            ..
        }
    )));
    r.vend(delivered());
    // A2 jams: not retried, slot faulted, item not charged.
    let out = r.vend(VendOutcome::Jammed);
    assert!(!out
        .iter()
        .any(|c| matches!(c, Command::RunMotor { item: 1, .. })));
    // B1 delivers: the session settles.
    let out = r.vend(delivered());
    let sid = r
        .journal
        .iter()
        .find_map(|s| match s.record {
            Record::CheckedOut { sid, .. } => Some(sid),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        money_cmds(&out),
        vec![
            (true, 820, format!("{sid}:capture")),
            (false, 250, format!("{sid}:void"))
        ]
    );
    assert_eq!(
        r.ctl.receipt().map(|x| (x.charged, x.released)),
        Some((820, 250))
    );
    assert_eq!((r.stock("A1"), r.stock("A2"), r.stock("B1")), (3, 2, 0));
    assert!(r.ctl.state().catalog.slots[&sid_of("A2")].fault.is_some());
    let c = &r.ctl.state().counters.lifetime;
    assert_eq!(
        (c.paid.count, c.paid.value, c.failed_vends, c.sales),
        (2, 820, 1, 1)
    );
    assert_eq!(
        c.by_slot.get(&sid_of("A1")).map(|t| (t.count, t.value)),
        Some((1, 120))
    );
    assert_eq!(
        c.by_slot.get(&sid_of("B1")).map(|t| (t.count, t.value)),
        Some((1, 700))
    );
    assert_eq!(c.by_slot.get(&sid_of("A2")), None);
    assert_eq!(r.ctl.state().counters.since_reset, *c);
    assert!(r.records().iter().any(|x| matches!(
        x,
        Record::SessionClosed {
            reason: CloseReason::PartlyDelivered,
            captured: 820,
            ..
        }
    )));
    r.assert_clean();
}

fn offline_cfg() -> CoreConfig {
    let mut cfg = CoreConfig::default();
    cfg.policy.floor_limit = 1000;
    cfg.policy.max_offline_total = 1500;
    cfg.policy.max_uses_per_day = 2;
    cfg
}

#[test]
fn offline_a_cart_above_the_floor_limit_is_declined() {
    let mut r = Rig::new(offline_cfg());
    r.buy(&["A2", "B1", "A1"], "cred-0"); // 1070 > 1000
    assert_eq!(
        r.last_decline(),
        Some(DeclineReason::OverFloorLimit { limit: 1000 })
    );
    assert!(r.authorised().is_empty());
    assert_eq!(r.ctl.phase(), Phase::AwaitingCredential);
    // The same cart at exactly the limit is approved.
    r.send(Input::Cancel);
    r.send(Input::SetPrice {
        slot: sid_of("A1"),
        price: 50,
    });
    r.buy(&["A2", "B1", "A1"], "cred-0");
    assert_eq!(r.authorised().len(), 1);
    assert_eq!(r.authorised()[0].1, 1000);
}

#[test]
fn offline_approvals_stop_at_the_cumulative_cap() {
    let mut r = Rig::new(offline_cfg());
    r.send(Input::Restock {
        slot: sid_of("B1"),
        count: 3,
    });
    for (i, cred) in ["cred-0", "cred-1"].iter().enumerate() {
        r.buy(&["B1"], cred);
        r.vend(delivered());
        r.wait(30_000);
        assert_eq!(r.ctl.state().ledger.unsettled_offline, 700 * (i as i64 + 1));
    }
    r.buy(&["B1"], "cred-2"); // 1400 + 700 > 1500
    assert_eq!(
        r.last_decline(),
        Some(DeclineReason::OfflineTotalExceeded { cap: 1500 })
    );
    // A cart that exactly fills the cap still fits.
    r.send(Input::Cancel);
    r.send(Input::SetPrice {
        slot: sid_of("A1"),
        price: 100,
    });
    r.buy(&["A1"], "cred-2");
    assert_eq!(r.authorised().len(), 3);
}

#[test]
fn a_void_gives_back_offline_headroom() {
    let mut r = Rig::new(offline_cfg());
    r.buy(&["B1"], "cred-0");
    r.vend(VendOutcome::Jammed);
    assert_eq!(r.ctl.state().ledger.unsettled_offline, 0);
}

#[test]
fn a_credential_is_approved_offline_at_most_n_times_a_day_and_again_the_next_day() {
    let mut r = Rig::new(offline_cfg());
    for _ in 0..2 {
        r.buy(&["A1"], "cred-0");
        r.vend(delivered());
        r.wait(30_000);
    }
    r.buy(&["A1"], "cred-0");
    assert_eq!(
        r.last_decline(),
        Some(DeclineReason::DailyUsesExceeded { limit: 2 })
    );
    // Another credential is not affected.
    r.pay(PaymentMethod::Card, "cred-1");
    assert_eq!(r.authorised().len(), 3);
    r.vend(delivered());
    r.wait(30_000);
    // The next day the count starts again.
    r.wait(DAY);
    r.buy(&["A1"], "cred-0");
    assert_eq!(r.authorised().len(), 4);
    r.assert_clean();
}

#[test]
fn a_deny_listed_credential_is_declined_online_and_offline_and_alerted() {
    let mut r = Rig::new(CoreConfig::default());
    r.send(Input::Deny {
        credential: "bad".into(),
        add: true,
    });
    for online in [false, true] {
        r.send(Input::Link { online });
        let out = r.buy(&["A1"], "bad");
        assert!(
            !out.iter().any(|c| matches!(c, Command::RequestAuth { .. })),
            "asked the authoriser for a deny-listed credential"
        );
        assert_eq!(r.last_decline(), Some(DeclineReason::DenyListed));
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Alert {
                kind: AlertKind::DenyListedCredential,
                ..
            }
        )));
        r.send(Input::Cancel);
    }
    assert_eq!(r.ctl.state().counters.lifetime.denied_credentials, 2);
    // Removing it from the list lets it pay again.
    r.send(Input::Link { online: false });
    r.send(Input::Deny {
        credential: "bad".into(),
        add: false,
    });
    r.buy(&["A1"], "bad");
    assert_eq!(r.authorised().len(), 1);
}

#[test]
fn a_pay_code_is_declined_offline_because_it_needs_the_network() {
    let mut r = Rig::new(CoreConfig::default());
    r.add("A1", 1);
    r.send(Input::Checkout);
    r.pay(PaymentMethod::PayCode, "code-1");
    assert_eq!(r.last_decline(), Some(DeclineReason::NeedsOnline));
    assert_eq!(r.ctl.phase(), Phase::AwaitingCredential);
    // Online, the same code goes to the authoriser.
    r.send(Input::Link { online: true });
    let out = r.pay(PaymentMethod::PayCode, "code-1");
    assert!(out
        .iter()
        .any(|c| matches!(c, Command::RequestAuth { amount: 120, .. })));
}

fn online_rig() -> (Rig, SessionId) {
    let mut r = Rig::new(CoreConfig::default());
    r.send(Input::Link { online: true });
    r.add("A1", 2);
    r.send(Input::Checkout);
    let out = r.pay(PaymentMethod::Card, "cred-0");
    assert!(out
        .iter()
        .any(|c| matches!(c, Command::RequestAuth { amount: 240, .. })));
    assert_eq!(r.ctl.phase(), Phase::Authorising);
    let sid = r.sid();
    (r, sid)
}

fn answer(sid: SessionId, approved: bool, auth_ref: &str) -> Input {
    Input::AuthResult {
        sid,
        approved,
        amount: 240,
        auth_ref: auth_ref.into(),
        reason: "no funds".into(),
    }
}

#[test]
fn an_online_approval_holds_the_cart_and_vends() {
    let (mut r, sid) = online_rig();
    let out = r.send(answer(sid, true, "ar-1"));
    assert_eq!(r.authorised(), vec![(sid, 240, false, "ar-1".to_string())]);
    assert!(out.iter().any(|c| matches!(
        c,
        Command::RunMotor {
            item: 0,
            attempt: 1,
            ..
        }
    )));
}

#[test]
fn an_online_decline_asks_for_another_credential() {
    let (mut r, sid) = online_rig();
    r.send(answer(sid, false, "ar-1"));
    assert_eq!(
        r.last_decline(),
        Some(DeclineReason::Authoriser {
            reason: "no funds".into()
        })
    );
    assert_eq!(r.ctl.phase(), Phase::AwaitingCredential);
    assert!(r.authorised().is_empty());
}

#[test]
fn an_authoriser_time_out_lets_the_offline_policy_decide() {
    let (mut r, _) = online_rig();
    r.wait(r.cfg.timeouts.authorising - 1);
    assert_eq!(r.ctl.phase(), Phase::Authorising);
    r.wait(1);
    assert_eq!(r.authorised().len(), 1);
    assert!(r.authorised()[0].2, "not marked offline");
}

#[test]
fn a_late_approval_is_voided_whole_and_alerted() {
    let (mut r, sid) = online_rig();
    r.send(Input::Cancel);
    let out = r.send(answer(sid, true, "ar-9"));
    let key = format!("{sid}:stray:ar-9");
    assert!(r.records().iter().any(|x| **x
        == Record::StrayAuthVoided {
            sid,
            amount: 240,
            auth_ref: "ar-9".into(),
            key: key.clone()
        }));
    assert_eq!(money_cmds(&out), vec![(false, 240, key)]);
    assert!(out.iter().any(|c| matches!(
        c,
        Command::Alert {
            kind: AlertKind::StrayAuthorisation,
            ..
        }
    )));
    // A late decline changes nothing.
    assert!(r.send(answer(sid, false, "ar-10")).is_empty());
}

#[test]
fn a_duplicated_approval_does_not_void_the_hold_it_already_made() {
    let (mut r, sid) = online_rig();
    r.send(answer(sid, true, "ar-1"));
    // The broker delivers the same answer again while vending, and after the sale.
    assert!(money_cmds(&r.send(answer(sid, true, "ar-1"))).is_empty());
    r.vend(delivered());
    let out = r.vend(delivered());
    assert_eq!(
        money_cmds(&out),
        vec![
            (true, 240, format!("{sid}:capture")),
            (false, 0, format!("{sid}:void"))
        ]
    );
    r.wait(60_000);
    assert!(money_cmds(&r.send(answer(sid, true, "ar-1"))).is_empty());
    r.assert_clean();
}

#[test]
fn a_stray_void_written_before_a_crash_is_sent_again_on_start() {
    let (mut r, sid) = online_rig();
    r.send(Input::Cancel);
    let out = r
        .ctl
        .handle_input(r.now, answer(sid, true, "ar-9"))
        .unwrap();
    // The process dies after the record, before the void reached the payment adapter.
    let first = out
        .iter()
        .position(|c| matches!(c, Command::Journal(_)))
        .unwrap();
    r.journal.push(match &out[first] {
        Command::Journal(st) => st.clone(),
        _ => unreachable!(),
    });
    let mut ctl = Controller::new(r.cfg.clone(), replay(&catalog(), &r.journal));
    let out = ctl.start(r.now, "test", &catalog(), SOURCE);
    assert_eq!(
        money_cmds(&out),
        vec![(false, 240, format!("{sid}:stray:ar-9"))]
    );
    // Once carried out, a further restart does not send it again.
    let mut journal = r.journal.clone();
    journal.extend(out.iter().filter_map(|c| match c {
        Command::Journal(st) => Some(st.clone()),
        _ => None,
    }));
    let mut ctl = Controller::new(r.cfg.clone(), replay(&catalog(), &journal));
    assert!(money_cmds(&ctl.start(r.now, "test", &catalog(), SOURCE)).is_empty());
}

#[test]
fn a_warned_shopper_can_extend_once_and_then_times_out() {
    let mut r = Rig::new(CoreConfig::default());
    let t = r.cfg.timeouts.clone();
    r.add("A1", 1);
    let out = r.wait(t.shopping - t.warn_before);
    assert!(out.contains(&Command::Prompt(Prompt::TimeoutWarning {
        seconds: (t.warn_before / 1000) as u32
    })));
    assert_eq!(r.ctl.phase(), Phase::Shopping);
    r.send(Input::Extend);
    // The full shopping time runs again from the extension.
    r.wait(t.shopping - 1);
    assert_eq!(r.ctl.phase(), Phase::Shopping);
    r.wait(1);
    assert_eq!(r.ctl.phase(), Phase::Idle);
    assert!(r.records().iter().any(|x| matches!(
        x,
        Record::SessionClosed {
            reason: CloseReason::TimedOut,
            ..
        }
    )));
    // Extending with nothing running is refused.
    assert_eq!(
        r.try_send(Input::Extend).unwrap_err().code,
        "nothing_to_extend"
    );
}

#[test]
fn extending_more_often_than_allowed_is_refused() {
    let mut r = Rig::new(CoreConfig {
        max_extends: 1,
        ..CoreConfig::default()
    });
    r.add("A1", 1);
    r.send(Input::Extend);
    assert_eq!(r.try_send(Input::Extend).unwrap_err().code, "no_more_time");
}

#[test]
fn cancel_works_while_shopping_paying_and_authorising_and_is_refused_while_vending() {
    let cancelled = |r: &Rig| {
        r.records()
            .iter()
            .filter(|x| {
                matches!(
                    x,
                    Record::SessionClosed {
                        reason: CloseReason::Cancelled,
                        ..
                    }
                )
            })
            .count()
    };
    let mut r = Rig::new(CoreConfig::default());
    assert_eq!(
        r.try_send(Input::Cancel).unwrap_err().code,
        "nothing_to_cancel"
    );
    r.add("A1", 1);
    r.send(Input::Cancel);
    assert_eq!((r.ctl.phase(), cancelled(&r)), (Phase::Idle, 1));
    r.add("A1", 1);
    r.send(Input::Checkout);
    r.send(Input::Cancel);
    assert_eq!((r.ctl.phase(), cancelled(&r)), (Phase::Idle, 2));
    r.send(Input::Link { online: true });
    r.add("A1", 1);
    r.send(Input::Checkout);
    r.pay(PaymentMethod::Card, "cred-0");
    assert_eq!(r.ctl.phase(), Phase::Authorising);
    r.send(Input::Cancel);
    assert_eq!((r.ctl.phase(), cancelled(&r)), (Phase::Idle, 3));
    r.send(Input::Link { online: false });
    r.buy(&["A1"], "cred-0");
    assert!(matches!(r.ctl.phase(), Phase::Vending { .. }));
    assert_eq!(r.try_send(Input::Cancel).unwrap_err().code, "vending");
    r.vend(delivered());
    assert_eq!(r.ctl.phase(), Phase::Settling);
    assert_eq!(r.try_send(Input::Cancel).unwrap_err().code, "vending");
    assert_eq!(cancelled(&r), 3);
}

#[test]
fn opening_the_door_while_shopping_closes_the_session() {
    let mut r = Rig::new(CoreConfig::default());
    r.add("A1", 1);
    r.send(Input::Door { open: true });
    assert_eq!(r.ctl.phase(), Phase::Idle);
    assert!(r.ctl.state().open.is_none());
    assert!(r.records().iter().any(|x| matches!(
        x,
        Record::SessionClosed {
            reason: CloseReason::OutOfService,
            ..
        }
    )));
    assert_eq!(
        r.try_send(Input::AddItem {
            slot: sid_of("A1"),
            qty: 1
        })
        .unwrap_err()
        .code,
        "out_of_service"
    );
    r.send(Input::Door { open: false });
    r.add("A1", 1);
}

#[test]
fn opening_the_door_while_vending_raises_an_alert_and_the_vend_completes() {
    let mut r = Rig::new(CoreConfig::default());
    r.buy(&["A1"], "cred-0");
    let out = r.send(Input::Door { open: true });
    assert!(out.iter().any(|c| matches!(
        c,
        Command::Alert {
            kind: AlertKind::DoorOpenDuringVend,
            ..
        }
    )));
    assert!(r.records().iter().any(|x| matches!(
        x,
        Record::Alert {
            kind: AlertKind::DoorOpenDuringVend,
            ..
        }
    )));
    assert!(matches!(r.ctl.phase(), Phase::Vending { .. }));
    let out = r.vend(delivered());
    assert_eq!(money_cmds(&out)[0].1, 120);
}

/// Runs a complete online two-item purchase and returns its journal.
fn complete_purchase() -> (CoreConfig, Vec<Stamped>) {
    let (mut r, sid) = online_rig();
    r.send(answer(sid, true, "ar-1"));
    r.vend(VendOutcome::NoDrop);
    r.vend(delivered());
    r.vend(delivered());
    r.send(Input::Settled { sid });
    r.send(Input::Dismiss);
    assert_eq!(r.ctl.phase(), Phase::Idle);
    r.assert_clean();
    (r.cfg.clone(), r.journal.clone())
}

#[test]
fn a_crash_at_every_record_boundary_of_a_purchase_recovers_without_running_a_motor() {
    let (cfg, full) = complete_purchase();
    let boot_len = full
        .iter()
        .position(|s| matches!(s.record, Record::SessionOpened { .. }))
        .unwrap();
    for n in boot_len..=full.len() {
        let prefix = &full[..n];
        let state = replay(&catalog(), prefix);
        let was = state.open.clone();
        let mut ctl = Controller::new(cfg.clone(), state);
        let out = ctl.start(T0 + 1_000_000, "test", &catalog(), SOURCE);
        assert!(
            !out.iter().any(|c| matches!(c, Command::RunMotor { .. })),
            "prefix {n}: motor on start"
        );
        assert!(
            ctl.state().open.is_none() && ctl.phase() == Phase::Idle,
            "prefix {n}"
        );
        let mut journal = prefix.to_vec();
        journal.extend(out.iter().filter_map(|c| match c {
            Command::Journal(st) => Some(st.clone()),
            _ => None,
        }));
        let v = verify(&journal);
        assert!(v.is_empty(), "prefix {n}: {v:#?}");
        assert_eq!(ctl.state(), &replay(&catalog(), &journal));
        let money = money_cmds(&out);
        match was {
            None => assert!(
                money.is_empty(),
                "prefix {n}: money moved for a closed session"
            ),
            Some(open) => {
                let delivered = open.delivered_value();
                match &open.hold {
                    None => assert!(money.is_empty(), "prefix {n}"),
                    Some(h) => {
                        // Delivered items are captured, everything else (including an item
                        // whose motor was running) released; the keys are the session's.
                        assert_eq!(
                            money,
                            vec![
                                (true, delivered, format!("{}:capture", open.sid)),
                                (false, h.amount - delivered, format!("{}:void", open.sid))
                            ],
                            "prefix {n}"
                        );
                    }
                }
                if let Some((item, _)) = open.in_flight {
                    assert!(journal.iter().any(|s| matches!(&s.record, Record::InterruptedVend { item: i, .. } if *i == item)));
                    assert!(out.iter().any(|c| matches!(
                        c,
                        Command::Alert {
                            kind: AlertKind::InterruptedVend,
                            ..
                        }
                    )));
                    let slot = &open.items[item as usize].line.slot;
                    assert!(
                        ctl.state().catalog.slots[slot].fault.is_some(),
                        "prefix {n}: interrupted slot still sold"
                    );
                }
                assert!(journal.iter().any(|s| matches!(
                    s.record,
                    Record::SessionClosed {
                        reason: CloseReason::Recovered,
                        ..
                    }
                )));
            }
        }
    }
}

#[test]
fn a_delivery_report_with_no_drop_counted_is_not_charged() {
    let mut r = Rig::new(CoreConfig {
        max_attempts: 1,
        ..CoreConfig::default()
    });
    r.buy(&["A1"], "cred-0");
    let out = r.vend(VendOutcome::Delivered { drops: 0 });
    assert_eq!(
        money_cmds(&out)[0],
        (
            true,
            0,
            format!(
                "{}:capture",
                r.journal
                    .iter()
                    .find_map(|s| match s.record {
                        Record::CheckedOut { sid, .. } => Some(sid),
                        _ => None,
                    })
                    .unwrap()
            )
        )
    );
    assert_eq!(r.stock("A1"), 4);
    r.assert_clean();
}

#[test]
fn a_double_drop_is_charged_once_and_counted_twice_in_stock() {
    let mut r = Rig::new(CoreConfig::default());
    r.buy(&["A1"], "cred-0");
    let out = r.vend(VendOutcome::Delivered { drops: 2 });
    assert_eq!(money_cmds(&out)[0].1, 120);
    assert_eq!(r.stock("A1"), 2);
}

#[test]
fn a_watchdog_time_out_fails_the_item_uncharged_and_a_late_drop_only_fixes_stock() {
    let mut r = Rig::new(CoreConfig::default());
    r.buy(&["A1", "A2"], "cred-0");
    let sid = r.sid();
    let out = r.wait(r.cfg.timeouts.vend_watchdog);
    assert!(r.records().iter().any(|x| matches!(
        x,
        Record::VendResult {
            outcome: VendOutcome::NoAnswer,
            item: 0,
            ..
        }
    )));
    assert!(out
        .iter()
        .any(|c| matches!(c, Command::RunMotor { item: 1, .. })));
    let out = r.send(Input::VendDone {
        sid,
        item: 0,
        attempt: 1,
        outcome: delivered(),
        motor_ms: 1,
    });
    assert!(out.iter().any(|c| matches!(
        c,
        Command::Alert {
            kind: AlertKind::LateVendResult,
            ..
        }
    )));
    assert_eq!(r.stock("A1"), 3);
    assert!(matches!(r.ctl.phase(), Phase::Vending { item: 1, .. }));
    let out = r.vend(delivered());
    assert_eq!(
        money_cmds(&out),
        vec![
            (true, 250, format!("{sid}:capture")),
            (false, 120, format!("{sid}:void"))
        ]
    );
    r.assert_clean();
}

// ---------------------------------------------------------------------------------------
// The verifier, one hand-made bad journal per rule
// ---------------------------------------------------------------------------------------

fn at(records: Vec<Record>) -> Vec<Stamped> {
    let mut j = vec![Stamped {
        at: T0,
        record: Record::Planogram {
            catalog: catalog(),
            source: SOURCE.into(),
        },
    }];
    j.extend(records.into_iter().enumerate().map(|(i, record)| Stamped {
        at: T0 + i as u64,
        record,
    }));
    j
}

fn li(slot: &str, price: i64) -> LineItem {
    LineItem {
        slot: sid_of(slot),
        price,
    }
}

/// A good one-item sale, as records; each test breaks one thing in it.
fn sale() -> Vec<Record> {
    vec![
        Record::SessionOpened { sid: 1 },
        Record::CheckedOut {
            sid: 1,
            items: vec![li("A1", 120), li("A2", 250)],
            total: 370,
        },
        Record::Authorised {
            sid: 1,
            amount: 370,
            method: PaymentMethod::Card,
            credential: "c".into(),
            offline: true,
            auth_ref: "offline-1".into(),
        },
        Record::VendIntent {
            sid: 1,
            item: 0,
            attempt: 1,
            slot: sid_of("A1"),
        },
        Record::VendResult {
            sid: 1,
            item: 0,
            attempt: 1,
            slot: sid_of("A1"),
            outcome: delivered(),
            motor_ms: 1,
        },
        Record::VendIntent {
            sid: 1,
            item: 1,
            attempt: 1,
            slot: sid_of("A2"),
        },
        Record::VendResult {
            sid: 1,
            item: 1,
            attempt: 1,
            slot: sid_of("A2"),
            outcome: VendOutcome::Jammed,
            motor_ms: 1,
        },
        Record::ItemFailed {
            sid: 1,
            item: 1,
            slot: sid_of("A2"),
            reason: "jam".into(),
        },
        Record::Capture {
            sid: 1,
            amount: 120,
            key: "1:capture".into(),
            auth_ref: "offline-1".into(),
        },
        Record::Void {
            sid: 1,
            amount: 250,
            key: "1:void".into(),
            auth_ref: "offline-1".into(),
        },
        Record::SessionClosed {
            sid: 1,
            reason: CloseReason::PartlyDelivered,
            captured: 120,
        },
    ]
}

fn rules(records: Vec<Record>) -> BTreeSet<&'static str> {
    verify(&at(records)).into_iter().map(|v| v.rule).collect()
}

#[test]
fn the_verifier_accepts_the_good_sale() {
    assert!(verify(&at(sale())).is_empty(), "{:#?}", verify(&at(sale())));
}

#[test]
fn the_verifier_flags_rule_a_a_result_without_an_intent_and_two_intents_in_flight() {
    let mut s = sale();
    s.remove(3); // the first intent
    assert!(rules(s).contains("a"));
    let mut s = sale();
    s.remove(4); // the first result: the second intent starts while the first is in flight
    assert!(rules(s).contains("a"));
}

#[test]
fn the_verifier_flags_rule_b_a_capture_that_is_not_the_delivered_value() {
    let mut s = sale();
    s[8] = Record::Capture {
        sid: 1,
        amount: 370,
        key: "1:capture".into(),
        auth_ref: "offline-1".into(),
    };
    s[9] = Record::Void {
        sid: 1,
        amount: 0,
        key: "1:void".into(),
        auth_ref: "offline-1".into(),
    };
    s[10] = Record::SessionClosed {
        sid: 1,
        reason: CloseReason::Completed,
        captured: 370,
    };
    assert_eq!(rules(s), BTreeSet::from(["b"]));
}

#[test]
fn the_verifier_flags_rule_c_a_hold_closed_without_its_void_or_released_twice() {
    let mut s = sale();
    s.remove(9);
    assert_eq!(rules(s), BTreeSet::from(["c"]));
    let mut s = sale();
    s.insert(
        10,
        Record::Void {
            sid: 1,
            amount: 250,
            key: "1:void2".into(),
            auth_ref: "offline-1".into(),
        },
    );
    assert_eq!(rules(s), BTreeSet::from(["c"]));
}

#[test]
fn the_verifier_flags_rule_d_stock_falling_in_a_slot_whose_motor_did_not_run() {
    let mut s = sale();
    // The result names another slot than its intent: B1's stock falls with no motor run.
    s[4] = Record::VendResult {
        sid: 1,
        item: 0,
        attempt: 1,
        slot: sid_of("B1"),
        outcome: delivered(),
        motor_ms: 1,
    };
    assert!(rules(s).contains("d"));
    // A "late" result for an attempt that never ran.
    let mut s = sale();
    s.insert(
        8,
        Record::LateVendResult {
            sid: 1,
            item: 1,
            attempt: 7,
            slot: sid_of("A2"),
            outcome: delivered(),
        },
    );
    assert!(rules(s).contains("d"));
}

#[test]
fn the_verifier_flags_rule_e_charging_an_item_whose_outcome_was_unknown() {
    let mut s = sale();
    s[4] = Record::VendResult {
        sid: 1,
        item: 0,
        attempt: 1,
        slot: sid_of("A1"),
        outcome: VendOutcome::NoAnswer,
        motor_ms: 0,
    };
    s.insert(
        5,
        Record::VendIntent {
            sid: 1,
            item: 0,
            attempt: 2,
            slot: sid_of("A1"),
        },
    );
    s.insert(
        6,
        Record::VendResult {
            sid: 1,
            item: 0,
            attempt: 2,
            slot: sid_of("A1"),
            outcome: delivered(),
            motor_ms: 1,
        },
    );
    assert_eq!(rules(s), BTreeSet::from(["e"]));
    // ... and closing with an attempt never answered.
    let mut s = sale();
    s.remove(6);
    s.remove(6); // the jam result and the failure: item 1 is still in flight at close
    s.remove(5);
    s.insert(
        5,
        Record::VendIntent {
            sid: 1,
            item: 1,
            attempt: 1,
            slot: sid_of("A2"),
        },
    );
    assert!(rules(s).contains("e"));
}

#[test]
fn the_verifier_reports_and_does_not_panic_on_an_item_outside_the_cart() {
    let mut s = sale();
    s.insert(
        8,
        Record::VendIntent {
            sid: 1,
            item: 9,
            attempt: 1,
            slot: sid_of("A1"),
        },
    );
    s.insert(
        9,
        Record::VendResult {
            sid: 1,
            item: 9,
            attempt: 1,
            slot: sid_of("A1"),
            outcome: delivered(),
            motor_ms: 1,
        },
    );
    let r = rules(s);
    assert!(r.contains("a"), "{r:?}");
}

#[test]
fn the_verifier_accepts_a_fresh_journal_that_starts_with_boot() {
    let mut ctl = Controller::new(CoreConfig::default(), State::new(catalog(), 0));
    let out = ctl.start(T0, "test", &catalog(), SOURCE);
    let j: Vec<Stamped> = out
        .into_iter()
        .filter_map(|c| match c {
            Command::Journal(st) => Some(st),
            _ => None,
        })
        .collect();
    assert!(matches!(j[0].record, Record::Planogram { .. }));
    assert!(verify(&j).is_empty());
}

/// Collects the journal records of a batch.
fn records(out: &[Command]) -> Vec<Stamped> {
    out.iter()
        .filter_map(|c| match c {
            Command::Journal(st) => Some(st.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_remote_planogram_keeps_faults_and_counts_is_refused_when_busy_and_survives_a_start() {
    let cat = catalog();
    let mut journal = Vec::new();
    let mut ctl = Controller::new(sim_config(), State::new(cat.clone(), 0));
    journal.extend(records(&ctl.start(T0, "v", &cat, SOURCE)));
    let fault = Stamped {
        at: T0,
        record: Record::SlotFaulted {
            slot: sid_of("A2"),
            reason: "jammed".into(),
        },
    };
    journal.push(fault);
    let mut ctl = Controller::new(sim_config(), replay(&cat, &journal));
    ctl.start(T0, "v", &cat, SOURCE);
    let mut new = cat.clone();
    new.slots.remove(&sid_of("B2"));
    new.slots.get_mut(&sid_of("A1")).unwrap().stock = 0; // not given: keeps 4
    new.slots.get_mut(&sid_of("A2")).unwrap().stock = 1; // given: 1
    new.slots.get_mut(&sid_of("B1")).unwrap().product = "gum".into(); // new product: 0
    new.slots.get_mut(&sid_of("B1")).unwrap().stock = 0;
    let input = |catalog: Catalog, rows: u8| Input::SetPlanogram {
        catalog,
        source: "cmd:p1".into(),
        rows,
        cols: 2,
        stock_given: vec![sid_of("A2")],
    };
    // Busy, outside the matrix, wrong currency: refused, nothing changes.
    let before = ctl.state().clone();
    let out = ctl
        .handle_input(
            T0 + 1,
            Input::AddItem {
                slot: sid_of("A1"),
                qty: 1,
            },
        )
        .unwrap();
    journal.extend(records(&out));
    assert_eq!(
        ctl.handle_input(T0 + 2, input(new.clone(), 2))
            .unwrap_err()
            .code,
        "busy"
    );
    journal.extend(records(&ctl.handle_input(T0 + 3, Input::Cancel).unwrap()));
    assert_eq!(
        ctl.handle_input(T0 + 4, input(new.clone(), 1))
            .unwrap_err()
            .code,
        "bad_planogram"
    );
    let mut usd = new.clone();
    usd.currency = Currency::parse("USD").unwrap();
    assert_eq!(
        ctl.handle_input(T0 + 5, input(usd, 2)).unwrap_err().code,
        "wrong_currency"
    );
    assert_eq!(ctl.state().catalog, before.catalog);

    let out = ctl.handle_input(T0 + 6, input(new, 2)).unwrap();
    let recs = records(&out);
    assert!(
        matches!(&recs[..], [Stamped { record: Record::Planogram { source, .. }, .. }] if source == "cmd:p1")
    );
    journal.extend(recs);
    let s = &ctl.state().catalog.slots;
    assert_eq!(s.len(), 3);
    assert_eq!(s[&sid_of("A1")].stock, 4);
    assert_eq!(s[&sid_of("A2")].stock, 1);
    assert_eq!(s[&sid_of("A2")].fault.as_deref(), Some("jammed"));
    assert_eq!(s[&sid_of("B1")].stock, 0);

    // A start with the same config keeps it; a changed config replaces it.
    let state = replay(&cat, &journal);
    assert_eq!(&state, ctl.state());
    let mut again = Controller::new(sim_config(), state.clone());
    let out = again.start(T0 + 7, "v", &cat, SOURCE);
    assert!(!records(&out)
        .iter()
        .any(|r| matches!(r.record, Record::Planogram { .. })));
    assert_eq!(again.state().catalog.slots.len(), 3);
    let mut changed = Controller::new(sim_config(), state);
    changed.start(T0 + 8, "v", &cat, "config:other");
    assert_eq!(changed.state().catalog.slots.len(), 4);
    assert_eq!(
        changed.state().catalog.slots[&sid_of("A2")]
            .fault
            .as_deref(),
        Some("jammed")
    );
}

#[test]
fn a_refund_is_bounded_by_the_capture_and_only_for_closed_sessions() {
    let cat = catalog();
    let mut ctl = Controller::new(sim_config(), State::new(cat.clone(), 0));
    let mut journal = records(&ctl.start(T0, "v", &cat, SOURCE));
    let mut feed = |ctl: &mut Controller, at: Millis, i: Input| {
        let out = ctl.handle_input(at, i).unwrap();
        journal.extend(records(&out));
        out
    };
    feed(
        &mut ctl,
        T0 + 1,
        Input::AddItem {
            slot: sid_of("A1"),
            qty: 1,
        },
    );
    feed(&mut ctl, T0 + 2, Input::Checkout);
    feed(
        &mut ctl,
        T0 + 3,
        Input::Credential {
            method: PaymentMethod::TestCard,
            credential: "cred-0".into(),
        },
    );
    let sid = ctl.state().open.as_ref().unwrap().sid;
    let refund = |amount: Option<i64>, n: u32| Input::Refund {
        sid,
        amount,
        key: format!("{sid}:refund:r{n}"),
    };
    assert_eq!(
        ctl.handle_input(T0 + 4, refund(None, 0)).unwrap_err().code,
        "session_open"
    );
    feed(
        &mut ctl,
        T0 + 5,
        Input::VendDone {
            sid,
            item: 0,
            attempt: 1,
            outcome: VendOutcome::Delivered { drops: 1 },
            motor_ms: 100,
        },
    );
    feed(&mut ctl, T0 + 6, Input::Settled { sid });
    assert!(ctl.state().open.is_none());
    assert_eq!(
        ctl.handle_input(T0 + 7, refund(Some(121), 1))
            .unwrap_err()
            .code,
        "over_refund"
    );
    feed(&mut ctl, T0 + 8, refund(Some(20), 2));
    assert_eq!(
        ctl.handle_input(T0 + 9, refund(Some(101), 3))
            .unwrap_err()
            .code,
        "over_refund"
    );
    let out = feed(&mut ctl, T0 + 10, refund(None, 4));
    assert!(matches!(
        records(&out)[..],
        [Stamped {
            record: Record::Refund { amount: 100, .. },
            ..
        }]
    ));
    assert_eq!(
        ctl.handle_input(T0 + 11, refund(Some(1), 5))
            .unwrap_err()
            .code,
        "already_refunded"
    );
    let other = Input::Refund {
        sid: sid + 1,
        amount: None,
        key: "x".into(),
    };
    assert_eq!(
        ctl.handle_input(T0 + 12, other).unwrap_err().code,
        "nothing_captured"
    );
    assert_eq!(
        ctl.handle_input(T0 + 13, Input::VoidSession { sid })
            .unwrap_err()
            .code,
        "nothing_to_void"
    );
    assert_eq!(ctl.state().counters.lifetime.refunds.value, 120);
    assert_eq!(&replay(&cat, &journal), ctl.state());
    assert!(verify(&journal).is_empty(), "{:?}", verify(&journal));
}

#[test]
fn face_enrolment_and_erasure_are_journaled_and_a_face_pays_like_the_linked_account() {
    use vendd::core::{EraseBy, FaceStep, HeadTurn};
    let mut r = Rig::new(CoreConfig::default());
    let enrol = |account: &str, proof| Input::FaceEnrolled {
        account: account.into(),
        masked_name: "A***e".into(),
        captures: 3,
        proof,
    };
    // Bad enrolments change nothing.
    for (input, code) in [
        (enrol("", PaymentMethod::Card), "bad_account"),
        (enrol("acct", PaymentMethod::Face), "bad_proof"),
        (
            Input::FaceEnrolled {
                account: "acct".into(),
                masked_name: String::new(),
                captures: 3,
                proof: PaymentMethod::Card,
            },
            "bad_name",
        ),
        (
            Input::FaceErased {
                account: "acct".into(),
                by: EraseBy::Shopper,
            },
            "not_enrolled",
        ),
    ] {
        let before = r.ctl.state().clone();
        assert_eq!(r.try_send(input).err().map(|e| e.code), Some(code));
        assert_eq!(r.ctl.state(), &before);
    }
    r.send(enrol("acct", PaymentMethod::Card));
    assert_eq!(
        r.ctl.state().face_enrolled.get("acct").map(String::as_str),
        Some("A***e")
    );
    // The face thread's progress is a prompt while payment is awaited, refused otherwise.
    let step = FaceStep::Recognised {
        masked_name: "A***e".into(),
        turn: HeadTurn::Left,
    };
    assert_eq!(
        r.try_send(Input::Face { step: step.clone() })
            .err()
            .map(|e| e.code),
        Some("not_awaiting_payment")
    );
    r.add("A1", 1);
    r.send(Input::Checkout);
    let out = r.send(Input::Face { step });
    assert!(out.iter().any(|c| matches!(
        c,
        Command::Prompt(Prompt::FaceTurnHead {
            turn: HeadTurn::Left,
            ..
        })
    )));
    assert!(!out.iter().any(|c| matches!(c, Command::Journal(_))));
    // Paid by face: the account's credential goes through the offline policy.
    r.pay(PaymentMethod::Face, "acct");
    assert_eq!(r.authorised().len(), 1);
    r.vend(delivered());
    // The operator erases it: journaled before the gallery is told.
    let out = r.send(Input::FaceErased {
        account: "acct".into(),
        by: EraseBy::Operator,
    });
    let j = out
        .iter()
        .position(|c| matches!(c, Command::Journal(_)))
        .expect("journaled");
    let e = out
        .iter()
        .position(|c| matches!(c, Command::EraseFace { account } if account == "acct"))
        .expect("erase command");
    assert!(j < e && out[e].acts());
    assert!(r.ctl.state().face_enrolled.is_empty());
    // A deny-listed card cannot be linked to a face.
    r.send(Input::Deny {
        credential: "bad".into(),
        add: true,
    });
    assert_eq!(
        r.try_send(enrol("bad", PaymentMethod::Card))
            .err()
            .map(|e| e.code),
        Some("deny_listed")
    );
}

#[test]
fn an_operator_test_vend_runs_one_motor_in_service_mode_and_books_what_dropped() {
    let mut r = Rig::new(CoreConfig::default());
    let test = |slot: &str| Input::TestVend { slot: sid_of(slot) };
    assert_eq!(
        r.try_send(test("A1")).err().map(|e| e.code),
        Some("door_closed")
    );
    r.send(Input::Door { open: true });
    assert_eq!(
        r.try_send(Input::TestVend {
            slot: SlotId::parse("F9").unwrap()
        })
        .err()
        .map(|e| e.code),
        Some("unknown_slot")
    );
    let before = r.stock("A1");
    let out = r.send(test("A1"));
    let j = out
        .iter()
        .position(
            |c| matches!(c, Command::Journal(st) if matches!(st.record, Record::TestVend { .. })),
        )
        .expect("intent journaled");
    let m = out
        .iter()
        .position(|c| matches!(c, Command::RunMotor { sid: 0, .. }))
        .expect("motor");
    assert!(j < m, "the intent is durable before the motor runs");
    assert_eq!(r.try_send(test("A2")).err().map(|e| e.code), Some("busy"));
    r.send(Input::VendDone {
        sid: 0,
        item: 0,
        attempt: 1,
        outcome: delivered(),
        motor_ms: 900,
    });
    assert_eq!(
        r.stock("A1"),
        before - 1,
        "the test item came off the count"
    );
    assert!(r.ctl.last_test_vend().is_some());
    // A jam faults the slot, as in a sale.
    r.send(test("A2"));
    r.send(Input::VendDone {
        sid: 0,
        item: 0,
        attempt: 1,
        outcome: VendOutcome::Jammed,
        motor_ms: 3000,
    });
    assert!(r.ctl.state().catalog.slots[&sid_of("A2")].fault.is_some());
    assert!(r
        .records()
        .iter()
        .any(|rec| matches!(rec, Record::TestVendResult { .. })));
}
