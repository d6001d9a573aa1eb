//! Raspberry Pi backend: rppal GPIO behind the generic drivers.
//!
//! This is the only file that uses `rppal` (retired upstream on 2025-07-01, last release
//! 0.22.1), so replacing it touches nothing else. rppal's `embedded-hal` feature gives its
//! `InputPin`/`OutputPin` the embedded-hal 1.0 traits, and the drop beam uses rppal's
//! asynchronous interrupts: the kernel timestamps every edge and a callback thread appends it
//! to a buffer, so the vend thread can be descheduled without missing an item.
//!
//! Outputs are claimed at their *off* level, and rppal resets pins to inputs when they are
//! dropped (also when the process unwinds); the external pull resistors described in
//! `hardware/README.md` then hold every motor and the lock off.
//!
//! Not testable on a development PC: only the failure path of [`rpi_machine`] on a non-Pi
//! runs in CI.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rppal::gpio::{Event, Gpio, InputPin, OutputPin, Trigger};

use super::beam::{count_items, BeamEdge};
use super::io::{NoPresenceSensor, PinLeds, PinLock, PinSwitch};
use super::pinmap::{InputSpec, Pull};
use super::{DropSensor, HwError, Machine, MatrixDispenser, PinMap, PresenceSensor, StdClock};

/// Backend name, for logs and `vendd check-config`.
pub const NAME: &str = "rpi";

/// Most edges kept between `arm` and `drops_since_arm`; a chattering sensor cannot grow the
/// buffer without bound. 4096 edges is far more than a vend produces.
const MAX_EDGES: usize = 4096;

/// Build the machine on real GPIO from a validated pin map.
///
/// # Errors
/// [`HwError::NotRaspberryPi`] when not running on a Pi (e.g. "Unknown Raspberry Pi model" on
/// a PC), [`HwError::GpioPermission`], [`HwError::PinBusy`] or [`HwError::Gpio`] when a pin
/// cannot be claimed, and [`HwError::PinMap`] when the map does not validate.
pub fn rpi_machine(map: &PinMap) -> Result<Machine, HwError> {
    map.validate()?;
    for w in map.warnings() {
        tracing::warn!(pin_map = %map.name, "{w}");
    }
    let gpio = Gpio::new().map_err(|e| gpio_err("gpio", None, e))?;
    let m = &map.matrix;
    let out = |role: String, pin: u8, active_low: bool| -> Result<OutputPin, HwError> {
        let p = gpio.get(pin).map_err(|e| gpio_err(&role, Some(pin), e))?;
        // Claim at the off level so nothing twitches.
        Ok(if active_low {
            p.into_output_high()
        } else {
            p.into_output_low()
        })
    };
    let rows = m
        .row_pins
        .iter()
        .enumerate()
        .map(|(i, p)| out(format!("row {i}"), *p, m.row_active_low))
        .collect::<Result<Vec<_>, _>>()?;
    let cols = m
        .col_pins
        .iter()
        .enumerate()
        .map(|(i, p)| out(format!("col {i}"), *p, m.col_active_low))
        .collect::<Result<Vec<_>, _>>()?;
    let home = input(&gpio, "home_switch", &map.home_switch)?;
    let drop = RpiDropSensor::new(
        input(&gpio, "drop_sensor", &map.drop_sensor)?,
        &map.drop_sensor,
    )?;
    let clock = StdClock::new();
    let mut dispenser = MatrixDispenser::new(rows, cols, home, drop, clock, map.matrix_config());
    super::Dispenser::all_off(&mut dispenser)?;

    let door = PinSwitch::new(
        input(&gpio, "door_switch", &map.door_switch)?,
        "door switch",
        map.door_switch.active_low,
        ms(map.door_switch.debounce_ms),
        clock,
    );
    let lock_pin = out("lock".into(), map.lock.pin, map.lock.active_low)?;
    let lock = PinLock::new(lock_pin, map.lock.active_low, map.lock.fail_secure);
    let leds = PinLeds::new(
        out("leds.red".into(), map.leds.red.pin, map.leds.red.active_low)?,
        map.leds.red.active_low,
        out(
            "leds.green".into(),
            map.leds.green.pin,
            map.leds.green.active_low,
        )?,
        map.leds.green.active_low,
    );
    let presence: Box<dyn PresenceSensor> = match &map.presence {
        Some(spec) => Box::new(PinSwitch::new(
            input(&gpio, "presence", spec)?,
            "presence",
            spec.active_low,
            ms(spec.debounce_ms),
            clock,
        )),
        None => Box::new(NoPresenceSensor),
    };
    tracing::info!(pin_map = %map.name, backend = NAME, "GPIO ready");
    Ok(Machine {
        dispenser: Box::new(dispenser),
        door: Box::new(door),
        lock: Box::new(lock),
        leds: Box::new(leds),
        presence,
    })
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(v.into())
}

fn input(gpio: &Gpio, role: &str, spec: &InputSpec) -> Result<InputPin, HwError> {
    let p = gpio
        .get(spec.pin)
        .map_err(|e| gpio_err(role, Some(spec.pin), e))?;
    Ok(match spec.pull {
        Pull::Up => p.into_input_pullup(),
        Pull::Down => p.into_input_pulldown(),
        Pull::None => p.into_input(),
    })
}

