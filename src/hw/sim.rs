//! The simulated machine: a physical model of a spiral vending machine behind the same
//! embedded-hal pins and the same [`MatrixDispenser`](super::MatrixDispenser) as the Pi.
//!
//! The world (`world.rs`) holds per-slot stock and motors; a motor's angle advances with
//! elapsed time while its row *and* column are energised, a cam notch (a fraction of the
//! turn) closes the home switch, and an item falls each time a spiral completes a turn with
//! stock left. The item breaks the IR beam after a fall delay; those beam edges are written on
//! the physics timeline, not sampled, and the physics is computed lazily from timestamps on
//! every access, so a late poll sees the true state and a loaded test machine changes no
//! outcome of the drop count. Faults (jam, missed drop, double drop, stuck home, beam bounce,
//! door openings) are drawn from a seeded `ChaCha8Rng` with a fixed number of draws per vend
//! attempt, so the same seed gives the same outcomes.
//!
//! Time is real by default (the demo). With [`SimConfig::virtual_time`] the world and the
//! driver share a [`ManualClock`](super::ManualClock) that moves only when the driver sleeps:
//! vends take microseconds and their outcomes cannot depend on scheduling at all (polling the
//! home notch on real time can still be late on an overloaded machine, exactly as on a Pi).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;

use super::{
    Clock, LedPattern, Machine, ManualClock, MatrixConfig, MatrixDispenser, SlotAddr, StdClock,
    VendTiming,
};

mod pins;
#[cfg(test)]
mod tests;
mod world;

pub use pins::{SimDropSensor, SimHomePin, SimMatrixPin};
use world::World;

/// Backend name, for logs.
pub const NAME: &str = "sim";

/// Physics and fault rates of the simulated machine. Every field has a default; a TOML
/// table may set any subset (unknown keys are refused).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Mean time of one spiral turn.
    pub motor_period_ms: u64,
    /// Each energisation's period is the mean times `1 ± jitter` (uniform).
    pub period_jitter: f64,
    /// Fraction of a turn during which the home switch reads "home" (the cam notch), 0..0.5.
    pub home_notch: f64,
    /// Time from the end of a turn to the item reaching the beam.
    pub fall_delay_ms: u64,
    /// Fall delay varies by up to ± this.
    pub fall_jitter_ms: u64,
    /// How long a falling item breaks the beam.
    pub break_ms: u64,
    /// Break duration varies by up to ± this.
    pub break_jitter_ms: u64,
    /// In a double drop, the second item reaches the beam this much after the first.
    pub double_drop_gap_ms: u64,
    /// Longest bounce glitch, in microseconds (must stay under the debounce).
    pub glitch_max_us: u64,
    /// Probability per vend attempt that the motor stalls mid-turn (stays jammed until
    /// [`SimHandle::jam_clear`]).
    pub p_jam: f64,
    /// Probability that an item falls without breaking the beam.
    pub p_missed_drop: f64,
    /// Probability that two items fall in one turn (when the slot holds two).
    pub p_double_drop: f64,
    /// Probability that the motor does not move at all (stuck home switch / dead motor).
    pub p_stuck_home: f64,
    /// Probability that a beam break comes with bounce glitches.
    pub p_bounce: f64,
    /// Random door openings per hour of sim time (0 = none).
    pub door_opens_per_hour: f64,
    /// Mean duration of a random door opening.
    pub door_open_ms: u64,
    /// Stock of every slot at start.
    pub initial_stock: u32,
    /// Run on a manual clock advanced by the driver's sleeps instead of real time.
    pub virtual_time: bool,
}

impl Default for SimConfig {
    /// The demo machine: 1.2 s turns, 1 % jams, missed and double drops.
    fn default() -> Self {
        Self {
            motor_period_ms: 1200,
            period_jitter: 0.05,
            home_notch: 0.12,
            fall_delay_ms: 250,
            fall_jitter_ms: 60,
            break_ms: 40,
            break_jitter_ms: 10,
            double_drop_gap_ms: 90,
            glitch_max_us: 3000,
            p_jam: 0.01,
            p_missed_drop: 0.01,
            p_double_drop: 0.01,
            p_stuck_home: 0.005,
            p_bounce: 0.05,
            door_opens_per_hour: 0.0,
            door_open_ms: 30_000,
            initial_stock: 5,
            virtual_time: false,
        }
    }
}

