//! `vendd doctor`: is this machine ready to sell? Each check says what it found and, when
//! something is wrong, the fix in plain words. Failures make the command exit non-zero;
//! warnings (a clock not known to be synchronised, a journal in use by the running daemon)
//! do not.

use crate::camera::{self, SimScene, SourceKind};
use crate::config::{Backend, Config, NfcReader};
use crate::nfc::reader::{DriverConfig, Pn532};
use crate::nfc::transport::Transport;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Worth a look; the machine still sells.
    Warn,
    /// Broken: fix it.
    Fail,
    /// Not configured on this machine.
    Skip,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (empty when nothing).
    pub fix: String,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>, fix: &str) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix: fix.to_string(),
    }
}

/// Runs every check. `simulate`: the simulated machine and readers, as `vendd simulate`.
pub fn run(cfg: &Config, state_dir: &Path, simulate: bool) -> Vec<Check> {
    let mut out = vec![check(
        "version",
        Status::Ok,
        format!("vendd {}", crate::runtime::VERSION),
        "",
    )];
    out.push(check(
        "config",
        Status::Ok,
        format!(
            "{}: {} slots, backend {:?}",
            cfg.file,
            cfg.catalog.slots.len(),
            if simulate { Backend::Sim } else { cfg.backend }
        ),
        "",
    ));
    out.push(gpio(cfg, simulate));
    out.push(nfc(cfg, simulate));
    out.push(camera_check(cfg, simulate));
    out.push(audio(cfg));
    out.push(broker(cfg));
    out.push(clock());
    out.push(disk(state_dir));
    out.push(journal(state_dir));
    out.push(models(cfg));
    out
}

fn gpio(cfg: &Config, simulate: bool) -> Check {
    if simulate || cfg.backend == Backend::Sim {
        return check("gpio", Status::Ok, "simulated machine", "");
    }
    let Some(map) = cfg.pinmap.as_ref() else {
        return check(
            "gpio",
            Status::Fail,
            "no pin map",
            "set [hardware] pinmap to a file from hardware/",
        );
    };
    match crate::hw::rpi_machine(map) {
        Ok(_) => check(
            "gpio",
            Status::Ok,
            format!("pin map {} claimed", map.name),
            "",
        ),
        Err(e) => check(
            "gpio",
            Status::Fail,
            format!("cannot drive the pins: {e}"),
            "run on the Raspberry Pi the pin map is for; the vendd user must be in group gpio \
             (/dev/gpiomem); stop any other program using these pins",
        ),
    }
}

fn nfc(cfg: &Config, simulate: bool) -> Check {
    let fix = "enable the bus (raspi-config nonint do_spi 0 / do_i2c 0 / do_serial_hw 0), check \
               the PN532's wiring and mode switches (hardware/README.md), and that the vendd \
               user is in groups spi, i2c and dialout";
    let transport: Box<dyn Transport + Send> = match (&cfg.nfc.reader, simulate) {
        (NfcReader::None, _) => return check("nfc", Status::Skip, "no reader configured", ""),
        (NfcReader::Sim, _) | (_, true) => Box::new(crate::nfc::sim::SimPn532::new(true).0),
        (
            NfcReader::Spi {
                bus,
                slave_select,
                clock_hz,
            },
            false,
        ) => match crate::nfc::rpi::SpiTransport::new(*bus, *slave_select, *clock_hz, cfg.nfc.pins)
        {
            Ok(t) => Box::new(t),
            Err(e) => return check("nfc", Status::Fail, format!("SPI: {e}"), fix),
        },
        (NfcReader::I2c { bus }, false) => {
            match crate::nfc::rpi::I2cTransport::new(*bus, cfg.nfc.pins) {
                Ok(t) => Box::new(t),
                Err(e) => return check("nfc", Status::Fail, format!("I2C: {e}"), fix),
            }
        }
        (NfcReader::Uart { path }, false) => {
            match crate::nfc::rpi::UartTransport::new(path, cfg.nfc.pins) {
                Ok(t) => Box::new(t),
                Err(e) => return check("nfc", Status::Fail, format!("UART: {e}"), fix),
            }
        }
    };
    let mut pn = Pn532::new(transport, DriverConfig::default());
    match pn.init() {
        Ok(fw) => check(
            "nfc",
            Status::Ok,
            format!("PN532 answers: firmware {fw:?}"),
            "",
        ),
        Err(e) => check(
            "nfc",
            Status::Fail,
            format!("the reader does not answer: {e}"),
            fix,
        ),
    }
}

