//! Tests of `report::outbox`: scenarios that read as sentences, then property tests
//! against a model client and broker that acknowledge out of order, drop connections
//! (losing what was in flight), refuse publishes with MQTT 5 reason codes and repeat
//! PUBACKs.

use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const NOT_AUTHORISED: u8 = 0x87;

fn report(seq: u64, k: usize) -> Report {
    let id = if k == 0 {
        format!("k1:{seq}")
    } else {
        format!("k1:{seq}.{k}")
    };
    Report {
        topic_suffix: "events/door".into(),
        payload: json!({ "event_id": id, "seq": seq }),
        seq,
        retain: false,
    }
}

fn seqs(reports: &[Report]) -> Vec<u64> {
    reports.iter().map(|r| r.seq).collect()
}

/// A connected outbox at cursor 0 with `n` records offered, each with one report, and
/// packet ids 1..=n assigned in order.
fn numbered(n: u64, max: usize) -> Outbox {
    let mut o = Outbox::new(0, max);
    o.on_connack();
    for seq in 1..=n {
        o.offer(seq, [report(seq, 0)]).unwrap();
    }
    for pkid in 1..=n.min(max as u64) {
        assert!(o.on_published(pkid as u16));
    }
    o
}

#[test]
fn a_puback_for_a_later_report_does_not_move_the_cursor_past_an_earlier_one() {
    let mut o = numbered(3, 8);
    o.on_puback(2, 0);
    assert_eq!(o.cursor(), 0);
    o.on_puback(3, 0);
    assert_eq!(o.cursor(), 0);
    o.on_puback(1, 0);
    assert_eq!(o.cursor(), 3);
    assert_eq!(o.depth(), 0);
}

#[test]
fn records_without_reports_advance_the_cursor_but_never_past_an_outstanding_one() {
    let mut o = Outbox::new(10, 4);
    o.on_connack();
    o.skip(11).unwrap();
    assert_eq!(o.cursor(), 11);
    o.offer(12, [report(12, 0)]).unwrap();
    o.skip(13).unwrap();
    o.skip(14).unwrap();
    assert_eq!(o.cursor(), 11);
    assert!(o.on_published(7));
    o.on_puback(7, 0);
    assert_eq!(o.cursor(), 14);
}

#[test]
fn a_record_with_two_reports_is_passed_only_when_both_are_acknowledged() {
    let mut o = Outbox::new(0, 4);
    o.on_connack();
    let out = o.offer(1, [report(1, 0), report(1, 1)]).unwrap();
    assert_eq!(out.len(), 2);
    o.on_published(1);
    o.on_published(2);
    o.on_puback(1, 0);
    assert_eq!(o.cursor(), 0);
    o.on_puback(2, 0);
    assert_eq!(o.cursor(), 1);
}

#[test]
fn a_refused_publish_stays_queued_raises_a_fault_and_is_sent_again() {
    let mut o = numbered(2, 8);
    assert!(o.on_puback(1, NOT_AUTHORISED).is_empty());
    o.on_puback(2, 0);
    assert_eq!(o.cursor(), 0);
    assert_eq!(o.depth(), 1);
    let fault = o.fault().expect("a fault");
    assert_eq!((fault.seq, fault.reason_code), (1, NOT_AUTHORISED));
    assert!(fault.to_string().contains("not authorised"), "{fault}");
    // Retried on the same connection on request, and again after a reconnect.
    assert_eq!(seqs(&o.retry_refused()), [1]);
    assert!(o.retry_refused().is_empty());
    o.on_disconnect();
    assert_eq!(seqs(&o.on_connack()), [1]);
    assert!(o.fault().is_some());
    o.on_published(1);
    o.on_puback(1, 0);
    assert_eq!((o.cursor(), o.depth(), o.fault()), (2, 0, None));
}

#[test]
fn no_matching_subscribers_counts_as_delivered() {
    let mut o = numbered(1, 8);
    o.on_puback(1, 0x10);
    assert_eq!((o.cursor(), o.fault()), (1, None));
}

