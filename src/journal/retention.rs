//! Journal retention: old records move to gzip JSON-lines day files, and the sled database
//! is rewritten into a fresh directory when deleted space piles up, with no moment at which
//! a crash loses a record.
//!
//! # What may leave sled
//! A prefix `1..=H` of the sequence, where `H` is the lowest of: the report cursor (an
//! unreported record stays for the MQTT outbox), the newest record minus
//! [`RetentionConfig::keep_records`], the last record older than
//! [`RetentionConfig::keep_days`], the record before the open session's `SessionOpened`,
//! and [`RetentionConfig::batch`] records past the last run. A checkpoint covering every
//! record is made durable first, so replay never needs an archived record and the audit
//! counters (part of the checkpointed [`State`]) survive.
//!
//! # Archiving, in this order (each step durable before the next)
//! 1. `meta/archive_intent = H` (and the checkpoint), commit point.
//! 2. For each day touched, `archive/<day>.jsonl.gz` is rewritten: the lines it already
//!    holds with `seq <= archived.through`, then the new records, to `<file>.tmp`, fsync,
//!    rename; then the `archive/` directory is fsynced. A record's day is the running
//!    maximum of the UTC days of its timestamp, so files cover ascending, contiguous ranges
//!    and a redo writes the same files.
//! 3. `meta/archived = {through: H, day}`, commit point.
//! 4. Records `..=H` are removed from `log` in batches, commit point.
//!
//! Opening a journal finishes an interrupted run: `intent > archived.through` redoes step
//! 2–3 from the records still in sled (nothing is removed before step 3), and step 4 is
//! repeated (removal is idempotent). Leftover `*.tmp` files are deleted. So after an open,
//! archive ∪ live holds every record exactly once.
//!
//! # Rewriting the database (sled never gives deleted space back)
//! When sled's files exceed [`RetentionConfig::rewrite_min_bytes`] and
//! [`RetentionConfig::rewrite_ratio`] times the live bytes, the live trees are copied into
//! a fresh sled database in the sibling `<dir>.new`, which is flushed and closed, and every
//! file and directory in it fsynced. Then `renameat2(RENAME_EXCHANGE)` swaps `<dir>` and
//! `<dir>.new` in one atomic step (and the parent is fsynced), `archive/` is moved from the
//! old directory (now `<dir>.new`) into the new one, the journal reopens `<dir>` and
//! deletes `<dir>.new`. On open, a `<dir>.new` is deleted after moving out an `archive/` it
//! holds: before the swap it is an unfinished copy (the original is untouched), after the
//! swap it is the old database (the new one is complete). `<dir>` is always a whole
//! database.

use super::export::utc_day;
use super::{data_files, decode, key_seq, open_sled, Journal, JournalError, Result, Trees};
use crate::core::{Record, Stamped, State};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Folder (inside the journal directory) of the day archives.
pub const ARCHIVE_DIR: &str = "archive";

const INTENT_KEY: &[u8] = b"archive_intent";
const ARCHIVED_KEY: &[u8] = b"archived";

/// Records as stored: sequence number and the bytes sled holds.
type RawRecords = Vec<(u64, Vec<u8>)>;

/// Keys removed per sled batch.
const REMOVE_BATCH: usize = 512;

/// The `[retention]` section of the configuration.
///
/// ```toml
/// [retention]
/// enabled = true
/// keep_days = 90
/// keep_records = 20000
/// batch = 2000
/// rewrite_ratio = 4
/// rewrite_min_bytes = 67108864
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Run retention at all.
    pub enabled: bool,
    /// Records younger than this many days stay live.
    pub keep_days: u32,
    /// At least this many newest records stay live (at least 1 always does, so the
    /// sequence never restarts).
    pub keep_records: u64,
    /// Most records archived per [`Journal::compact`] call: bounds the time one call takes
    /// on the core loop (about 2,000 records in 20–40 ms on a Pi-class disk).
    pub batch: u64,
    /// Rewrite the database when its files exceed this many times the live bytes...
    pub rewrite_ratio: u32,
    /// ...and this many bytes.
    pub rewrite_min_bytes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            keep_days: 90,
            keep_records: 20_000,
            batch: 2_000,
            rewrite_ratio: 4,
            rewrite_min_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What stopped archiving at the horizon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Nothing was considered (retention off or no records).
    #[default]
    Nothing,
    /// `keep_records`.
    KeepRecords,
    /// Records not yet acknowledged by the broker.
    ReportCursor,
    /// `batch` records per call.
    Batch,
    /// `keep_days`.
    Age,
    /// The open session's records.
    OpenSession,
}

