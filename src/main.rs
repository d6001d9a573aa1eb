//! `vendd`: the daemon. Parses the command line, loads the configuration, sets up logging
//! and hands over to the runtime.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vendd::config::Config;
use vendd::runtime::{self, Options};

#[derive(Parser)]
#[command(
    name = "vendd",
    version,
    about = "Controller daemon for an unattended vending machine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the machine with the configured hardware backend.
    Run {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Journal directory (overrides the config's state.dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Run the simulated kiosk (simulated hardware; embedded config unless --config).
    Simulate {
        /// Configuration file (default: the embedded 6×10 example).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seed for the simulated machine.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Journal directory.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Listen address (overrides the config's http.listen; loopback only).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Is this machine ready to sell? Checks the readers, camera, audio, GPIO, broker,
    /// clock, disk, journal and models, each with its fix; exit 1 if any fails.
    Doctor {
        /// Configuration file (default: the embedded example).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Check the simulated machine and readers, as `vendd simulate` runs them.
        #[arg(long)]
        simulate: bool,
        /// State directory (default: the config's, else /var/lib/vendd).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate a configuration file; errors name the file, line and field.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
    },
}

fn set_up_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VENDD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

/// Allocations of 64 KiB and more are mapped on their own and unmapped when freed (glibc
/// keeps freed memory in per-thread arenas otherwise): the face models' load-time copies and
/// the camera frames then return to the system. Measured with `benches/daemon_rss.py`: peak
/// RSS with the face models 155 MB → 104 MB.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vendd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Doctor {
            config,
            simulate,
            state_dir,
            json,
        } => {
            let cfg = match &config {
                Some(f) => Config::load(f)?,
                None => Config::embedded(),
            };
            let dir = state_dir
                .or(cfg.state_dir.clone())
                .unwrap_or_else(|| PathBuf::from("/var/lib/vendd"));
            let checks = vendd::doctor::run(&cfg, &dir, simulate);
            if json {
                println!("{}", serde_json::to_string_pretty(&checks)?);
            } else {
                print!("{}", vendd::doctor::render(&checks));
            }
            let failed = checks
                .iter()
                .any(|c| c.status == vendd::doctor::Status::Fail);
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::CheckConfig { file } => {
            let cfg = Config::load(&file)?;
            println!(
                "{}: ok ({} slots, {}×{} matrix, backend {:?})",
                file.display(),
                cfg.catalog.slots.len(),
                cfg.machine.rows,
                cfg.machine.cols,
                cfg.backend
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { config, state_dir } => {
            let cfg = Config::load(&config)?;
            let dir = state_dir
                .or(cfg.state_dir.clone())
                .unwrap_or_else(|| PathBuf::from("/var/lib/vendd"));
            serve(
                cfg,
                Options {
                    state_dir: dir,
                    simulate: false,
                    seed: 0,
                },
            )
        }
        Cmd::Simulate {
            config,
            seed,
            state_dir,
            listen,
        } => {
            let mut cfg = match config {
                Some(p) => Config::load(&p)?,
                None => Config::embedded(),
            };
            if let Some(l) = listen {
                anyhow::ensure!(l.ip().is_loopback(), "--listen must be a loopback address");
                cfg.http_listen = l;
            }
            let dir = state_dir
                .or(cfg.state_dir.clone())
                .unwrap_or_else(default_sim_dir);
            serve(
                cfg,
                Options {
                    state_dir: dir,
                    simulate: true,
                    seed,
                },
            )
        }
    }
}

fn default_sim_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("vendd-sim");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/vendd-sim")
}

fn serve(cfg: Config, opts: Options) -> anyhow::Result<ExitCode> {
    set_up_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        // Install the handlers before announcing readiness, so an early SIGTERM is a clean
        // stop rather than the default kill.
        let signals = Signals::install()?;
        let started = runtime::start(&cfg, &opts)
            .with_context(|| format!("starting with state in {}", opts.state_dir.display()))?;
        let app = vendd::ui::router(started.handle.clone());
        let listener = tokio::net::TcpListener::bind(cfg.http_listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.http_listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, simulate = opts.simulate, "listening");
        // Tests and scripts read this line to find the port when listening on :0.
        println!("vendd listening on http://{addr}");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut srx = stop_rx.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = srx.wait_for(|v| *v).await;
                })
                .await
        });
        vendd::sysd::ready();
        let shutdown = async move {
            signals.recv().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        };
        let res = started.run(shutdown).await;
        drop(stop_rx);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), server).await;
        res.context("the controller stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM (systemd stop) and SIGINT (Ctrl-C).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?,
        })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
