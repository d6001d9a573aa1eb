//! Simulator tests: physics, faults, determinism, and the driver on top of it.

use std::time::Duration;

use embedded_hal::digital::OutputPin;
use proptest::prelude::*;

use super::*;
use crate::hw::{sim_machine, VendOutcome};

const A: SlotAddr = SlotAddr { row: 0, col: 0 };
const B: SlotAddr = SlotAddr { row: 1, col: 2 };

fn virt(cfg: SimConfig) -> SimConfig {
    SimConfig {
        virtual_time: true,
        ..cfg
    }
}

#[test]
fn a_normal_vend_on_real_time_delivers_one_item_and_lowers_stock() {
    let cfg = SimConfig::fast();
    let (mut m, sim) = sim_machine(&cfg, 2, 3, 1);
    let t = cfg.recommended_timing();
    for left in (2..5).rev() {
        let r = m.dispenser.vend(B, &t).unwrap();
        assert_eq!(r.outcome, VendOutcome::Delivered { drops: 1 });
        assert!(
            r.motor_ms >= 80 && r.motor_ms < 200,
            "one turn of ~100 ms, got {}",
            r.motor_ms
        );
        assert_eq!(sim.stock(B), left);
    }
    assert_eq!(sim.items_dispensed(), 3);
    assert_eq!(sim.violations(), 0);
}

#[test]
fn an_empty_slot_turns_fully_and_reports_no_drop() {
    let cfg = virt(SimConfig::fast());
    let (mut m, sim) = sim_machine(&cfg, 2, 3, 1);
    sim.set_stock(A, 0);
    let r = m.dispenser.vend(A, &cfg.recommended_timing()).unwrap();
    assert_eq!(r.outcome, VendOutcome::NoDrop);
    assert_eq!(sim.items_dispensed(), 0);
}

#[test]
fn a_forced_missed_drop_loses_the_item_physically_while_the_driver_reports_no_drop() {
    let cfg = virt(SimConfig::fast());
    let (mut m, sim) = sim_machine(&cfg, 2, 3, 1);
    sim.force_fault(A, SimFault::MissedDrop, 1);
    let r = m.dispenser.vend(A, &cfg.recommended_timing()).unwrap();
    assert_eq!(r.outcome, VendOutcome::NoDrop);
    assert_eq!(sim.stock(A), 4, "the item fell");
    assert_eq!(sim.items_dispensed(), 1);
    // The forced fault was consumed: the next vend is normal.
    let r = m.dispenser.vend(A, &cfg.recommended_timing()).unwrap();
    assert_eq!(r.outcome, VendOutcome::Delivered { drops: 1 });
}

#[test]
fn a_forced_double_drop_reports_two_drops() {
    let cfg = virt(SimConfig::fast());
    let (mut m, sim) = sim_machine(&cfg, 2, 3, 1);
    sim.force_fault(A, SimFault::DoubleDrop, 1);
    let r = m.dispenser.vend(A, &cfg.recommended_timing()).unwrap();
    assert_eq!(r.outcome, VendOutcome::Delivered { drops: 2 });
    assert_eq!(sim.stock(A), 3);
}

#[test]
fn a_double_drop_on_real_time_is_counted_from_edge_timestamps() {
    let cfg = SimConfig::fast();
    let (mut m, sim) = sim_machine(&cfg, 2, 3, 5);
    sim.force_fault(A, SimFault::DoubleDrop, 1);
    let r = m.dispenser.vend(A, &cfg.recommended_timing()).unwrap();
    assert_eq!(r.outcome, VendOutcome::Delivered { drops: 2 });
}

