//! [`HwError`]: everything that can go wrong at the GPIO boundary, with what an operator
//! needs to fix it.

use super::{PinMapError, SlotAddr};

/// A hardware adapter failure. Vend *outcomes* (jam, no drop, …) are not errors; they are
/// [`super::VendOutcome`]s. An error means the cycle could not be run or observed.
#[derive(thiserror::Error, Debug)]
pub enum HwError {
    /// This machine is not a Raspberry Pi that rppal recognises.
    ///
    /// Fix: run `vendd simulate` on a development machine; on a Pi, check
    /// `/proc/device-tree/model` and `/proc/cpuinfo` are readable (containers often hide
    /// them) and that the model is supported by rppal 0.22.
    #[error("not a supported Raspberry Pi ({detail}); use the simulator or check /proc/device-tree/model")]
    NotRaspberryPi {
        /// The message from the GPIO library.
        detail: String,
    },
    /// The process may not open the GPIO character device or `/dev/gpiomem`.
    ///
    /// Fix: add the service user to the `gpio` group (or grant the device in the systemd
    /// unit with `DeviceAllow=/dev/gpiochip0 rw` and `SupplementaryGroups=gpio`).
    #[error("permission denied opening GPIO ({path}); add the vendd user to the `gpio` group")]
    GpioPermission {
        /// The device that could not be opened.
        path: String,
    },
    /// A BCM pin is already claimed (by this process or another one).
    ///
    /// Fix: stop the other program using the pin, or correct the pin map.
    #[error("GPIO {pin} ({role}) is already in use by another program or another pin map entry")]
    PinBusy {
        /// BCM number.
        pin: u8,
        /// What the pin map uses it for.
        role: String,
    },
    /// Any other GPIO library failure while setting up a pin.
    ///
    /// Fix: check the kernel log (`dmesg`) and that no device-tree overlay claims the pin.
    #[error("GPIO setup failed for {role}: {detail}")]
    Gpio {
        /// What the pin is used for (or "gpio" for the controller itself).
        role: String,
        /// The message from the GPIO library.
        detail: String,
    },
    /// Reading or driving one pin failed at run time.
    ///
    /// Fix: check the wiring and the driver board's supply for the named pin.
    #[error("pin {pin} failed: {detail}")]
    Pin {
        /// Role of the pin, e.g. `row 2`, `home switch`.
        pin: String,
        /// The pin implementation's error.
        detail: String,
    },
    /// The requested slot is outside the motor matrix.
    ///
    /// Fix: correct the planogram; rows and columns are 0-based.
    #[error("slot {slot} is outside the {rows}x{cols} motor matrix")]
    SlotOutOfRange {
        /// The slot asked for.
        slot: SlotAddr,
        /// Rows in the matrix.
        rows: u8,
        /// Columns in the matrix.
        cols: u8,
    },
    /// Before the cycle, with no motor selected, the home-sense line did not idle at
    /// "home", so nothing was energised: the sense wiring is broken or shorted (or a
    /// driver board output is stuck on).
    ///
    /// Fix: with the machine off, check the home-sense line and its pull-up, the diodes of
    /// the cam switches and the row/column driver board; the line must read "home" when no
    /// row or column is driven.
    #[error("the home-sense line reads off-home with no motor selected (broken or shorted sense wiring); nothing was energised")]
    MotorNotHome,
    /// The pin map is invalid.
    #[error(transparent)]
    PinMap(#[from] PinMapError),
}

/// Turn an embedded-hal pin error into [`HwError::Pin`] for the named pin.
pub(crate) fn pin_err<E: std::fmt::Debug>(pin: impl Into<String>, e: E) -> HwError {
    HwError::Pin {
        pin: pin.into(),
        detail: format!("{e:?}"),
    }
}
