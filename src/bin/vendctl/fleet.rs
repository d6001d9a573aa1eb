//! What `vendctl monitor` knows about every machine, built from the messages it receives
//! (retained `status`, `telemetry`, `events/<kind>`), and the table it shows.
//!
//! Pure: the caller passes the clock. Machines are keyed by topic root. Events arrive at
//! least once, so sales are de-duplicated by `event_id`; "today" is the UTC day, as in
//! `vendctl sales`.

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use vendd::core::Currency;

const DAY_MS: u64 = 86_400_000;

/// Every machine seen, by topic root.
pub(crate) struct Fleet {
    machines: BTreeMap<String, Machine>,
    /// A slot with at most this many items (and more than 0) is low.
    low_stock: u64,
}

#[derive(Default)]
struct Machine {
    site: String,
    machine: String,
    state: Option<String>,
    last_seen: Option<u64>,
    door_open: Option<bool>,
    faults: BTreeMap<String, String>,
    stock: BTreeMap<String, u64>,
    /// Sales per UTC day number; only today and yesterday are kept.
    sales: BTreeMap<u64, DaySales>,
    currency: Option<String>,
}

#[derive(Default)]
struct DaySales {
    ids: HashSet<String>,
    count: u64,
    value: i64,
}

impl Fleet {
    pub(crate) fn new(low_stock: u64) -> Fleet {
        Fleet {
            machines: BTreeMap::new(),
            low_stock,
        }
    }

    /// Takes in one message; true if the table may have changed. Topics other than a
    /// machine's status, telemetry and events, and payloads that are not JSON objects, are
    /// ignored.
    pub(crate) fn handle(&mut self, topic: &str, payload: &[u8], now_ms: u64) -> bool {
        let Some((root, what)) = split_topic(topic) else {
            return false;
        };
        let Ok(Value::Object(p)) = serde_json::from_slice::<Value>(payload) else {
            return false;
        };
        let m = self.machines.entry(root.to_string()).or_insert_with(|| {
            let mut parts = root.rsplit('/');
            let machine = parts.next().unwrap_or_default().to_string();
            let site = parts.next().unwrap_or_default().to_string();
            Machine {
                site,
                machine,
                ..Machine::default()
            }
        });
        let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(s) = text("machine") {
            m.machine = s;
        }
        if let Some(s) = text("site") {
            m.site = s;
        }
        let ts = p.get("ts").and_then(Value::as_u64).unwrap_or(now_ms);
        m.last_seen = Some(m.last_seen.map_or(ts, |l| l.max(ts)));
        match what {
            Topic::Status => m.state = text("state"),
            Topic::Telemetry => {
                m.door_open = p.get("door_open").and_then(Value::as_bool).or(m.door_open);
                if let Some(Value::Object(f)) = p.get("faults") {
                    m.faults = f
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("fault").to_string()))
                        .collect();
                }
                if let Some(Value::Object(s)) = p.get("stock") {
                    m.stock = s
                        .iter()
                        .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
                        .collect();
                }
            }
            Topic::Event(kind) => m.event(kind, &p, ts, now_ms),
        }
        true
    }

    /// The table, one line per machine, columns padded to fit.
    pub(crate) fn render(&self, now_ms: u64) -> String {
        let today = now_ms / DAY_MS;
        let mut rows = vec![[
            "MACHINE",
            "STATE",
            "LAST SEEN",
            "DOOR",
            "FAULTS",
            "LOW",
            "EMPTY",
            "SALES TODAY",
        ]
        .map(String::from)];
        for m in self.machines.values() {
            let slots = |f: &dyn Fn(u64) -> bool| {
                list(
                    m.stock
                        .iter()
                        .filter(|(_, n)| f(**n))
                        .map(|(s, _)| s.clone()),
                )
            };
            let (count, value) = m.sales.get(&today).map_or((0, 0), |d| (d.count, d.value));
            rows.push([
                format!("{}/{}", m.site, m.machine),
                m.state.clone().unwrap_or_else(|| "?".into()),
                m.last_seen
                    .map_or("-".into(), |t| ago(now_ms.saturating_sub(t))),
                match m.door_open {
                    Some(true) => "OPEN".into(),
                    Some(false) => "closed".into(),
                    None => "-".into(),
                },
                list(m.faults.iter().map(|(s, f)| format!("{s}:{f}"))),
                slots(&|n| n > 0 && n <= self.low_stock),
                slots(&|n| n == 0),
                format!("{count} / {}", money(value, m.currency.as_deref())),
            ]);
        }
        let mut widths = [0usize; 8];
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out += line.join("  ").trim_end();
            out.push('\n');
        }
        out
    }
}