#[test]
fn a_reconnect_resends_every_unacknowledged_report_in_order() {
    let mut o = numbered(4, 8);
    o.on_puback(2, 0);
    o.on_disconnect();
    assert!(
        !o.on_published(9),
        "no report was handed over while disconnected"
    );
    assert_eq!(seqs(&o.on_connack()), [1, 3, 4]);
    // Packet ids of the old connection are forgotten: the new ones are matched in order.
    assert!(o.on_published(5));
    assert!(o.on_published(6));
    assert!(o.on_published(7));
    assert!(o.on_puback(1, 0).is_empty(), "old id 1 is unknown now");
    assert_eq!(o.cursor(), 0);
    o.on_puback(5, 0);
    assert_eq!(o.cursor(), 2);
}

#[test]
fn nothing_is_released_while_disconnected() {
    let mut o = Outbox::new(0, 2);
    assert!(o.offer(1, [report(1, 0)]).unwrap().is_empty());
    assert!(o.offer(2, [report(2, 0)]).unwrap().is_empty());
    assert!(!o.wants_more());
    assert_eq!(o.depth(), 2);
    assert_eq!(seqs(&o.on_connack()), [1, 2]);
}

#[test]
fn max_in_flight_holds_back_later_reports_until_acks_free_room() {
    let mut o = Outbox::new(0, 2);
    o.on_connack();
    assert_eq!(seqs(&o.offer(1, [report(1, 0)]).unwrap()), [1]);
    assert_eq!(
        seqs(&o.offer(2, [report(2, 0), report(2, 1)]).unwrap()),
        [2]
    );
    assert!(!o.wants_more());
    assert_eq!(o.depth(), 3);
    o.on_published(1);
    o.on_published(2);
    assert_eq!(seqs(&o.on_puback(1, 0)), [2]);
    assert_eq!(o.cursor(), 1);
}

#[test]
fn offers_out_of_order_or_with_foreign_reports_are_refused_and_change_nothing() {
    let mut o = Outbox::new(5, 4);
    assert_eq!(
        o.offer(7, [report(7, 0)]),
        Err(OutboxError::OutOfOrder {
            expected: 6,
            got: 7
        })
    );
    assert_eq!(
        o.skip(5),
        Err(OutboxError::OutOfOrder {
            expected: 6,
            got: 5
        })
    );
    assert_eq!(
        o.offer(6, [report(9, 0)]),
        Err(OutboxError::WrongRecord {
            record: 6,
            report: 9
        })
    );
    assert_eq!((o.offered(), o.cursor(), o.depth()), (5, 5, 0));
}

#[test]
fn unknown_and_repeated_pubacks_are_ignored() {
    let mut o = numbered(2, 8);
    o.on_puback(1, 0);
    o.on_puback(1, 0);
    o.on_puback(1, NOT_AUTHORISED);
    o.on_puback(77, 0);
    assert_eq!((o.cursor(), o.fault()), (1, None));
    assert_eq!(o.depth(), 1);
}

#[test]
fn a_packet_id_already_in_flight_is_not_matched_again() {
    let mut o = numbered(1, 8);
    o.offer(2, [report(2, 0)]).unwrap();
    assert!(!o.on_published(1));
    assert!(o.on_published(2));
}

// ---------------------------------------------------------------------------------------
// Property tests: a model client and broker
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Offer the next journal record if the outbox wants more.
    Offer,
    /// The client transmits up to n queued publishes.
    Transmit(usize),
    /// The broker answers its i-th unanswered publish: refuse?, repeat the PUBACK?
    Ack { i: usize, refuse: bool, dup: bool },
    /// The connection drops: unanswered publishes and the client's queue are lost.
    Drop,
    /// The client reconnects (if disconnected).
    Connect,
    /// The caller retries refused reports.
    Retry,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Offer),
        4 => (1usize..4).prop_map(Op::Transmit),
        5 => (any::<usize>(), prop::bool::weighted(0.15), prop::bool::weighted(0.15))
            .prop_map(|(i, refuse, dup)| Op::Ack { i, refuse, dup }),
        1 => Just(Op::Drop),
        2 => Just(Op::Connect),
        1 => Just(Op::Retry),
    ]
}

/// Reports per journal record: mostly one, sometimes none, rarely two.
fn journal() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![3 => Just(0usize), 6 => Just(1usize), 1 => Just(2usize)],
        1..40,
    )
}