fn camera_check(cfg: &Config, simulate: bool) -> Check {
    let mut cam = cfg.codes.camera.clone();
    if simulate && !matches!(cam.source, SourceKind::Replay(_) | SourceKind::None) {
        cam.source = SourceKind::Sim;
    }
    if cam.source == SourceKind::None {
        return check("camera", Status::Skip, "no camera configured", "");
    }
    let fix = "plug the camera in, check `v4l2-ctl --list-devices`, [camera] device and format, \
               and that the vendd user is in group video";
    match camera::open_source(&cam, &SimScene::default(), 1) {
        Ok(Some(mut src)) => match src.next_frame() {
            Ok(f) => check(
                "camera",
                Status::Ok,
                format!("delivers {}×{} frames", f.width(), f.height()),
                "",
            ),
            Err(e) => check("camera", Status::Fail, format!("no frame: {e}"), fix),
        },
        Ok(None) => check("camera", Status::Skip, "no camera configured", ""),
        Err(e) => check("camera", Status::Fail, e.to_string(), fix),
    }
}

fn audio(cfg: &Config) -> Check {
    let Some(v) = &cfg.kiosk.voice else {
        return check("audio", Status::Skip, "voice prompts off", "");
    };
    match &v.output {
        crate::speech::Output::Wav(dir) => match std::fs::create_dir_all(dir) {
            Ok(()) => check(
                "audio",
                Status::Ok,
                format!("prompts written to {}", dir.display()),
                "",
            ),
            Err(e) => check(
                "audio",
                Status::Fail,
                format!("{}: {e}", dir.display()),
                "make [kiosk.voice] wav_dir writable by the vendd user",
            ),
        },
        crate::speech::Output::Alsa(dev) => {
            match crate::voice::audio::AlsaSink::open(dev, 16_000) {
                Ok(_) => check("audio", Status::Ok, format!("ALSA device {dev} opens"), ""),
                Err(e) => check(
                    "audio",
                    Status::Fail,
                    e.to_string(),
                    "check `aplay -l`, [kiosk.voice] device, and that the vendd user is in group \
                 audio; without a sound card set [kiosk.voice] enabled = false (the screen \
                 still works)",
                ),
            }
        }
    }
}

fn broker(cfg: &Config) -> Check {
    let Some(m) = &cfg.mqtt else {
        return check("broker", Status::Skip, "reporting off ([mqtt])", "");
    };
    let fix = "check [mqtt] host and port, that the broker runs and this machine may reach it, \
               the CA file (TLS) and the username/password; the machine sells offline meanwhile";
    // A client id of its own and a clean session: never take over the daemon's session.
    let mut o = rumqttc::v5::MqttOptions::new(format!("{}-doctor", m.client_id), &m.host, m.port);
    o.set_clean_start(true);
    o.set_connection_timeout(5);
    if let Some((u, p)) = &m.credentials {
        o.set_credentials(u.clone(), p.clone());
    }
    if let Some(ca) = &m.ca_pem {
        match crate::report::link::tls_config(ca, m.client_auth.as_ref()) {
            Ok(t) => o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(t)),
            )),
            Err(e) => return check("broker", Status::Fail, e.to_string(), fix),
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return check("broker", Status::Fail, e.to_string(), fix),
    };
    let target = format!(
        "{}:{}{}",
        m.host,
        m.port,
        if m.ca_pem.is_some() { " (TLS)" } else { "" }
    );
    rt.block_on(async {
        let (client, mut ev) = rumqttc::v5::AsyncClient::new(o, 10);
        let started = Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(8), async {
            loop {
                match ev.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::ConnAck(_))) => {
                        return Ok(())
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        let _ = client.disconnect().await;
        match res {
            Ok(Ok(())) => check(
                "broker",
                Status::Ok,
                format!("{target} accepts us ({} ms)", started.elapsed().as_millis()),
                "",
            ),
            Ok(Err(e)) => check("broker", Status::Fail, format!("{target}: {e}"), fix),
            Err(_) => check(
                "broker",
                Status::Fail,
                format!("{target}: no answer in 8 s"),
                fix,
            ),
        }
    })
}