/// What one [`Journal::compact`] call did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CompactReport {
    /// Records moved to the archive.
    pub archived: u64,
    /// Highest archived sequence number after the call.
    pub archived_through: u64,
    /// What bounded the horizon.
    pub held_by: Hold,
    /// The database was rewritten into a fresh directory.
    pub rewrote: bool,
    /// sled's files before and after, bytes.
    pub disk_before: u64,
    /// See `disk_before`.
    pub disk_after: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// What opening a journal finished or rolled back.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// `*.tmp` archive files deleted (an archive write cut short).
    pub tmp_removed: u32,
    /// A `<dir>.new` was deleted (an unfinished copy, or the old database after the swap).
    pub new_dir_removed: bool,
    /// `archive/` was moved out of the old database after an interrupted swap.
    pub archive_moved: bool,
    /// Records archived again because a run stopped between intent and completion.
    pub archive_redone: u64,
    /// Archived records still in sled that were removed.
    pub live_removed: u64,
    /// Unfinished sled snapshot files (`snap.*.generating`, a snapshot write cut short)
    /// deleted before sled opened; sled would otherwise refuse the database as corrupt.
    pub unfinished_snapshots_removed: u32,
}

impl RecoveryReport {
    /// What opening had to finish or undo, in words for a log line or the doctor; `None`
    /// when the journal was closed cleanly.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        if self.unfinished_snapshots_removed > 0 {
            let n = u64::from(self.unfinished_snapshots_removed);
            parts.push(format!("{n} unfinished sled snapshot{} removed", plural(n)));
        }
        if self.new_dir_removed {
            parts.push(if self.archive_moved {
                "a database rewrite finished (old copy removed, archive moved back)".to_string()
            } else {
                "an unfinished database copy removed".to_string()
            });
        }
        if self.tmp_removed > 0 {
            let n = u64::from(self.tmp_removed);
            parts.push(format!("{n} partial archive file{} removed", plural(n)));
        }
        if self.archive_redone > 0 {
            let n = self.archive_redone;
            parts.push(format!("{n} record{} archived again", plural(n)));
        }
        if self.live_removed > 0 {
            let n = self.live_removed;
            parts.push(format!(
                "{n} archived record{} removed from sled",
                plural(n)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Retention's progress, stored as one `meta` key so both fields change together.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Archived {
    /// Records `1..=through` are in the archive.
    pub(super) through: u64,
    /// Running maximum day of the archived records (`YYYY-MM-DD`, empty before any).
    pub(super) day: String,
}

impl Archived {
    pub(super) fn load(meta: &sled::Tree, dir: &Path) -> Result<Archived> {
        match meta
            .get(ARCHIVED_KEY)
            .map_err(|e| JournalError::read(dir, e))?
        {
            Some(v) => serde_json::from_slice(&v).map_err(|e| JournalError::Corrupt {
                seq: 0,
                message: format!("archive progress: {e}"),
            }),
            None => Ok(Archived::default()),
        }
    }
}

fn archive_dir(dir: &Path) -> PathBuf {
    dir.join(ARCHIVE_DIR)
}

/// `<dir>.new`, next to the journal directory.
fn new_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    dir.with_file_name(name)
}

fn parent(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io(dir, e))
}

