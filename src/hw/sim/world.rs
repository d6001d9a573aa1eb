//! The physical state of the simulated machine and its lazily computed physics.
//!
//! Invariant: every access first calls [`World::advance`] with the current time, which moves
//! each energised motor to where it is *now* (from the time and angle it had when it was
//! energised), releases the items of every turn completed since, and writes their beam
//! edges at the times they will happen. Pin changes are applied only after that.

use std::collections::VecDeque;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{SimConfig, SimFault, SimStats};
use crate::hw::beam::BeamEdge;
use crate::hw::{LedPattern, SlotAddr};

/// Draws for one vend attempt, taken all at once so the random stream advances by the same
/// amount whatever happens afterwards.
#[derive(Clone, Debug)]
struct Plan {
    period: f64, // seconds per turn
    fault: Option<SimFault>,
    stall_frac: f64,
    bounce: bool,
    fall: f64, // seconds
    brk: f64,  // seconds
    glitches: [f64; 3],
    n_glitches: usize,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Motor {
    /// Turns since start; the fractional part is the cam position.
    pub(super) angle: f64,
    pub(super) jammed: bool,
    /// When energised: time and angle at that moment, and the attempt's plan.
    running: Option<(Duration, f64, Plan)>,
}

#[derive(Debug)]
pub(super) struct World {
    cfg: SimConfig,
    rows: u8,
    cols: u8,
    rows_on: Vec<bool>,
    cols_on: Vec<bool>,
    pub(super) motors: Vec<Motor>,
    pub(super) stock: Vec<u32>,
    pub(super) forced: Vec<VecDeque<SimFault>>,
    /// Scheduled beam edges (may lie in the future), sorted by time.
    beam: Vec<BeamEdge>,
    rng: ChaCha8Rng,
    door_rng: ChaCha8Rng,
    /// Random door openings (start, end) not yet over, and when the next one starts.
    door_events: VecDeque<(Duration, Duration)>,
    next_door: Option<Duration>,
    pub(super) door_manual: bool,
    pub(super) presence: bool,
    pub(super) lock_energised: bool,
    pub(super) led: LedPattern,
    pub(super) violations: u64,
    pub(super) items_dispensed: u64,
    pub(super) stats: SimStats,
    last: Duration,
}

impl World {
    pub(super) fn new(cfg: SimConfig, rows: u8, cols: u8, seed: u64) -> Self {
        let n = usize::from(rows) * usize::from(cols);
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let mut door_rng = ChaCha8Rng::seed_from_u64(seed);
        door_rng.set_stream(1);
        let mut w = Self {
            rows,
            cols,
            rows_on: vec![false; rows.into()],
            cols_on: vec![false; cols.into()],
            motors: vec![Motor::default(); n],
            stock: vec![cfg.initial_stock; n],
            forced: vec![VecDeque::new(); n],
            beam: Vec::new(),
            rng,
            door_rng,
            door_events: VecDeque::new(),
            next_door: None,
            door_manual: false,
            presence: false,
            lock_energised: false,
            led: LedPattern::Off,
            violations: 0,
            items_dispensed: 0,
            stats: SimStats::default(),
            last: Duration::ZERO,
            cfg,
        };
        w.next_door = w.draw_door_gap(Duration::ZERO);
        w
    }

    pub(super) fn index(&self, slot: SlotAddr) -> usize {
        assert!(
            slot.row < self.rows && slot.col < self.cols,
            "slot {slot} outside the {}x{} sim",
            self.rows,
            self.cols
        );
        usize::from(slot.row) * usize::from(self.cols) + usize::from(slot.col)
    }

    fn at_home(&self, angle: f64) -> bool {
        angle.fract() < self.cfg.home_notch
    }

    /// The home sense line, read through the matrix: each cam switch sits behind its own
    /// diode on its motor's row and column, so the line reports the switch of the selected
    /// motor ("home" only while every selected motor sits in its notch). With nothing
    /// selected the line idles at "home". A motor parked off home (a jam) therefore affects
    /// only its own slot.
    pub(super) fn home_line(&self) -> bool {
        let cols = self.cols_on.len();
        self.rows_on
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .flat_map(|(r, _)| {
                (0..cols)
                    .filter(|c| self.cols_on[*c])
                    .map(move |c| r * cols + c)
            })
            .all(|i| self.at_home(self.motors[i].angle))
    }

