//! Credential → motor command latency: the core's decision plus the durable journal commit
//! (sled flush + fdatasync) that must precede the motor, measured the way the daemon does it
//! (`Journal::write_ahead`). In the same run, on the same disk, the reference: a SQLite
//! commit of the same record bytes in WAL mode with `synchronous=FULL`.
//!
//! Besides criterion's statistics, a summary with p50/p99 of both and their ratio is printed
//! (the README reports it). Set `BENCH_DIR` to measure on another disk.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vendd::config::Config;
use vendd::core::{Command, Controller, Input, PaymentMethod, SlotId, State};
use vendd::journal::Journal;

fn bench_dir() -> PathBuf {
    std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

struct Rig {
    ctl: Controller,
    journal: Journal,
    _dir: tempfile::TempDir,
    now: u64,
    n: u64,
}

impl Rig {
    fn new() -> Rig {
        let cfg = Config::embedded();
        std::fs::create_dir_all(bench_dir()).unwrap();
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let journal = Journal::open(&dir.path().join("journal")).unwrap();
        let mut core = cfg.core.clone();
        core.policy.max_uses_per_day = u32::MAX;
        core.policy.max_offline_total = i64::MAX / 4;
        let ctl = Controller::new(core, State::new(cfg.catalog.clone(), 0));
        let mut rig = Rig {
            ctl,
            journal,
            _dir: dir,
            now: 1_800_000_000_000,
            n: 0,
        };
        let boot = rig
            .ctl
            .start(rig.now, "bench", &cfg.catalog, &cfg.planogram_source);
        rig.journal.write_ahead(boot, |_| {}).unwrap();
        rig
    }

    fn step(&mut self, input: Input) -> Vec<Command> {
        self.now += 10;
        self.ctl
            .handle_input(self.now, input)
            .expect("input accepted")
    }

    /// Untimed: a shopper fills a cart and checks out.
    fn prepare(&mut self) {
        self.n += 1;
        let slot = SlotId::from_matrix((self.n % 6) as u8, ((self.n / 6) % 10) as u8);
        if self.ctl.state().catalog.slots[&slot].stock < 2 {
            let c = self.step(Input::Restock {
                slot: slot.clone(),
                count: 5,
            });
            self.journal.write_ahead(c, |_| {}).unwrap();
        }
        let c = self.step(Input::AddItem { slot, qty: 1 });
        self.journal.write_ahead(c, |_| {}).unwrap();
        let c = self.step(Input::Checkout);
        self.journal.write_ahead(c, |_| {}).unwrap();
    }

    /// Timed: credential in → motor command out, with the journal durable before it.
    fn credential_to_motor(&mut self) -> Duration {
        let t = Instant::now();
        let cmds = self.step(Input::Credential {
            method: PaymentMethod::Card,
            credential: format!("card-{}", self.n % 97),
        });
        let mut motor = None;
        self.journal
            .write_ahead(cmds, |c| {
                if motor.is_none() && matches!(c, Command::RunMotor { .. }) {
                    motor = Some(t.elapsed());
                }
            })
            .unwrap();
        motor.expect("the credential started a motor")
    }

    /// Untimed: the drop, settle, back to idle.
    fn finish(&mut self) {
        let sid = self.ctl.state().open.as_ref().unwrap().sid;
        let c = self.step(Input::VendDone {
            sid,
            item: 0,
            attempt: 1,
            outcome: vendd::core::VendOutcome::Delivered { drops: 1 },
            motor_ms: 1200,
        });
        self.journal.write_ahead(c, |_| {}).unwrap();
        let c = self.step(Input::Settled { sid });
        self.journal.write_ahead(c, |_| {}).unwrap();
        let c = self.step(Input::Dismiss);
        self.journal.write_ahead(c, |_| {}).unwrap();
    }

    fn one(&mut self) -> Duration {
        self.prepare();
        let d = self.credential_to_motor();
        self.finish();
        d
    }
}

/// The reference: one durable SQLite commit of a record of the same size.
struct Sqlite {
    conn: rusqlite::Connection,
    _dir: tempfile::TempDir,
    record: Vec<u8>,
}

impl Sqlite {
    fn new(record_len: usize) -> Sqlite {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("ref.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute(
            "CREATE TABLE log (seq INTEGER PRIMARY KEY, rec BLOB NOT NULL)",
            [],
        )
        .unwrap();
        Sqlite {
            conn,
            _dir: dir,
            record: vec![b'x'; record_len],
        }
    }

    fn one(&mut self) -> Duration {
        let t = Instant::now();
        self.conn
            .execute("INSERT INTO log (rec) VALUES (?1)", [&self.record])
            .unwrap();
        t.elapsed()
    }
}

/// Bytes journaled between the credential and the motor (authorised + vend intent).
fn record_len() -> usize {
    let mut r = Rig::new();
    r.prepare();
    let cmds = r.step(Input::Credential {
        method: PaymentMethod::Card,
        credential: "x".repeat(64),
    });
    cmds.iter()
        .take_while(|c| !matches!(c, Command::RunMotor { .. }))
        .filter_map(|c| match c {
            Command::Journal(st) => Some(serde_json::to_vec(st).unwrap().len()),
            _ => None,
        })
        .sum()
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn benches(c: &mut Criterion) {
    let len = record_len();
    let mut g = c.benchmark_group("credential_to_motor");
    g.sample_size(50).measurement_time(Duration::from_secs(8));
    let mut rig = Rig::new();
    g.bench_function("vendd_core_plus_sled_fsync", |b| {
        b.iter_custom(|n| (0..n).map(|_| rig.one()).sum())
    });
    let mut sql = Sqlite::new(len);
    g.bench_function("sqlite_wal_synchronous_full", |b| {
        b.iter_custom(|n| (0..n).map(|_| sql.one()).sum())
    });
    g.finish();

    // Side by side, interleaved so both see the same disk and load.
    // Short when run as a smoke test by `cargo test --all-targets` (no `--bench` flag).
    let full = std::env::args().any(|a| a == "--bench");
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 400 } else { 20 });
    let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        a.push(rig.one());
        b.push(sql.one());
    }
    let (a50, a99, b50, b99) = (
        pct(&mut a, 0.5),
        pct(&mut a, 0.99),
        pct(&mut b, 0.5),
        pct(&mut b, 0.99),
    );
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    println!("\nsummary credential_to_motor ({rounds} interleaved rounds, {len} bytes journaled per credential, dir {}):", bench_dir().display());
    println!("  vendd (core + sled flush + fdatasync): p50 {a50:?}  p99 {a99:?}");
    println!("  sqlite WAL synchronous=FULL commit:    p50 {b50:?}  p99 {b99:?}");
    println!(
        "  ratio vendd/sqlite: p50 {:.2}  p99 {:.2}",
        ratio(a50, b50),
        ratio(a99, b99)
    );
}

criterion_group!(credential, benches);
criterion_main!(credential);
