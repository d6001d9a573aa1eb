//! Door switch, presence sensor, lock and LEDs on plain embedded-hal pins.
//!
//! These small devices are generic so the Pi backend and the simulator share them, and so
//! their polarity and debouncing are tested here with mocks.

use std::time::Duration;

use embedded_hal::digital::{InputPin, OutputPin};

use super::error::pin_err;
use super::{Clock, DoorSwitch, HwError, LedPattern, Leds, Lock, PresenceSensor};

/// A debounced digital input (door reed switch, PIR output).
///
/// A new level is reported only after it has been read unchanged for `debounce`; until then
/// the previous stable level is reported. The first read is taken as stable.
pub struct PinSwitch<P, K> {
    pin: P,
    name: &'static str,
    active_low: bool,
    debounce: Duration,
    clock: K,
    stable: Option<bool>,
    candidate: Option<(bool, Duration)>,
}

impl<P: InputPin, K: Clock> PinSwitch<P, K> {
    /// `active_low`: the asserted state (door open, someone present) reads low.
    pub fn new(pin: P, name: &'static str, active_low: bool, debounce: Duration, clock: K) -> Self {
        Self {
            pin,
            name,
            active_low,
            debounce,
            clock,
            stable: None,
            candidate: None,
        }
    }

    /// Give the pin back.
    pub fn into_pin(self) -> P {
        self.pin
    }

    /// The debounced asserted state.
    ///
    /// # Errors
    /// [`HwError::Pin`] when the pin cannot be read.
    pub fn asserted(&mut self) -> Result<bool, HwError> {
        let raw = self.pin.is_low().map_err(|e| pin_err(self.name, e))? == self.active_low;
        let now = self.clock.now();
        let stable = *self.stable.get_or_insert(raw);
        if raw == stable {
            self.candidate = None;
        } else {
            match self.candidate {
                Some((level, since)) if level == raw => {
                    if now.saturating_sub(since) >= self.debounce {
                        self.stable = Some(raw);
                        self.candidate = None;
                    }
                }
                _ if self.debounce.is_zero() => self.stable = Some(raw),
                _ => self.candidate = Some((raw, now)),
            }
        }
        Ok(self.stable.unwrap_or(raw))
    }
}

impl<P: InputPin + Send, K: Clock> DoorSwitch for PinSwitch<P, K> {
    fn is_open(&mut self) -> Result<bool, HwError> {
        self.asserted()
    }
}

impl<P: InputPin + Send, K: Clock> PresenceSensor for PinSwitch<P, K> {
    fn is_present(&mut self) -> Result<bool, HwError> {
        self.asserted()
    }
}

/// Presence "sensor" for a machine without a PIR: always reports someone present, so the
/// kiosk never dims. Chosen by the pin map when `presence` is left out.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPresenceSensor;

impl PresenceSensor for NoPresenceSensor {
    fn is_present(&mut self) -> Result<bool, HwError> {
        Ok(true)
    }
}

/// A lock solenoid on one output through a MOSFET.
///
/// `fail_secure` (the usual vending lock): the solenoid is energised to *release* the door,
/// so a dead controller leaves the door locked. Otherwise (a magnetic lock) it is energised
/// to hold the door.
pub struct PinLock<P> {
    pin: P,
    active_low: bool,
    fail_secure: bool,
}

impl<P: OutputPin> PinLock<P> {
    /// Wrap an output pin.
    pub fn new(pin: P, active_low: bool, fail_secure: bool) -> Self {
        Self {
            pin,
            active_low,
            fail_secure,
        }
    }

    /// Give the pin back.
    pub fn into_pin(self) -> P {
        self.pin
    }
}

impl<P: OutputPin + Send> Lock for PinLock<P> {
    fn set_locked(&mut self, locked: bool) -> Result<(), HwError> {
        let energise = locked != self.fail_secure;
        set(&mut self.pin, energise, self.active_low).map_err(|e| pin_err("lock", e))
    }
}

/// Two status LEDs (red and green, or one bi-colour LED).
///
/// Mapping: `Off` → both off, `Idle` and `Ok` → green, `Busy` → both (amber on a bi-colour
/// LED), `Error` → red. `Idle` and `Ok` look the same on two steady LEDs; the runtime shows
/// `Ok` only briefly after a vend.
pub struct PinLeds<P> {
    red: P,
    green: P,
    red_active_low: bool,
    green_active_low: bool,
}