#[test]
fn a_jammed_slot_stays_jammed_until_cleared_and_other_slots_still_vend() {
    let cfg = virt(SimConfig::fast());
    let (mut m, sim) = sim_machine(&cfg, 2, 3, 1);
    let t = cfg.recommended_timing();
    sim.force_fault(A, SimFault::Jam, 1);
    assert_eq!(
        m.dispenser.vend(A, &t).unwrap().outcome,
        VendOutcome::Jammed
    );
    assert!(sim.jammed(A));
    assert_eq!(sim.stock(A), 5, "a jam mid-turn drops nothing");
    assert_eq!(
        m.dispenser.vend(B, &t).unwrap().outcome,
        VendOutcome::Delivered { drops: 1 },
        "the home switch is sensed per motor: a jam elsewhere does not block B"
    );
    assert_eq!(
        m.dispenser.vend(A, &t).unwrap().outcome,
        VendOutcome::Jammed,
        "still jammed until an operator clears it"
    );
    assert_eq!(sim.stock(A), 5);
    sim.jam_clear(A);
    assert!(!sim.jammed(A));
    assert_eq!(
        m.dispenser.vend(A, &t).unwrap().outcome,
        VendOutcome::Delivered { drops: 1 }
    );
}

#[test]
fn a_forced_stuck_home_switch_is_reported_and_moves_nothing() {
    let cfg = virt(SimConfig::fast());
    let (mut m, sim) = sim_machine(&cfg, 2, 3, 1);
    sim.force_fault(A, SimFault::StuckHome, 2);
    let t = cfg.recommended_timing();
    for _ in 0..2 {
        assert_eq!(
            m.dispenser.vend(A, &t).unwrap().outcome,
            VendOutcome::HomeSwitchStuck
        );
    }
    assert_eq!(
        m.dispenser.vend(A, &t).unwrap().outcome,
        VendOutcome::Delivered { drops: 1 }
    );
    assert_eq!(sim.stock(A), 4);
}

#[test]
fn forced_faults_are_consumed_in_order() {
    let cfg = virt(SimConfig::fast());
    let (mut m, sim) = sim_machine(&cfg, 2, 3, 1);
    sim.force_fault(A, SimFault::MissedDrop, 1);
    sim.force_fault(A, SimFault::DoubleDrop, 1);
    let t = cfg.recommended_timing();
    let outcomes: Vec<_> = (0..3)
        .map(|_| m.dispenser.vend(A, &t).unwrap().outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            VendOutcome::NoDrop,
            VendOutcome::Delivered { drops: 2 },
            VendOutcome::Delivered { drops: 1 }
        ]
    );
}

#[test]
fn bounce_never_counts_as_an_extra_item_with_the_default_debounce() {
    for base in [SimConfig::default(), SimConfig::fast()] {
        let cfg = virt(SimConfig {
            p_bounce: 1.0,
            p_jam: 0.0,
            p_missed_drop: 0.0,
            p_double_drop: 0.0,
            p_stuck_home: 0.0,
            initial_stock: 1000,
            ..base
        });
        let (mut m, sim) = sim_machine(&cfg, 1, 1, 9);
        sim.force_fault(A, SimFault::DoubleDrop, 20);
        let t = cfg.recommended_timing();
        for i in 0..100 {
            let want = if i < 20 { 2 } else { 1 };
            assert_eq!(
                m.dispenser.vend(A, &t).unwrap().outcome,
                VendOutcome::Delivered { drops: want },
                "vend {i} of {cfg:?}"
            );
        }
        assert_eq!(sim.stats().bounces, 120, "every break bounced");
    }
}

#[test]
fn a_debounce_shorter_than_the_glitches_would_count_them_so_the_bounce_is_real() {
    let cfg = virt(SimConfig {
        p_bounce: 1.0,
        glitch_max_us: 3000,
        ..SimConfig::fast()
    });
    let (mut m, _sim) = sim_machine(&cfg, 1, 1, 9);
    let t = VendTiming {
        drop_debounce: Duration::from_micros(100),
        ..cfg.recommended_timing()
    };
    let extra = (0..20)
        .filter(|_| m.dispenser.vend(A, &t).unwrap().outcome != VendOutcome::Delivered { drops: 1 })
        .count();
    assert!(
        extra > 0,
        "with a tiny debounce the glitches show up as items"
    );
}

