//! Pin-sequence tests of [`MatrixDispenser`] with embedded-hal mocks and a manual clock.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};
use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};
use embedded_hal_mock::eh1::MockError;

use super::*;
use crate::hw::{Clock, ManualClock};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn timing() -> VendTiming {
    VendTiming {
        leave_home_timeout: ms(5),
        motor_timeout: ms(20),
        drop_window: ms(50),
        drop_debounce: ms(10),
    }
}

fn cfg() -> MatrixConfig {
    MatrixConfig {
        row_active_low: false,
        col_active_low: false,
        home_active_low: true,
        poll_interval: ms(1),
        home_blanking: Duration::ZERO,
    }
}

/// A drop sensor that reports a fixed count and records how it was used.
#[derive(Clone, Default)]
struct FakeDrops {
    drops: Arc<AtomicU32>,
    arms: Arc<AtomicU32>,
    queries: Arc<AtomicU32>,
}

impl DropSensor for FakeDrops {
    fn arm(&mut self) -> Result<(), HwError> {
        self.arms.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn drops_since_arm(&mut self, debounce: Duration) -> Result<u32, HwError> {
        assert_eq!(debounce, ms(10), "driver passes the configured debounce");
        self.queries.fetch_add(1, Ordering::SeqCst);
        Ok(self.drops.load(Ordering::SeqCst))
    }
}

const HOME: State = State::Low; // home_active_low
const AWAY: State = State::High;

/// Mocks for a 2x2 matrix; returns (rows, cols, home, clones to check).
struct Rig {
    rows: Vec<Mock>,
    cols: Vec<Mock>,
    home: Mock,
    drops: FakeDrops,
    clock: ManualClock,
}

impl Rig {
    fn new(rows: [&[T]; 2], cols: [&[T]; 2], home: &[T]) -> Self {
        Rig {
            rows: rows.iter().map(|e| Mock::new(*e)).collect(),
            cols: cols.iter().map(|e| Mock::new(*e)).collect(),
            home: Mock::new(home),
            drops: FakeDrops::default(),
            clock: ManualClock::new(),
        }
    }

    fn driver(
        &self,
        cfg: MatrixConfig,
    ) -> MatrixDispenser<Mock, Mock, Mock, FakeDrops, ManualClock> {
        MatrixDispenser::new(
            self.rows.clone(),
            self.cols.clone(),
            self.home.clone(),
            self.drops.clone(),
            self.clock.clone(),
            cfg,
        )
    }

