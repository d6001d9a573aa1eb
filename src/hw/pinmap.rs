//! Pin maps: which BCM GPIO drives which part of the machine, loaded from TOML and
//! validated before any pin is touched.
//!
//! A pin map is the wiring of one board or HAT (see `hardware/*.toml` and
//! `hardware/README.md`). [`PinMap::from_toml_str`] refuses maps that could damage the
//! machine or clash with a bus: BCM numbers outside 2..=27, a pin used twice (both uses are
//! named), row/column counts that do not match the matrix size, and pins of a bus the map
//! declares in use (SPI0 8–11, I2C1 2–3, UART 14–15). Softer problems (an output whose boot
//! default pull could energise it before vendd starts) are returned by
//! [`PinMap::warnings`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::MatrixConfig;

#[cfg(test)]
mod tests;

/// An invalid pin map. Every variant names the entry to fix.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PinMapError {
    /// The file is not valid TOML or does not match the schema (the message names the line
    /// and the field). Fix: compare with `hardware/pinmap-6x10-spiral.toml`.
    #[error("pin map: {0}")]
    Parse(String),
    /// A BCM number outside 2..=27. GPIO 0/1 are the HAT ID EEPROM bus; there is no 28+ on
    /// the 40-pin header. Fix: use the BCM number, not the physical header pin number.
    #[error("pin map: {role} uses GPIO {pin}, but only BCM 2..=27 are allowed (BCM numbers, not header pin numbers)")]
    PinOutOfRange {
        /// What the pin is for.
        role: String,
        /// The offending number.
        pin: u8,
    },
    /// One GPIO appears twice. Fix: give one of the two roles another free pin.
    #[error("pin map: GPIO {pin} is used twice, by {first} and by {second}")]
    PinUsedTwice {
        /// The pin.
        pin: u8,
        /// The first use.
        first: String,
        /// The second use.
        second: String,
    },
    /// The number of row or column pins differs from the declared matrix size.
    /// Fix: list exactly one pin per row and per column.
    #[error("pin map: matrix declares {declared} {what} but lists {listed} {what} pins")]
    MatrixSizeMismatch {
        /// `rows` or `cols`.
        what: &'static str,
        /// Size declared in `[matrix]`.
        declared: u8,
        /// Pins listed.
        listed: usize,
    },
    /// The matrix has no rows or no columns.
    #[error("pin map: the matrix needs at least one row and one column")]
    EmptyMatrix,
    /// A pin belongs to a bus the map declares in use. Fix: move the role to a free pin, or
    /// set the bus to `false` in `[buses]` if nothing uses it.
    #[error(
        "pin map: {role} uses GPIO {pin}, which belongs to {bus} (declared in use in [buses])"
    )]
    ReservedPin {
        /// What the pin is for.
        role: String,
        /// The pin.
        pin: u8,
        /// The bus, e.g. `SPI0`.
        bus: &'static str,
    },
}

/// Pull resistor of an input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// Internal pull-up (~50 kΩ).
    Up,
    /// Internal pull-down (~50 kΩ).
    Down,
    /// No internal pull (an external resistor or a push-pull sensor output).
    #[default]
    None,
}

/// One input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// BCM number.
    pub pin: u8,
    /// The asserted state (home, beam broken, door open, someone present) reads low.
    #[serde(default)]
    pub active_low: bool,
    /// Internal pull resistor.
    #[serde(default)]
    pub pull: Pull,
    /// Debounce in milliseconds: for the door and presence inputs a new level must be stable
    /// this long; for the home switch it is the blanking time after leaving home.
    #[serde(default)]
    pub debounce_ms: u32,
}

/// One output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// BCM number.
    pub pin: u8,
    /// The device is on when the pin is low.
    #[serde(default)]
    pub active_low: bool,
}

/// The motor matrix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// Number of rows.
    pub rows: u8,
    /// Number of columns.
    pub cols: u8,
    /// One BCM pin per row, row 0 first.
    pub row_pins: Vec<u8>,
    /// One BCM pin per column, column 0 first.
    pub col_pins: Vec<u8>,
    /// Rows are energised by driving the pin low.
    #[serde(default)]
    pub row_active_low: bool,
    /// Columns are energised by driving the pin low.
    #[serde(default)]
    pub col_active_low: bool,
    /// Home-switch poll interval in milliseconds (default 1).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u32,
}

fn default_poll_ms() -> u32 {
    1
}

/// The door lock output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockSpec {
    /// BCM number.
    pub pin: u8,
    /// The solenoid is energised when the pin is low.
    #[serde(default)]
    pub active_low: bool,
    /// `true` (default): energise to release, locked when unpowered.
    #[serde(default = "yes")]
    pub fail_secure: bool,
}

fn yes() -> bool {
    true
}

/// Status LEDs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedSpec {
    /// Red LED.
    pub red: OutputSpec,
    /// Green LED.
    pub green: OutputSpec,
}

/// Buses the machine uses; their pins are then refused for anything else.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSpec {
    /// SPI0 (GPIO 8–11), e.g. the PN532 NFC reader.
    pub spi0: bool,
    /// I2C1 (GPIO 2–3).
    pub i2c1: bool,
    /// UART0 (GPIO 14–15).
    pub uart0: bool,
}

/// A complete pin map. Build it with [`PinMap::from_toml_str`], which validates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinMap {
    /// Human name of the board or HAT.
    pub name: String,
    /// Motor matrix.
    pub matrix: MatrixSpec,
    /// Motor home-switch line.
    pub home_switch: InputSpec,
    /// IR drop beam (asserted = beam broken).
    pub drop_sensor: InputSpec,
    /// Service door switch (asserted = door open).
    pub door_switch: InputSpec,
    /// Door lock solenoid.
    pub lock: LockSpec,
    /// Status LEDs.
    pub leds: LedSpec,
    /// PIR presence sensor (asserted = someone present). Optional: without it the machine
    /// reports someone present at all times.
    #[serde(default)]
    pub presence: Option<InputSpec>,
    /// Buses in use.
    #[serde(default)]
    pub buses: BusSpec,
}

