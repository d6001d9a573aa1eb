//! The durable MQTT outbox as a pure state machine: which reports to publish, and how far
//! the persisted cursor may move.
//!
//! Why a cursor and not a queue: sled 0.34 never gives deleted space back, so the outbox is
//! not a table of rows inserted and deleted. Reports are *derived* from the journal (see
//! [`crate::report::event`]) and one persisted number, the cursor, says that every report
//! of every journal record with `seq <= cursor` has been acknowledged by the broker (or
//! that the record produced no report). After a restart the caller re-derives the reports
//! of the records after the cursor and offers them again; anything that was in flight is
//! published again, and consumers drop the duplicates by event id.
//!
//! Design: methods only change this state and return the reports to publish; they never
//! touch the network, a clock or the disk (sans-IO, like rumqttc's `MqttState`). The caller
//! owns the rumqttc client, the journal and the cursor key.
//!
//! # Order of calls
//! - **Start:** `Outbox::new(persisted_cursor, max_in_flight)`.
//! - **Feed:** while [`Outbox::wants_more`], read the next journal record `seq` (they must
//!   come in order, each once, starting at `cursor + 1`) and call
//!   `outbox.offer(seq, reporter.feed(seq, &st))` — an empty list is fine and is how a
//!   record without a report lets the cursor pass. Publish (QoS 1) what it returns.
//! - **rumqttc events**, in the order the event loop yields them:
//!   `Incoming(ConnAck)` → [`Outbox::on_connack`] and publish everything it returns;
//!   `Outgoing(Publish(pkid))` for a report publish → [`Outbox::on_published`];
//!   `Incoming(PubAck)` → [`Outbox::on_puback`] and publish what it returns;
//!   a connection error → [`Outbox::on_disconnect`].
//! - **Persist** [`Outbox::cursor`] when it changed (it only ever grows).
//!
//! The packet-id matching relies on the `Outgoing(Publish)` events of one connection
//! coming in the order the reports were handed over. Publish nothing else at QoS ≥ 1
//! through the same client, or track those publishes yourself and skip their
//! `Outgoing(Publish)` events; and do not let the MQTT client re-send publishes from a
//! previous connection by itself (discard its pending requests on a connection error),
//! since [`Outbox::on_connack`] already returns everything not acknowledged.

use crate::report::event::Report;
use std::collections::VecDeque;

/// Smallest MQTT 5 reason code that means failure (`0x80`, unspecified error). Success
/// codes below it include `0x10`, "no matching subscribers", which is a delivery.
pub const REASON_FAILURE: u8 = 0x80;

/// A report handed to the MQTT client and not yet acknowledged.
#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
    /// Journal sequence number of its record.
    pub seq: u64,
    /// Packet id, once the client reported the outgoing publish on this connection.
    pub pkid: Option<u16>,
    /// The report.
    pub report: Report,
    /// Handed to the client on the current connection (and not refused since)?
    pub sent: bool,
    /// Acknowledged; kept only until every earlier report is acknowledged too.
    pub acked: bool,
    /// The reason code of the last refusal, until a publish of it is acknowledged.
    pub refused: Option<u8>,
    /// Unique in this outbox; names the entry in `Outbox::unnumbered`.
    key: u64,
}

/// A report the broker refused (e.g. reason code 135, not authorised: a broker ACL
/// forbids the topic). It stays queued; the cursor waits for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Journal sequence number of the refused report.
    pub seq: u64,
    /// Its event id, if it has one.
    pub event_id: Option<String>,
    /// Its topic suffix.
    pub topic_suffix: String,
    /// The MQTT 5 PUBACK reason code (≥ 0x80).
    pub reason_code: u8,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the broker refused the report on `{}` (journal seq {}) with reason code {}{}; \
             it stays queued: check the broker ACL for this machine's topics",
            self.topic_suffix,
            self.seq,
            self.reason_code,
            if self.reason_code == 0x87 {
                " (not authorised)"
            } else {
                ""
            }
        )
    }
}

/// A call out of the documented order. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// Records must be offered once each, in journal order, from `cursor + 1`.
    #[error(
        "journal record {got} offered to the outbox, but {expected} is next: offer every \
         record once, in order, starting right after the persisted cursor"
    )]
    OutOfOrder {
        /// The sequence number the outbox expected.
        expected: u64,
        /// The one offered.
        got: u64,
    },
    /// A report offered with a record it was not derived from.
    #[error("a report of journal record {report} was offered with record {record}")]
    WrongRecord {
        /// The record offered.
        record: u64,
        /// The report's `seq`.
        report: u64,
    },
}

