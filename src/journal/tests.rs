use super::*;
use crate::config::Config;
use crate::core::{Command, Controller, Input, PaymentMethod, Record, SlotId, Stamped, State};

fn rec(at: u64, record: Record) -> Stamped {
    Stamped { at, record }
}

fn fresh() -> (Controller, State) {
    let cfg = Config::embedded();
    let st = State::new(cfg.catalog.clone(), 0);
    (Controller::new(cfg.core.clone(), st.clone()), st)
}

/// A complete purchase through the controller, journaled with write-ahead.
fn purchase(ctl: &mut Controller, j: &mut Journal, now: &mut u64, slot: &str) {
    let mut step = |ctl: &mut Controller, j: &mut Journal, input: Input| {
        *now += 100;
        let cmds = ctl.handle_input(*now, input).expect("accepted");
        j.write_ahead(cmds, |_| {}).unwrap();
    };
    let slot = SlotId::parse(slot).unwrap();
    step(ctl, j, Input::AddItem { slot, qty: 1 });
    step(ctl, j, Input::Checkout);
    let credential = format!("card-{}", ctl.state().last_sid);
    step(
        ctl,
        j,
        Input::Credential {
            method: PaymentMethod::Card,
            credential,
        },
    );
    let sid = ctl.state().open.as_ref().unwrap().sid;
    let outcome = crate::core::VendOutcome::Delivered { drops: 1 };
    step(
        ctl,
        j,
        Input::VendDone {
            sid,
            item: 0,
            attempt: 1,
            outcome,
            motor_ms: 900,
        },
    );
    step(ctl, j, Input::Settled { sid });
    step(ctl, j, Input::Dismiss);
}

#[test]
fn records_survive_a_reopen_and_the_sequence_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path()).unwrap();
    assert!(j.is_empty());
    for i in 0..10 {
        assert_eq!(
            j.append(&rec(i, Record::Door { open: i % 2 == 0 }))
                .unwrap(),
            i + 1
        );
    }
    j.commit().unwrap();
    drop(j);
    let mut j = Journal::open(dir.path()).unwrap();
    assert_eq!(
        j.recovery().summary(),
        None,
        "a clean close needs no recovery"
    );
    assert_eq!(j.next_seq(), 11);
    assert_eq!(
        j.get(4).unwrap().unwrap(),
        rec(3, Record::Door { open: false })
    );
    assert_eq!(j.append(&rec(99, Record::CountersReset)).unwrap(), 11);
    let seqs: Vec<u64> = j.iter_from(9).map(|r| r.unwrap().0).collect();
    assert_eq!(seqs, [9, 10, 11]);
}

#[test]
fn a_snapshot_write_cut_short_by_a_crash_is_discarded_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let mut j = Journal::open(dir.path()).unwrap();
        for i in 0..10 {
            let ts = round * 10 + i;
            j.append(&rec(ts, Record::Door { open: ts % 2 == 0 }))
                .unwrap();
        }
        j.commit().unwrap();
    }
    // sled wrote a complete snapshot when the second open replayed the log. What a crash
    // in the middle of its next snapshot write leaves: the first part of a newer snapshot
    // under its `.generating` name, never renamed into place.
    let snaps: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("snap.") && !n.ends_with(".generating")
        })
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let whole = std::fs::read(&snaps[0]).unwrap();
    let torn = dir.path().join("snap.7FFFFFFFFFFFFFF0.generating");
    std::fs::write(&torn, &whole[..whole.len() / 2]).unwrap();
    // sled on its own refuses the directory: the failure this recovery step exists for.
    match sled::Config::new().path(dir.path()).open() {
        Err(sled::Error::Corruption { .. }) => {}
        Err(e) => panic!("sled failed otherwise: {e}"),
        Ok(_) => panic!("sled opened a directory with a torn snapshot"),
    }
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.recovery().unfinished_snapshots_removed, 1);
    assert_eq!(
        j.recovery().summary().as_deref(),
        Some("1 unfinished sled snapshot removed")
    );
    assert!(!torn.exists());
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap."))
        .collect();
    assert!(
        left.len() == 1 && !left[0].ends_with(".generating"),
        "{left:?}"
    );
    assert_eq!(j.next_seq(), 21);
    for seq in 1..=20 {
        let ts = seq - 1;
        assert_eq!(
            j.get(seq).unwrap().unwrap(),
            rec(ts, Record::Door { open: ts % 2 == 0 })
        );
    }
}