    /// Bring the physics up to `now`.
    pub(super) fn advance(&mut self, now: Duration) {
        let now = now.max(self.last);
        self.last = now;
        for i in 0..self.motors.len() {
            let Some((since, a0, plan)) = self.motors[i].running.clone() else {
                continue;
            };
            if self.motors[i].jammed || plan.fault == Some(SimFault::StuckHome) {
                continue;
            }
            let mut target = a0 + (now - since).as_secs_f64() / plan.period;
            if plan.fault == Some(SimFault::Jam) {
                let stall = a0.floor() + plan.stall_frac;
                if target >= stall {
                    target = stall;
                    self.motors[i].jammed = true;
                    self.stats.jams += 1;
                }
            }
            let before = self.motors[i].angle;
            // Every whole turn completed between `before` and `target` releases items.
            let mut k = before.floor() + 1.0;
            while k <= target {
                let at = since + Duration::from_secs_f64((k - a0) * plan.period);
                self.release(i, at, &plan);
                k += 1.0;
            }
            self.motors[i].angle = target;
        }
    }

    fn release(&mut self, i: usize, at: Duration, plan: &Plan) {
        let wanted = if plan.fault == Some(SimFault::DoubleDrop) {
            2
        } else {
            1
        };
        let n = wanted.min(self.stock[i]);
        if n == 0 {
            return;
        }
        self.stock[i] -= n;
        self.items_dispensed += u64::from(n);
        if n == 2 {
            self.stats.double_drops += 1;
        }
        if plan.fault == Some(SimFault::MissedDrop) {
            self.stats.missed_drops += 1;
            return;
        }
        let ms = |v: u64| Duration::from_millis(v);
        for item in 0..n {
            let start =
                at + Duration::from_secs_f64(plan.fall) + ms(self.cfg.double_drop_gap_ms) * item;
            let end = start + Duration::from_secs_f64(plan.brk);
            self.push_break(start, end);
            if plan.bounce {
                self.stats.bounces += 1;
                // Glitches just before the break and one just after it, each followed by a
                // gap of about a millisecond: what a tumbling item does to a beam.
                let mut t = start;
                for g in &plan.glitches[..plan.n_glitches] {
                    let len = Duration::from_secs_f64(*g);
                    let g_end = t.saturating_sub(ms(1));
                    let g_start = g_end.saturating_sub(len);
                    self.push_break(g_start, g_end);
                    t = g_start;
                }
                let len = Duration::from_secs_f64(plan.glitches[0]);
                self.push_break(end + ms(1), end + ms(1) + len);
            }
        }
    }

    fn push_break(&mut self, start: Duration, end: Duration) {
        self.beam.push(BeamEdge {
            at: start,
            broken: true,
        });
        self.beam.push(BeamEdge {
            at: end,
            broken: false,
        });
        self.beam.sort_by_key(|e| e.at);
    }

    /// Beam edges in `[from, to]` and whether the beam was broken at `from`.
    pub(super) fn beam_between(&mut self, from: Duration, to: Duration) -> (Vec<BeamEdge>, bool) {
        // Forget edges long past, so the log stays small over days of simulation.
        let keep_from = from.saturating_sub(Duration::from_secs(60));
        self.beam.retain(|e| e.at >= keep_from);
        let mut broken = false;
        let mut depth = 0i32;
        for e in self.beam.iter().filter(|e| e.at < from) {
            depth += if e.broken { 1 } else { -1 };
            broken = depth > 0;
        }
        let edges = self
            .beam
            .iter()
            .filter(|e| e.at >= from && e.at <= to)
            .copied()
            .collect();
        (edges, broken)
    }

    /// Apply a matrix pin change at `now` (after [`advance`](World::advance)).
    pub(super) fn set_matrix_pin(&mut self, row: bool, index: u8, on: bool, now: Duration) {
        let was_violating = self.violating();
        if row {
            self.rows_on[usize::from(index)] = on;
        } else {
            self.cols_on[usize::from(index)] = on;
        }
        if self.violating() && !was_violating {
            self.violations += 1;
            tracing::error!("sim: two rows or two columns energised at once");
        }
        for r in 0..self.rows {
            for c in 0..self.cols {
                let i = usize::from(r) * usize::from(self.cols) + usize::from(c);
                let energised = self.rows_on[usize::from(r)] && self.cols_on[usize::from(c)];
                match (energised, self.motors[i].running.is_some()) {
                    (true, false) => self.start_attempt(i, now),
                    (false, true) => self.motors[i].running = None,
                    _ => {}
                }
            }
        }
    }