impl SimConfig {
    /// Fast physics for tests: 100 ms turns with a wide notch, short falls, no random faults
    /// (force them with [`SimHandle::force_fault`] or set the probabilities).
    pub fn fast() -> Self {
        Self {
            motor_period_ms: 100,
            period_jitter: 0.05,
            home_notch: 0.35,
            fall_delay_ms: 20,
            fall_jitter_ms: 5,
            break_ms: 12,
            break_jitter_ms: 3,
            double_drop_gap_ms: 40,
            glitch_max_us: 2000,
            p_jam: 0.0,
            p_missed_drop: 0.0,
            p_double_drop: 0.0,
            p_stuck_home: 0.0,
            p_bounce: 0.0,
            ..Self::default()
        }
    }

    /// Vend timing that fits this physics: generous motor timeouts, a drop window that
    /// covers the slowest double drop, and a debounce longer than any glitch and shorter than
    /// any real break or gap.
    pub fn recommended_timing(&self) -> VendTiming {
        let period = self.motor_period_ms as f64 * (1.0 + self.period_jitter);
        let window = self.fall_delay_ms
            + self.fall_jitter_ms
            + self.double_drop_gap_ms
            + self.break_ms
            + self.break_jitter_ms
            + self.glitch_max_us / 1000
            + 30;
        let glitch_ms = self.glitch_max_us.div_ceil(1000);
        let debounce =
            ((self.break_ms - self.break_jitter_ms.min(self.break_ms)) / 2).max(2 * glitch_ms + 1);
        VendTiming {
            leave_home_timeout: Duration::from_secs_f64(period * (self.home_notch + 0.25) / 1000.0),
            motor_timeout: Duration::from_secs_f64((period * 1.3 + 20.0) / 1000.0),
            drop_window: Duration::from_millis(window),
            drop_debounce: Duration::from_millis(debounce),
        }
    }

    /// Driver settings for the simulated pins (all active-high, 1 ms polls, 1 ms blanking).
    pub fn matrix_config(&self) -> MatrixConfig {
        MatrixConfig {
            row_active_low: false,
            col_active_low: false,
            home_active_low: false,
            poll_interval: Duration::from_millis(1),
            home_blanking: Duration::from_millis(1),
        }
    }
}

/// A fault to force on the next vend attempts of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimFault {
    /// The motor stalls mid-turn and stays jammed until cleared.
    Jam,
    /// The item falls but the beam does not see it.
    MissedDrop,
    /// Two items fall in one turn.
    DoubleDrop,
    /// The motor does not leave home.
    StuckHome,
}

/// The simulator's clock: real time, or a manual clock advanced by the driver's sleeps.
#[derive(Clone, Debug)]
pub enum SimClock {
    /// Wall-clock (monotonic) time.
    Real(StdClock),
    /// Virtual time.
    Virtual(ManualClock),
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        match self {
            SimClock::Real(c) => c.now(),
            SimClock::Virtual(c) => c.now(),
        }
    }
    fn sleep(&self, d: Duration) {
        match self {
            SimClock::Real(c) => c.sleep(d),
            SimClock::Virtual(c) => c.sleep(d),
        }
    }
}

/// Counters of what the world did, for tests and the sim panel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Times a single motor was energised.
    pub attempts: u64,
    /// Jams that happened.
    pub jams: u64,
    /// Items that fell without breaking the beam.
    pub missed_drops: u64,
    /// Turns that dropped two items.
    pub double_drops: u64,
    /// Attempts where the motor did not move.
    pub stuck_home: u64,
    /// Beam breaks that came with bounce glitches.
    pub bounces: u64,
}

/// The sim panel's and the tests' handle on the world. Cheap to clone; every method locks
/// the world briefly and brings its physics up to date first.
#[derive(Clone, Debug)]
pub struct SimHandle {
    world: Arc<Mutex<World>>,
    clock: SimClock,
}

