//! The write-ahead journal on sled 0.34.7.
//!
//! Records live in the `log` tree under big-endian `u64` sequence keys, starting at 1,
//! append-only: a record is never rewritten, and it leaves sled only through retention
//! ([`retention`]), which first moves it into a gzip JSON-lines file per day under
//! `archive/` and later rewrites the database into a fresh directory, because sled 0.34
//! never gives deleted space back. [`Journal::iter_from`] reads archive and live records as
//! one sequence. The `meta` tree holds a checkpoint of the folded [`State`] and the sequence
//! it covers, so start-up replays only the tail, plus retention's progress keys.
//!
//! A commit point is `Db::flush` followed by `fdatasync` of sled's data file: sled's own
//! flush uses `sync_file_range`, which is not durable on power loss (sled issue #1452).

mod error;
pub mod export;
pub mod retention;
#[cfg(test)]
mod tests;

pub use error::JournalError;
pub use retention::{CompactReport, Hold, RecoveryReport, RetentionConfig};

use crate::core::{Stamped, State};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// `Result` with a [`JournalError`].
pub type Result<T> = std::result::Result<T, JournalError>;

/// Records between two checkpoints. Bounds start-up replay; each checkpoint costs one
/// serialisation of the state.
pub const CHECKPOINT_EVERY: u64 = 512;

const CHECKPOINT_KEY: &[u8] = b"checkpoint";

/// sled's page cache. The default (1 GiB) is far beyond a Pi's budget.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// An open journal. One process at a time (sled locks the directory).
pub struct Journal {
    dir: PathBuf,
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    /// The trees [`JournalReader`]s use; replaced when retention rewrites the database.
    shared: Arc<RwLock<Trees>>,
    data_files: Vec<File>,
    next_seq: u64,
    uncommitted: u64,
    since_checkpoint: u64,
    /// Sequence the stored checkpoint covers (0: none).
    checkpoint_seq: u64,
    /// Records `1..=archived.through` are in the archive files and no longer in `log`.
    archived: retention::Archived,
    /// Set when a database rewrite failed half-way: the handle no longer points at the
    /// journal directory, so every write is refused until a restart recovers.
    poisoned: bool,
    recovery: RecoveryReport,
    last_commit: Duration,
    commits: u64,
}

/// The sled trees, shared with readers so a database rewrite can swap them.
#[derive(Clone)]
struct Trees {
    log: sled::Tree,
    meta: sled::Tree,
}