    fn violating(&self) -> bool {
        self.rows_on.iter().filter(|x| **x).count() > 1
            || self.cols_on.iter().filter(|x| **x).count() > 1
    }

    fn start_attempt(&mut self, i: usize, now: Duration) {
        let c = &self.cfg;
        let r = &mut self.rng;
        // Fixed number of draws per attempt.
        let u_period: f64 = r.gen();
        let u_fault: f64 = r.gen();
        let u_stall: f64 = r.gen();
        let u_bounce: f64 = r.gen();
        let u_fall: f64 = r.gen();
        let u_brk: f64 = r.gen();
        let u_n: f64 = r.gen();
        let glitch: [f64; 3] = [r.gen(), r.gen(), r.gen()];

        let mut cum = 0.0;
        let mut random_fault = None;
        for (p, f) in [
            (c.p_stuck_home, SimFault::StuckHome),
            (c.p_jam, SimFault::Jam),
            (c.p_missed_drop, SimFault::MissedDrop),
            (c.p_double_drop, SimFault::DoubleDrop),
        ] {
            cum += p.max(0.0);
            if random_fault.is_none() && u_fault < cum {
                random_fault = Some(f);
            }
        }
        let fault = self.forced[i].pop_front().or(random_fault);
        let notch = c.home_notch.clamp(0.01, 0.5);
        let sym = |u: f64, span: u64| (2.0 * u - 1.0) * span as f64 / 1000.0;
        let plan = Plan {
            period: (c.motor_period_ms.max(1) as f64 / 1000.0)
                * (1.0 + c.period_jitter * (2.0 * u_period - 1.0)),
            fault,
            stall_frac: notch + (0.95 - notch) * (0.1 + 0.9 * u_stall),
            bounce: u_bounce < c.p_bounce,
            fall: (c.fall_delay_ms as f64 / 1000.0 + sym(u_fall, c.fall_jitter_ms)).max(0.0),
            brk: (c.break_ms as f64 / 1000.0 + sym(u_brk, c.break_jitter_ms)).max(0.001),
            glitches: glitch.map(|u| c.glitch_max_us as f64 * 1e-6 * (0.2 + 0.8 * u)),
            n_glitches: 1 + (u_n * 2.999) as usize,
        };
        self.stats.attempts += 1;
        if fault == Some(SimFault::StuckHome) {
            self.stats.stuck_home += 1;
        }
        let angle = self.motors[i].angle;
        self.motors[i].running = Some((now, angle, plan));
    }

    pub(super) fn clear_jam(&mut self, i: usize) {
        let m = &mut self.motors[i];
        m.jammed = false;
        m.angle = m.angle.floor();
        if let Some((since, a0, plan)) = &mut m.running {
            *since = self.last;
            *a0 = m.angle;
            plan.fault = None;
        }
    }

    fn draw_door_gap(&mut self, from: Duration) -> Option<Duration> {
        let rate = self.cfg.door_opens_per_hour;
        if rate <= 0.0 {
            return None;
        }
        let u: f64 = self.door_rng.gen();
        let hours = -(1.0 - u).ln() / rate;
        Some(from + Duration::from_secs_f64(hours * 3600.0))
    }

    /// Door state at `now`: opened by hand or by a random event on the door timeline (its own
    /// random stream, so door events never shift vend outcomes).
    pub(super) fn door_open(&mut self, now: Duration) -> bool {
        while let Some(start) = self.next_door.filter(|s| *s <= now) {
            let u: f64 = self.door_rng.gen();
            let len = Duration::from_secs_f64(self.cfg.door_open_ms as f64 / 1000.0 * (0.5 + u));
            self.door_events.push_back((start, start + len));
            self.next_door = self.draw_door_gap(start + len);
        }
        while self.door_events.front().is_some_and(|(_, end)| *end <= now) {
            self.door_events.pop_front();
        }
        self.door_manual || self.door_events.iter().any(|(s, e)| *s <= now && now < *e)
    }
}
