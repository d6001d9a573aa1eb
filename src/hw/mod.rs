//! Hardware adapter: the vending mechanism, door, lock, LEDs and presence sensor.
//!
//! The runtime sees only the small traits below ([`Dispenser`], [`DoorSwitch`], [`Lock`],
//! [`Leds`], [`PresenceSensor`]) bundled in a [`Machine`]. Two backends build a `Machine`:
//!
//! - [`rpi_machine`] drives real GPIO through `rppal` (the only file that touches rppal is
//!   `rpi.rs`, because rppal was retired in 2025 and may need replacing).
//! - [`sim_machine`] drives a physical model of a spiral machine (stock, motors with a home
//!   cam, an IR drop beam, jams, missed and double drops, stuck switches, door events).
//!
//! Both backends feed the *same* generic driver, [`driver::MatrixDispenser`], through
//! embedded-hal 1.0 pins, so the pin sequence tested here with mocks is the one that runs on
//! the Pi and in the simulator.
//!
//! Everything in this module is blocking. The runtime owns a `Machine` on a dedicated thread
//! and talks to it through a channel; nothing here uses tokio.
//!
//! Layout: `driver` (matrix motor driver, drop-sensor trait), `beam` (drop debouncing),
//! `clock` (real and manual clocks), `io` (door, lock, LEDs on plain pins), `pinmap`
//! (validated TOML pin maps), `sim` (the simulated machine), `rpi` (Raspberry Pi backend),
//! `error` ([`HwError`]).

use std::time::Duration;

pub mod beam;
pub mod clock;
pub mod driver;
mod error;
pub mod io;
pub mod pinmap;
pub mod rpi;
pub mod sim;

pub use clock::{Clock, ManualClock, StdClock};
pub use driver::{DropSensor, MatrixConfig, MatrixDispenser};
pub use error::HwError;
pub use pinmap::{PinMap, PinMapError};
pub use rpi::rpi_machine;
pub use sim::{SimConfig, SimFault, SimHandle};

/// Address of one motor (one spiral) in the row/column matrix, 0-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotAddr {
    /// Row index, `0..rows`.
    pub row: u8,
    /// Column index, `0..cols`.
    pub col: u8,
}

impl std::fmt::Display for SlotAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}c{}", self.row, self.col)
    }
}

/// Time limits for one vend cycle. All four are configuration, not constants.
#[derive(Clone, Debug)]
pub struct VendTiming {
    /// The motor must leave the home switch within this time after it is energised,
    /// otherwise the vend ends with [`VendOutcome::HomeSwitchStuck`].
    pub leave_home_timeout: Duration,
    /// The motor must be back on the home switch within this time, counted from the moment it
    /// was energised, otherwise the vend ends with [`VendOutcome::Jammed`].
    pub motor_timeout: Duration,
    /// How long the drop sensor is still watched after the motor has stopped (falling time
    /// of an item down the chute plus margin).
    pub drop_window: Duration,
    /// Minimum beam-broken time that counts as one item; shorter breaks are bounce or noise,
    /// and gaps shorter than this inside one break do not split it.
    pub drop_debounce: Duration,
}

/// What physically happened during one vend cycle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VendOutcome {
    /// At least one debounced drop was seen (`drops == 2` is a double drop). A drop seen
    /// during a jam or a stuck-switch cycle is still reported here: the shopper got the item.
    Delivered {
        /// Number of debounced beam breaks seen.
        drops: u32,
    },
    /// The motor did a full turn but nothing was seen (empty slot or a missed drop).
    NoDrop,
    /// The motor left home but did not return within `motor_timeout`. The motor is left
    /// off its home position; its slot stays jammed until an operator clears it.
    Jammed,
    /// The home switch never left home (stuck switch or dead motor).
    HomeSwitchStuck,
}

/// Result of one vend cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendReport {
    /// What happened.
    pub outcome: VendOutcome,
    /// How long the motor was energised, in milliseconds.
    pub motor_ms: u32,
}

/// The vending mechanism: one motor per slot in a row/column matrix.
pub trait Dispenser: Send {
    /// Blocking. Runs one motor for one vend cycle. Must leave every motor de-energised on
    /// return (also on error).
    ///
    /// # Errors
    /// [`HwError::SlotOutOfRange`] for a slot outside the matrix, [`HwError::MotorNotHome`]
    /// when the idle home-sense line reads off-home before the cycle (nothing is energised), and pin or
    /// sensor errors from the backend.
    fn vend(&mut self, slot: SlotAddr, timing: &VendTiming) -> Result<VendReport, HwError>;
    /// De-energise every row and column (used at start-up and shutdown).
    ///
    /// # Errors
    /// A pin error from the backend; every pin is still attempted.
    fn all_off(&mut self) -> Result<(), HwError>;
}

/// The service door's switch.
pub trait DoorSwitch: Send {
    /// `true` when the door is open.
    ///
    /// # Errors
    /// A pin error from the backend.
    fn is_open(&mut self) -> Result<bool, HwError>;
}

/// The door lock solenoid.
pub trait Lock: Send {
    /// Lock (`true`) or release (`false`) the door.
    ///
    /// # Errors
    /// A pin error from the backend.
    fn set_locked(&mut self, locked: bool) -> Result<(), HwError>;
}

/// What the status LEDs show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LedPattern {
    /// All LEDs off.
    Off,
    /// Ready for a shopper.
    Idle,
    /// A session or vend is in progress.
    Busy,
    /// The last action succeeded.
    Ok,
    /// Out of order / fault.
    Error,
}

/// The status LEDs.
pub trait Leds: Send {
    /// Show a pattern.
    ///
    /// # Errors
    /// A pin error from the backend.
    fn set(&mut self, p: LedPattern) -> Result<(), HwError>;
}

/// Shopper presence sensor (PIR).
pub trait PresenceSensor: Send {
    /// `true` when someone is in front of the machine.
    ///
    /// # Errors
    /// A pin error from the backend.
    fn is_present(&mut self) -> Result<bool, HwError>;
}

/// Every device of one machine, ready for the runtime's hardware thread.
pub struct Machine {
    /// Motor matrix with home switch and drop sensor.
    pub dispenser: Box<dyn Dispenser>,
    /// Service door switch.
    pub door: Box<dyn DoorSwitch>,
    /// Door lock.
    pub lock: Box<dyn Lock>,
    /// Status LEDs.
    pub leds: Box<dyn Leds>,
    /// Presence sensor.
    pub presence: Box<dyn PresenceSensor>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine").finish_non_exhaustive()
    }
}

/// Build a simulated machine with `rows` × `cols` slots, deterministic under `seed`.
///
/// Returns the machine (for the runtime) and a [`SimHandle`] (for the sim panel and tests).
///
/// # Panics
/// If `rows` or `cols` is 0.
pub fn sim_machine(cfg: &SimConfig, rows: u8, cols: u8, seed: u64) -> (Machine, SimHandle) {
    sim::build(cfg, rows, cols, seed)
}