pub(crate) fn clock() -> Check {
    if Path::new("/run/systemd/timesync/synchronized").exists() {
        return check("clock", Status::Ok, "synchronised (systemd-timesyncd)", "");
    }
    let out = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "yes" => {
            check("clock", Status::Ok, "synchronised (NTP)", "")
        }
        _ => check(
            "clock",
            Status::Warn,
            "not known to be synchronised",
            "enable time sync (timedatectl set-ntp true) and let the machine reach an NTP \
             server: per-day limits, receipts and TLS certificates need the right time",
        ),
    }
}

pub(crate) fn disk(state_dir: &Path) -> Check {
    let probe = std::iter::successors(Some(state_dir), |p| p.parent())
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let Ok(c) = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes()) else {
        return check("disk", Status::Warn, "unusual path", "");
    };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return check(
            "disk",
            Status::Fail,
            format!("cannot stat {}", probe.display()),
            "check the state directory",
        );
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let total = st.f_blocks as u64 * st.f_frsize as u64;
    let mb = free / 1_000_000;
    let detail = format!(
        "{mb} MB free of {} MB at {}",
        total / 1_000_000,
        probe.display()
    );
    let fix = "free space on the state directory's disk (the journal needs room to commit)";
    if free < 200_000_000 {
        check("disk", Status::Fail, detail, fix)
    } else if free < 1_000_000_000 || free * 20 < total {
        check("disk", Status::Warn, detail, fix)
    } else {
        check("disk", Status::Ok, detail, "")
    }
}

fn journal(state_dir: &Path) -> Check {
    let dir = state_dir.join("journal");
    if !dir.exists() {
        return check(
            "journal",
            Status::Ok,
            format!("none yet at {} (created at the first start)", dir.display()),
            "",
        );
    }
    match crate::journal::Journal::open(&dir) {
        Ok(j) => match crate::journal::export::verify(&j) {
            Ok(r) if r.violations.is_empty() && r.checkpoint_consistent => check(
                "journal",
                Status::Ok,
                match j.recovery().summary() {
                    None => format!("{} records, invariants hold", r.records),
                    Some(done) => {
                        format!("{} records, invariants hold (at open: {done})", r.records)
                    }
                },
                "",
            ),
            Ok(r) => check(
                "journal",
                Status::Fail,
                format!("{} invariant violations", r.violations.len()),
                "run `vendctl journal verify` for the list and keep a copy of the state \
                 directory before anything else",
            ),
            Err(e) => check(
                "journal",
                Status::Fail,
                e.to_string(),
                "keep a copy of the state directory and contact support",
            ),
        },
        Err(e) if e.to_string().contains("in use") => check(
            "journal",
            Status::Warn,
            "in use by the running daemon (it checks the journal itself at start)",
            "",
        ),
        Err(e) => check(
            "journal",
            Status::Fail,
            e.to_string(),
            "check the state directory's owner (vendd) and disk",
        ),
    }
}

fn models(cfg: &Config) -> Check {
    let Some(f) = &cfg.face else {
        return check("models", Status::Skip, "face pay off", "");
    };
    let fix = "fetch and verify them: scripts/models.sh (or reinstall the package)";
    let paths = match crate::face::model::ModelPaths::from_dir(&f.models) {
        Ok(p) => p,
        Err(e) => return check("models", Status::Fail, e.to_string(), fix),
    };
    let files: [(&str, &PathBuf); 2] = [("yunet", &paths.yunet), ("sface", &paths.sface)];
    for (name, path) in files {
        if let Err(e) = crate::face::model::verify_file(name, path) {
            return check("models", Status::Fail, e.to_string(), fix);
        }
    }
    check(
        "models",
        Status::Ok,
        format!(
            "YuNet and SFace match their sha256 in {}",
            f.models.display()
        ),
        "",
    )
}