/// fsyncs every file and directory under `dir`, then `dir`.
fn sync_tree(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).map_err(|e| JournalError::io(dir, e))? {
        let e = e.map_err(|e| JournalError::io(dir, e))?;
        let p = e.path();
        if e.file_type().map_err(|e| JournalError::io(&p, e))?.is_dir() {
            sync_tree(&p)?;
        } else {
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| JournalError::io(&p, e))?;
        }
    }
    sync_dir(dir)
}

/// Before sled opens `dir`: deals with a `<dir>.new` and leftover temporary archive files.
pub(super) fn recover_dirs(dir: &Path) -> Result<RecoveryReport> {
    let mut rep = RecoveryReport::default();
    let new = new_dir(dir);
    if new.exists() {
        let old_archive = archive_dir(&new);
        if old_archive.exists() {
            // The swap happened: `dir` is the new database, `new` the old one.
            let target = archive_dir(dir);
            if target.exists() {
                // Cannot happen by construction; keep both rather than lose either.
                for e in fs::read_dir(&old_archive).map_err(|e| JournalError::io(dir, e))? {
                    let e = e.map_err(|e| JournalError::io(dir, e))?;
                    let to = target.join(e.file_name());
                    if !to.exists() {
                        fs::rename(e.path(), &to).map_err(|e| JournalError::io(&to, e))?;
                    }
                }
            } else {
                fs::rename(&old_archive, &target).map_err(|e| JournalError::io(&target, e))?;
            }
            sync_dir(dir)?;
            rep.archive_moved = true;
        }
        fs::remove_dir_all(&new).map_err(|e| JournalError::io(&new, e))?;
        sync_dir(&parent(dir))?;
        rep.new_dir_removed = true;
    }
    let adir = archive_dir(dir);
    if adir.exists() {
        for e in fs::read_dir(&adir).map_err(|e| JournalError::io(&adir, e))? {
            let e = e.map_err(|e| JournalError::io(&adir, e))?;
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                fs::remove_file(e.path()).map_err(|e| JournalError::io(&adir, e))?;
                rep.tmp_removed += 1;
            }
        }
    }
    Ok(rep)
}

/// One archive line: `{"seq":N,"record":<the bytes stored in sled>}`.
fn write_line(out: &mut impl Write, seq: u64, raw: &[u8]) -> std::io::Result<()> {
    write!(out, "{{\"seq\":{seq},\"record\":")?;
    out.write_all(raw)?;
    out.write_all(b"}\n")
}

fn parse_line(path: &Path, line: &[u8]) -> Result<(u64, Vec<u8>)> {
    let bad = || JournalError::Corrupt {
        seq: 0,
        message: format!("archive {} has a malformed line", path.display()),
    };
    let rest = line.strip_prefix(b"{\"seq\":").ok_or_else(bad)?;
    let comma = rest.iter().position(|&b| b == b',').ok_or_else(bad)?;
    let seq: u64 = std::str::from_utf8(&rest[..comma])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let raw = rest[comma..]
        .strip_prefix(b",\"record\":")
        .and_then(|r| r.strip_suffix(b"}"))
        .ok_or_else(bad)?;
    Ok((seq, raw.to_vec()))
}

/// Every line of one archive file: sequence number and the record's stored bytes.
///
/// # Errors
/// The file cannot be read or a line is malformed.
pub fn read_archive_file(path: &Path) -> Result<Vec<(u64, Vec<u8>)>> {
    let f = File::open(path).map_err(|e| JournalError::io(path, e))?;
    let mut r = BufReader::new(MultiGzDecoder::new(BufReader::new(f)));
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| JournalError::io(path, e))?;
        if n == 0 {
            break;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        if !l.is_empty() {
            out.push(parse_line(path, l)?);
        }
    }
    Ok(out)
}