fn run(seed: u64, n: usize) -> (Vec<VendOutcome>, Vec<u32>, SimStats) {
    let cfg = virt(SimConfig {
        p_jam: 0.05,
        p_missed_drop: 0.05,
        p_double_drop: 0.05,
        p_stuck_home: 0.05,
        p_bounce: 0.2,
        initial_stock: 10,
        ..SimConfig::fast()
    });
    let (mut m, sim) = sim_machine(&cfg, 2, 3, seed);
    let t = cfg.recommended_timing();
    let mut out = vec![];
    for i in 0..n {
        let slot = SlotAddr {
            row: (i % 2) as u8,
            col: (i % 3) as u8,
        };
        let o = m.dispenser.vend(slot, &t).unwrap().outcome;
        if o == VendOutcome::Jammed {
            sim.jam_clear(slot);
        }
        out.push(o);
    }
    let stock = (0..2)
        .flat_map(|r| (0..3).map(move |c| SlotAddr { row: r, col: c }))
        .map(|s| sim.stock(s))
        .collect();
    (out, stock, sim.stats())
}

#[test]
fn the_same_seed_gives_identical_outcomes_and_another_seed_does_not() {
    let a = run(42, 80);
    assert_eq!(a, run(42, 80));
    assert_ne!(a.0, run(43, 80).0);
}

#[test]
fn empirical_fault_rates_match_the_configured_probabilities() {
    let n = 3000;
    let cfg = virt(SimConfig {
        p_jam: 0.05,
        p_missed_drop: 0.05,
        p_double_drop: 0.05,
        p_stuck_home: 0.05,
        initial_stock: 1_000_000,
        ..SimConfig::fast()
    });
    let (mut m, sim) = sim_machine(&cfg, 1, 1, 7);
    let t = cfg.recommended_timing();
    let mut count = std::collections::HashMap::new();
    for _ in 0..n {
        let o = m.dispenser.vend(A, &t).unwrap().outcome;
        if o == VendOutcome::Jammed {
            sim.jam_clear(A);
        }
        *count.entry(o).or_insert(0u32) += 1;
    }
    // sd of a 5 % rate over 3000 trials is 0.4 %; allow 4 sd.
    let rate = |o: VendOutcome| f64::from(*count.get(&o).unwrap_or(&0)) / n as f64;
    for (o, p) in [
        (VendOutcome::Jammed, 0.05),
        (VendOutcome::HomeSwitchStuck, 0.05),
        (VendOutcome::NoDrop, 0.05),
        (VendOutcome::Delivered { drops: 2 }, 0.05),
        (VendOutcome::Delivered { drops: 1 }, 0.80),
    ] {
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (rate(o.clone()) - p).abs() < 4.0 * sd,
            "{o:?}: {} vs {p}",
            rate(o.clone())
        );
    }
    assert_eq!(sim.violations(), 0);
}

#[test]
fn energising_two_rows_at_once_is_counted_as_a_violation() {
    let (_m, sim) = sim_machine(&SimConfig::fast(), 2, 2, 1);
    let mut r0 = sim.raw_matrix_pin(true, 0);
    let mut r1 = sim.raw_matrix_pin(true, 1);
    let mut c0 = sim.raw_matrix_pin(false, 0);
    r0.set_high().unwrap();
    c0.set_high().unwrap();
    assert_eq!(sim.violations(), 0, "one motor is fine");
    r1.set_high().unwrap();
    assert_eq!(sim.violations(), 1);
    for p in [&mut r0, &mut r1, &mut c0] {
        p.set_low().unwrap();
    }
}

#[test]
fn the_driver_never_causes_a_violation_over_many_vends_with_faults() {
    let (out, _, stats) = run(3, 300);
    assert_eq!(out.len(), 300);
    assert!(stats.jams > 0 && stats.double_drops > 0);
    let (_m, sim) = sim_machine(&virt(SimConfig::fast()), 2, 3, 3);
    assert_eq!(sim.violations(), 0);
}

