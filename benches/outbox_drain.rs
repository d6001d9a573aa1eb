//! Outbox drain rate: how fast the MQTT link empties a backlog of committed journal records
//! to a local Mosquitto at QoS 1 (reports per second, every one acknowledged by PUBACK and
//! the persisted report cursor moved past it). In the same run, against the same kind of
//! broker, the reference: a bare rumqttc v5 `AsyncClient` publishing the same payloads on
//! the same topics at QoS 1 with the same in-flight limit, timed until every PUBACK arrived.
//!
//! What the vendd side does per report, as in the daemon: read the record from sled
//! (`JournalReader::iter_from`), derive the report (`Reporter::feed`, JSON), hand it to the
//! outbox and rumqttc, match the outgoing packet id, and on the PUBACK advance the outbox
//! and store the cursor in sled. Timed from `Link::new` until `LinkStatus.cursor == N`.
//! The bare side is timed from `AsyncClient::new` until the N-th PUBACK; both include the
//! TCP connect and CONNACK (about a millisecond on loopback). Mosquitto's CONNACK announces
//! Receive Maximum 20 (its `max_inflight_messages` default) and rumqttc caps its window at
//! it, so above 20 the in-flight limit only changes how much waits in rumqttc's channel; the
//! summary prints the value the broker sent.
//!
//! Each round starts a fresh broker (no persistence, loopback, free port) and runs both
//! sides on it with fresh client ids, alternating which goes first. The journal is written
//! once (a planogram record, then door and alert records: one report each) and the report
//! cursor is reset to 0 before every vendd drain.
//!
//! Besides criterion's statistics (`outbox_drain/inflight_K/{vendd_link,bare_rumqttc}`), a
//! summary with the median rates of both and their ratio is printed (the README reports
//! it; goal ≥ 0.7). Environment: `BENCH_N` (records, default 5000), `BENCH_INFLIGHT`
//! (comma-separated in-flight limits, default `32,100`), `BENCH_ROUNDS` (interleaved rounds
//! per limit, default 8). Needs `mosquitto` on the PATH. Traffic goes to 127.0.0.1 only.

#[path = "../tests/broker.rs"]
#[allow(unused_imports)] // the harness is shared with the tests, which use more of it
mod broker;

use broker::{unique_client_id, BrokerOpts, Mosquitto};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Outgoing;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use vendd::config::{Config, MqttConfig};
use vendd::core::record::{AlertKind, Record, Stamped};
use vendd::core::{Controller, SlotId, State};
use vendd::journal::Journal;
use vendd::report::event::{Reporter, ReporterConfig};
use vendd::report::link::{Channels, Identity, Link, LinkStatus};
use vendd::ui::view::Snapshot;

/// The broker's Receive Maximum from the last CONNACK of the bare publisher (0: none sent);
/// rumqttc caps its in-flight window at it.
static RECEIVE_MAX: AtomicU32 = AtomicU32::new(0);

/// Longest a single drain may take before the bench gives up (a stuck link is a bug).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn inflight_limits() -> Vec<usize> {
    std::env::var("BENCH_INFLIGHT")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![32, 100])
}

/// One message as the bare publisher sends it.
#[derive(Clone)]
struct Msg {
    topic: String,
    payload: String,
    retain: bool,
}

/// A journal holding `n` committed records, each producing exactly one report, and what
/// the link needs besides.
struct Fixture {
    _dir: tempfile::TempDir,
    journal: Journal,
    n: u64,
    identity: Identity,
    snapshot: Snapshot,
    /// The `[mqtt]` section to start from.
    mqtt: MqttConfig,
    /// The reports of the `n` records, rendered as the link renders them.
    msgs: Vec<Msg>,
}

