//! `vendctl journal export|verify` and `vendctl sales`: read the journal directly.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vendd::journal::{export, Journal};

#[derive(Subcommand)]
pub(crate) enum JournalCmd {
    /// Every record as JSON lines.
    Export {
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check the journal's invariants; prints every violation, exits 1 if any.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Copy, Clone, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
    Csv,
}

fn open(state_dir: &Path) -> anyhow::Result<Journal> {
    let dir = state_dir.join("journal");
    anyhow::ensure!(
        dir.join("db").exists() || dir.join("conf").exists(),
        "no journal at {}",
        dir.display()
    );
    Ok(Journal::open(&dir)?)
}

pub(crate) fn journal(state_dir: &Path, cmd: JournalCmd) -> anyhow::Result<ExitCode> {
    let j = open(state_dir)?;
    match cmd {
        JournalCmd::Export { out } => {
            let n = match out {
                Some(p) => {
                    let f = std::fs::File::create(&p)
                        .with_context(|| format!("cannot create {}", p.display()))?;
                    let mut w = std::io::BufWriter::new(f);
                    let n = export::export_jsonl(&j, &mut w)?;
                    w.flush()?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut w = std::io::BufWriter::new(stdout.lock());
                    let n = export::export_jsonl(&j, &mut w)?;
                    w.flush()?;
                    n
                }
            };
            eprintln!("exported {n} records");
            Ok(ExitCode::SUCCESS)
        }
        JournalCmd::Verify { json } => {
            let rep = export::verify(&j)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                for v in &rep.violations {
                    println!(
                        "violation at seq {} (rule {}): {}",
                        v.seq, v.rule, v.message
                    );
                }
                if !rep.checkpoint_consistent {
                    println!("violation: the checkpoint does not agree with a full replay");
                }
                println!(
                    "{} records checked, {} violations{}",
                    rep.records,
                    rep.violations.len(),
                    if rep.checkpoint_consistent {
                        ""
                    } else {
                        ", checkpoint inconsistent"
                    }
                );
            }
            Ok(if rep.violations.is_empty() && rep.checkpoint_consistent {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

pub(crate) fn sales(state_dir: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let j = open(state_dir)?;
    let s = export::sales(&j)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        Format::Csv => {
            println!("kind,key,count,value_minor");
            for (k, (n, v)) in &s.by_slot {
                println!("slot,{k},{n},{v}");
            }
            for (k, (n, v)) in &s.by_day {
                println!("day,{k},{n},{v}");
            }
        }
        Format::Table => {
            println!("{:<8} {:>8} {:>12}", "slot", "items", "value");
            for (k, (n, v)) in &s.by_slot {
                println!("{k:<8} {n:>8} {v:>12}");
            }
            println!();
            println!("{:<12} {:>8} {:>12}", "day (UTC)", "sales", "value");
            for (k, (n, v)) in &s.by_day {
                println!("{k:<12} {n:>8} {v:>12}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn dex(state_dir: &Path, config: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cfg = vendd::config::Config::load(config)?;
    let j = open(state_dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let text = vendd::dex::from_journal(&j, &cfg, now)?;
    // Our own checks before anything leaves: CRC-16/ARC over ST..G85 and the SE count.
    vendd::dex::parse(&text)?.verify()?;
    match out {
        Some(p) => std::fs::write(p, &text)?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn report(
    state_dir: &Path,
    config: &Path,
    which: &str,
    format: &str,
) -> anyhow::Result<ExitCode> {
    let cfg = vendd::config::Config::load(config)?;
    let j = open(state_dir)?;
    let fresh = vendd::core::State::new(cfg.catalog.clone(), cfg.day_offset_s);
    let (state, _) = j.load_state(fresh)?;
    let mut records = Vec::new();
    for r in j.iter_from(1) {
        records.push(r?.1);
    }
    let reports = vendd::reports::build(records.iter(), &state.catalog, cfg.day_offset_s);
    if format == "json" {
        let v = reports
            .json(which)
            .ok_or_else(|| anyhow::anyhow!("unknown report {which}"))?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let text = reports
            .csv(which)
            .ok_or_else(|| anyhow::anyhow!("unknown report {which}"))?;
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