#[test]
fn a_late_poll_sees_the_true_state_of_the_motor() {
    // Energise by hand, wait three turns without polling, then look: three items fell.
    let cfg = virt(SimConfig::fast());
    let (_m, sim) = sim_machine(&cfg, 1, 1, 1);
    let mut r = sim.raw_matrix_pin(true, 0);
    let mut c = sim.raw_matrix_pin(false, 0);
    r.set_high().unwrap();
    c.set_high().unwrap();
    sim.clock().sleep(Duration::from_millis(330)); // 3 turns of 95..105 ms, not 4
    assert_eq!(sim.stock(A), 2);
    c.set_low().unwrap();
    r.set_low().unwrap();
}

#[test]
fn door_presence_lock_and_leds_reach_the_world() {
    let (mut m, sim) = sim_machine(&virt(SimConfig::fast()), 1, 1, 1);
    assert!(!m.door.is_open().unwrap());
    sim.set_door(true);
    assert!(m.door.is_open().unwrap());
    sim.set_presence(true);
    assert!(m.presence.is_present().unwrap());
    m.lock.set_locked(false).unwrap();
    assert!(!sim.locked());
    m.lock.set_locked(true).unwrap();
    assert!(sim.locked());
    m.leds.set(LedPattern::Error).unwrap();
    assert_eq!(sim.led(), LedPattern::Error);
}

#[test]
fn random_door_openings_follow_the_configured_rate() {
    let cfg = virt(SimConfig {
        door_opens_per_hour: 2.0,
        door_open_ms: 60_000,
        ..SimConfig::fast()
    });
    let (mut m, sim) = sim_machine(&cfg, 1, 1, 11);
    let (mut opens, mut was_open) = (0, false);
    for _ in 0..(100 * 3600) {
        sim.clock().sleep(Duration::from_secs(1));
        let open = m.door.is_open().unwrap();
        opens += u32::from(open && !was_open);
        was_open = open;
    }
    // 100 hours at 2/h: ~200 openings, sd ~14.
    assert!((150..250).contains(&opens), "{opens} openings");
}

#[test]
fn sim_config_reads_partial_toml_and_refuses_unknown_keys() {
    let c: SimConfig = toml::from_str("motor_period_ms = 80\np_jam = 0.5").unwrap();
    assert_eq!(c.motor_period_ms, 80);
    assert_eq!(c.p_jam, 0.5);
    assert_eq!(c.home_notch, SimConfig::default().home_notch);
    assert!(toml::from_str::<SimConfig>("motor_period = 80").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn stock_never_goes_negative_and_matches_items_dispensed(
        ops in proptest::collection::vec((0u8..4, 0u32..3), 1..40),
        seed in any::<u64>(),
    ) {
        let cfg = virt(SimConfig {
            p_jam: 0.1, p_missed_drop: 0.1, p_double_drop: 0.3, p_stuck_home: 0.1,
            initial_stock: 2,
            ..SimConfig::fast()
        });
        let (mut m, sim) = sim_machine(&cfg, 1, 2, seed);
        let mut added = 2u64 * 2;
        let t = cfg.recommended_timing();
        for (op, arg) in ops {
            let slot = SlotAddr { row: 0, col: (arg % 2) as u8 };
            match op {
                0 => { let before = u64::from(sim.stock(slot)); sim.set_stock(slot, arg); added = added + u64::from(arg) - before; }
                1 => sim.force_fault(slot, SimFault::DoubleDrop, arg),
                _ => match m.dispenser.vend(slot, &t) {
                    Ok(r) if r.outcome == VendOutcome::Jammed => sim.jam_clear(slot),
                    Ok(_) => {}
                    Err(e) => prop_assert!(false, "{e}"),
                },
            }
            let left = u64::from(sim.stock(SlotAddr { row: 0, col: 0 })) + u64::from(sim.stock(SlotAddr { row: 0, col: 1 }));
            prop_assert_eq!(left + sim.items_dispensed(), added);
        }
    }
}