    fn done(mut self) {
        self.rows.iter_mut().for_each(Mock::done);
        self.cols.iter_mut().for_each(Mock::done);
        self.home.done();
    }
}

fn set(s: State) -> T {
    T::set(s)
}

fn reads(s: State, n: usize) -> Vec<T> {
    vec![T::get(s); n]
}

fn concat(parts: &[Vec<T>]) -> Vec<T> {
    parts.concat()
}

const SLOT: SlotAddr = SlotAddr { row: 1, col: 0 };

#[test]
fn normal_vend_energises_row_then_column_and_reports_the_drop() {
    // Precheck; at home at 0 and 1 ms; away at 2 ms (left), re-read at once and at 3 and
    // 4 ms; home at 5 ms.
    let home = concat(&[
        reads(HOME, 1),
        reads(HOME, 2),
        reads(AWAY, 4),
        reads(HOME, 1),
    ]);
    let rig = Rig::new(
        [
            &[set(State::Low)],
            &[set(State::Low), set(State::High), set(State::Low)],
        ],
        [
            &[set(State::Low), set(State::High), set(State::Low)],
            &[set(State::Low)],
        ],
        &home,
    );
    rig.drops.drops.store(1, Ordering::SeqCst);
    let mut d = rig.driver(cfg());
    let report = d.vend(SLOT, &timing()).unwrap();
    assert_eq!(report.outcome, VendOutcome::Delivered { drops: 1 });
    assert_eq!(report.motor_ms, 5);
    assert_eq!(rig.drops.arms.load(Ordering::SeqCst), 1);
    assert_eq!(rig.drops.queries.load(Ordering::SeqCst), 1);
    // Motor time plus the drop window passed on the driver's clock.
    assert_eq!(rig.clock.now(), ms(5 + 50));
    rig.done();
}

#[test]
fn a_full_turn_without_a_drop_is_reported_as_no_drop() {
    let home = concat(&[reads(HOME, 2), reads(AWAY, 3), reads(HOME, 1)]);
    let rig = Rig::new(
        [
            &[set(State::Low)],
            &[set(State::Low), set(State::High), set(State::Low)],
        ],
        [
            &[set(State::Low), set(State::High), set(State::Low)],
            &[set(State::Low)],
        ],
        &home,
    );
    let mut d = rig.driver(cfg());
    let report = d.vend(SLOT, &timing()).unwrap();
    assert_eq!(report.outcome, VendOutcome::NoDrop);
    rig.done();
}

#[test]
fn a_motor_that_never_returns_home_is_reported_jammed_and_switched_off() {
    // Leaves at once (t=0 read is away); away until the 20 ms motor timeout: reads at 0..=20.
    let home = concat(&[reads(HOME, 1), reads(AWAY, 1), reads(AWAY, 21)]);
    let rig = Rig::new(
        [
            &[set(State::Low)],
            &[set(State::Low), set(State::High), set(State::Low)],
        ],
        [
            &[set(State::Low), set(State::High), set(State::Low)],
            &[set(State::Low)],
        ],
        &home,
    );
    let mut d = rig.driver(cfg());
    let report = d.vend(SLOT, &timing()).unwrap();
    assert_eq!(report.outcome, VendOutcome::Jammed);
    assert_eq!(report.motor_ms, 20);
    rig.done();
}

#[test]
fn a_home_switch_that_never_leaves_home_is_reported_stuck_and_switched_off() {
    // Precheck, then reads at 0..=5 ms all at home.
    let home = concat(&[reads(HOME, 1), reads(HOME, 6)]);
    let rig = Rig::new(
        [
            &[set(State::Low)],
            &[set(State::Low), set(State::High), set(State::Low)],
        ],
        [
            &[set(State::Low), set(State::High), set(State::Low)],
            &[set(State::Low)],
        ],
        &home,
    );
    let mut d = rig.driver(cfg());
    let report = d.vend(SLOT, &timing()).unwrap();
    assert_eq!(report.outcome, VendOutcome::HomeSwitchStuck);
    assert_eq!(report.motor_ms, 5);
    rig.done();
}

#[test]
fn a_motor_parked_off_home_is_never_energised() {
    let rig = Rig::new(
        [&[set(State::Low)], &[set(State::Low)]],
        [&[set(State::Low)], &[set(State::Low)]],
        &reads(AWAY, 1),
    );
    let mut d = rig.driver(cfg());
    let err = d.vend(SLOT, &timing()).unwrap_err();
    assert!(matches!(err, HwError::MotorNotHome), "{err}");
    assert_eq!(rig.drops.arms.load(Ordering::SeqCst), 0);
    rig.done();
}

#[test]
fn a_drop_seen_during_a_jam_is_reported_as_delivered() {
    let home = concat(&[reads(HOME, 1), reads(AWAY, 22)]);
    let rig = Rig::new(
        [
            &[set(State::Low)],
            &[set(State::Low), set(State::High), set(State::Low)],
        ],
        [
            &[set(State::Low), set(State::High), set(State::Low)],
            &[set(State::Low)],
        ],
        &home,
    );
    rig.drops.drops.store(1, Ordering::SeqCst);
    let mut d = rig.driver(cfg());
    let report = d.vend(SLOT, &timing()).unwrap();
    assert_eq!(report.outcome, VendOutcome::Delivered { drops: 1 });
    rig.done();
}

#[test]
fn a_pin_error_while_the_motor_runs_still_de_energises_column_then_row() {
    let err = MockError::Io(std::io::ErrorKind::BrokenPipe);
    let home = vec![T::get(HOME), T::get(HOME), T::get(AWAY).with_error(err)];
    let rig = Rig::new(
        [
            &[set(State::Low)],
            &[set(State::Low), set(State::High), set(State::Low)],
        ],
        [
            &[set(State::Low), set(State::High), set(State::Low)],
            &[set(State::Low)],
        ],
        &home,
    );
    let mut d = rig.driver(cfg());
    let e = d.vend(SLOT, &timing()).unwrap_err();
    assert!(
        matches!(&e, HwError::Pin { pin, .. } if pin == "home switch"),
        "{e}"
    );
    assert_eq!(rig.drops.queries.load(Ordering::SeqCst), 0);
    rig.done();
}

#[test]
fn a_failing_column_pin_still_switches_the_row_back_off() {
    let err = MockError::Io(std::io::ErrorKind::BrokenPipe);
    let rig = Rig::new(
        [
            &[set(State::Low)],
            &[set(State::Low), set(State::High), set(State::Low)],
        ],
        [
            &[
                set(State::Low),
                set(State::High).with_error(err),
                set(State::Low),
            ],
            &[set(State::Low)],
        ],
        &reads(HOME, 1),
    );
    let mut d = rig.driver(cfg());
    assert!(d.vend(SLOT, &timing()).is_err());
    rig.done();
}

#[test]
fn a_slot_outside_the_matrix_is_rejected_without_touching_any_pin() {
    let rig = Rig::new([&[], &[]], [&[], &[]], &[]);
    let mut d = rig.driver(cfg());
    let e = d.vend(SlotAddr { row: 2, col: 0 }, &timing()).unwrap_err();
    assert!(matches!(
        e,
        HwError::SlotOutOfRange {
            rows: 2,
            cols: 2,
            ..
        }
    ));
    rig.done();
}

#[test]
fn active_low_rows_and_columns_are_driven_low_to_energise() {
    let home = concat(&[
        reads(State::High, 1),
        reads(State::Low, 2),
        reads(State::High, 1),
    ]);
    let rig = Rig::new(
        [
            &[set(State::High)],
            &[set(State::High), set(State::Low), set(State::High)],
        ],
        [
            &[set(State::High), set(State::Low), set(State::High)],
            &[set(State::High)],
        ],
        &home,
    );
    let c = MatrixConfig {
        row_active_low: true,
        col_active_low: true,
        home_active_low: false,
        ..cfg()
    };
    let mut d = rig.driver(c);
    assert_eq!(
        d.vend(SLOT, &timing()).unwrap().outcome,
        VendOutcome::NoDrop
    );
    rig.done();
}

#[test]
fn home_bounce_inside_the_blanking_time_is_not_taken_for_the_end_of_the_turn() {
    // Leaves at 0 ms, bounces back "home" at 0 ms (immediate re-read) and 1 ms, inside the
    // 3 ms blanking; away 2..=6 ms; truly home at 7 ms.
    let home = concat(&[
        reads(HOME, 1),
        reads(AWAY, 1),
        reads(HOME, 2),
        reads(AWAY, 5),
        reads(HOME, 1),
    ]);
    let rig = Rig::new(
        [
            &[set(State::Low)],
            &[set(State::Low), set(State::High), set(State::Low)],
        ],
        [
            &[set(State::Low), set(State::High), set(State::Low)],
            &[set(State::Low)],
        ],
        &home,
    );
    let c = MatrixConfig {
        home_blanking: ms(3),
        ..cfg()
    };
    let mut d = rig.driver(c);
    let r = d.vend(SLOT, &timing()).unwrap();
    assert_eq!(r.outcome, VendOutcome::NoDrop);
    assert_eq!(r.motor_ms, 7);
    rig.done();
}

// ---- whole-bench tests: every pin reports into one shared model -----------------------

/// Shared state of a test bench: which rows/columns are on, and the worst seen.
#[derive(Default)]
struct Bench {
    rows_on: Vec<bool>,
    cols_on: Vec<bool>,
    max_rows_on: usize,
    max_cols_on: usize,
    energised_at: Option<Duration>,
    motor_starts: u32,
    reads: u32,
    panic_on_read: Option<u32>,
}

type Shared = Arc<Mutex<Bench>>;

struct BenchPin {
    bench: Shared,
    row: bool,
    idx: usize,
    clock: ManualClock,
}

impl ErrorType for BenchPin {
    type Error = Infallible;
}

impl OutputPin for BenchPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}