const BUSES: [(&str, [u8; 4], usize); 3] = [
    ("SPI0", [8, 9, 10, 11], 4),
    ("I2C1", [2, 3, 0, 0], 2),
    ("UART0", [14, 15, 0, 0], 2),
];

impl PinMap {
    /// Parse and validate a pin map.
    ///
    /// # Errors
    /// [`PinMapError`] naming the first problem found.
    pub fn from_toml_str(s: &str) -> Result<Self, PinMapError> {
        let map: PinMap = toml::from_str(s).map_err(|e| PinMapError::Parse(e.to_string()))?;
        map.validate()?;
        Ok(map)
    }

    /// Every pin with its role, in a stable order (rows, columns, then the rest).
    pub fn roles(&self) -> Vec<(String, u8)> {
        let m = &self.matrix;
        let mut v: Vec<(String, u8)> = Vec::new();
        v.extend(
            m.row_pins
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("row {i}"), *p)),
        );
        v.extend(
            m.col_pins
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("col {i}"), *p)),
        );
        v.push(("home_switch".into(), self.home_switch.pin));
        v.push(("drop_sensor".into(), self.drop_sensor.pin));
        v.push(("door_switch".into(), self.door_switch.pin));
        v.push(("lock".into(), self.lock.pin));
        v.push(("leds.red".into(), self.leds.red.pin));
        v.push(("leds.green".into(), self.leds.green.pin));
        if let Some(p) = &self.presence {
            v.push(("presence".into(), p.pin));
        }
        v
    }

    /// Check the rules listed in the module docs.
    ///
    /// # Errors
    /// [`PinMapError`] naming the first problem found.
    pub fn validate(&self) -> Result<(), PinMapError> {
        let m = &self.matrix;
        if m.rows == 0 || m.cols == 0 {
            return Err(PinMapError::EmptyMatrix);
        }
        for (what, declared, listed) in [
            ("rows", m.rows, m.row_pins.len()),
            ("cols", m.cols, m.col_pins.len()),
        ] {
            if usize::from(declared) != listed {
                return Err(PinMapError::MatrixSizeMismatch {
                    what,
                    declared,
                    listed,
                });
            }
        }
        let roles = self.roles();
        for (role, pin) in &roles {
            if !(2..=27).contains(pin) {
                return Err(PinMapError::PinOutOfRange {
                    role: role.clone(),
                    pin: *pin,
                });
            }
        }
        for (i, (role, pin)) in roles.iter().enumerate() {
            if let Some((first, _)) = roles[..i].iter().find(|(_, p)| p == pin) {
                return Err(PinMapError::PinUsedTwice {
                    pin: *pin,
                    first: first.clone(),
                    second: role.clone(),
                });
            }
        }
        let in_use = [self.buses.spi0, self.buses.i2c1, self.buses.uart0];
        for (role, pin) in &roles {
            for ((bus, pins, n), used) in BUSES.iter().zip(in_use) {
                if used && pins[..*n].contains(pin) {
                    return Err(PinMapError::ReservedPin {
                        role: role.clone(),
                        pin: *pin,
                        bus,
                    });
                }
            }
        }
        Ok(())
    }

    /// Advice that does not make the map invalid, one sentence each: pins of a bus not
    /// declared in use, outputs on the I2C pins (fixed 1.8 kΩ pull-ups), and motor/lock
    /// outputs whose power-on default pull (GPIO 0–8 up, 9–27 down) would energise them
    /// before vendd starts unless the board has its own pull resistor.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let in_use = [self.buses.spi0, self.buses.i2c1, self.buses.uart0];
        for (role, pin) in self.roles() {
            for ((bus, pins, n), used) in BUSES.iter().zip(in_use) {
                if !used && pins[..*n].contains(&pin) {
                    w.push(format!("{role} uses GPIO {pin} of {bus}; keep {bus} disabled in /boot/firmware/config.txt"));
                }
            }
        }
        let m = &self.matrix;
        let mut outputs: Vec<(String, u8, bool)> = Vec::new();
        outputs.extend(
            m.row_pins
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("row {i}"), *p, m.row_active_low)),
        );
        outputs.extend(
            m.col_pins
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("col {i}"), *p, m.col_active_low)),
        );
        outputs.push(("lock".into(), self.lock.pin, self.lock.active_low));
        for (role, pin, active_low) in outputs {
            if pin <= 3 {
                w.push(format!("{role} is an output on GPIO {pin}, which has a fixed 1.8 kOhm pull-up to 3.3 V"));
            }
            let boot_pull_up = pin <= 8;
            if boot_pull_up != active_low {
                let pull = if boot_pull_up { "pull-up" } else { "pull-down" };
                w.push(format!(
                    "{role} on GPIO {pin}: the power-on {pull} reads as 'on' until vendd starts; fit an external resistor to the off level"
                ));
            }
        }
        w
    }

    /// Driver polarity and polling settings for [`super::MatrixDispenser`].
    pub fn matrix_config(&self) -> MatrixConfig {
        MatrixConfig {
            row_active_low: self.matrix.row_active_low,
            col_active_low: self.matrix.col_active_low,
            home_active_low: self.home_switch.active_low,
            poll_interval: Duration::from_millis(self.matrix.poll_interval_ms.max(1).into()),
            home_blanking: Duration::from_millis(self.home_switch.debounce_ms.into()),
        }
    }
}
