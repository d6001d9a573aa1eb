use super::*;
use crate::config::Config;
use crate::core::{Record, Stamped, State};

const DAY: u64 = 86_400_000;

fn state() -> State {
    State::new(Config::embedded().catalog.clone(), 0)
}

/// `n` door records, `per_day` per day from day 20,000 (2024-10-04); returns the state.
fn fill(j: &mut Journal, n: u64, per_day: u64) -> State {
    let mut st = state();
    for i in 0..n {
        let rec = Stamped {
            at: 20_000 * DAY + (i / per_day) * DAY + i % per_day,
            record: Record::Door { open: i % 2 == 0 },
        };
        j.append(&rec).unwrap();
        st.apply(&rec);
    }
    j.commit().unwrap();
    st
}

fn all(j: &Journal) -> Vec<u64> {
    j.iter_from(1).map(|r| r.unwrap().0).collect()
}

fn cfg() -> RetentionConfig {
    RetentionConfig {
        keep_days: 2,
        keep_records: 10,
        batch: 1_000,
        rewrite_min_bytes: u64::MAX,
        ..RetentionConfig::default()
    }
}

#[test]
fn archived_records_are_read_back_in_order_and_the_sequence_continues() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let mut j = Journal::open(&jdir).unwrap();
    let st = fill(&mut j, 100, 10);
    j.reader().set_report_cursor(100).unwrap();
    let rep = j.compact(&st, &cfg(), 20_010 * DAY).unwrap();
    // Days 0..=9; keep_days 2 at day 10 keeps days 8 and 9.
    assert_eq!((rep.archived, rep.held_by), (80, Hold::Age));
    assert_eq!(archive_files(&jdir).unwrap().len(), 8);
    assert_eq!(all(&j), (1..=100).collect::<Vec<_>>());
    assert_eq!(j.get(80).unwrap(), None);
    drop(j);
    let mut j = Journal::open(&jdir).unwrap();
    assert_eq!(j.recovery(), &RecoveryReport::default());
    assert_eq!(j.next_seq(), 101);
    assert_eq!(j.load_state(state()).unwrap().0, st);
    assert!(
        crate::journal::export::verify(&j)
            .unwrap()
            .checkpoint_consistent
    );
    // The report cursor holds records back.
    j.reader().set_report_cursor(85).unwrap();
    let rep = j.compact(&st, &cfg(), 20_100 * DAY).unwrap();
    assert_eq!(
        (rep.archived_through, rep.held_by),
        (85, Hold::ReportCursor)
    );
}

#[test]
fn an_interrupted_run_is_redone_on_open_and_leaves_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let mut j = Journal::open(&jdir).unwrap();
    let st = fill(&mut j, 50, 10);
    j.reader().set_report_cursor(50).unwrap();
    j.compact(&st, &cfg(), 20_004 * DAY).unwrap();
    assert_eq!(j.archived_through(), 20);
    // A crash after step 1 of the next run, with a stray file from step 2.
    j.checkpoint(&st).unwrap();
    j.meta.insert(INTENT_KEY, &40u64.to_be_bytes()).unwrap();
    j.commit().unwrap();
    drop(j);
    fs::write(jdir.join("archive/2024-10-07.jsonl.gz.tmp"), b"partial").unwrap();
    let j = Journal::open(&jdir).unwrap();
    assert_eq!(j.recovery().archive_redone, 20);
    assert_eq!(j.recovery().live_removed, 20);
    assert_eq!(j.recovery().tmp_removed, 1);
    let mut seen: Vec<u64> = archive_files(&jdir)
        .unwrap()
        .iter()
        .flat_map(|p| read_archive_file(p).unwrap())
        .map(|(s, _)| s)
        .collect();
    seen.extend(j.log.iter().keys().map(|k| key_seq(&k.unwrap()).unwrap()));
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
}

#[test]
fn a_rewrite_gives_disk_space_back_and_readers_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let mut j = Journal::open(&jdir).unwrap();
    let reader = j.reader();
    let st = fill(&mut j, 20_000, 1_000);
    reader.set_report_cursor(20_000).unwrap();
    let c = RetentionConfig {
        keep_days: 1,
        keep_records: 100,
        batch: 100_000,
        rewrite_ratio: 2,
        rewrite_min_bytes: 0,
        ..RetentionConfig::default()
    };
    let rep = j.compact(&st, &c, 20_100 * DAY).unwrap();
    assert!(rep.rewrote, "{rep:?}");
    assert!(rep.disk_after < rep.disk_before / 2, "{rep:?}");
    assert!(!new_dir(&jdir).exists());
    assert_eq!(reader.last_seq(), 20_000);
    assert_eq!(reader.report_cursor(), 20_000);
    assert_eq!(all(&j).len(), 20_000);
    let more = Stamped {
        at: 20_100 * DAY,
        record: Record::CountersReset,
    };
    assert_eq!(j.append(&more).unwrap(), 20_001);
    j.commit().unwrap();
    assert_eq!(reader.iter_from(20_001).count(), 1);
}
