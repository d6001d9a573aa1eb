//! Journal retention under SIGKILL (issue 7, item 7).
//!
//! A journal is filled day by day with real sessions from the controller; after each day a
//! child process (this test binary re-executed with `VENDD_RETENTION_CHILD` set) opens it
//! and compacts in a loop (archive, then a database rewrite on every call) until it is
//! SIGKILLed at a random moment. After every kill the parent opens the journal (recovery
//! runs) and checks: every sequence number ever written is present exactly once in
//! archive ∪ live with the bytes written, the replayed state and its audit counters equal
//! the controller's, `verify` passes, the export and sales equal those of a twin journal
//! that is never compacted, and the report cursor and unreported records are untouched.
//! At the end the disk use of the compacted journal is bounded.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};
use vendd::config::Config;
use vendd::core::{Command, Controller, Input, PaymentMethod, Phase, SlotId, State, VendOutcome};
use vendd::journal::{export, retention, Journal, RecoveryReport, RetentionConfig};

const CHILD: &str = "VENDD_RETENTION_CHILD";
const DAY: u64 = 86_400_000;
/// Kills (one per simulated day).
const KILLS: u64 = 60;
const SESSIONS_PER_DAY: u64 = 25;

fn fresh() -> State {
    State::new(Config::embedded().catalog.clone(), 0)
}

fn cfg() -> RetentionConfig {
    RetentionConfig {
        enabled: true,
        keep_days: 3,
        keep_records: 40,
        batch: 300,
        // Rewrite on every call, so kills land in the rewrite as often as in archiving.
        rewrite_ratio: 1,
        rewrite_min_bytes: 0,
    }
}

/// The machine under test: a controller and the bytes of every record it produced.
struct Machine {
    ctl: Controller,
    now: u64,
    written: Vec<Vec<u8>>,
}

impl Machine {
    /// Feeds one input; journals its records into both journals (a refusal changes nothing).
    fn step(&mut self, js: &mut [&mut Journal], input: Input) -> bool {
        self.now += 250;
        let Ok(cmds) = self.ctl.handle_input(self.now, input) else {
            return false;
        };
        for c in cmds {
            if let Command::Journal(st) = c {
                for j in js.iter_mut() {
                    j.append(&st).unwrap();
                }
                self.written.push(serde_json::to_vec(&st).unwrap());
            }
        }
        true
    }

    /// Start-up as the daemon does it: boot and planogram records first.
    fn boot(&mut self, js: &mut [&mut Journal]) {
        let cfg = Config::embedded();
        let out = self
            .ctl
            .start(self.now, "test", &cfg.catalog, &cfg.planogram_source);
        for c in out {
            if let Command::Journal(st) = c {
                for j in js.iter_mut() {
                    j.append(&st).unwrap();
                }
                self.written.push(serde_json::to_vec(&st).unwrap());
            }
        }
    }

    fn open_sid(&self) -> Option<vendd::core::SessionId> {
        self.ctl.state().open.as_ref().map(|o| o.sid)
    }

    /// A day of trading: restock, then purchases (approved online), one left open at night
    /// on every third day so retention must keep an open session's records.
    fn day(&mut self, js: &mut [&mut Journal], day: u64) {
        if self.open_sid().is_some() {
            self.step(js, Input::Cancel);
            self.step(js, Input::Dismiss);
        }
        self.now = self.now.max(day * DAY + 8 * 3_600_000);
        self.step(js, Input::Link { online: true });
        self.step(js, Input::Door { open: true });
        for s in ["A1", "A2", "A3", "A4"] {
            let slot = SlotId::parse(s).unwrap();
            self.step(js, Input::Restock { slot, count: 8 });
        }
        self.step(js, Input::Door { open: false });
        for i in 0..SESSIONS_PER_DAY {
            let slot = SlotId::parse(["A1", "A2", "A3", "A4"][(i % 4) as usize]).unwrap();
            self.step(js, Input::AddItem { slot, qty: 1 });
            if i + 1 == SESSIONS_PER_DAY && day.is_multiple_of(3) {
                break;
            }
            self.step(js, Input::Checkout);
            let credential = format!("card-{day}-{i}");
            self.step(
                js,
                Input::Credential {
                    method: PaymentMethod::Card,
                    credential,
                },
            );
            let Some(sid) = self.open_sid() else { continue };
            if matches!(self.ctl.phase(), Phase::Authorising) {
                let amount = self
                    .ctl
                    .state()
                    .open
                    .as_ref()
                    .map_or(0, |o| o.items.iter().map(|it| it.line.price).sum::<i64>());
                self.step(
                    js,
                    Input::AuthResult {
                        sid,
                        approved: i % 7 != 3,
                        amount,
                        auth_ref: format!("ref-{sid}"),
                        reason: String::new(),
                    },
                );
            }
            if !matches!(self.ctl.phase(), Phase::Vending { .. }) {
                self.step(js, Input::Dismiss);
                continue;
            }
            let outcome = VendOutcome::Delivered { drops: 1 };
            self.step(
                js,
                Input::VendDone {
                    sid,
                    item: 0,
                    attempt: 1,
                    outcome,
                    motor_ms: 900,
                },
            );
            self.step(js, Input::Settled { sid });
            self.step(js, Input::Dismiss);
            if self.open_sid().is_some() {
                self.step(js, Input::Cancel);
                self.step(js, Input::Dismiss);
            }
        }
        for j in js.iter_mut() {
            j.commit().unwrap();
            j.maybe_checkpoint(self.ctl.state()).unwrap();
            j.commit().unwrap();
        }
    }
}

fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

/// Opens the journal (`Journal::open` itself waits out a lock a just-dropped handle or a
/// process another test is forking may still hold for a moment).
fn open(dir: &Path) -> Journal {
    Journal::open(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn export_bytes(j: &Journal) -> Vec<u8> {
    let mut out = Vec::new();
    export::export_jsonl(j, &mut out).unwrap();
    out
}

/// Everything checked after a kill. Returns what recovery had to do.
fn check(jdir: &Path, m: &Machine, twin: &Journal, cursor: u64) -> RecoveryReport {
    let j = open(jdir);
    let a = j.archived_through();
    // Archive: exactly 1..=a, in order, with the bytes written.
    let mut seqs = Vec::new();
    for f in retention::archive_files(jdir).unwrap() {
        for (seq, raw) in retention::read_archive_file(&f).unwrap() {
            assert_eq!(raw, m.written[seq as usize - 1], "archived record {seq}");
            seqs.push(seq);
        }
    }
    assert_eq!(
        seqs,
        (1..=a).collect::<Vec<_>>(),
        "archive holds 1..={a} once"
    );
    // Live: exactly a+1..=last, with the bytes written.
    let live: Vec<(u64, Vec<u8>)> = j.live_raw(1).map(|r| r.unwrap()).collect();
    let live_seqs: Vec<u64> = live.iter().map(|(s, _)| *s).collect();
    let last = m.written.len() as u64;
    assert_eq!(
        live_seqs,
        (a + 1..=last).collect::<Vec<_>>(),
        "live holds the rest"
    );
    for (seq, raw) in &live {
        assert_eq!(raw, &m.written[*seq as usize - 1], "live record {seq}");
    }
    assert_eq!(j.next_seq(), last + 1);
    // The outbox: cursor kept, nothing unreported archived.
    assert_eq!(j.reader().report_cursor(), cursor);
    assert!(a <= cursor, "archived {a} past the report cursor {cursor}");
    // State and audit counters.
    let (st, _) = j.load_state(fresh()).unwrap();
    assert_eq!(st.counters, m.ctl.state().counters);
    assert_eq!(&st, m.ctl.state());
    // Tools see archive + live as the twin's full log.
    let rep = export::verify(&j).unwrap();
    assert!(
        rep.violations.is_empty(),
        "{} violations, first {:?}",
        rep.violations.len(),
        rep.violations.first()
    );
    assert!(rep.checkpoint_consistent);
    assert_eq!(rep.records, last);
    assert_eq!(export_bytes(&j), export_bytes(twin));
    assert_eq!(
        serde_json::to_value(export::sales(&j).unwrap()).unwrap(),
        serde_json::to_value(export::sales(twin).unwrap()).unwrap()
    );
    j.recovery().clone()
}

fn child(jdir: &Path, now: u64, once: bool) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    Proc::new(exe)
        .args([
            "retention::child_compacts",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD, jdir)
        .env("VENDD_RETENTION_NOW", now.to_string())
        .env("VENDD_RETENTION_ONCE", if once { "1" } else { "" })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run_once(jdir: &Path, now: u64) -> Duration {
    let t = Instant::now();
    let out = child(jdir, now, true).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

#[test]
fn compaction_survives_sigkill_at_random_moments_and_disk_stays_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("journal");
    let tdir = tmp.path().join("twin");
    let core = Config::embedded().core.clone();
    let mut m = Machine {
        ctl: Controller::new(core, fresh()),
        now: 0,
        written: Vec::new(),
    };
    let mut twin = Journal::open(&tdir).unwrap();
    let first_day = 20_000;
    // Ten days before the first compaction.
    let mut day = first_day;
    {
        let mut j = open(&jdir);
        m.now = day * DAY;
        m.boot(&mut [&mut j, &mut twin]);
        while day < first_day + 10 {
            m.day(&mut [&mut j, &mut twin], day);
            day += 1;
        }
    }
    let mut cursor = 0;
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let calib = run_once(&jdir, day * DAY);
    let span = (calib.as_micros() as u64 * 3 / 2).max(1);
    let mut totals = RecoveryReport::default();
    let mut hits = BTreeMap::<&str, u32>::new();
    for _ in 0..KILLS {
        {
            let mut j = open(&jdir);
            m.day(&mut [&mut j, &mut twin], day);
            // The broker acknowledged all but the last few records.
            cursor = (m.written.len() as u64).saturating_sub(rand() % 60);
            j.reader().set_report_cursor(cursor).unwrap();
            twin.reader().set_report_cursor(cursor).unwrap();
            j.commit().unwrap();
            twin.commit().unwrap();
        }
        day += 1;
        let mut c = child(&jdir, day * DAY, false);
        std::thread::sleep(Duration::from_micros(rand() % span));
        c.kill().unwrap();
        c.wait().unwrap();
        let r = check(&jdir, &m, &twin, cursor);
        totals.tmp_removed += r.tmp_removed;
        totals.archive_redone += r.archive_redone;
        totals.live_removed += r.live_removed;
        for (name, hit) in [
            ("temporary archive file", r.tmp_removed > 0),
            ("unfinished or old copy", r.new_dir_removed),
            ("archive left in old copy", r.archive_moved),
            ("archive run redone", r.archive_redone > 0),
            ("removal finished", r.live_removed > 0),
            ("torn sled snapshot", r.unfinished_snapshots_removed > 0),
        ] {
            if hit {
                *hits.entry(name).or_default() += 1;
            }
        }
    }
    // A last, uninterrupted compaction; then the disk is bounded.
    run_once(&jdir, day * DAY);
    check(&jdir, &m, &twin, cursor);
    let (compacted, twin_bytes) = (du(&jdir), du(&tdir));
    let j = open(&jdir);
    let archive: u64 = retention::archive_files(&jdir)
        .unwrap()
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let live: u64 = j.live_raw(1).map(|r| r.unwrap().1.len() as u64 + 8).sum();
    eprintln!(
        "retention: {KILLS} kills (calibrated compaction {calib:?}), {} records; \
         recovery hits {hits:?}, totals {totals:?}; du compacted {compacted} B \
         (archive {archive} B, live records {live} B), never compacted {twin_bytes} B",
        m.written.len()
    );
    assert!(
        !hits.is_empty(),
        "no kill landed inside a compaction step (calibration {calib:?})"
    );
    // sled keeps a few segments and its conf per database; the live data is small.
    let bound = archive + 8 * live + 4 * 1024 * 1024;
    assert!(
        compacted <= bound,
        "compacted journal uses {compacted} B, bound {bound} B"
    );
    assert!(compacted < twin_bytes, "{compacted} >= {twin_bytes}");
    let _ = std::io::stderr().flush();
}

/// The child: opens the journal (recovering) and compacts until killed (or once).
#[test]
#[ignore = "run by compaction_survives_sigkill_at_random_moments_and_disk_stays_bounded"]
fn child_compacts() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let now: u64 = std::env::var("VENDD_RETENTION_NOW")
        .unwrap()
        .parse()
        .unwrap();
    let once = std::env::var("VENDD_RETENTION_ONCE").is_ok_and(|v| v == "1");
    let mut j = open(Path::new(&dir));
    let (st, _) = j.load_state(fresh()).unwrap();
    loop {
        j.compact(&st, &cfg(), now).unwrap();
        if once {
            break;
        }
    }
}