struct World {
    start: u64,
    journal: Vec<Vec<Report>>,
    outbox: Outbox,
    /// The client's queue of publishes handed over and not transmitted yet.
    queue: VecDeque<Report>,
    /// Publishes the broker received and has not answered: (pkid, report).
    broker: Vec<(u16, Report)>,
    next_pkid: u16,
    /// Event ids the broker acknowledged with success.
    acked: BTreeSet<String>,
    /// What subscribers received: event id → payloads (one per delivery).
    consumer: BTreeMap<String, Vec<serde_json::Value>>,
    /// Event ids handed to the client on the current connection.
    published_now: BTreeSet<String>,
    /// Event ids not acknowledged when the current connection started.
    owed_now: BTreeSet<String>,
    connected: bool,
    last_cursor: u64,
}

fn id(r: &Report) -> String {
    r.event_id().unwrap().to_string()
}

impl World {
    fn new(start: u64, shape: &[usize], max: usize) -> World {
        let journal = shape
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let seq = start + 1 + i as u64;
                (0..*n).map(|k| report(seq, k)).collect()
            })
            .collect();
        World {
            start,
            journal,
            outbox: Outbox::new(start, max),
            queue: VecDeque::new(),
            broker: Vec::new(),
            next_pkid: 0,
            acked: BTreeSet::new(),
            consumer: BTreeMap::new(),
            published_now: BTreeSet::new(),
            owed_now: BTreeSet::new(),
            connected: false,
            last_cursor: start,
        }
    }

    fn last_seq(&self) -> u64 {
        self.start + self.journal.len() as u64
    }

    fn hand_over(&mut self, reports: Vec<Report>) {
        assert!(
            self.connected || reports.is_empty(),
            "released while offline"
        );
        for r in reports {
            self.published_now.insert(id(&r));
            self.queue.push_back(r);
        }
    }

    fn offered_unacked(&self) -> BTreeSet<String> {
        self.journal
            .iter()
            .flatten()
            .filter(|r| r.seq <= self.outbox.offered() && !self.acked.contains(&id(r)))
            .map(id)
            .collect()
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Offer => {
                let next = self.outbox.offered() + 1;
                if self.outbox.wants_more() && next <= self.last_seq() {
                    let reports = self.journal[(next - self.start - 1) as usize].clone();
                    let out = self.outbox.offer(next, reports).unwrap();
                    self.hand_over(out);
                }
            }
            Op::Transmit(n) => {
                for _ in 0..*n {
                    let Some(r) = self.queue.pop_front() else {
                        break;
                    };
                    let in_use: BTreeSet<u16> = self.broker.iter().map(|b| b.0).collect();
                    // Small id space so that ids are reused often, as rumqttc does.
                    loop {
                        self.next_pkid = self.next_pkid % 8 + 1;
                        if !in_use.contains(&self.next_pkid) {
                            break;
                        }
                    }
                    assert!(self.outbox.on_published(self.next_pkid));
                    self.broker.push((self.next_pkid, r));
                }
            }
            Op::Ack { i, refuse, dup } => {
                if self.broker.is_empty() {
                    return;
                }
                let (pkid, r) = self.broker.remove(i % self.broker.len());
                let code = if *refuse { NOT_AUTHORISED } else { 0 };
                if !refuse {
                    // The broker forwards an accepted publish to the subscribers.
                    self.consumer
                        .entry(id(&r))
                        .or_default()
                        .push(r.payload.clone());
                    self.acked.insert(id(&r));
                }
                let out = self.outbox.on_puback(pkid, code);
                self.hand_over(out);
                if *refuse {
                    assert!(self.outbox.fault().is_some());
                }
                if *dup {
                    let out = self.outbox.on_puback(pkid, code);
                    assert!(out.is_empty(), "a repeated PUBACK released reports");
                }
            }
            Op::Drop => {
                if self.connected {
                    self.check_epoch();
                }
                self.connected = false;
                self.outbox.on_disconnect();
                self.queue.clear();
                self.broker.clear();
            }
            Op::Connect => {
                if !self.connected {
                    self.connected = true;
                    self.published_now.clear();
                    self.owed_now = self.offered_unacked();
                    let out = self.outbox.on_connack();
                    let s = seqs(&out);
                    assert!(s.windows(2).all(|w| w[0] <= w[1]), "resent out of order");
                    let waiting: BTreeSet<String> = self.outbox.waiting.iter().map(id).collect();
                    let resent: BTreeSet<String> = out.iter().map(id).collect();
                    let expected: BTreeSet<String> =
                        self.owed_now.difference(&waiting).cloned().collect();
                    assert_eq!(
                        resent, expected,
                        "a ConnAck must resend every unacked report"
                    );
                    self.hand_over(out);
                }
            }
            Op::Retry => {
                let out = self.outbox.retry_refused();
                self.hand_over(out);
            }
        }
        self.check();
    }

    /// Invariants after every step.
    fn check(&mut self) {
        let cursor = self.outbox.cursor();
        assert!(cursor >= self.last_cursor, "the cursor went back");
        self.last_cursor = cursor;
        assert!(cursor <= self.outbox.offered());
        for r in self.journal.iter().flatten().filter(|r| r.seq <= cursor) {
            assert!(
                self.acked.contains(&id(r)),
                "cursor {cursor} passed unacknowledged {}",
                id(r)
            );
        }
        assert_eq!(self.outbox.depth(), self.offered_unacked().len());
        assert!(self.outbox.in_flight.len() <= self.outbox.max_in_flight);
        for (eid, payloads) in &self.consumer {
            // (After a restart the journal here starts at the cursor.)
            if let Some(original) = self.journal.iter().flatten().find(|r| &id(r) == eid) {
                assert!(payloads.iter().all(|p| p == &original.payload));
            }
        }
    }

    /// At the end of a connection: every report owed at its start was handed to the
    /// client during it, unless it is acknowledged or still waits for room.
    fn check_epoch(&self) {
        let waiting: BTreeSet<String> = self.outbox.waiting.iter().map(id).collect();
        for eid in &self.owed_now {
            assert!(
                self.published_now.contains(eid)
                    || self.acked.contains(eid)
                    || waiting.contains(eid),
                "{eid} was owed and not published on this connection"
            );
        }
    }

    /// A healthy link for long enough: everything gets acknowledged.
    fn heal(&mut self) {
        for _ in 0..10_000 {
            if !self.connected {
                self.step(&Op::Connect);
            }
            self.step(&Op::Retry);
            self.step(&Op::Offer);
            self.step(&Op::Transmit(8));
            self.step(&Op::Ack {
                i: 0,
                refuse: false,
                dup: false,
            });
            if self.outbox.cursor() == self.last_seq() && self.outbox.depth() == 0 {
                return;
            }
        }
        panic!("the outbox did not drain");
    }
}

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 2_500,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn the_cursor_never_passes_an_unacknowledged_report_and_everything_is_delivered(
        start in 0u64..4,
        shape in journal(),
        max in 1usize..6,
        ops in prop::collection::vec(op(), 0..150),
    ) {
        let mut w = World::new(start, &shape, max);
        for op in &ops {
            w.step(op);
        }
        w.heal();
        let all: BTreeSet<String> = w.journal.iter().flatten().map(id).collect();
        prop_assert_eq!(&w.acked, &all);
        // After de-duplication by event id the subscriber has every report once.
        let seen: BTreeSet<String> = w.consumer.keys().cloned().collect();
        prop_assert_eq!(&seen, &all);
        prop_assert_eq!(w.outbox.cursor(), w.last_seq());
        prop_assert_eq!(w.outbox.fault(), None);
    }

    #[test]
    fn a_restart_from_the_persisted_cursor_loses_nothing(
        shape in journal(),
        max in 1usize..6,
        before in prop::collection::vec(op(), 0..100),
        after in prop::collection::vec(op(), 0..100),
    ) {
        // The daemon dies after `before`; a new outbox starts at the persisted cursor and
        // the records after it are offered again. Subscribers keep what they received.
        let mut w = World::new(0, &shape, max);
        for op in &before {
            w.step(op);
        }
        let cursor = w.outbox.cursor();
        let mut again = World::new(cursor, &shape[cursor as usize..], max);
        again.consumer = std::mem::take(&mut w.consumer);
        for op in &after {
            again.step(op);
        }
        again.heal();
        let all: BTreeSet<String> = w.journal.iter().flatten().map(id).collect();
        let seen: BTreeSet<String> = again.consumer.keys().cloned().collect();
        prop_assert_eq!(seen, all);
    }
}
