//! Writing a DEX/EVA-DTS audit file from the journal's counters.

use super::{crc16_arc, DexTotals};
use crate::core::record::{DeclineReason, Millis, PaymentMethod, Record, Stamped};
use crate::core::state::{CounterSet, Counters, Tally};
use crate::core::{Catalog, SlotId};
use std::collections::BTreeSet;

/// Who the machine is, as `DXS`, `ID1` and `DA1` report it. Copied from the machine's
/// configuration by the caller, so this module does not depend on the config types.
///
/// Text goes into the file as printable ASCII: any other character, and the element
/// separator `*`, is written as `?`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DexIdentity {
    /// `DXS` communication id of the sender; by convention three manufacturer letters and
    /// seven digits (`JOF0000000` in the sample).
    pub comm_id: String,
    /// Machine serial number (`ID101`, and `DA101` for the cashless device).
    pub serial: String,
    /// Machine model (`ID102`).
    pub model: String,
    /// Machine location (`ID104`).
    pub location: String,
    /// Asset number (`ID106`).
    pub asset: String,
    /// Software version of this daemon (`DA103`).
    pub software_version: String,
    /// Seconds east of UTC for the dates and times in the file (`ID5`, `EA1`).
    pub utc_offset_s: i64,
}

/// The kinds of event the export reports, with their EVA-DTS codes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DexEventKind {
    /// The service door was opened (`EGS`).
    DoorOpen,
    /// An item failed to vend (`ELA`, product delivery failure).
    DeliveryFailure,
    /// A deny-listed credential was presented (`EKJ`, card rejected, marked in hotlist).
    HotListedCard,
    /// The temperature went out of range (`EOA`, refrigeration temperature sensor).
    Temperature,
}

impl DexEventKind {
    /// The EVA-DTS event identification, e.g. `EGS`.
    pub fn code(&self) -> &'static str {
        match self {
            DexEventKind::DoorOpen => "EGS",
            DexEventKind::DeliveryFailure => "ELA",
            DexEventKind::HotListedCard => "EKJ",
            DexEventKind::Temperature => "EOA",
        }
    }
}

/// One event with its time, for an `EA1` segment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DexEvent {
    /// What happened.
    pub kind: DexEventKind,
    /// When, milliseconds since the Unix epoch.
    pub at: Millis,
}

/// How often an event happened (the counts of an `EA2` segment).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EventCount {
    /// Since the last counter reset.
    pub since_reset: u64,
    /// Since the machine was initialised.
    pub lifetime: u64,
}

/// Event facts the audit counters do not hold; the caller fills them.
///
/// The counters count door openings, delivery failures and hot-listed cards, but keep
/// neither the time of each event nor whether the door is open now, and nothing counts
/// temperature alarms. [`DexEvents::from_journal`] fills what the journal knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DexEvents {
    /// Is the service door open now? (`EA2` activity flag of `EGS`.)
    pub door_open_now: bool,
    /// Temperature alarms, if the machine has a temperature sensor; `None` writes no `EOA`.
    pub temperature: Option<EventCount>,
    /// Is a temperature alarm active now?
    pub temperature_alarm_now: bool,
    /// Recent events, oldest first, each written as an `EA1` segment.
    pub recent: Vec<DexEvent>,
}

impl DexEvents {
    /// What the journal says: the door state after the last `Door` record and the last
    /// `keep` events, oldest first. Door openings, delivery failures and hot-listed cards
    /// are recognised exactly as [`State::apply`] counts them; temperature stays `None`.
    ///
    /// [`State::apply`]: crate::core::State::apply
    pub fn from_journal<'a>(records: impl IntoIterator<Item = &'a Stamped>, keep: usize) -> Self {
        let mut out = DexEvents::default();
        let mut door_open = false;
        let mut recent = std::collections::VecDeque::new();
        for st in records {
            let kind = match &st.record {
                Record::Door { open } => {
                    let opened = *open && !door_open;
                    door_open = *open;
                    opened.then_some(DexEventKind::DoorOpen)
                }
                Record::ItemFailed { .. } => Some(DexEventKind::DeliveryFailure),
                Record::Declined {
                    reason: DeclineReason::DenyListed,
                    ..
                } => Some(DexEventKind::HotListedCard),
                _ => None,
            };
            if let Some(kind) = kind {
                recent.push_back(DexEvent { kind, at: st.at });
                if recent.len() > keep {
                    recent.pop_front();
                }
            }
        }
        out.door_open_now = door_open;
        out.recent = recent.into();
        out
    }
}

/// Segments from `ST` on, with the count `SE` needs.
struct Body {
    text: String,
    segments: usize,
}

impl Body {
    fn segment<S: AsRef<str>>(&mut self, elements: &[S]) {
        for (i, e) in elements.iter().enumerate() {
            if i > 0 {
                self.text.push('*');
            }
            self.text.extend(e.as_ref().chars().map(clean));
        }
        self.text.push_str("\r\n");
        self.segments += 1;
    }
}

/// A character as it may stand in an element.
fn clean(c: char) -> char {
    if (' '..='~').contains(&c) && c != '*' {
        c
    } else {
        '?'
    }
}