impl Machine {
    fn event(&mut self, kind: &str, p: &serde_json::Map<String, Value>, ts: u64, now_ms: u64) {
        let slot = p.get("slot").and_then(Value::as_str).map(str::to_string);
        match kind {
            "door" => self.door_open = p.get("open").and_then(Value::as_bool).or(self.door_open),
            "fault" => match (slot, p.get("state").and_then(Value::as_str)) {
                (Some(s), Some("raised")) => {
                    let why = p.get("reason").and_then(Value::as_str).unwrap_or("fault");
                    self.faults.insert(s, why.to_string());
                }
                (Some(s), Some("cleared")) => {
                    self.faults.remove(&s);
                }
                _ => {}
            },
            "stock_low" => {
                if let (Some(s), Some(n)) = (slot, p.get("stock").and_then(Value::as_u64)) {
                    self.stock.insert(s, n);
                }
            }
            "sale" => {
                let id = p
                    .get("event_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let day = self.sales.entry(ts / DAY_MS).or_default();
                if id.is_empty() || day.ids.insert(id.to_string()) {
                    day.count += 1;
                    day.value += p.get("captured").and_then(Value::as_i64).unwrap_or(0);
                }
                if let Some(c) = p.get("currency").and_then(Value::as_str) {
                    self.currency = Some(c.to_string());
                }
                let yesterday = (now_ms / DAY_MS).saturating_sub(1);
                self.sales.retain(|d, _| *d >= yesterday);
            }
            _ => {}
        }
    }
}

enum Topic<'a> {
    Status,
    Telemetry,
    Event(&'a str),
}

fn split_topic(topic: &str) -> Option<(&str, Topic<'_>)> {
    if let Some(root) = topic.strip_suffix("/status") {
        return Some((root, Topic::Status));
    }
    if let Some(root) = topic.strip_suffix("/telemetry") {
        return Some((root, Topic::Telemetry));
    }
    let (root, kind) = topic.rsplit_once("/events/")?;
    (!kind.is_empty() && !kind.contains('/')).then_some((root, Topic::Event(kind)))
}

fn list(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    match all.len() {
        0 => "-".into(),
        1..=4 => all.join(","),
        n => format!("{},… ({n})", all[..3].join(",")),
    }
}

fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn money(minor: i64, currency: Option<&str>) -> String {
    let Some(code) = currency else {
        return minor.to_string();
    };
    match Currency::parse(code).map(|c| c.exponent()) {
        Ok(0) | Err(_) => format!("{minor} {code}"),
        Ok(e) => {
            let d = 10u64.pow(e);
            let sign = if minor < 0 { "-" } else { "" };
            let m = minor.unsigned_abs();
            format!("{sign}{}.{:0w$} {code}", m / d, m % d, w = e as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000_000;
    const ROOT: &str = "vend/v1/s1/k1";

    fn feed(f: &mut Fleet, suffix: &str, v: Value) -> bool {
        f.handle(&format!("{ROOT}/{suffix}"), v.to_string().as_bytes(), NOW)
    }

    fn sale(id: &str, captured: i64, ts: u64) -> Value {
        json!({"kind":"sale","event_id":id,"ts":ts,"captured":captured,"currency":"EUR",
               "machine":"k1","site":"s1"})
    }

    #[test]
    fn status_telemetry_and_events_fill_one_row() {
        let mut f = Fleet::new(2);
        assert!(feed(
            &mut f,
            "status",
            json!({"state":"online","ts":NOW - 5000})
        ));
        assert!(feed(
            &mut f,
            "telemetry",
            json!({"ts":NOW - 3000,"door_open":false,"stock":{"A1":0,"A2":2,"A3":7},
                   "faults":{"B1":"jam"}})
        ));
        assert!(feed(
            &mut f,
            "events/door",
            json!({"open":true,"ts":NOW - 1000})
        ));
        assert!(feed(&mut f, "events/sale", sale("k1:10", 160, NOW - 900)));
        assert!(feed(&mut f, "events/sale", sale("k1:10", 160, NOW - 900)));
        assert!(feed(&mut f, "events/sale", sale("k1:12", 1100, NOW - 800)));
        assert!(feed(&mut f, "events/sale", sale("k1:1", 999, NOW - DAY_MS)));
        let t = f.render(NOW);
        let row = t.lines().nth(1).unwrap();
        for part in [
            "s1/k1",
            "online",
            "0s ago",
            "OPEN",
            "B1:jam",
            "A2",
            "A1",
            "2 / 12.60 EUR",
        ] {
            assert!(row.contains(part), "{part} missing in {row}");
        }
        assert!(t.lines().next().unwrap().starts_with("MACHINE"));
    }

    #[test]
    fn fault_events_raise_and_clear_and_offline_keeps_the_last_data() {
        let mut f = Fleet::new(2);
        feed(
            &mut f,
            "events/fault",
            json!({"slot":"C2","state":"raised","reason":"jam"}),
        );
        assert!(f.render(NOW).contains("C2:jam"));
        feed(
            &mut f,
            "events/fault",
            json!({"slot":"C2","state":"cleared"}),
        );
        feed(&mut f, "status", json!({"state":"offline"}));
        let t = f.render(NOW);
        assert!(!t.contains("C2:jam") && t.contains("offline"), "{t}");
    }

    #[test]
    fn other_topics_and_non_json_payloads_are_ignored() {
        let mut f = Fleet::new(2);
        assert!(!f.handle("vend/v1/s1/k1/cmd/restock", b"{}", NOW));
        assert!(!f.handle("vend/v1/s1/k1/cmd/restock/result", b"{}", NOW));
        assert!(!f.handle("vend/v1/s1/k1/status", b"online", NOW));
        assert!(!f.handle("vend/v1/s1/k1/events/a/b", b"{}", NOW));
        assert_eq!(f.render(NOW).lines().count(), 1);
    }

    #[test]
    fn money_uses_the_currency_exponent() {
        assert_eq!(money(1260, Some("EUR")), "12.60 EUR");
        assert_eq!(money(5, Some("EUR")), "0.05 EUR");
        assert_eq!(money(500, Some("JPY")), "500 JPY");
        assert_eq!(money(0, None), "0");
    }
}