/// The outbox state. See the module docs for the order of calls.
///
/// Invariants: `in_flight` and `waiting` hold, in `seq` order, every offered report that is
/// not acknowledged yet (plus acknowledged ones behind an unacknowledged one);
/// `acked <= offered`, and every report of a record `<= acked` is acknowledged.
#[derive(Clone, Debug)]
pub struct Outbox {
    /// Every report with `seq <= acked` is acknowledged (or its record had none).
    acked: u64,
    /// The last journal sequence number offered.
    offered: u64,
    /// Handed to the client (or to be, on the next connection), at most `max_in_flight`.
    in_flight: VecDeque<InFlight>,
    /// Offered while `in_flight` was full.
    waiting: VecDeque<Report>,
    /// Limit on `in_flight`; the caller reads more records only below it.
    max_in_flight: usize,
    /// Between `on_connack` and `on_disconnect`.
    connected: bool,
    /// Keys of the entries handed to the client on this connection and not numbered yet,
    /// in the order they were handed over (which is the order of their packet ids).
    unnumbered: VecDeque<u64>,
    /// Next entry key.
    next_key: u64,
}

impl Outbox {
    /// An outbox whose persisted cursor is `acked_cursor`, disconnected. `max_in_flight`
    /// (at least 1) bounds the reports handed to the client and not yet acknowledged.
    pub fn new(acked_cursor: u64, max_in_flight: usize) -> Self {
        Outbox {
            acked: acked_cursor,
            offered: acked_cursor,
            in_flight: VecDeque::new(),
            waiting: VecDeque::new(),
            max_in_flight: max_in_flight.max(1),
            connected: false,
            unnumbered: VecDeque::new(),
            next_key: 0,
        }
    }

    /// The cursor to persist: every report of every record `<= cursor()` is acknowledged.
    /// It never decreases and never passes a report that is not acknowledged.
    pub fn cursor(&self) -> u64 {
        self.acked
    }

    /// The last journal sequence number offered; the next offer is `offered() + 1`.
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// Reports offered and not acknowledged (in flight or waiting), for telemetry. The
    /// backlog still in the journal is `last journal seq - offered()`.
    pub fn depth(&self) -> usize {
        self.in_flight.iter().filter(|f| !f.acked).count() + self.waiting.len()
    }

    /// Should the caller offer the next journal record? (Keeps memory bounded by
    /// `max_in_flight` reports however long the link is down.)
    pub fn wants_more(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.len() < self.max_in_flight
    }

    /// Between a ConnAck and a connection error?
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The reports handed to the client, oldest first.
    pub fn in_flight(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight.iter()
    }

    /// The oldest report the broker refused and that is not acknowledged since.
    pub fn fault(&self) -> Option<Fault> {
        self.in_flight.iter().find_map(|f| {
            let code = f.refused.filter(|_| !f.acked)?;
            Some(Fault {
                seq: f.seq,
                event_id: f.report.event_id().map(str::to_string),
                topic_suffix: f.report.topic_suffix.clone(),
                reason_code: code,
            })
        })
    }

    /// Offers the reports derived from journal record `seq` (possibly none). Returns the
    /// reports to publish now: none while disconnected or when `max_in_flight` is reached
    /// (they are returned later by [`Outbox::on_puback`] or [`Outbox::on_connack`]).
    ///
    /// # Errors
    /// [`OutboxError::OutOfOrder`] unless `seq == offered() + 1`;
    /// [`OutboxError::WrongRecord`] if a report's `seq` is not `seq`. Nothing changes.
    pub fn offer(
        &mut self,
        seq: u64,
        reports: impl IntoIterator<Item = Report>,
    ) -> Result<Vec<Report>, OutboxError> {
        let expected = self.offered + 1;
        if seq != expected {
            return Err(OutboxError::OutOfOrder { expected, got: seq });
        }
        let reports: Vec<Report> = reports.into_iter().collect();
        if let Some(r) = reports.iter().find(|r| r.seq != seq) {
            return Err(OutboxError::WrongRecord {
                record: seq,
                report: r.seq,
            });
        }
        self.offered = seq;
        self.waiting.extend(reports);
        let out = self.fill();
        self.advance();
        Ok(out)
    }

    /// Offers a journal record that produced no report (same as `offer(seq, [])`).
    ///
    /// # Errors
    /// As [`Outbox::offer`].
    pub fn skip(&mut self, seq: u64) -> Result<(), OutboxError> {
        self.offer(seq, []).map(|_| ())
    }

