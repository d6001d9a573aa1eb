//! The generic motor-matrix driver, on embedded-hal 1.0 pins. One driver for the Pi and the
//! simulator.
//!
//! A spiral machine wires its motors in a row/column matrix: a motor turns only while its
//! row *and* its column are energised. One home-sense line reads the cam switch of the
//! selected motor (each switch has its own diode on the matrix) and idles at "home" when no
//! motor is selected; an IR beam across the chute sees items fall.
//!
//! Pin sequence of one [`MatrixDispenser::vend`]:
//!
//! 1. drive every row and column off;
//! 2. read the home line with nothing selected; it must idle at "home". If it does not, the
//!    sense wiring is broken or shorted: energise nothing and return
//!    [`HwError::MotorNotHome`] (the fault is the machine's, not this slot's);
//! 3. arm the drop sensor, energise the row, then the column;
//! 4. poll the home line until it leaves home (`leave_home_timeout` →
//!    [`VendOutcome::HomeSwitchStuck`]), then until it returns (`motor_timeout`, counted from
//!    energising → [`VendOutcome::Jammed`]);
//! 5. de-energise the column, then the row — on every path, through [`MotorGuard`], whose
//!    `Drop` does it even when a pin error or a panic unwinds;
//! 6. keep watching the drop sensor for `drop_window` and count debounced drops.
//!
//! Never two motors: the driver holds at most one [`MotorGuard`], which borrows the driver
//! mutably, so a second motor cannot be energised while one is on; step 1 also clears any
//! pin left on by someone else.

use std::time::Duration;

use embedded_hal::digital::{InputPin, OutputPin};

use super::error::pin_err;
use super::{Clock, Dispenser, HwError, SlotAddr, VendOutcome, VendReport, VendTiming};

#[cfg(test)]
mod tests;

/// An edge-capturing drop sensor.
///
/// The source timestamps every beam edge as it happens (rppal interrupts, the simulator's
/// physics timeline), so a driver thread that is descheduled for a while still counts every
/// item. Call [`arm`](DropSensor::arm) before the motor starts and
/// [`drops_since_arm`](DropSensor::drops_since_arm) after the drop window.
pub trait DropSensor: Send {
    /// Forget earlier edges and start recording for a new vend.
    ///
    /// # Errors
    /// A pin error from the backend.
    fn arm(&mut self) -> Result<(), HwError>;
    /// Items seen since [`arm`](DropSensor::arm), debounced as described in
    /// [`super::beam`].
    ///
    /// # Errors
    /// A pin error from the backend.
    fn drops_since_arm(&mut self, debounce: Duration) -> Result<u32, HwError>;
}

/// Electrical polarity and polling of the matrix, from the pin map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixConfig {
    /// Row outputs energise the row when low.
    pub row_active_low: bool,
    /// Column outputs energise the column when low.
    pub col_active_low: bool,
    /// The home line reads low when every motor is at home.
    pub home_active_low: bool,
    /// Time between two reads of the home line. Must be well under the time a motor spends
    /// in its home notch.
    pub poll_interval: Duration,
    /// After the motor leaves home, "home" readings are ignored for this long, so switch
    /// bounce on leaving the notch is not taken for the end of the turn.
    pub home_blanking: Duration,
}

impl Default for MatrixConfig {
    fn default() -> Self {
        Self {
            row_active_low: false,
            col_active_low: false,
            home_active_low: true,
            poll_interval: Duration::from_millis(1),
            home_blanking: Duration::from_millis(5),
        }
    }
}

/// The motor-matrix driver. See the module docs for the pin sequence.
///
/// Type parameters: row pins `R`, column pins `C`, home line `H`, drop sensor `D`, clock `K`.
pub struct MatrixDispenser<R, C, H, D, K> {
    rows: Vec<R>,
    cols: Vec<C>,
    home: H,
    drop: D,
    clock: K,
    cfg: MatrixConfig,
}

impl<R, C, H, D, K> MatrixDispenser<R, C, H, D, K>
where
    R: OutputPin,
    C: OutputPin,
    H: InputPin,
    D: DropSensor,
    K: Clock,
{
    /// Build the driver. Pins are not touched until [`Dispenser::all_off`] or a vend.
    ///
    /// # Panics
    /// If there are no rows or no columns, or more than 255 of either.
    pub fn new(rows: Vec<R>, cols: Vec<C>, home: H, drop: D, clock: K, cfg: MatrixConfig) -> Self {
        assert!(!rows.is_empty() && rows.len() <= 255, "1..=255 rows");
        assert!(!cols.is_empty() && cols.len() <= 255, "1..=255 columns");
        Self {
            rows,
            cols,
            home,
            drop,
            clock,
            cfg,
        }
    }

    /// Give the pins back (tests use this to check mock expectations).
    pub fn into_parts(self) -> (Vec<R>, Vec<C>, H, D, K) {
        (self.rows, self.cols, self.home, self.drop, self.clock)
    }

    fn at_home(&mut self) -> Result<bool, HwError> {
        let low = self.home.is_low().map_err(|e| pin_err("home switch", e))?;
        Ok(low == self.cfg.home_active_low)
    }

    /// Poll the home line until it reads `want`, or until `deadline` (on the driver clock).
    /// Returns whether it was reached. "Home" readings before `ignore_home_until` are skipped.
    fn wait_home(
        &mut self,
        want: bool,
        deadline: Duration,
        ignore_home_until: Duration,
    ) -> Result<bool, HwError> {
        loop {
            let home = self.at_home()?;
            let now = self.clock.now();
            if home == want && !(home && now < ignore_home_until) {
                return Ok(true);
            }
            if now >= deadline {
                return Ok(false);
            }
            self.clock.sleep(self.cfg.poll_interval);
        }
    }

    /// Steps 3–5 of the sequence: run the motor of `slot` for one turn. The guard switches
    /// it off on every path out of this function.
    fn run_motor(
        &mut self,
        slot: SlotAddr,
        timing: &VendTiming,
    ) -> Result<(VendOutcome, Duration), HwError> {
        let started = self.clock.now();
        let guard = MotorGuard::energise(self, slot)?;
        let d = &mut *guard.driver;
        let left = d.wait_home(false, started + timing.leave_home_timeout, Duration::ZERO)?;
        let outcome = if !left {
            VendOutcome::HomeSwitchStuck
        } else {
            let blank_until = d.clock.now() + d.cfg.home_blanking;
            let back = d.wait_home(true, started + timing.motor_timeout, blank_until)?;
            if back {
                VendOutcome::NoDrop
            } else {
                VendOutcome::Jammed
            }
        };
        let stopped = guard.driver.clock.now();
        guard.release()?;
        Ok((outcome, stopped.saturating_sub(started)))
    }
}