impl<P: OutputPin> PinLeds<P> {
    /// Wrap the two LED outputs.
    pub fn new(red: P, red_active_low: bool, green: P, green_active_low: bool) -> Self {
        Self {
            red,
            green,
            red_active_low,
            green_active_low,
        }
    }

    /// Give the pins back as (red, green).
    pub fn into_pins(self) -> (P, P) {
        (self.red, self.green)
    }
}

/// Which LEDs a pattern lights, as (red, green).
pub fn led_levels(p: LedPattern) -> (bool, bool) {
    match p {
        LedPattern::Off => (false, false),
        LedPattern::Idle | LedPattern::Ok => (false, true),
        LedPattern::Busy => (true, true),
        LedPattern::Error => (true, false),
    }
}

impl<P: OutputPin + Send> Leds for PinLeds<P> {
    fn set(&mut self, p: LedPattern) -> Result<(), HwError> {
        let (red, green) = led_levels(p);
        set(&mut self.red, red, self.red_active_low).map_err(|e| pin_err("red LED", e))?;
        set(&mut self.green, green, self.green_active_low).map_err(|e| pin_err("green LED", e))
    }
}

fn set<P: OutputPin>(pin: &mut P, on: bool, active_low: bool) -> Result<(), P::Error> {
    if on != active_low {
        pin.set_high()
    } else {
        pin.set_low()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::ManualClock;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_door_switch_reports_a_change_only_after_it_is_stable_for_the_debounce() {
        let reads = [
            State::Low,
            State::High,
            State::Low,
            State::High,
            State::High,
            State::High,
        ];
        let exp: Vec<T> = reads.iter().map(|s| T::get(*s)).collect();
        let mut pin = Mock::new(&exp);
        let clock = ManualClock::new();
        let mut door = PinSwitch::new(pin.clone(), "door", false, ms(20), clock.clone());
        let mut seen = vec![];
        for _ in 0..reads.len() {
            seen.push(door.is_open().unwrap());
            clock.advance(ms(10));
        }
        // High = open. The bounce at 10 ms is ignored; open from 30 ms is reported at 50 ms.
        assert_eq!(seen, [false, false, false, false, false, true]);
        pin.done();
    }

    #[test]
    fn an_active_low_presence_sensor_reports_present_when_low() {
        let mut pin = Mock::new(&[T::get(State::Low), T::get(State::High)]);
        let mut pir = PinSwitch::new(
            pin.clone(),
            "presence",
            true,
            Duration::ZERO,
            ManualClock::new(),
        );
        assert!(pir.is_present().unwrap());
        assert!(!pir.is_present().unwrap());
        pin.done();
    }

    #[test]
    fn a_fail_secure_lock_is_energised_to_release_the_door() {
        let mut pin = Mock::new(&[T::set(State::Low), T::set(State::High)]);
        let mut lock = PinLock::new(pin.clone(), false, true);
        lock.set_locked(true).unwrap();
        lock.set_locked(false).unwrap();
        pin.done();
    }

    #[test]
    fn a_magnetic_lock_on_an_active_low_pin_is_driven_low_to_hold() {
        let mut pin = Mock::new(&[T::set(State::Low), T::set(State::High)]);
        let mut lock = PinLock::new(pin.clone(), true, false);
        lock.set_locked(true).unwrap();
        lock.set_locked(false).unwrap();
        pin.done();
    }

    #[test]
    fn led_patterns_drive_red_and_green_as_documented() {
        let mut red = Mock::new(&[T::set(State::High), T::set(State::Low), T::set(State::High)]);
        // Green is active-low.
        let mut green = Mock::new(&[T::set(State::High), T::set(State::Low), T::set(State::Low)]);
        let mut leds = PinLeds::new(red.clone(), false, green.clone(), true);
        leds.set(LedPattern::Error).unwrap();
        leds.set(LedPattern::Idle).unwrap();
        leds.set(LedPattern::Busy).unwrap();
        red.done();
        green.done();
    }
}