impl BenchPin {
    fn set(&mut self, on: bool) {
        let mut b = self.bench.lock().unwrap();
        if self.row {
            b.rows_on[self.idx] = on;
        } else {
            b.cols_on[self.idx] = on;
        }
        let r = b.rows_on.iter().filter(|x| **x).count();
        let c = b.cols_on.iter().filter(|x| **x).count();
        b.max_rows_on = b.max_rows_on.max(r);
        b.max_cols_on = b.max_cols_on.max(c);
        let motor = r == 1 && c == 1;
        match (motor, b.energised_at) {
            (true, None) => {
                b.energised_at = Some(self.clock.now());
                b.motor_starts += 1;
            }
            (false, Some(_)) => b.energised_at = None,
            _ => {}
        }
    }
}

/// Home line of the bench: away from home 2..12 ms after a motor is energised.
struct BenchHome {
    bench: Shared,
    clock: ManualClock,
}

impl ErrorType for BenchHome {
    type Error = Infallible;
}

impl InputPin for BenchHome {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        self.is_low().map(|l| !l)
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        let mut b = self.bench.lock().unwrap();
        b.reads += 1;
        if b.panic_on_read == Some(b.reads) {
            drop(b);
            panic!("simulated driver bug");
        }
        let away = b
            .energised_at
            .map(|t| (ms(2)..ms(12)).contains(&(self.clock.now() - t)))
            .unwrap_or(false);
        Ok(!away) // home reads low
    }
}