/// The same checks for the running daemon, from what its threads report (the devices are
/// in use, so they are not opened again): the service page's "Diagnostics".
pub fn live(h: &crate::runtime::Handle) -> Vec<Check> {
    let mut out = vec![check(
        "version",
        Status::Ok,
        format!("vendd {}", crate::runtime::VERSION),
        "",
    )];
    let r = h.readers.report();
    out.push(match &r.nfc {
        None => check("nfc", Status::Skip, "no reader configured", ""),
        Some(n) if n.ok => check(
            "nfc",
            Status::Ok,
            format!("answering ({} resets so far)", n.resets),
            "",
        ),
        Some(n) => check(
            "nfc",
            Status::Fail,
            format!("not answering (wedged: {}, resets: {})", n.wedged, n.resets),
            "check the PN532's cable and power; the daemon keeps resetting it; cards are not \
             offered meanwhile (codes and face are)",
        ),
    });
    out.push(match &r.camera {
        None => check("camera", Status::Skip, "no camera configured", ""),
        Some(c) if c.ok => check(
            "camera",
            Status::Ok,
            format!("{} frames, {} errors", c.frames, c.errors),
            "",
        ),
        Some(c) => check(
            "camera",
            Status::Fail,
            format!("no frames ({} errors)", c.errors),
            "check the camera's cable (`v4l2-ctl --list-devices`); codes and face are not \
             offered meanwhile",
        ),
    });
    out.push(match &h.link {
        None => check("broker", Status::Skip, "reporting off ([mqtt])", ""),
        Some(l) => {
            let l = l.borrow().clone();
            if l.connected && l.fault.is_none() {
                check(
                    "broker",
                    Status::Ok,
                    format!("connected, {} reports waiting", l.backlog),
                    "",
                )
            } else {
                check(
                    "broker",
                    Status::Fail,
                    format!(
                        "{} ({} reports waiting)",
                        l.fault.unwrap_or_else(|| "not connected".into()),
                        l.backlog
                    ),
                    "check the network and the broker; the machine sells offline and sends \
                     everything when the link is back",
                )
            }
        }
    });
    out.push(match &h.face {
        None => check("models", Status::Skip, "face pay off", ""),
        Some(d) => {
            let s = d.status();
            if s.available {
                check("models", Status::Ok, "face models loaded and verified", "")
            } else {
                check(
                    "models",
                    Status::Fail,
                    s.problem.unwrap_or_else(|| "loading".into()),
                    "fetch and verify them: scripts/models.sh (or reinstall the package)",
                )
            }
        }
    });
    out.push(match &h.kiosk.voice {
        None => check("audio", Status::Skip, "voice prompts off", ""),
        Some(_) => check("audio", Status::Ok, "speaker running", ""),
    });
    out.push(clock());
    out.push(disk(&h.state_dir));
    let seq = h.snapshot.borrow().session.journal_seq;
    out.push(check(
        "journal",
        Status::Ok,
        format!("open, last record {seq}"),
        "",
    ));
    out
}

/// The report as text: one line per check, the fix under each that is not fine.
pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "--  ",
        };
        s.push_str(&format!("{tag} {:<8} {}\n", c.name, c.detail));
        if !c.fix.is_empty() && matches!(c.status, Status::Fail | Status::Warn) {
            s.push_str(&format!("          fix: {}\n", c.fix));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Record, Stamped};

    #[test]
    fn the_journal_check_says_what_opening_had_to_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("journal");
        let c = journal(tmp.path());
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.starts_with("none yet"), "{}", c.detail);
        for _ in 0..2 {
            let mut j = crate::journal::Journal::open(&dir).unwrap();
            let at = j.next_seq();
            j.append(&Stamped {
                at,
                record: Record::Boot {
                    version: "test".into(),
                },
            })
            .unwrap();
            j.commit().unwrap();
        }
        let c = journal(tmp.path());
        assert_eq!(c.status, Status::Ok, "{}", c.detail);
        assert_eq!(c.detail, "2 records, invariants hold");
        // A snapshot write cut short (what a power cut while sled opens leaves).
        std::fs::write(dir.join("snap.7FFFFFFFFFFFFFF0.generating"), [0u8; 40]).unwrap();
        let c = journal(tmp.path());
        assert_eq!(c.status, Status::Ok, "{}", c.detail);
        assert_eq!(
            c.detail,
            "2 records, invariants hold (at open: 1 unfinished sled snapshot removed)"
        );
    }
}