impl<R, C, H, D, K> Dispenser for MatrixDispenser<R, C, H, D, K>
where
    R: OutputPin + Send,
    C: OutputPin + Send,
    H: InputPin + Send,
    D: DropSensor,
    K: Clock,
{
    #[tracing::instrument(skip(self, timing), fields(slot = %slot))]
    fn vend(&mut self, slot: SlotAddr, timing: &VendTiming) -> Result<VendReport, HwError> {
        if usize::from(slot.row) >= self.rows.len() || usize::from(slot.col) >= self.cols.len() {
            return Err(HwError::SlotOutOfRange {
                slot,
                rows: self.rows.len() as u8,
                cols: self.cols.len() as u8,
            });
        }
        self.all_off()?;
        if !self.at_home()? {
            tracing::error!("home line reads off-home before the vend; not energising");
            return Err(HwError::MotorNotHome);
        }
        self.drop.arm()?;
        let (motor_outcome, motor_time) = self.run_motor(slot, timing)?;
        self.clock.sleep(timing.drop_window);
        let drops = self.drop.drops_since_arm(timing.drop_debounce)?;
        let outcome = match (drops, motor_outcome) {
            (0, o) => o,
            (n, VendOutcome::NoDrop) => VendOutcome::Delivered { drops: n },
            (n, o) => {
                tracing::warn!(drops = n, motor = ?o, "item seen despite a motor fault");
                VendOutcome::Delivered { drops: n }
            }
        };
        let motor_ms = u32::try_from(motor_time.as_millis()).unwrap_or(u32::MAX);
        tracing::info!(?outcome, motor_ms, "vend finished");
        Ok(VendReport { outcome, motor_ms })
    }

    fn all_off(&mut self) -> Result<(), HwError> {
        let mut first_err = None;
        for i in 0..self.cols.len() {
            if let Err(e) = self.set_col(i, false) {
                first_err.get_or_insert(e);
            }
        }
        for i in 0..self.rows.len() {
            if let Err(e) = self.set_row(i, false) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl<R: OutputPin, C: OutputPin, H, D, K> MatrixDispenser<R, C, H, D, K> {
    fn set_row(&mut self, i: usize, on: bool) -> Result<(), HwError> {
        drive(&mut self.rows[i], on, self.cfg.row_active_low)
            .map_err(|e| pin_err(format!("row {i}"), e))
    }

    fn set_col(&mut self, i: usize, on: bool) -> Result<(), HwError> {
        drive(&mut self.cols[i], on, self.cfg.col_active_low)
            .map_err(|e| pin_err(format!("col {i}"), e))
    }
}

fn drive<P: OutputPin>(pin: &mut P, on: bool, active_low: bool) -> Result<(), P::Error> {
    if on != active_low {
        pin.set_high()
    } else {
        pin.set_low()
    }
}

/// Proof that exactly one motor is energised. Created only by energising one row then one
/// column; dropping it (or [`release`](MotorGuard::release)) de-energises the column, then
/// the row. It borrows the driver mutably, so no second motor can be started meanwhile.
pub struct MotorGuard<'a, R: OutputPin, C: OutputPin, H, D, K> {
    driver: &'a mut MatrixDispenser<R, C, H, D, K>,
    slot: SlotAddr,
    released: bool,
}

impl<'a, R: OutputPin, C: OutputPin, H, D, K> MotorGuard<'a, R, C, H, D, K> {
    fn energise(
        driver: &'a mut MatrixDispenser<R, C, H, D, K>,
        slot: SlotAddr,
    ) -> Result<Self, HwError> {
        // The guard exists before the first pin moves, so a failure half-way still switches
        // everything off again.
        let guard = Self {
            driver,
            slot,
            released: false,
        };
        guard.driver.set_row(slot.row.into(), true)?;
        guard.driver.set_col(slot.col.into(), true)?;
        Ok(guard)
    }

    /// De-energise column then row and report the first error; both are always attempted.
    pub fn release(mut self) -> Result<(), HwError> {
        self.released = true;
        self.off()
    }

    fn off(&mut self) -> Result<(), HwError> {
        let col = self.driver.set_col(self.slot.col.into(), false);
        let row = self.driver.set_row(self.slot.row.into(), false);
        col.and(row)
    }
}

impl<R: OutputPin, C: OutputPin, H, D, K> Drop for MotorGuard<'_, R, C, H, D, K> {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.off() {
                tracing::error!(cause = %e, slot = %self.slot, "could not de-energise motor");
            }
        }
    }
}