type BenchDriver = MatrixDispenser<BenchPin, BenchPin, BenchHome, FakeDrops, ManualClock>;

fn bench(rows: usize, cols: usize) -> (BenchDriver, Shared) {
    let clock = ManualClock::new();
    let shared: Shared = Arc::new(Mutex::new(Bench {
        rows_on: vec![false; rows],
        cols_on: vec![false; cols],
        ..Bench::default()
    }));
    let pin = |row, idx| BenchPin {
        bench: shared.clone(),
        row,
        idx,
        clock: clock.clone(),
    };
    let d = MatrixDispenser::new(
        (0..rows).map(|i| pin(true, i)).collect(),
        (0..cols).map(|i| pin(false, i)).collect(),
        BenchHome {
            bench: shared.clone(),
            clock: clock.clone(),
        },
        FakeDrops::default(),
        clock,
        cfg(),
    );
    (d, shared)
}

#[test]
fn many_vends_in_a_row_never_energise_two_rows_or_two_columns() {
    let (mut d, shared) = bench(6, 10);
    for row in 0..6 {
        for col in 0..10 {
            let r = d.vend(SlotAddr { row, col }, &timing()).unwrap();
            assert_eq!(r.outcome, VendOutcome::NoDrop);
            let b = shared.lock().unwrap();
            assert!(
                b.rows_on.iter().chain(&b.cols_on).all(|on| !on),
                "all off after vend"
            );
        }
    }
    let b = shared.lock().unwrap();
    assert_eq!(b.max_rows_on, 1);
    assert_eq!(b.max_cols_on, 1);
    assert_eq!(b.motor_starts, 60);
}

#[test]
fn pins_left_on_by_a_previous_owner_are_cleared_before_a_motor_starts() {
    let (mut d, shared) = bench(3, 3);
    {
        let mut b = shared.lock().unwrap();
        b.rows_on[0] = true;
        b.cols_on[2] = true;
    }
    d.vend(SlotAddr { row: 1, col: 1 }, &timing()).unwrap();
    let b = shared.lock().unwrap();
    assert_eq!(
        b.max_rows_on, 1,
        "row 0 was cleared before row 1 was energised"
    );
    assert_eq!(b.max_cols_on, 1);
}

#[test]
fn a_panic_while_the_motor_runs_still_switches_it_off() {
    let (mut d, shared) = bench(2, 2);
    // Read 1 is the precheck, read 3 happens with the motor on.
    shared.lock().unwrap().panic_on_read = Some(3);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = d.vend(SlotAddr { row: 1, col: 1 }, &timing());
    }));
    assert!(res.is_err(), "the bench panicked");
    let b = shared.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(b.motor_starts, 1);
    assert!(
        b.rows_on.iter().chain(&b.cols_on).all(|on| !on),
        "guard switched the motor off"
    );
}

#[test]
fn all_off_drives_every_row_and_column_inactive() {
    let (mut d, shared) = bench(4, 5);
    {
        let mut b = shared.lock().unwrap();
        b.rows_on = vec![true; 4];
        b.cols_on = vec![true; 5];
    }
    d.all_off().unwrap();
    let b = shared.lock().unwrap();
    assert!(b.rows_on.iter().chain(&b.cols_on).all(|on| !on));
}