impl Fixture {
    fn new(n: u64) -> Fixture {
        assert!(n >= 1);
        let cfg = Config::embedded();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut journal = Journal::open(&dir.path().join("journal")).expect("open journal");
        let mut at = 1_800_000_000_000u64;
        let mut records = vec![Record::Planogram {
            catalog: cfg.catalog.clone(),
            source: cfg.planogram_source.clone(),
        }];
        for i in 1..n {
            records.push(if i % 4 == 3 {
                Record::Alert {
                    kind: AlertKind::StockMismatch,
                    sid: Some(i),
                    slot: Some(SlotId::from_matrix((i % 6) as u8, ((i / 6) % 10) as u8)),
                    message: format!("the sensor saw 2 items, the stock count held 1 ({i})"),
                }
            } else {
                Record::Door { open: i % 2 == 1 }
            });
        }
        let stamped: Vec<Stamped> = records
            .into_iter()
            .map(|record| {
                at += 250;
                Stamped { at, record }
            })
            .collect();
        for st in &stamped {
            journal.append(st).expect("append");
        }
        journal.commit().expect("commit");
        assert_eq!(journal.next_seq(), n + 1);

        let identity = Identity {
            machine: cfg.machine.id.clone(),
            site: cfg.machine.site.clone(),
            firmware: env!("CARGO_PKG_VERSION").to_string(),
            config_version: cfg.planogram_source.clone(),
            currency: cfg.catalog.currency,
            rows: cfg.machine.rows,
            cols: cfg.machine.cols,
            config_path: None,
            dex: None,
        };
        let mqtt = mqtt_section();
        let mut reporter = Reporter::new(ReporterConfig {
            machine_id: identity.machine.clone(),
            site: identity.site.clone(),
            currency: identity.currency,
            low_stock: mqtt.low_stock,
        });
        let mut msgs = Vec::with_capacity(n as usize);
        for (i, st) in stamped.iter().enumerate() {
            let reports = reporter.feed(i as u64 + 1, st);
            assert_eq!(reports.len(), 1, "record {} must give one report", i + 1);
            for r in reports {
                msgs.push(Msg {
                    topic: format!("{}/{}", mqtt.topic_root, r.topic_suffix),
                    payload: r.payload.to_string(),
                    retain: r.retain,
                });
            }
        }
        let ctl = Controller::new(cfg.core.clone(), State::new(cfg.catalog.clone(), 0));
        let snapshot = vendd::ui::view::snapshot(&ctl, at, n);
        Fixture {
            _dir: dir,
            journal,
            n,
            identity,
            snapshot,
            mqtt,
            msgs,
        }
    }

    fn mean_payload(&self) -> usize {
        self.msgs.iter().map(|m| m.payload.len()).sum::<usize>() / self.msgs.len()
    }

    /// The embedded configuration's `[mqtt]` section, switched on, pointed at `port`.
    /// (Parsed rather than built field by field, so new fields get their defaults.)
    fn mqtt_config(&self, port: u16, max_in_flight: usize) -> MqttConfig {
        let mut m = self.mqtt.clone();
        m.port = port;
        m.client_id = unique_client_id("bench-vendd");
        m.max_in_flight = max_in_flight;
        m
    }

    /// The daemon's path: a `Link` drains the whole journal (cursor reset to 0 first).
    fn drain_vendd(&self, rt: &Runtime, port: u16, max_in_flight: usize) -> Duration {
        let reader = self.journal.reader();
        reader
            .set_report_cursor(0)
            .expect("reset the report cursor");
        let n = self.n;
        // Every sender stays alive for the whole run: a closed watch would make the link's
        // `changed()` branch fire at once, forever.
        let (_committed_tx, committed_rx) = watch::channel(n);
        let (_snap_tx, snap_rx) = watch::channel(self.snapshot.clone());
        let (status_tx, status_rx) = watch::channel(LinkStatus::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        // Remote commands would go to the controller; none arrive here.
        let (core_tx, _core_rx) = tokio::sync::mpsc::channel(16);
        let (_auth_tx, auth_rx) = tokio::sync::mpsc::unbounded_channel();
        let cfg = self.mqtt_config(port, max_in_flight);
        let id = self.identity.clone();
        rt.block_on(async move {
            let t = Instant::now();
            let ch = Channels {
                diagnostics: std::sync::Arc::new(std::sync::OnceLock::new()),
                committed: committed_rx,
                snapshot: snap_rx,
                status: status_tx,
                core: core_tx,
                auth: auth_rx,
            };
            let link = Link::new(cfg, id, reader, ch).expect("link set-up");
            let task = tokio::spawn(link.run(stop_rx));
            // Poll the status every millisecond, as the daemon's health endpoint reads it,
            // rather than `wait_for`: a waiter woken on every status update (once per event
            // loop turn) would cost the link a cross-thread wake-up per message.
            let deadline = Instant::now() + DRAIN_TIMEOUT;
            let mut drained = false;
            while Instant::now() < deadline {
                if status_rx.borrow().cursor >= n {
                    drained = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let took = t.elapsed();
            let last = status_rx.borrow().clone();
            let _ = stop_tx.send(true);
            let _ = task.await;
            assert!(
                drained,
                "the link did not drain {n} records in {DRAIN_TIMEOUT:?}: {last:?}"
            );
            took
        })
    }

    /// The reference: a bare rumqttc publisher, same messages, same in-flight limit.
    fn drain_bare(&self, rt: &Runtime, port: u16, max_in_flight: usize) -> Duration {
        let msgs = self.msgs.clone();
        let n = msgs.len();
        rt.block_on(async move {
            let t = Instant::now();
            let mut o = MqttOptions::new(unique_client_id("bench-bare"), "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(30));
            o.set_outgoing_inflight_upper_limit(max_in_flight.min(u16::MAX as usize) as u16);
            let (client, mut eventloop) = AsyncClient::new(o, 2048);
            let producer = tokio::spawn(async move {
                for m in msgs {
                    client
                        .publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
                        .await
                        .expect("request channel open");
                }
                client
            });
            let mut acked = 0;
            let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
            while acked < n {
                match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                        assert!(
                            matches!(
                                ack.reason,
                                PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                            ),
                            "the broker refused a publish: {ack:?}"
                        );
                        acked += 1;
                    }
                    Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                        let max = ack.properties.and_then(|p| p.receive_max).unwrap_or(0);
                        RECEIVE_MAX.store(u32::from(max), Ordering::Relaxed);
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => panic!("bare publisher: connection error {e}"),
                    Err(_) => panic!("bare publisher: {acked} of {n} acked in {DRAIN_TIMEOUT:?}"),
                }
            }
            let took = t.elapsed();
            let client = producer.await.expect("producer");
            let _ = client.try_disconnect();
            let end = tokio::time::Instant::now() + Duration::from_secs(2);
            while let Ok(Ok(ev)) = tokio::time::timeout_at(end, eventloop.poll()).await {
                if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
            took
        })
    }
}

/// `[mqtt]` of the embedded configuration with `enabled = true`; telemetry once an hour
/// (its first tick comes before the ConnAck, when nothing is sent, so none in a run).
fn mqtt_section() -> MqttConfig {
    let mut section = String::new();
    let mut text = String::new();
    for line in vendd::config::EMBEDDED.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            section = t.to_string();
        }
        let key = t.split('=').next().unwrap_or("").trim();
        let line = match (section.as_str(), key) {
            ("[mqtt]", "enabled") => "enabled = true",
            ("[mqtt]", "telemetry_interval_s") => "telemetry_interval_s = 3600",
            _ => line,
        };
        text.push_str(line);
        text.push('\n');
    }
    let cfg = Config::parse(&text, "<bench>", None).expect("bench configuration");
    let mut m = cfg.mqtt.expect("[mqtt] enabled");
    m.host = "127.0.0.1".into();
    m
}

fn broker() -> Mosquitto {
    Mosquitto::start(&BrokerOpts {
        persistence: false,
        ..BrokerOpts::default()
    })
}

/// The daemon's runtime: multi-threaded with two workers (`vendd` `serve`).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn benches(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches once as a smoke test (no `--bench` flag):
    // keep that short; `cargo bench` measures in full.
    let full = std::env::args().any(|a| a == "--bench");
    let n: u64 = env_or("BENCH_N", if full { 5000 } else { 500 });
    let rounds: usize = env_or("BENCH_ROUNDS", if full { 8 } else { 1 });
    let limits = inflight_limits();
    let fx = Fixture::new(n);
    let rt = runtime();

