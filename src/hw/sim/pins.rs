//! embedded-hal pins and the drop sensor of the simulated machine, and the assembly of the
//! sim [`Machine`] from the same generic devices the Pi uses.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};

use super::world::World;
use super::SimClock;
use crate::hw::io::{PinLeds, PinLock, PinSwitch};
use crate::hw::{beam, Clock, DropSensor, HwError, LedPattern, Leds, Machine, MatrixDispenser};

type Shared = Arc<Mutex<World>>;

fn lock_at<'a>(world: &'a Shared, clock: &SimClock) -> (MutexGuard<'a, World>, Duration) {
    let now = clock.now();
    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
    w.advance(now);
    (w, now)
}

/// One row or column output of the simulated matrix (active-high).
#[derive(Debug)]
pub struct SimMatrixPin {
    world: Shared,
    clock: SimClock,
    row: bool,
    index: u8,
}

impl SimMatrixPin {
    pub(super) fn new(world: Shared, clock: SimClock, row: bool, index: u8) -> Self {
        Self {
            world,
            clock,
            row,
            index,
        }
    }

    fn set(&mut self, on: bool) {
        let (mut w, now) = lock_at(&self.world, &self.clock);
        w.set_matrix_pin(self.row, self.index, on, now);
    }
}

impl ErrorType for SimMatrixPin {
    type Error = Infallible;
}

impl OutputPin for SimMatrixPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}

/// The home sense line (high = the selected motor is at home; idle high).
#[derive(Debug)]
pub struct SimHomePin {
    world: Shared,
    clock: SimClock,
}

impl SimHomePin {
    pub(super) fn new(world: Shared, clock: SimClock) -> Self {
        Self { world, clock }
    }
}

impl ErrorType for SimHomePin {
    type Error = Infallible;
}

impl InputPin for SimHomePin {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(lock_at(&self.world, &self.clock).0.home_line())
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        self.is_high().map(|h| !h)
    }
}

/// The IR drop beam: reads the edges the physics wrote on the timeline.
#[derive(Debug)]
pub struct SimDropSensor {
    world: Shared,
    clock: SimClock,
    armed_at: Duration,
    initially_broken: bool,
}

impl SimDropSensor {
    pub(super) fn new(world: Shared, clock: SimClock) -> Self {
        Self {
            world,
            clock,
            armed_at: Duration::ZERO,
            initially_broken: false,
        }
    }
}

impl DropSensor for SimDropSensor {
    fn arm(&mut self) -> Result<(), HwError> {
        let (mut w, now) = lock_at(&self.world, &self.clock);
        self.armed_at = now;
        self.initially_broken = w.beam_between(now, now).1;
        Ok(())
    }

    fn drops_since_arm(&mut self, debounce: Duration) -> Result<u32, HwError> {
        let (mut w, now) = lock_at(&self.world, &self.clock);
        let (edges, _) = w.beam_between(self.armed_at, now);
        Ok(beam::count_items(
            &edges,
            self.initially_broken,
            debounce,
            Some(now),
        ))
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Door,
    Presence,
    Lock,
    Red,
    Green,
}

/// A simulated door/presence input or lock/LED output (active-high).
#[derive(Debug)]
struct SimIoPin {
    world: Shared,
    clock: SimClock,
    signal: Signal,
}

impl ErrorType for SimIoPin {
    type Error = Infallible;
}

impl InputPin for SimIoPin {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        let (mut w, now) = lock_at(&self.world, &self.clock);
        Ok(match self.signal {
            Signal::Door => w.door_open(now),
            Signal::Presence => w.presence,
            Signal::Lock => w.lock_energised,
            Signal::Red | Signal::Green => false,
        })
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        self.is_high().map(|h| !h)
    }
}

impl OutputPin for SimIoPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}

impl SimIoPin {
    fn set(&mut self, on: bool) {
        if let Signal::Lock = self.signal {
            lock_at(&self.world, &self.clock).0.lock_energised = on;
        }
        // LED pins carry no state of their own; SimLeds records the pattern.
    }
}

/// The sim's LEDs: the Pi's two-LED driver on sim pins, plus a record of the pattern for
/// [`super::SimHandle::led`].
struct SimLeds {
    inner: PinLeds<SimIoPin>,
    world: Shared,
}

impl Leds for SimLeds {
    fn set(&mut self, p: LedPattern) -> Result<(), HwError> {
        self.inner.set(p)?;
        self.world.lock().unwrap_or_else(|e| e.into_inner()).led = p;
        Ok(())
    }
}

type SimDispenser =
    MatrixDispenser<SimMatrixPin, SimMatrixPin, SimHomePin, SimDropSensor, SimClock>;

pub(super) fn devices(world: &Shared, clock: &SimClock, dispenser: SimDispenser) -> Machine {
    let pin = |signal| SimIoPin {
        world: world.clone(),
        clock: clock.clone(),
        signal,
    };
    Machine {
        dispenser: Box::new(dispenser),
        door: Box::new(PinSwitch::new(
            pin(Signal::Door),
            "door switch",
            false,
            Duration::ZERO,
            clock.clone(),
        )),
        lock: Box::new(PinLock::new(pin(Signal::Lock), false, true)),
        leds: Box::new(SimLeds {
            inner: PinLeds::new(pin(Signal::Red), false, pin(Signal::Green), false),
            world: world.clone(),
        }),
        presence: Box::new(PinSwitch::new(
            pin(Signal::Presence),
            "presence",
            false,
            Duration::ZERO,
            clock.clone(),
        )),
    }
}
