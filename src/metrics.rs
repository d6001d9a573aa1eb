//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4) for operators who use
//! Grafana: sessions and vends by outcome from the audit counters, online authorisation
//! latency and journal commit latency as histograms, the outbox depth and link state, slot
//! faults, and the readers' health. Served on loopback like the rest of the API.

use crate::report::link::LinkStatus;
use crate::ui::view::Snapshot;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket bounds, seconds.
pub const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0];

/// A cumulative histogram of durations (lock-free).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let n = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// What the core loop measures as it runs.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Journal commit points (write + flush + fsync).
    pub journal_commit: Histogram,
    /// Online authorisation: request sent → answer in.
    pub auth_latency: Histogram,
    /// Inputs the core refused.
    pub rejected_inputs: AtomicU64,
}

fn counter(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// Renders every metric. `link` is None when reporting is off.
pub fn render(
    snap: &Snapshot,
    m: &Metrics,
    link: Option<&LinkStatus>,
    readers: &crate::readers::ReadersReport,
) -> String {
    let mut out = String::new();
    let life = &snap.counters.lifetime;
    let exp = 10f64.powi(snap.catalog.exponent as i32);
    counter(
        &mut out,
        "vendd_sales_total",
        "Sessions that captured money.",
        &[(String::new(), life.sales as f64)],
    );
    counter(
        &mut out,
        "vendd_vends_total",
        "Items vended, by outcome (delivered and charged, or failed and not charged).",
        &[
            ("{outcome=\"delivered\"}".into(), life.paid.count as f64),
            ("{outcome=\"failed\"}".into(), life.failed_vends as f64),
        ],
    );
    counter(
        &mut out,
        "vendd_revenue_total",
        "Money captured, in the currency's major unit.",
        &[(
            format!("{{currency=\"{}\"}}", snap.catalog.currency),
            life.paid.value as f64 / exp,
        )],
    );
    counter(
        &mut out,
        "vendd_vends_by_method_total",
        "Items vended and paid, by payment method.",
        &life
            .by_method
            .iter()
            .map(|(k, t)| (format!("{{method=\"{}\"}}", k.as_str()), t.count as f64))
            .collect::<Vec<_>>(),
    );
    counter(
        &mut out,
        "vendd_declines_total",
        "Payments declined (of which deny-listed credentials).",
        &[
            (String::new(), life.declines as f64),
            (
                "{reason=\"deny_listed\"}".into(),
                life.denied_credentials as f64,
            ),
        ],
    );
    counter(
        &mut out,
        "vendd_refunds_total",
        "Operator refunds.",
        &[(String::new(), life.refunds.count as f64)],
    );
    counter(
        &mut out,
        "vendd_door_openings_total",
        "Service door openings.",
        &[(String::new(), life.door_openings as f64)],
    );
    counter(
        &mut out,
        "vendd_rejected_inputs_total",
        "Inputs the core refused (bad requests, not possible now).",
        &[(
            String::new(),
            m.rejected_inputs.load(Ordering::Relaxed) as f64,
        )],
    );
    m.journal_commit.render(
        &mut out,
        "vendd_journal_commit_seconds",
        "Journal commit points (append, flush, fsync), seconds.",
    );
    m.auth_latency.render(
        &mut out,
        "vendd_auth_latency_seconds",
        "Online authorisation, request to answer, seconds.",
    );
    let faults = snap
        .catalog
        .slots
        .iter()
        .filter(|s| s.fault.is_some())
        .count();
    gauge(
        &mut out,
        "vendd_slot_faults",
        "Slots with a fault now.",
        &[(String::new(), faults as f64)],
    );
    gauge(
        &mut out,
        "vendd_stock",
        "Items in stock per slot, as the journal counts them.",
        &snap
            .catalog
            .slots
            .iter()
            .map(|s| (format!("{{slot=\"{}\"}}", s.id), f64::from(s.stock)))
            .collect::<Vec<_>>(),
    );
    gauge(
        &mut out,
        "vendd_door_open",
        "Service door open (1) or closed (0).",
        &[(String::new(), f64::from(u8::from(snap.session.door_open)))],
    );
    gauge(
        &mut out,
        "vendd_session_open",
        "A shopper's session is open.",
        &[(
            String::new(),
            f64::from(u8::from(snap.session.sid.is_some())),
        )],
    );
    gauge(
        &mut out,
        "vendd_journal_seq",
        "Last journal sequence number.",
        &[(String::new(), snap.session.journal_seq as f64)],
    );
    if let Some(l) = link {
        gauge(
            &mut out,
            "vendd_link_up",
            "Connected to the operator's broker.",
            &[(String::new(), f64::from(u8::from(l.connected)))],
        );
        gauge(
            &mut out,
            "vendd_outbox_depth",
            "Committed records whose reports the broker has not acknowledged.",
            &[(String::new(), l.backlog as f64)],
        );
    }
    if let Some(n) = &readers.nfc {
        gauge(
            &mut out,
            "vendd_nfc_reader_ok",
            "The NFC reader answers.",
            &[(String::new(), f64::from(u8::from(n.ok)))],
        );
    }
    if let Some(c) = &readers.camera {
        gauge(
            &mut out,
            "vendd_camera_ok",
            "The camera delivers frames.",
            &[(String::new(), f64::from(u8::from(c.ok)))],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_with_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(5));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        assert!(out.contains("x_sum 5.0033\n"), "{out}");
    }
}