impl SimHandle {
    fn world(&self) -> MutexGuard<'_, World> {
        let mut w = self.world.lock().unwrap_or_else(|e| e.into_inner());
        w.advance(self.clock.now());
        w
    }

    /// Set the stock of a slot.
    pub fn set_stock(&self, slot: SlotAddr, n: u32) {
        let mut w = self.world();
        let i = w.index(slot);
        w.stock[i] = n;
    }

    /// Items left in a slot.
    pub fn stock(&self, slot: SlotAddr) -> u32 {
        let w = self.world();
        w.stock[w.index(slot)]
    }

    /// Force `fault` on the next `count` vend attempts of `slot` (in order, before random
    /// faults are considered).
    pub fn force_fault(&self, slot: SlotAddr, fault: SimFault, count: u32) {
        let mut w = self.world();
        let i = w.index(slot);
        w.forced[i].extend(std::iter::repeat_n(fault, count as usize));
    }

    /// Open (`true`) or close the service door by hand.
    pub fn set_door(&self, open: bool) {
        self.world().door_manual = open;
    }

    /// Whether the door is open now (by hand or by a random door event).
    pub fn door_open(&self) -> bool {
        let now = self.clock.now();
        self.world().door_open(now)
    }

    /// Someone in front of the machine or not.
    pub fn set_presence(&self, present: bool) {
        self.world().presence = present;
    }

    /// The LED pattern last set by the runtime.
    pub fn led(&self) -> LedPattern {
        self.world().led
    }

    /// Whether the door lock holds the door.
    pub fn locked(&self) -> bool {
        !self.world().lock_energised
    }

    /// Times the pins energised two rows, two columns or two motors at once.
    pub fn violations(&self) -> u64 {
        self.world().violations
    }

    /// Items that physically left the machine since start.
    pub fn items_dispensed(&self) -> u64 {
        self.world().items_dispensed
    }

    /// An operator clears a jam: the spiral is turned back to home without vending.
    pub fn jam_clear(&self, slot: SlotAddr) {
        let mut w = self.world();
        let i = w.index(slot);
        w.clear_jam(i);
    }

    /// Whether the slot's motor is jammed.
    pub fn jammed(&self, slot: SlotAddr) -> bool {
        let w = self.world();
        w.motors[w.index(slot)].jammed
    }

    /// Counters of injected faults.
    pub fn stats(&self) -> SimStats {
        self.world().stats.clone()
    }

    /// The sim's clock (shared with the driver).
    pub fn clock(&self) -> SimClock {
        self.clock.clone()
    }

    /// A raw matrix pin, bypassing the driver (for the sim panel and tests that check
    /// violation detection). Misuse energises motors exactly as on a real machine.
    pub fn raw_matrix_pin(&self, row: bool, index: u8) -> SimMatrixPin {
        SimMatrixPin::new(self.world.clone(), self.clock.clone(), row, index)
    }
}

/// Build the simulated machine; see [`super::sim_machine`].
pub(super) fn build(cfg: &SimConfig, rows: u8, cols: u8, seed: u64) -> (Machine, SimHandle) {
    assert!(
        rows > 0 && cols > 0,
        "the sim needs at least one row and one column"
    );
    let clock = if cfg.virtual_time {
        SimClock::Virtual(ManualClock::new())
    } else {
        SimClock::Real(StdClock::new())
    };
    let world = Arc::new(Mutex::new(World::new(cfg.clone(), rows, cols, seed)));
    let handle = SimHandle {
        world: world.clone(),
        clock: clock.clone(),
    };
    let row_pins = (0..rows).map(|i| handle.raw_matrix_pin(true, i)).collect();
    let col_pins = (0..cols).map(|i| handle.raw_matrix_pin(false, i)).collect();
    let dispenser = MatrixDispenser::new(
        row_pins,
        col_pins,
        SimHomePin::new(world.clone(), clock.clone()),
        SimDropSensor::new(world.clone(), clock.clone()),
        clock.clone(),
        cfg.matrix_config(),
    );
    let machine = pins::devices(&world, &clock, dispenser);
    (machine, handle)
}
