//! `vendctl`: the operator's and monitoring staff's command line.
//!
//! Journal commands (`journal`, `sales`) open the journal directly, so the daemon must be
//! stopped (sled allows one process); a clear error says so when it is not. The MQTT
//! commands (`keygen`, `cmd`, `monitor`) never touch the journal or `--state-dir`.
//!
//! Exit codes: 0 success; 1 journal violations or a command the machine refused; 2 usage,
//! I/O or connection errors (and a command refused locally before sending); 3 no command
//! result before `--timeout-s`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "vendctl/authorise.rs"]
mod authorise;
#[path = "vendctl/broker.rs"]
mod broker;
#[path = "vendctl/cmd.rs"]
mod cmd;
#[path = "vendctl/fleet.rs"]
mod fleet;
#[path = "vendctl/journal.rs"]
mod journal;
#[path = "vendctl/keygen.rs"]
mod keygen;
#[path = "vendctl/monitor.rs"]
mod monitor;
#[path = "vendctl/payqr.rs"]
mod payqr;

#[derive(Parser)]
#[command(name = "vendctl", version, about = "Operator CLI for vendd")]
struct Cli {
    /// vendd state directory (the journal is its `journal/` folder); only `journal` and
    /// `sales` use it.
    #[arg(long, global = true, default_value = "/var/lib/vendd")]
    state_dir: PathBuf,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Journal tools.
    Journal {
        #[command(subcommand)]
        cmd: journal::JournalCmd,
    },
    /// Sales per slot and per day.
    Sales {
        /// Output format.
        #[arg(long, value_enum, default_value_t = journal::Format::Table)]
        format: journal::Format,
    },
    /// Operator reports from the journal: `sales` (by slot, product, payment method and
    /// day), `refill` (what to bring to this machine), `faults`, `refunds`.
    Report {
        /// Which report.
        #[arg(value_parser = ["sales", "refill", "faults", "refunds"])]
        which: String,
        /// Output format.
        #[arg(long, value_parser = ["json", "csv"], default_value = "csv")]
        format: String,
        /// The machine's configuration (its day offset and planogram).
        #[arg(long, default_value = "/etc/vendd/vendd.toml")]
        config: PathBuf,
    },
    /// The DEX/EVA-DTS audit file (EVA-DTS 6.x) from the journal: counters, selections,
    /// events, CRC. Reads the journal directly (the daemon must be stopped, as for `sales`).
    Dex {
        /// The machine's configuration (identity: serial, model, location).
        #[arg(long, default_value = "/etc/vendd/vendd.toml")]
        config: PathBuf,
        /// Write the file here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Make an operator key pair: the secret key file (mode 0600) and its public key.
    Keygen(keygen::KeygenArgs),
    /// Sign a command, send it to a machine over MQTT and print its result.
    Cmd(cmd::CmdArgs),
    /// Watch every machine on the broker live (status, telemetry, events).
    Monitor(monitor::MonitorArgs),
    /// Run the reference authoriser: approve payments against an accounts file.
    Authorise(authorise::AuthoriseArgs),
    /// Print the credential hash (for accounts files and deny lists).
    Token(authorise::TokenArgs),
    /// Pay a dynamic merchant QR as the shopper's phone would (for trials with the
    /// reference authoriser).
    PayQr(payqr::PayQrArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vendctl: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Command::Journal { cmd } => journal::journal(&cli.state_dir, cmd),
        Command::Sales { format } => journal::sales(&cli.state_dir, format),
        Command::Report {
            which,
            format,
            config,
        } => journal::report(&cli.state_dir, &config, &which, &format),
        Command::Dex { config, out } => journal::dex(&cli.state_dir, &config, out.as_deref()),
        Command::Keygen(a) => keygen::run(&a),
        Command::Cmd(a) => cmd::run(a),
        Command::Monitor(a) => monitor::run(a),
        Command::Authorise(a) => authorise::run(a),
        Command::Token(a) => authorise::token(&a),
        Command::PayQr(a) => payqr::run(a),
    }
}