#[derive(serde::Deserialize)]
struct CheckpointSeq {
    seq: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    seq: u64,
    state: State,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`.
    ///
    /// # Errors
    /// [`JournalError::Locked`] when another process (a running vendd) has it open;
    /// [`JournalError::Open`] for anything else sled or the file system refuses.
    ///
    /// Opening finishes or rolls back whatever retention step a crash interrupted (see
    /// [`retention`]); [`Journal::recovery`] tells what was done.
    pub fn open(dir: &Path) -> Result<Journal> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::io(dir, e))?;
        let mut recovery = retention::recover_dirs(dir)?;
        let (db, log, meta, cleared) = open_sled(dir)?;
        recovery.unfinished_snapshots_removed = cleared;
        let archived = retention::Archived::load(&meta, dir)?;
        let last = match log.last().map_err(|e| JournalError::open(dir, e))? {
            Some((k, _)) => key_seq(&k)?,
            None => 0,
        };
        let checkpoint_seq = match meta
            .get(CHECKPOINT_KEY)
            .map_err(|e| JournalError::open(dir, e))?
        {
            Some(v) => {
                serde_json::from_slice::<CheckpointSeq>(&v)
                    .map_err(|e| JournalError::Corrupt {
                        seq: 0,
                        message: format!("checkpoint: {e}"),
                    })?
                    .seq
            }
            None => 0,
        };
        // fsync the directory once so the files sled just created are reachable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let data_files = data_files(dir)?;
        let shared = Arc::new(RwLock::new(Trees {
            log: log.clone(),
            meta: meta.clone(),
        }));
        let next_seq = last.max(archived.through) + 1;
        let mut j = Journal {
            dir: dir.to_path_buf(),
            db,
            log,
            meta,
            shared,
            data_files,
            next_seq,
            uncommitted: 0,
            since_checkpoint: 0,
            checkpoint_seq,
            archived,
            poisoned: false,
            recovery: RecoveryReport::default(),
            last_commit: Duration::ZERO,
            commits: 0,
        };
        j.recover_log(&mut recovery)?;
        j.recovery = recovery;
        Ok(j)
    }

    /// What opening had to finish or roll back after an interrupted retention step.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Highest sequence number moved to the archive (0: none); live records start after it.
    pub fn archived_through(&self) -> u64 {
        self.archived.through
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True when nothing was ever written.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 1
    }

    /// Records appended since the last commit point.
    pub fn uncommitted(&self) -> u64 {
        self.uncommitted
    }

    /// Commit points made since open.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// How long the last commit point took.
    pub fn last_commit_duration(&self) -> Duration {
        self.last_commit
    }

    /// Appends one record; returns its sequence number. Not durable until [`commit`].
    ///
    /// # Errors
    /// [`JournalError::Write`] if sled refuses the write.
    ///
    /// [`commit`]: Journal::commit
    pub fn append(&mut self, st: &Stamped) -> Result<u64> {
        self.check_poisoned()?;
        let seq = self.next_seq;
        let bytes = serde_json::to_vec(st).map_err(|e| JournalError::Encode(e.to_string()))?;
        self.log
            .insert(seq.to_be_bytes(), bytes)
            .map_err(|e| JournalError::write(&self.dir, e))?;
        self.next_seq += 1;
        self.uncommitted += 1;
        self.since_checkpoint += 1;
        Ok(seq)
    }

    /// A commit point: everything appended so far survives a crash or a power cut.
    ///
    /// # Errors
    /// [`JournalError::Write`] when the flush or the fsync fails — the caller must not act
    /// on the records (the disk may be full or failing).
    pub fn commit(&mut self) -> Result<()> {
        self.check_poisoned()?;
        let t = Instant::now();
        self.db
            .flush()
            .map_err(|e| JournalError::write(&self.dir, e))?;
        for f in &self.data_files {
            f.sync_data().map_err(|e| JournalError::io(&self.dir, e))?;
        }
        self.uncommitted = 0;
        self.commits += 1;
        self.last_commit = t.elapsed();
        Ok(())
    }

    /// Carries out a batch of controller commands in order, write-ahead: journal records are
    /// appended, and before any command that acts on the world (motor, money) everything
    /// appended so far is committed; `act` receives every non-journal command. The batch
    /// ends with a commit, so an acknowledgement sent after this returns is durable.
    /// Returns the sequence number of the last record appended (or `None`).
    ///
    /// # Errors
    /// A failed append or commit; `act` is not called for any later command then.
    pub fn write_ahead(
        &mut self,
        cmds: Vec<crate::core::Command>,
        mut act: impl FnMut(crate::core::Command),
    ) -> Result<Option<u64>> {
        let mut last = None;
        let mut dirty = false;
        for cmd in cmds {
            match cmd {
                crate::core::Command::Journal(st) => {
                    last = Some(self.append(&st)?);
                    dirty = true;
                }
                other => {
                    if other.acts() && dirty {
                        self.commit()?;
                        dirty = false;
                    }
                    act(other);
                }
            }
        }
        if dirty {
            self.commit()?;
        }
        Ok(last)
    }

    /// Writes a checkpoint of `state` covering every record appended so far, when
    /// [`CHECKPOINT_EVERY`] records have passed since the last one. Call right after a
    /// commit with the state that includes every appended record.
    ///
    /// # Errors
    /// [`JournalError::Write`] if sled refuses the write.
    pub fn maybe_checkpoint(&mut self, state: &State) -> Result<bool> {
        if self.since_checkpoint < CHECKPOINT_EVERY {
            return Ok(false);
        }
        self.checkpoint(state)?;
        Ok(true)
    }

    /// Writes a checkpoint now (see [`Journal::maybe_checkpoint`]).
    ///
    /// # Errors
    /// [`JournalError::Write`] if sled refuses the write.
    pub fn checkpoint(&mut self, state: &State) -> Result<()> {
        let cp = Checkpoint {
            seq: self.next_seq - 1,
            state: state.clone(),
        };
        let bytes = serde_json::to_vec(&cp).map_err(|e| JournalError::Encode(e.to_string()))?;
        self.meta
            .insert(CHECKPOINT_KEY, bytes)
            .map_err(|e| JournalError::write(&self.dir, e))?;
        self.since_checkpoint = 0;
        self.checkpoint_seq = cp.seq;
        Ok(())
    }

    /// Whether the journal refuses every write until a restart (a database rewrite failed
    /// after its swap; the next start recovers).
    pub fn refuses_writes(&self) -> bool {
        self.poisoned
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned {
            return Err(JournalError::Write {
                path: self.dir.clone(),
                message: "a database rewrite failed half-way; restart to recover".into(),
            });
        }
        Ok(())
    }

    /// Reads one live record (archived records are only read by [`Journal::iter_from`]).
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] when the stored bytes do not decode.
    pub fn get(&self, seq: u64) -> Result<Option<Stamped>> {
        match self
            .log
            .get(seq.to_be_bytes())
            .map_err(|e| JournalError::read(&self.dir, e))?
        {
            Some(v) => Ok(Some(decode(seq, &v)?)),
            None => Ok(None),
        }
    }

    /// Iterates records from `from` (inclusive) in sequence order: archived records first
    /// (read from the day files, one file in memory at a time), then live ones.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = Result<(u64, Stamped)>> + '_ {
        let through = self.archived.through;
        let archived: Box<dyn Iterator<Item = Result<(u64, Stamped)>>> = if from <= through {
            Box::new(retention::archive_iter(&self.dir, from, through))
        } else {
            Box::new(std::iter::empty())
        };
        let live_from = from.max(through + 1);
        archived.chain(self.log.range(live_from.to_be_bytes()..).map(move |kv| {
            let (k, v) = kv.map_err(|e| JournalError::read(&self.dir, e))?;
            let seq = key_seq(&k)?;
            Ok((seq, decode(seq, &v)?))
        }))
    }

    /// Rebuilds the durable state: the checkpoint (if any) plus every later record, or
    /// `fresh` applied to every record when there is no checkpoint. Returns the state and
    /// how many records were replayed.
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] for a record or checkpoint that does not decode.
    pub fn load_state(&self, fresh: State) -> Result<(State, u64)> {
        let (mut state, from) = match self
            .meta
            .get(CHECKPOINT_KEY)
            .map_err(|e| JournalError::read(&self.dir, e))?
        {
            Some(v) => {
                let cp: Checkpoint =
                    serde_json::from_slice(&v).map_err(|e| JournalError::Corrupt {
                        seq: 0,
                        message: format!("checkpoint: {e}"),
                    })?;
                (cp.state, cp.seq + 1)
            }
            None => (fresh, 1),
        };
        let mut n = 0;
        for r in self.iter_from(from) {
            let (_, st) = r?;
            state.apply(&st);
            n += 1;
        }
        Ok((state, n))
    }

    /// A read handle for another task (the MQTT outbox): it reads records and keeps the
    /// report cursor, sharing sled's trees with this journal.
    pub fn reader(&self) -> JournalReader {
        JournalReader {
            dir: self.dir.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Bytes sled uses on disk (for telemetry and the bounded-disk test).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Key of the MQTT report cursor: every report derived from records up to this sequence
/// number was acknowledged by the broker. One overwritten key, never a queue.
const REPORT_CURSOR_KEY: &[u8] = b"report_cursor";

/// Read access to the journal from another task, plus the report cursor. It follows the
/// journal when retention rewrites the database; an iteration under way at that moment
/// finishes on the old trees, and a cursor stored into them then is lost, which only means
/// reports are sent again.
#[derive(Clone)]
pub struct JournalReader {
    dir: PathBuf,
    shared: Arc<RwLock<Trees>>,
}

impl JournalReader {
    fn trees(&self) -> Trees {
        self.shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Iterates live records from `from` (inclusive). Retention never archives a record
    /// after the report cursor, so the outbox always finds its records here.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = Result<(u64, Stamped)>> + '_ {
        self.trees().log.range(from.to_be_bytes()..).map(move |kv| {
            let (k, v) = kv.map_err(|e| JournalError::read(&self.dir, e))?;
            let seq = key_seq(&k)?;
            Ok((seq, decode(seq, &v)?))
        })
    }

    /// The last sequence number written (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.trees()
            .log
            .last()
            .ok()
            .flatten()
            .and_then(|(k, _)| key_seq(&k).ok())
            .unwrap_or(0)
    }

    /// The persisted report cursor (0 before the first acknowledgement).
    pub fn report_cursor(&self) -> u64 {
        self.trees()
            .meta
            .get(REPORT_CURSOR_KEY)
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// Stores the report cursor. Not flushed here: the next journal commit makes it durable,
    /// and losing an update only means reports are sent again (consumers de-duplicate).
    ///
    /// # Errors
    /// [`JournalError::Write`] if sled refuses the write.
    pub fn set_report_cursor(&self, seq: u64) -> Result<()> {
        self.trees()
            .meta
            .insert(REPORT_CURSOR_KEY, &seq.to_be_bytes())
            .map_err(|e| JournalError::write(&self.dir, e))?;
        Ok(())
    }
}

/// How long an open waits out a lock conflict before reporting [`JournalError::Locked`].
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens sled in `dir` with the journal's settings and its two trees. Its file lock is an `flock` on `<dir>/db`, so it outlives the handle that
/// took it for a moment: a sled background thread finishing after the last handle dropped,
/// or a child process forked elsewhere in this process (a test spawning a tool, vendd
/// spawning the speech player) that has not yet exec'd and still shares the descriptor. A
/// conflict is therefore retried for [`LOCK_WAIT`]; a lock still held after that belongs
/// to a real second owner (another vendd) and is reported as `Locked`.
///
/// Also returns how many unfinished sled snapshots were deleted first
/// (see [`clear_unfinished_snapshots`]).
fn open_sled(dir: &Path) -> Result<(sled::Db, sled::Tree, sled::Tree, u32)> {
    let start = Instant::now();
    let mut cleared = 0;
    let db = loop {
        let opened = clear_unfinished_snapshots(dir).and_then(|n| {
            cleared += n;
            sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES)
                .open()
                .map_err(|e| JournalError::open(dir, e))
        });
        match opened {
            Err(JournalError::Locked { .. }) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => break r?,
        }
    };
    let log = db
        .open_tree("log")
        .map_err(|e| JournalError::open(dir, e))?;
    let meta = db
        .open_tree("meta")
        .map_err(|e| JournalError::open(dir, e))?;
    Ok((db, log, meta, cleared))
}

/// sled 0.34 writes a snapshot to `snap.<lsn>.generating`, fsyncs it and renames it to
/// `snap.<lsn>`, at every open and now and then while running. But when it looks for the
/// newest snapshot at open it also takes a `.generating` file, so a crash in the middle of
/// that write leaves a database sled refuses as corrupt ("Read corrupted data at file
/// offset None"; sled issue #1527). Such a file was never renamed into place, so it never
/// became part of the database: the previous snapshot and the log still hold everything.
/// It is deleted here, under the same `flock` sled takes on `<dir>/db`, so the snapshot a
/// live owner is writing is never touched (a conflict is `Locked`, retried by the caller).
fn clear_unfinished_snapshots(dir: &Path) -> Result<u32> {
    use std::os::fd::AsRawFd;
    let Ok(db) = File::open(dir.join("db")) else {
        return Ok(0); // a new database
    };
    // SAFETY: flock on a descriptor this function owns; released when `db` is dropped.
    if unsafe { libc::flock(db.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(JournalError::Locked {
            path: dir.to_path_buf(),
        });
    }
    let mut n = 0;
    for e in std::fs::read_dir(dir).map_err(|e| JournalError::io(dir, e))? {
        let e = e.map_err(|e| JournalError::io(dir, e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(e.path()).map_err(|err| JournalError::io(&e.path(), err))?;
            n += 1;
        }
    }
    if n > 0 {
        retention::sync_dir(dir)?;
    }
    Ok(n)
}

fn key_seq(k: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = k.try_into().map_err(|_| JournalError::Corrupt {
        seq: 0,
        message: format!("key of {} bytes is not a sequence number", k.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

fn decode(seq: u64, v: &[u8]) -> Result<Stamped> {
    serde_json::from_slice(v).map_err(|e| JournalError::Corrupt {
        seq,
        message: e.to_string(),
    })
}

/// sled 0.34 keeps its log in `<dir>/db`; that is the file a commit point must fsync. Its
/// `conf` is written once at creation and made durable here, at open. Records are small
/// JSON (well under sled's blob threshold), so nothing lands in `blobs/`.
fn data_files(dir: &Path) -> Result<Vec<File>> {
    let mut out = Vec::new();
    let conf = dir.join("conf");
    if conf.exists() {
        File::open(&conf)
            .and_then(|f| f.sync_all())
            .map_err(|e| JournalError::io(&conf, e))?;
    }
    let db = dir.join("db");
    if db.exists() {
        out.push(File::open(&db).map_err(|e| JournalError::io(&db, e))?);
    }
    if out.is_empty() {
        return Err(JournalError::Open {
            path: dir.to_path_buf(),
            message: "sled's data file `db` is missing after open".into(),
        });
    }
    Ok(out)
}