#[test]
fn write_ahead_commits_before_every_motor_or_money_command_and_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path()).unwrap();
    let slot = SlotId::parse("A1").unwrap();
    let motor = Command::RunMotor {
        sid: 1,
        item: 0,
        attempt: 1,
        slot,
    };
    let capture = Command::Capture {
        sid: 1,
        amount: 5,
        key: "1:capture".into(),
        auth_ref: "r".into(),
    };
    let j1 = Command::Journal(rec(1, Record::CountersReset));
    let prompt = Command::Prompt(crate::core::Prompt::TakeItem);
    let mut seen = Vec::new();
    let cmds = vec![
        j1.clone(),
        j1.clone(),
        motor.clone(),
        j1.clone(),
        capture.clone(),
        prompt.clone(),
    ];
    let last = j.write_ahead(cmds, |c| seen.push(c)).unwrap();
    assert_eq!(last, Some(3));
    assert_eq!(seen, [motor.clone(), capture, prompt.clone()]);
    assert_eq!(
        j.commits(),
        2,
        "one commit before the motor, one before the capture"
    );
    assert_eq!(j.uncommitted(), 0);
    j.write_ahead(vec![j1.clone(), prompt], |_| {}).unwrap();
    assert_eq!(j.commits(), 3, "a batch ending in records commits them");
    j.write_ahead(vec![motor], |_| {}).unwrap();
    assert_eq!(j.commits(), 3, "nothing to make durable: no commit");
}

#[test]
fn a_checkpoint_plus_the_tail_rebuilds_the_same_state_as_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path()).unwrap();
    let cfg = Config::embedded();
    let (mut ctl, st0) = fresh();
    let mut now = 1_800_000_000_000;
    let boot = ctl.start(now, "t", &cfg.catalog, &cfg.planogram_source);
    j.write_ahead(boot, |_| {}).unwrap();
    for i in 0..24 {
        purchase(
            &mut ctl,
            &mut j,
            &mut now,
            ["A1", "B2", "C3", "D4", "E5", "F6"][i % 6],
        );
        if i == 12 {
            j.checkpoint(ctl.state()).unwrap();
        }
    }
    let (via_checkpoint, tail) = j.load_state(st0.clone()).unwrap();
    assert!(
        tail < j.next_seq() - 1,
        "the checkpoint shortened the replay"
    );
    assert_eq!(&via_checkpoint, ctl.state());
    // A full replay from record 1 gives the same.
    let mut full = st0;
    for r in j.iter_from(1) {
        full.apply(&r.unwrap().1);
    }
    assert_eq!(&full, ctl.state());
    let rep = export::verify(&j).unwrap();
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
    assert!(rep.checkpoint_consistent);
    let s = export::sales(&j).unwrap();
    assert_eq!(s.by_slot["A1"], (4, 4 * 150));
    assert_eq!(s.by_day.values().map(|v| v.0).sum::<u64>(), 24);
    assert_eq!(ctl.state().counters.lifetime.paid.count, 24);
}

#[test]
fn a_damaged_record_is_an_error_naming_its_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path()).unwrap();
    j.append(&rec(1, Record::CountersReset)).unwrap();
    j.log
        .insert(2u64.to_be_bytes(), b"{not json".to_vec())
        .unwrap();
    match j.iter_from(1).nth(1).unwrap() {
        Err(JournalError::Corrupt { seq: 2, .. }) => {}
        other => panic!("expected a corrupt-record error, got {other:?}"),
    }
    assert!(matches!(
        export::verify(&j),
        Err(JournalError::Corrupt { seq: 2, .. })
    ));
}

#[test]
fn verify_reports_a_capture_that_was_never_authorised() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path()).unwrap();
    let cfg = Config::embedded();
    let planogram = Record::Planogram {
        catalog: cfg.catalog.clone(),
        source: "t".into(),
    };
    j.append(&rec(1, planogram)).unwrap();
    j.append(&rec(2, Record::SessionOpened { sid: 1 })).unwrap();
    let capture = Record::Capture {
        sid: 1,
        amount: 100,
        key: "1:capture".into(),
        auth_ref: "x".into(),
    };
    j.append(&rec(3, capture)).unwrap();
    let rep = export::verify(&j).unwrap();
    assert!(
        rep.violations.iter().any(|v| v.seq == 3 && v.rule == "c"),
        "{:?}",
        rep.violations
    );
    assert!(
        rep.violations.iter().any(|v| v.seq == 3 && v.rule == "b"),
        "{:?}",
        rep.violations
    );
}

#[test]
fn a_journal_in_use_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let _j = Journal::open(dir.path()).unwrap();
    match Journal::open(dir.path()) {
        Err(JournalError::Locked { .. }) => {}
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open succeeded"),
    }
}
