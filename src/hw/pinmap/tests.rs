//! Pin-map validation tests: one per rule, plus the shipped maps.

use super::*;

const SIX_BY_TEN: &str = include_str!("../../../hardware/pinmap-6x10-spiral.toml");
const FOUR_BY_EIGHT: &str = include_str!("../../../hardware/pinmap-4x8-relay-hat.toml");

fn base() -> PinMap {
    PinMap::from_toml_str(FOUR_BY_EIGHT).unwrap()
}

fn check(map: &PinMap) -> Result<(), PinMapError> {
    // Round-trip through TOML so the test covers what an operator would write.
    PinMap::from_toml_str(&toml::to_string(map).unwrap()).map(|_| ())
}

#[test]
fn the_shipped_6x10_spiral_map_loads_and_validates() {
    let m = PinMap::from_toml_str(SIX_BY_TEN).unwrap();
    assert_eq!((m.matrix.rows, m.matrix.cols), (6, 10));
    assert!(m.buses.spi0 && !m.buses.i2c1 && !m.buses.uart0);
    assert!(m.presence.is_none());
    let w = m.warnings();
    assert!(w.iter().any(|s| s.contains("GPIO 14 of UART0")), "{w:?}");
    assert!(w.iter().any(|s| s.starts_with("lock on GPIO 5")), "{w:?}");
    assert!(
        w.iter()
            .any(|s| s.contains("home_switch uses GPIO 3 of I2C1")),
        "{w:?}"
    );
    assert_eq!(w.len(), 5, "{w:?}");
}

#[test]
fn the_shipped_4x8_relay_hat_map_loads_and_validates() {
    let m = base();
    assert_eq!((m.matrix.rows, m.matrix.cols), (4, 8));
    assert!(m.matrix.row_active_low);
    assert!(m.presence.is_some());
    assert_eq!(
        m.warnings(),
        ["leds.green uses GPIO 9 of SPI0; keep SPI0 disabled in /boot/firmware/config.txt"]
    );
    let c = m.matrix_config();
    assert!(c.row_active_low && !c.col_active_low && c.home_active_low);
    assert_eq!(c.home_blanking, Duration::from_millis(5));
}

#[test]
fn a_pin_outside_bcm_2_to_27_is_refused_with_its_role() {
    let mut m = base();
    m.matrix.col_pins[3] = 28;
    let e = check(&m).unwrap_err();
    assert_eq!(
        e,
        PinMapError::PinOutOfRange {
            role: "col 3".into(),
            pin: 28
        }
    );
    m.matrix.col_pins[3] = 1;
    assert!(matches!(
        check(&m),
        Err(PinMapError::PinOutOfRange { pin: 1, .. })
    ));
}

#[test]
fn a_pin_used_twice_names_both_uses() {
    let mut m = base();
    m.leds.green.pin = 24; // the home switch
    let e = check(&m).unwrap_err();
    assert_eq!(
        e,
        PinMapError::PinUsedTwice {
            pin: 24,
            first: "home_switch".into(),
            second: "leds.green".into()
        }
    );
    assert!(e.to_string().contains("home_switch") && e.to_string().contains("leds.green"));
}

#[test]
fn row_and_column_counts_must_match_the_matrix_size() {
    let mut m = base();
    m.matrix.rows = 5;
    assert_eq!(
        check(&m).unwrap_err(),
        PinMapError::MatrixSizeMismatch {
            what: "rows",
            declared: 5,
            listed: 4
        }
    );
    let mut m = base();
    m.matrix.col_pins.pop();
    assert!(matches!(
        check(&m),
        Err(PinMapError::MatrixSizeMismatch { what: "cols", .. })
    ));
}

#[test]
fn an_empty_matrix_is_refused() {
    let mut m = base();
    m.matrix.rows = 0;
    m.matrix.row_pins.clear();
    assert_eq!(check(&m).unwrap_err(), PinMapError::EmptyMatrix);
}

#[test]
fn pins_of_a_bus_declared_in_use_are_refused() {
    let mut m = base();
    m.leds.green.pin = 3; // I2C1 SCL, and i2c1 = true
    assert_eq!(
        check(&m).unwrap_err(),
        PinMapError::ReservedPin {
            role: "leds.green".into(),
            pin: 3,
            bus: "I2C1"
        }
    );
    let mut m = base();
    m.lock.pin = 14;
    assert!(matches!(
        check(&m),
        Err(PinMapError::ReservedPin { bus: "UART0", .. })
    ));
    let mut m = base();
    m.buses.spi0 = true; // green LED sits on GPIO 9
    assert!(matches!(
        check(&m),
        Err(PinMapError::ReservedPin {
            pin: 9,
            bus: "SPI0",
            ..
        })
    ));
}

#[test]
fn pins_of_an_unused_bus_are_allowed_with_a_warning() {
    let m = PinMap::from_toml_str(SIX_BY_TEN).unwrap();
    assert!(m.warnings().iter().any(|w| w.contains("GPIO 15 of UART0")));
}

#[test]
fn an_active_high_motor_output_on_a_boot_pull_up_pin_is_warned_about() {
    let mut m = base();
    m.matrix.row_active_low = false; // rows on 4..7 have power-on pull-ups
    check(&m).unwrap();
    let w = m.warnings();
    assert!(
        w.iter()
            .any(|s| s.starts_with("row 0 on GPIO 4: the power-on pull-up")),
        "{w:?}"
    );
}

#[test]
fn unknown_fields_and_bad_toml_are_errors_that_name_the_field_or_line() {
    let bad = FOUR_BY_EIGHT.replace("fail_secure = true", "fail_secure = true\nfial_safe = 1");
    let e = PinMap::from_toml_str(&bad).unwrap_err();
    assert!(
        matches!(&e, PinMapError::Parse(s) if s.contains("fial_safe")),
        "{e}"
    );
    let e = PinMap::from_toml_str("name = \"x\"\n[matrix\n").unwrap_err();
    assert!(
        matches!(&e, PinMapError::Parse(s) if s.contains("line 2")),
        "{e}"
    );
}