/// Map an rppal error to the operator-facing [`HwError`].
fn gpio_err(role: &str, pin: Option<u8>, e: rppal::gpio::Error) -> HwError {
    use rppal::gpio::Error as E;
    match e {
        E::UnknownModel => HwError::NotRaspberryPi {
            detail: e.to_string(),
        },
        E::PermissionDenied(path) => HwError::GpioPermission { path },
        E::PinUsed(p) | E::PinNotAvailable(p) if pin == Some(p) => HwError::PinBusy {
            pin: p,
            role: role.to_string(),
        },
        other => HwError::Gpio {
            role: role.to_string(),
            detail: other.to_string(),
        },
    }
}

/// Edges recorded by the interrupt callback.
#[derive(Default)]
struct EdgeLog {
    /// Kernel timestamps (time since boot) of each edge.
    edges: VecDeque<BeamEdge>,
    /// When the last edge reached the callback, to estimate the kernel's "now" for a break
    /// that is still open. This under-estimates the break, so it never invents an item.
    last_received: Option<(Duration, Instant)>,
    overflowed: bool,
}

/// The IR drop beam on an rppal interrupt.
struct RpiDropSensor {
    pin: InputPin,
    log: Arc<Mutex<EdgeLog>>,
    active_low: bool,
    initially_broken: bool,
}

impl RpiDropSensor {
    fn new(mut pin: InputPin, spec: &InputSpec) -> Result<Self, HwError> {
        let log = Arc::new(Mutex::new(EdgeLog::default()));
        let sink = Arc::clone(&log);
        let active_low = spec.active_low;
        pin.set_async_interrupt(Trigger::Both, None, move |ev: Event| {
            let broken = (ev.trigger == Trigger::RisingEdge) != active_low;
            let mut l = sink.lock().unwrap_or_else(|e| e.into_inner());
            if l.edges.len() >= MAX_EDGES {
                l.edges.pop_front();
                l.overflowed = true;
            }
            l.edges.push_back(BeamEdge {
                at: ev.timestamp,
                broken,
            });
            l.last_received = Some((ev.timestamp, Instant::now()));
        })
        .map_err(|e| gpio_err("drop_sensor", Some(spec.pin), e))?;
        Ok(Self {
            pin,
            log,
            active_low,
            initially_broken: false,
        })
    }

    fn broken_now(&self) -> bool {
        self.pin.is_low() == self.active_low
    }
}

impl DropSensor for RpiDropSensor {
    fn arm(&mut self) -> Result<(), HwError> {
        let mut l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        *l = EdgeLog::default();
        self.initially_broken = self.broken_now();
        if self.initially_broken {
            tracing::warn!(
                "drop beam is already broken before the motor starts (item stuck in the chute?)"
            );
        }
        Ok(())
    }

    fn drops_since_arm(&mut self, debounce: Duration) -> Result<u32, HwError> {
        let l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if l.overflowed {
            tracing::warn!("drop beam chattered: more than {MAX_EDGES} edges in one vend");
        }
        let edges: Vec<BeamEdge> = l.edges.iter().copied().collect();
        let now = l.last_received.map(|(at, seen)| at + seen.elapsed());
        Ok(count_items(&edges, self.initially_broken, debounce, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PinMap {
        PinMap::from_toml_str(include_str!("../../hardware/pinmap-6x10-spiral.toml")).unwrap()
    }

    #[test]
    fn rpi_machine_on_a_pc_returns_not_a_raspberry_pi_instead_of_panicking() {
        if std::fs::read_to_string("/proc/device-tree/model")
            .is_ok_and(|m| m.contains("Raspberry Pi"))
        {
            eprintln!("running on a real Pi: this test covers the non-Pi path only");
            return;
        }
        let err = rpi_machine(&map()).unwrap_err();
        assert!(
            matches!(&err, HwError::NotRaspberryPi { detail } if detail.contains("Unknown Raspberry Pi model")),
            "{err}"
        );
        assert!(
            err.to_string().contains("simulator"),
            "the message points the operator somewhere: {err}"
        );
    }

    #[test]
    fn an_invalid_pin_map_is_refused_before_gpio_is_opened() {
        let mut m = map();
        m.lock.pin = m.leds.red.pin;
        assert!(matches!(rpi_machine(&m), Err(HwError::PinMap(_))));
    }

    #[test]
    fn rppal_errors_map_to_operator_errors() {
        use rppal::gpio::Error as E;
        assert!(matches!(
            gpio_err("row 1", Some(12), E::PinUsed(12)),
            HwError::PinBusy { pin: 12, .. }
        ));
        assert!(matches!(
            gpio_err("gpio", None, E::PermissionDenied("/dev/gpiomem".into())),
            HwError::GpioPermission { .. }
        ));
        assert!(matches!(
            gpio_err("lock", Some(5), E::ThreadPanic),
            HwError::Gpio { .. }
        ));
    }
}