    /// The client reported an outgoing publish with packet id `pkid`: it belongs to the
    /// report handed over first on this connection among those not numbered yet (rumqttc
    /// numbers publishes in the order it receives them). Returns false
    /// (and changes nothing) when there is none, or when `pkid` is already held by an
    /// unacknowledged report (a publish this outbox did not hand over).
    pub fn on_published(&mut self, pkid: u16) -> bool {
        if self
            .in_flight
            .iter()
            .any(|f| !f.acked && f.pkid == Some(pkid))
        {
            return false;
        }
        while let Some(key) = self.unnumbered.pop_front() {
            let entry = self
                .in_flight
                .iter_mut()
                .find(|f| f.key == key && f.sent && !f.acked && f.pkid.is_none());
            if let Some(f) = entry {
                f.pkid = Some(pkid);
                return true;
            }
        }
        false
    }

    /// The broker answered the publish `pkid` with an MQTT 5 reason code (0 for an MQTT
    /// 3.1.1 PUBACK). Below [`REASON_FAILURE`] the report is delivered and the cursor may
    /// advance; otherwise it is not delivered: it stays queued (sent again on the next
    /// ConnAck or by [`Outbox::retry_refused`]) and [`Outbox::fault`] names it. Unknown
    /// and repeated PUBACKs are ignored. Returns reports that may be published now.
    pub fn on_puback(&mut self, pkid: u16, reason_code: u8) -> Vec<Report> {
        let Some(f) = self
            .in_flight
            .iter_mut()
            .find(|f| !f.acked && f.pkid == Some(pkid))
        else {
            return Vec::new();
        };
        f.pkid = None;
        if reason_code >= REASON_FAILURE {
            f.sent = false;
            f.refused = Some(reason_code);
            return Vec::new();
        }
        f.acked = true;
        f.refused = None;
        self.advance();
        self.fill()
    }

    /// A (re)connection was acknowledged: every report not acknowledged is published
    /// again, in order (the previous connection's packet ids are forgotten), followed by
    /// any that waited for room. Returns them all.
    pub fn on_connack(&mut self) -> Vec<Report> {
        self.connected = true;
        self.unnumbered.clear();
        let mut out = Vec::new();
        for f in self.in_flight.iter_mut().filter(|f| !f.acked) {
            f.pkid = None;
            f.sent = true;
            self.unnumbered.push_back(f.key);
            out.push(f.report.clone());
        }
        out.extend(self.fill());
        out
    }

    /// The connection is gone: whatever was in flight may be lost and waits for the next
    /// [`Outbox::on_connack`].
    pub fn on_disconnect(&mut self) {
        self.connected = false;
        self.unnumbered.clear();
        for f in self.in_flight.iter_mut().filter(|f| !f.acked) {
            f.pkid = None;
            f.sent = false;
        }
    }

    /// Publishes refused reports again on the current connection (call it on a back-off
    /// timer while [`Outbox::fault`] is set). Returns nothing while disconnected.
    pub fn retry_refused(&mut self) -> Vec<Report> {
        if !self.connected {
            return Vec::new();
        }
        let mut out = Vec::new();
        for f in self.in_flight.iter_mut().filter(|f| !f.acked && !f.sent) {
            f.sent = true;
            self.unnumbered.push_back(f.key);
            out.push(f.report.clone());
        }
        out
    }

    /// Moves waiting reports into flight while there is room; returns those to publish.
    fn fill(&mut self) -> Vec<Report> {
        let mut out = Vec::new();
        while self.in_flight.len() < self.max_in_flight {
            let Some(report) = self.waiting.pop_front() else {
                break;
            };
            let key = self.next_key;
            self.next_key += 1;
            if self.connected {
                out.push(report.clone());
                self.unnumbered.push_back(key);
            }
            self.in_flight.push_back(InFlight {
                seq: report.seq,
                pkid: None,
                report,
                sent: self.connected,
                acked: false,
                refused: None,
                key,
            });
        }
        out
    }

    /// Drops the acknowledged prefix and moves the cursor up to the first report that is
    /// not acknowledged (or to the last record offered when there is none).
    fn advance(&mut self) {
        while self.in_flight.front().is_some_and(|f| f.acked) {
            self.in_flight.pop_front();
        }
        let first_pending = self
            .in_flight
            .front()
            .map(|f| f.seq)
            .or_else(|| self.waiting.front().map(|r| r.seq));
        let cursor = first_pending.map_or(self.offered, |s| s - 1);
        self.acked = self.acked.max(cursor);
    }
}

#[cfg(test)]
#[path = "events/outbox_tests.rs"]
mod tests;