/// A complete DEX/EVA-DTS audit file (CRLF line endings) of `counters`, with the prices
/// and products of `catalog`, dated `now_ms` (milliseconds since the Unix epoch).
///
/// Every selection of the catalog gets `PA1`/`PA2`, and so does every slot the counters
/// have sales for that the catalog no longer holds (price and product left empty), so
/// the `PA2` totals add up to `VA1`.
pub fn export(
    identity: &DexIdentity,
    catalog: &Catalog,
    counters: &Counters,
    events: &DexEvents,
    now_ms: u64,
) -> String {
    let (lt, sr) = (&counters.lifetime, &counters.since_reset);
    let mut b = Body {
        text: String::new(),
        segments: 0,
    };
    b.segment(&["ST", "001", "0001"]);
    b.segment(&[
        "ID1",
        &identity.serial,
        &identity.model,
        "",
        &identity.location,
        "",
        &identity.asset,
    ]);
    let currency = catalog.currency;
    // A leading 1 marks an ISO 4217 numeric code (the sample's `ID4*2*1978` is EUR).
    let numeric = currency
        .numeric()
        .map(|n| format!("1{n:03}"))
        .unwrap_or_default();
    b.segment(&[
        "ID4",
        &currency.exponent().to_string(),
        &numeric,
        currency.code(),
    ]);
    let (date, time) = date_time(now_ms, identity.utc_offset_s);
    b.segment(&["ID5", &date, &time]);
    b.segment(&value_count(&["VA1"], tallies(lt.paid, sr.paid)));

    b.segment(&["DA1", &identity.serial, "vendd", &identity.software_version]);
    let sum = |c: &CounterSet| {
        c.by_method.values().fold(Tally::default(), |a, t| Tally {
            count: a.count + t.count,
            value: a.value + t.value,
        })
    };
    b.segment(&value_count(&["DA2"], tallies(sum(lt), sum(sr))));
    for method in PaymentMethod::ALL {
        let (l, s) = (lt.by_method.get(&method), sr.by_method.get(&method));
        if l.is_some() || s.is_some() {
            let t = tallies(
                l.copied().unwrap_or_default(),
                s.copied().unwrap_or_default(),
            );
            b.segment(&value_count(&["MA5", "PAYMENT", method.as_str()], t));
        }
    }
    if lt.refunds.count > 0 || sr.refunds.count > 0 {
        let t = tallies(lt.refunds, sr.refunds);
        b.segment(&value_count(&["MA5", "REFUNDS"], t));
    }

    let slots: BTreeSet<&SlotId> = catalog.slots.keys().chain(lt.by_slot.keys()).collect();
    for slot in slots {
        let (price, product) = catalog
            .slots
            .get(slot)
            .map(|s| (s.price.to_string(), s.product.as_str()))
            .unwrap_or_default();
        b.segment(&["PA1", &slot.to_string(), &price, product]);
        let t = tallies(
            lt.by_slot.get(slot).copied().unwrap_or_default(),
            sr.by_slot.get(slot).copied().unwrap_or_default(),
        );
        b.segment(&[
            "PA2".to_string(),
            t.count_init.to_string(),
            t.value_init.to_string(),
            t.count_reset.to_string(),
            t.value_reset.to_string(),
        ]);
    }

    for e in &events.recent {
        let (date, time) = date_time(e.at, identity.utc_offset_s);
        b.segment(&["EA1", e.kind.code(), &date, &time]);
    }
    let counted = |f: fn(&CounterSet) -> u64| EventCount {
        since_reset: f(sr),
        lifetime: f(lt),
    };
    let any_fault = catalog.slots.values().any(|s| s.fault.is_some());
    let mut ea2 = vec![
        (
            DexEventKind::DoorOpen,
            counted(|c| c.door_openings),
            events.door_open_now,
        ),
        (
            DexEventKind::DeliveryFailure,
            counted(|c| c.failed_vends),
            any_fault,
        ),
        (
            DexEventKind::HotListedCard,
            counted(|c| c.denied_credentials),
            false,
        ),
    ];
    if let Some(t) = events.temperature {
        ea2.push((DexEventKind::Temperature, t, events.temperature_alarm_now));
    }
    for (kind, n, active) in ea2 {
        b.segment(&[
            "EA2",
            kind.code(),
            &n.since_reset.to_string(),
            &n.lifetime.to_string(),
            "",
            if active { "1" } else { "0" },
        ]);
    }

    let crc = crc16_arc(b.text.as_bytes());
    b.segment(&["G85".to_string(), format!("{crc:04X}")]);
    let count = (b.segments + 1).to_string();
    b.segment(&["SE", &count, "0001"]);
    b.segment(&["DXE", "1", "1"]);

    let mut out = String::with_capacity(b.text.len() + 40);
    let mut head = Body {
        text: String::new(),
        segments: 0,
    };
    head.segment(&["DXS", &identity.comm_id, "VA", "V0/6", "1"]);
    out.push_str(&head.text);
    out.push_str(&b.text);
    out
}

fn tallies(lifetime: Tally, since_reset: Tally) -> DexTotals {
    DexTotals::from_tallies(lifetime, since_reset)
}

/// `head*value_init*count_init*value_reset*count_reset`, the order of `VA1` and `DA2`.
fn value_count(head: &[&str], t: DexTotals) -> Vec<String> {
    let counters = [
        t.value_init.to_string(),
        t.count_init.to_string(),
        t.value_reset.to_string(),
        t.count_reset.to_string(),
    ];
    head.iter().map(|h| h.to_string()).chain(counters).collect()
}

/// `YYYYMMDD` and `HHMMSS` of a Unix time in milliseconds, shifted by `offset_s`.
pub(super) fn date_time(at: Millis, offset_s: i64) -> (String, String) {
    let secs = i64::try_from(at / 1000)
        .unwrap_or(i64::MAX)
        .saturating_add(offset_s);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::report::event::civil_from_days(days);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", sod / 3600, sod % 3600 / 60, sod % 60),
    )
}