    for &k in &limits {
        let mut g = c.benchmark_group(format!("outbox_drain/inflight_{k}"));
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .throughput(Throughput::Elements(n));
        g.bench_function("vendd_link", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let mosq = broker();
                        fx.drain_vendd(&rt, mosq.port(), k)
                    })
                    .sum()
            })
        });
        g.bench_function("bare_rumqttc", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let mosq = broker();
                        fx.drain_bare(&rt, mosq.port(), k)
                    })
                    .sum()
            })
        });
        g.finish();
    }

    if rounds == 0 {
        return;
    }
    // Side by side, interleaved on a fresh broker per round, alternating which goes first.
    println!(
        "\nsummary outbox_drain ({n} reports of {} bytes mean payload, QoS 1, local mosquitto, \
         {rounds} interleaved rounds per in-flight limit):",
        fx.mean_payload()
    );
    for &k in &limits {
        let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        for r in 0..rounds {
            let mosq = broker();
            if r % 2 == 0 {
                a.push(rate(n, fx.drain_vendd(&rt, mosq.port(), k)));
                b.push(rate(n, fx.drain_bare(&rt, mosq.port(), k)));
            } else {
                b.push(rate(n, fx.drain_bare(&rt, mosq.port(), k)));
                a.push(rate(n, fx.drain_vendd(&rt, mosq.port(), k)));
            }
        }
        let (amin, amax) = (
            a.iter().copied().fold(f64::MAX, f64::min),
            a.iter().copied().fold(0.0, f64::max),
        );
        let (bmin, bmax) = (
            b.iter().copied().fold(f64::MAX, f64::min),
            b.iter().copied().fold(0.0, f64::max),
        );
        let (am, bm) = (median(&mut a), median(&mut b));
        let recv_max = match RECEIVE_MAX.load(Ordering::Relaxed) {
            0 => "none".to_string(),
            m => m.to_string(),
        };
        println!("  in-flight {k} (broker Receive Maximum {recv_max}):");
        println!("    vendd link (journal → outbox → rumqttc): median {am:>8.0} msgs/s  (min {amin:.0}, max {amax:.0})");
        println!("    bare rumqttc publisher:                  median {bm:>8.0} msgs/s  (min {bmin:.0}, max {bmax:.0})");
        println!(
            "    ratio vendd/bare: {:.2}  (goal >= 0.70: {})",
            am / bm,
            if am / bm >= 0.7 { "met" } else { "NOT met" }
        );
    }
}

criterion_group!(outbox, benches);
criterion_main!(outbox);