/// The archive's day files in sequence order (`YYYY-MM-DD.jsonl.gz`, by name).
///
/// # Errors
/// The archive directory cannot be listed.
pub fn archive_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let adir = archive_dir(dir);
    if !adir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for e in fs::read_dir(&adir).map_err(|e| JournalError::io(&adir, e))? {
        let p = e.map_err(|e| JournalError::io(&adir, e))?.path();
        if p.to_string_lossy().ends_with(".jsonl.gz") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Archived records `from..=through` in order, one file in memory at a time.
pub(super) fn archive_iter(
    dir: &Path,
    from: u64,
    through: u64,
) -> impl Iterator<Item = Result<(u64, Stamped)>> {
    let files = match archive_files(dir) {
        Ok(f) => f.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => vec![Err(e)],
    };
    files.into_iter().flat_map(move |f| {
        let lines: Vec<Result<(u64, Stamped)>> = match f.and_then(|p| read_archive_file(&p)) {
            Ok(lines) => lines
                .into_iter()
                .filter(|(seq, _)| (from..=through).contains(seq))
                .map(|(seq, raw)| Ok((seq, decode(seq, &raw)?)))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        lines
    })
}

/// Rewrites `archive/<day>.jsonl.gz` as its lines up to `keep_through` plus `recs`.
fn write_day(adir: &Path, day: &str, keep_through: u64, recs: &[(u64, Vec<u8>)]) -> Result<()> {
    let path = adir.join(format!("{day}.jsonl.gz"));
    let tmp = adir.join(format!("{day}.jsonl.gz.tmp"));
    let mut old = if path.exists() {
        read_archive_file(&path)?
    } else {
        Vec::new()
    };
    old.retain(|(seq, _)| *seq <= keep_through);
    let f = File::create(&tmp).map_err(|e| JournalError::io(&tmp, e))?;
    let mut gz = GzEncoder::new(BufWriter::new(f), Compression::default());
    for (seq, raw) in old.iter().chain(recs) {
        write_line(&mut gz, *seq, raw).map_err(|e| JournalError::io(&tmp, e))?;
    }
    let f = gz
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| JournalError::io(&tmp, e))?;
    f.sync_all().map_err(|e| JournalError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| JournalError::io(&path, e))
}

fn u64_key(meta: &sled::Tree, key: &[u8], dir: &Path) -> Result<u64> {
    Ok(meta
        .get(key)
        .map_err(|e| JournalError::read(dir, e))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Atomically swaps two directories (Linux `renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(|_| JournalError::Write {
        path: a.to_path_buf(),
        message: "path contains NUL".into(),
    })?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(|_| JournalError::Write {
        path: b.to_path_buf(),
        message: "path contains NUL".into(),
    })?;
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(JournalError::io(a, std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Journal {
    /// Runs retention once: archives what the horizon allows (at most `cfg.batch`
    /// records) and rewrites the database when garbage is large (see the module docs).
    /// Call from the core loop while idle, after a commit, with the state that includes
    /// every appended record. A call with nothing to do costs a bounded scan and no fsync.
    ///
    /// # Errors
    /// A write or fsync failed. Records are never lost by a failure; if a rewrite failed
    /// after the swap, the journal refuses further writes until a restart (which recovers).
    pub fn compact(
        &mut self,
        state: &State,
        cfg: &RetentionConfig,
        now_ms: u64,
    ) -> Result<CompactReport> {
        let t = Instant::now();
        let mut rep = CompactReport {
            disk_before: self.size_on_disk(),
            ..CompactReport::default()
        };
        if cfg.enabled {
            self.check_poisoned()?;
            let (through, hold) = self.horizon(state, cfg, now_ms)?;
            rep.held_by = hold;
            if through > self.archived.through {
                if self.checkpoint_seq + 1 != self.next_seq {
                    self.checkpoint(state)?;
                }
                self.meta
                    .insert(INTENT_KEY, &through.to_be_bytes())
                    .map_err(|e| JournalError::write(&self.dir, e))?;
                self.commit()?;
                rep.archived = self.archive_to(through)?;
                self.remove_archived()?;
            }
            let disk = self.size_on_disk();
            if disk > cfg.rewrite_min_bytes
                && disk
                    > self
                        .live_bytes()?
                        .saturating_mul(u64::from(cfg.rewrite_ratio))
            {
                self.rewrite()?;
                rep.rewrote = true;
            }
        }
        rep.archived_through = self.archived.through;
        rep.disk_after = self.size_on_disk();
        rep.elapsed = t.elapsed();
        Ok(rep)
    }

    /// The highest sequence number that may be archived now, and what limits it.
    fn horizon(&self, state: &State, cfg: &RetentionConfig, now_ms: u64) -> Result<(u64, Hold)> {
        let last = self.next_seq - 1;
        let a = self.archived.through;
        let mut limit = last.saturating_sub(cfg.keep_records.max(1));
        let mut hold = Hold::KeepRecords;
        let cursor = self.reader().report_cursor();
        if cursor < limit {
            (limit, hold) = (cursor, Hold::ReportCursor);
        }
        if a + cfg.batch < limit {
            (limit, hold) = (a + cfg.batch, Hold::Batch);
        }
        if limit <= a {
            return Ok((a, hold));
        }
        let cutoff = now_ms.saturating_sub(u64::from(cfg.keep_days) * 86_400_000);
        let open = state.open.as_ref().map(|o| o.sid);
        let lo = (a + 1).to_be_bytes();
        let hi = limit.to_be_bytes();
        for kv in self.log.range(lo..=hi) {
            let (k, v) = kv.map_err(|e| JournalError::read(&self.dir, e))?;
            let seq = key_seq(&k)?;
            let st = decode(seq, &v)?;
            if st.at >= cutoff {
                return Ok((seq - 1, Hold::Age));
            }
            if let Record::SessionOpened { sid, .. } = &st.record {
                if Some(*sid) == open {
                    return Ok((seq - 1, Hold::OpenSession));
                }
            }
        }
        Ok((limit, hold))
    }

    /// Steps 2 and 3: writes records `archived.through+1..=through` (all still in sled)
    /// into the day files and records the progress durably. Returns the count.
    fn archive_to(&mut self, through: u64) -> Result<u64> {
        let a = self.archived.clone();
        let mut day = a.day.clone();
        let mut groups: Vec<(String, RawRecords)> = Vec::new();
        let mut expect = a.through + 1;
        for kv in self.log.range(expect.to_be_bytes()..=through.to_be_bytes()) {
            let (k, v) = kv.map_err(|e| JournalError::read(&self.dir, e))?;
            let seq = key_seq(&k)?;
            if seq != expect {
                return Err(JournalError::Corrupt {
                    seq: expect,
                    message: "record missing from the log before archiving".into(),
                });
            }
            expect += 1;
            let d = utc_day(decode(seq, &v)?.at);
            if d > day {
                day = d;
            }
            match groups.last_mut() {
                Some((g, recs)) if *g == day => recs.push((seq, v.to_vec())),
                _ => groups.push((day.clone(), vec![(seq, v.to_vec())])),
            }
        }
        if expect != through + 1 {
            return Err(JournalError::Corrupt {
                seq: expect,
                message: "record missing from the log before archiving".into(),
            });
        }
        let adir = archive_dir(&self.dir);
        if !adir.exists() {
            fs::create_dir(&adir).map_err(|e| JournalError::io(&adir, e))?;
            sync_dir(&self.dir)?;
        }
        for (d, recs) in &groups {
            write_day(&adir, d, a.through, recs)?;
        }
        sync_dir(&adir)?;
        let done = Archived { through, day };
        let bytes = serde_json::to_vec(&done).map_err(|e| JournalError::Encode(e.to_string()))?;
        self.meta
            .insert(ARCHIVED_KEY, bytes)
            .map_err(|e| JournalError::write(&self.dir, e))?;
        self.commit()?;
        self.archived = done;
        Ok(through - a.through)
    }

    /// Step 4: removes archived records still in sled. Idempotent.
    fn remove_archived(&mut self) -> Result<u64> {
        let hi = self.archived.through.to_be_bytes();
        let mut removed = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for k in self.log.range(..=hi).keys().take(REMOVE_BATCH) {
                batch.remove(k.map_err(|e| JournalError::read(&self.dir, e))?);
                n += 1;
            }
            if n == 0 {
                break;
            }
            self.log
                .apply_batch(batch)
                .map_err(|e| JournalError::write(&self.dir, e))?;
            removed += n;
        }
        if removed > 0 {
            self.commit()?;
        }
        Ok(removed)
    }

    /// Live records from `from` with the bytes stored in sled (for audits and the crash
    /// test, which compares them with the archive's).
    pub fn live_raw(&self, from: u64) -> impl Iterator<Item = Result<(u64, Vec<u8>)>> + '_ {
        self.log.range(from.to_be_bytes()..).map(move |kv| {
            let (k, v) = kv.map_err(|e| JournalError::read(&self.dir, e))?;
            Ok((key_seq(&k)?, v.to_vec()))
        })
    }

    /// After sled opened: finishes an archive run cut short.
    pub(super) fn recover_log(&mut self, rep: &mut RecoveryReport) -> Result<()> {
        let intent = u64_key(&self.meta, INTENT_KEY, &self.dir)?;
        if intent > self.archived.through {
            rep.archive_redone = self.archive_to(intent)?;
        }
        rep.live_removed = self.remove_archived()?;
        Ok(())
    }

    /// Bytes of live keys and values (what a rewrite would keep).
    fn live_bytes(&self) -> Result<u64> {
        let mut n = 0u64;
        for tree in [&self.log, &self.meta] {
            for kv in tree.iter() {
                let (k, v) = kv.map_err(|e| JournalError::read(&self.dir, e))?;
                n += (k.len() + v.len()) as u64;
            }
        }
        Ok(n)
    }

    /// Copies the live trees into `<dir>.new` and swaps it in (see the module docs).
    fn rewrite(&mut self) -> Result<()> {
        let new = new_dir(&self.dir);
        let up = parent(&self.dir);
        if new.exists() {
            fs::remove_dir_all(&new).map_err(|e| JournalError::io(&new, e))?;
        }
        {
            let (db, log, meta, _) = open_sled(&new)?;
            for (from, to) in [(&self.log, &log), (&self.meta, &meta)] {
                let mut batch = sled::Batch::default();
                let mut n = 0;
                for kv in from.iter() {
                    let (k, v) = kv.map_err(|e| JournalError::read(&self.dir, e))?;
                    batch.insert(k, v);
                    n += 1;
                    if n == REMOVE_BATCH {
                        to.apply_batch(std::mem::take(&mut batch))
                            .map_err(|e| JournalError::write(&new, e))?;
                        n = 0;
                    }
                }
                to.apply_batch(batch)
                    .map_err(|e| JournalError::write(&new, e))?;
            }
            db.flush().map_err(|e| JournalError::write(&new, e))?;
        }
        sync_tree(&new)?;
        sync_dir(&up)?;
        exchange(&self.dir, &new)?;
        // From here on `self.db` lives at `new`: refuse writes until the reopen succeeds.
        self.poisoned = true;
        sync_dir(&up)?;
        let old_archive = archive_dir(&new);
        if old_archive.exists() {
            let target = archive_dir(&self.dir);
            fs::rename(&old_archive, &target).map_err(|e| JournalError::io(&target, e))?;
            sync_dir(&self.dir)?;
            sync_dir(&new)?;
        }
        let (db, log, meta, _) = open_sled(&self.dir)?;
        self.data_files = data_files(&self.dir)?;
        *self
            .shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Trees {
            log: log.clone(),
            meta: meta.clone(),
        };
        self.db = db;
        self.log = log;
        self.meta = meta;
        self.poisoned = false;
        fs::remove_dir_all(&new).map_err(|e| JournalError::io(&new, e))?;
        sync_dir(&up)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
