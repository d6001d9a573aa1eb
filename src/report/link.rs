//! The MQTT link: rumqttc (MQTT 5) driven as one tokio task.
//!
//! Reports come from the journal through the durable outbox: records after the persisted
//! cursor are turned into reports ([`Reporter`]), published at QoS 1, and the cursor moves
//! only over a contiguous prefix the broker acknowledged with a success reason code. After
//! every (re)connect everything unacknowledged is published again (consumers de-duplicate by
//! event id). rumqttc's own replay of the previous session is discarded on a connection
//! error, so every publish the broker sees is one the outbox knows about.
//!
//! The vend path never waits on this task: it reads committed records from sled and talks to
//! the core only through the input queue. Only records the core has committed are reported.

use super::command::{self, CommandError, CommandResult, RemoteCommand};
use super::event::{rfc3339_utc_ms, Reporter, ReporterConfig};
use super::outbox::{Fault, Outbox};
use crate::config::MqttConfig;
use crate::core::Currency;
use crate::journal::JournalReader;
use crate::runtime::Request;
use crate::ui::view::Snapshot;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use serde::Serialize;
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Records replayed (without publishing) before the cursor after a restart, to rebuild the
/// per-session context of sales still open at the cursor.
const WARM_RECORDS: u64 = 4096;

/// Capacity of rumqttc's request channel. The outbox never has more than `max_in_flight`
/// reports handed over, plus a few status and telemetry messages.
const REQUEST_CAPACITY: usize = 2048;

/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often a report the broker refused (e.g. an ACL denial) is tried again.
const RETRY_REFUSED: Duration = Duration::from_secs(30);

/// What the link reports about itself (health endpoint, telemetry).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkStatus {
    /// Connected to the broker now?
    pub connected: bool,
    /// Every report from records up to this sequence number is acknowledged.
    pub cursor: u64,
    /// Committed records not yet acknowledged.
    pub backlog: u64,
    /// A report the broker refused (reason code), or the last connection error.
    pub fault: Option<String>,
    /// Connections made since start.
    pub connects: u64,
}

/// How the link talks to the rest of the daemon.
pub struct Channels {
    /// The last journal sequence number the core has made durable.
    pub committed: watch::Receiver<u64>,
    /// The core's latest snapshot (telemetry, discovery, replay checks).
    pub snapshot: watch::Receiver<Snapshot>,
    /// Where the link publishes its own state.
    pub status: watch::Sender<LinkStatus>,
    /// Inputs to the core (link state, authorisation answers, commands, uploads).
    pub core: tokio::sync::mpsc::Sender<Request>,
    /// Authorisation requests from the core.
    pub auth: tokio::sync::mpsc::UnboundedReceiver<AuthRequest>,
    /// The daemon's handle, once it exists (the `doctor` command reports from it).
    pub diagnostics: Arc<std::sync::OnceLock<crate::runtime::Handle>>,
}

/// A payment to authorise online (from the controller's `RequestAuth`).
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Session.
    pub sid: crate::core::SessionId,
    /// Amount, minor units.
    pub amount: i64,
    /// Method.
    pub method: crate::core::PaymentMethod,
    /// Credential hash (keyed; never the raw identifier).
    pub credential: String,
}

/// Identity and versions for status payloads.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Machine id.
    pub machine: String,
    /// Site id.
    pub site: String,
    /// Firmware version.
    pub firmware: String,
    /// Configuration version (the planogram source hash).
    pub config_version: String,
    /// Currency of the machine.
    pub currency: Currency,
    /// Rows of the motor matrix (a remote planogram must fit it).
    pub rows: u8,
    /// Columns of the motor matrix.
    pub cols: u8,
    /// The configuration file (None: the embedded configuration), for `reload_config`.
    pub config_path: Option<std::path::PathBuf>,
    /// Serial, model, location (the DEX file's ID1) and the day offset (None: no DEX in
    /// the `audit` report).
    pub dex: Option<(crate::config::Machine, i64)>,
}

/// Why the link cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The CA file has no usable certificate.
    #[error("mqtt.ca_file: no usable PEM certificate in it")]
    NoCaCertificate,
    /// The client certificate or key could not be used.
    #[error("mqtt client certificate/key: {0}")]
    ClientAuth(String),
    /// rustls refused the TLS set-up.
    #[error("mqtt TLS set-up: {0}")]
    Tls(String),
}

enum Marker {
    Outbox,
    Other,
}

/// Builds the rumqttc options: MQTT 5, fixed client id, persistent session (commands sent
/// while offline arrive later), keep-alive, credentials, TLS and the retained `offline` will.
///
/// # Errors
/// [`LinkError`] for unusable TLS material.
pub fn options(
    cfg: &MqttConfig,
    id: &Identity,
    started: Instant,
) -> Result<MqttOptions, LinkError> {
    let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    o.set_keep_alive(cfg.keep_alive);
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(7 * 24 * 3600));
    o.set_outgoing_inflight_upper_limit((cfg.max_in_flight + 16).min(u16::MAX as usize) as u16);
    o.set_connection_timeout(10);
    if let Some((u, p)) = &cfg.credentials {
        o.set_credentials(u.clone(), p.clone());
    }
    let will = status_payload(id, "offline", started);
    o.set_last_will(LastWill::new(
        status_topic(cfg),
        will,
        QoS::AtLeastOnce,
        true,
        None,
    ));
    if let Some(ca) = &cfg.ca_pem {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(ca, cfg.client_auth.as_ref())?),
        )));
    }
    Ok(o)
}

/// A rustls client configuration trusting exactly the given CA(s), with the ring provider.
///
/// # Errors
/// [`LinkError`] when the PEM holds no certificate or rustls refuses the material.
pub fn tls_config(
    ca_pem: &[u8],
    client: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<rustls::ClientConfig, LinkError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]).flatten() {
        roots.add(cert).map_err(|e| LinkError::Tls(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(LinkError::NoCaCertificate);
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| LinkError::Tls(e.to_string()))?
    .with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let certs: Vec<_> = rustls_pemfile::certs(&mut &cert[..]).flatten().collect();
            let key = rustls_pemfile::private_key(&mut &key[..])
                .map_err(|e| LinkError::ClientAuth(e.to_string()))?
                .ok_or_else(|| LinkError::ClientAuth("no private key in the key file".into()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| LinkError::ClientAuth(e.to_string()))
        }
    }
}

fn status_topic(cfg: &MqttConfig) -> String {
    format!("{}/status", cfg.topic_root)
}

fn status_payload(id: &Identity, state: &str, started: Instant) -> String {
    let now = crate::runtime::now_ms();
    json!({
        "schema": super::event::SCHEMA_VERSION,
        "state": state,
        "machine": id.machine,
        "site": id.site,
        "firmware": id.firmware,
        "config_version": id.config_version,
        "uptime_s": started.elapsed().as_secs(),
        "ts": now,
        "ts_iso": rfc3339_utc_ms(now),
    })
    .to_string()
}

fn reason_code(r: &PubAckReason) -> u8 {
    match r {
        PubAckReason::Success => 0x00,
        PubAckReason::NoMatchingSubscribers => 0x10,
        PubAckReason::UnspecifiedError => 0x80,
        PubAckReason::ImplementationSpecificError => 0x83,
        PubAckReason::NotAuthorized => 0x87,
        PubAckReason::TopicNameInvalid => 0x90,
        PubAckReason::PacketIdentifierInUse => 0x91,
        PubAckReason::QuotaExceeded => 0x97,
        PubAckReason::PayloadFormatInvalid => 0x99,
    }
}

/// The link task's state.
pub struct Link {
    cfg: MqttConfig,
    id: Identity,
    reader: JournalReader,
    committed: watch::Receiver<u64>,
    snapshot: watch::Receiver<Snapshot>,
    status: watch::Sender<LinkStatus>,
    core: tokio::sync::mpsc::Sender<Request>,
    auth_rx: tokio::sync::mpsc::UnboundedReceiver<AuthRequest>,
    /// Authorisation requests sent and not answered: request id → session.
    auth_pending: std::collections::BTreeMap<String, crate::core::SessionId>,
    /// Offline captures handed to the outbox: journal seq → session. When the cursor
    /// passes one, the controller is told the approval was uploaded.
    offline_captures: std::collections::BTreeMap<u64, crate::core::SessionId>,
    client: AsyncClient,
    eventloop: EventLoop,
    outbox: Outbox,
    reporter: Reporter,
    next_seq: u64,
    markers: VecDeque<Marker>,
    awaiting: HashSet<u16>,
    persisted: u64,
    started: Instant,
    connects: u64,
    last_error: Option<String>,
    /// The daemon's handle for `doctor` (set once the daemon is up).
    diagnostics: Arc<std::sync::OnceLock<crate::runtime::Handle>>,
}

impl Link {
    /// Prepares the link: options, outbox at the persisted cursor, reporter warmed on the
    /// records just before it.
    ///
    /// # Errors
    /// [`LinkError`] for unusable TLS material.
    pub fn new(
        cfg: MqttConfig,
        id: Identity,
        reader: JournalReader,
        ch: Channels,
    ) -> Result<Link, LinkError> {
        let Channels {
            committed,
            snapshot,
            status,
            core,
            auth: auth_rx,
            diagnostics,
        } = ch;
        let started = Instant::now();
        let (client, eventloop) = AsyncClient::new(options(&cfg, &id, started)?, REQUEST_CAPACITY);
        let cursor = reader.report_cursor();
        let mut reporter = Reporter::new(ReporterConfig {
            machine_id: id.machine.clone(),
            site: id.site.clone(),
            currency: id.currency,
            low_stock: cfg.low_stock,
        });
        let from = cursor.saturating_sub(WARM_RECORDS).max(1);
        let mut uploaded = Vec::new();
        for (seq, st) in reader
            .iter_from(from)
            .map_while(|r| r.ok())
            .take_while(|(s, _)| *s <= cursor)
        {
            // Offline captures the broker acknowledged before a restart are uploaded; the
            // controller ignores sessions it no longer counts.
            for r in reporter.feed(seq, &st) {
                if r.topic_suffix == "payments/capture" && r.payload["offline"] == true {
                    uploaded.extend(r.payload["sid"].as_u64());
                }
            }
        }
        for sid in uploaded {
            let _ = core.try_send(Request {
                input: crate::core::Input::OfflineUploaded { sid },
                reply: None,
            });
        }
        Ok(Link {
            outbox: Outbox::new(cursor, cfg.max_in_flight),
            cfg,
            id,
            reader,
            committed,
            snapshot,
            status,
            core,
            auth_rx,
            diagnostics,
            auth_pending: std::collections::BTreeMap::new(),
            offline_captures: std::collections::BTreeMap::new(),
            client,
            eventloop,
            reporter,
            next_seq: cursor + 1,
            markers: VecDeque::new(),
            awaiting: HashSet::new(),
            persisted: cursor,
            started,
            connects: 0,
            last_error: None,
        })
    }

    fn publish(&mut self, marker: Marker, topic: String, payload: String, qos: QoS, retain: bool) {
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => self.markers.push_back(marker),
            // Cannot happen while the outbox bounds what is handed over; if it does, the
            // report stays unacknowledged and goes out again after the next reconnect.
            Err(e) => warn!(cause = %e, "mqtt request queue full; report deferred"),
        }
    }

    fn publish_reports(&mut self, reports: Vec<super::event::Report>) {
        for r in reports {
            let topic = format!("{}/{}", self.cfg.topic_root, r.topic_suffix);
            self.publish(
                Marker::Outbox,
                topic,
                r.payload.to_string(),
                QoS::AtLeastOnce,
                r.retain,
            );
        }
    }

    /// Hands committed records to the outbox while it has room.
    fn pump(&mut self) {
        if !self.outbox.is_connected() {
            return;
        }
        let committed = *self.committed.borrow();
        while self.outbox.wants_more() && self.next_seq <= committed {
            let rec = self.reader.iter_from(self.next_seq).next();
            let (seq, st) = match rec {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    error!(cause = %e, seq = self.next_seq, "cannot read the journal for reporting");
                    return;
                }
                None => return,
            };
            let reports = self.reporter.feed(seq, &st);
            for r in &reports {
                if r.topic_suffix == "payments/capture" && r.payload["offline"] == true {
                    if let Some(sid) = r.payload["sid"].as_u64() {
                        self.offline_captures.insert(seq, sid);
                    }
                }
            }
            match self.outbox.offer(seq, reports) {
                Ok(out) => self.publish_reports(out),
                Err(e) => {
                    error!(cause = %e, "outbox refused a record; reporting stops until restart");
                    return;
                }
            }
            self.next_seq = seq + 1;
        }
    }

    fn persist_cursor(&mut self) {
        let c = self.outbox.cursor();
        if c > self.persisted {
            match self.reader.set_report_cursor(c) {
                Ok(()) => self.persisted = c,
                Err(e) => warn!(cause = %e, "cannot store the report cursor"),
            }
        }
        let rest = self.offline_captures.split_off(&(c + 1));
        let done = std::mem::replace(&mut self.offline_captures, rest);
        for sid in done.into_values() {
            let input = crate::core::Input::OfflineUploaded { sid };
            let _ = self.core.try_send(Request { input, reply: None });
        }
    }

    /// Home Assistant discovery: retained config messages for this machine's entities.
    fn publish_discovery(&mut self) {
        let slots: Vec<(String, String)> = {
            let snap = self.snapshot.borrow();
            snap.catalog
                .slots
                .iter()
                .map(|s| (s.id.clone(), s.name.clone()))
                .collect()
        };
        let msgs = super::discovery::discovery_messages(
            &self.cfg.topic_root,
            &self.id.machine,
            &self.id.site,
            &self.id.firmware,
            &slots,
        );
        for (topic, payload) in msgs {
            self.publish(Marker::Other, topic, payload, QoS::AtLeastOnce, true);
        }
    }

    fn set_online(&self, online: bool) {
        if self.cfg.online_auth {
            let input = crate::core::Input::Link { online };
            let _ = self.core.try_send(Request { input, reply: None });
        }
    }

    /// Sends an authorisation request; the answer comes on `auth/response/<id>`.
    fn request_auth(&mut self, req: AuthRequest) {
        let now = crate::runtime::now_ms();
        let id = format!("{}-{}-{now}", self.id.machine, req.sid);
        let payload = json!({
            "v": 1,
            "id": id,
            "machine": self.id.machine,
            "site": self.id.site,
            "sid": req.sid,
            "amount": req.amount,
            "currency": self.id.currency.code(),
            "method": req.method.as_str(),
            "credential": req.credential,
            "reply_to": format!("{}/auth/response/{id}", self.cfg.topic_root),
            "ts": now,
        });
        self.auth_pending.insert(id, req.sid);
        self.publish_under_root("auth/request", payload.to_string());
    }

    fn on_auth_response(&mut self, id: &str, raw: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
            warn!(id, "an authorisation response that is not JSON");
            return;
        };
        let sid = self.auth_pending.remove(id).or_else(|| v["sid"].as_u64());
        let (Some(sid), Some(approved)) = (sid, v["approved"].as_bool()) else {
            warn!(id, "an authorisation response without session or decision");
            return;
        };
        let input = crate::core::Input::AuthResult {
            sid,
            approved,
            amount: v["amount"].as_i64().unwrap_or(0),
            auth_ref: v["auth_ref"].as_str().unwrap_or(id).to_string(),
            reason: v["reason"]
                .as_str()
                .unwrap_or("declined by the authoriser")
                .to_string(),
        };
        let _ = self.core.try_send(Request { input, reply: None });
    }

    fn publish_status(&self) {
        let committed = *self.committed.borrow();
        let fault = self
            .outbox
            .fault()
            .map(|f: Fault| f.to_string())
            .or_else(|| self.last_error.clone());
        self.status.send_replace(LinkStatus {
            connected: self.outbox.is_connected(),
            cursor: self.outbox.cursor(),
            backlog: committed.saturating_sub(self.outbox.cursor()),
            fault,
            connects: self.connects,
        });
    }

    fn telemetry(&mut self) {
        let snap = self.snapshot.borrow().clone();
        let now = crate::runtime::now_ms();
        let stock: serde_json::Map<String, serde_json::Value> = snap
            .catalog
            .slots
            .iter()
            .map(|s| (s.id.clone(), s.stock.into()))
            .collect();
        let faults: serde_json::Map<String, serde_json::Value> = snap
            .catalog
            .slots
            .iter()
            .filter_map(|s| s.fault.as_ref().map(|f| (s.id.clone(), f.clone().into())))
            .collect();
        let committed = *self.committed.borrow();
        let payload = json!({
            "schema": super::event::SCHEMA_VERSION,
            "machine": self.id.machine,
            "site": self.id.site,
            "ts": now,
            "ts_iso": rfc3339_utc_ms(now),
            "uptime_s": self.started.elapsed().as_secs(),
            "door_open": snap.session.door_open,
            "phase": snap.session.phase,
            "stock": stock,
            "faults": faults,
            "queue_depth": committed.saturating_sub(self.outbox.cursor()),
            "link": if self.outbox.is_connected() { "online" } else { "offline" },
            "temperature_c": null,
        });
        let topic = format!("{}/telemetry", self.cfg.topic_root);
        self.publish(
            Marker::Other,
            topic,
            payload.to_string(),
            QoS::AtMostOnce,
            false,
        );
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.connects += 1;
                self.last_error = None;
                info!(host = %self.cfg.host, port = self.cfg.port, "mqtt connected");
                let birth = status_payload(&self.id, "online", self.started);
                self.publish(
                    Marker::Other,
                    status_topic(&self.cfg),
                    birth,
                    QoS::AtLeastOnce,
                    true,
                );
                // The persistent session keeps the subscription; asking again is harmless.
                let filter = format!("{}/cmd/+", self.cfg.topic_root);
                if let Err(e) = self.client.try_subscribe(filter, QoS::AtLeastOnce) {
                    warn!(cause = %e, "cannot subscribe to commands");
                }
                if self.cfg.online_auth {
                    let filter = format!("{}/auth/response/+", self.cfg.topic_root);
                    if let Err(e) = self.client.try_subscribe(filter, QoS::AtLeastOnce) {
                        warn!(cause = %e, "cannot subscribe to authorisation responses");
                    }
                }
                if self.cfg.ha_discovery {
                    self.publish_discovery();
                }
                self.set_online(true);
                let resend = self.outbox.on_connack();
                self.publish_reports(resend);
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                // A packet-id collision: this publish gets `pkid` and goes out later.
                self.awaiting.insert(pkid);
                self.match_marker(pkid);
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if !self.awaiting.remove(&pkid) {
                    self.match_marker(pkid);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let code = reason_code(&ack.reason);
                if code >= super::outbox::REASON_FAILURE {
                    warn!(
                        pkid = ack.pkid,
                        code, "the broker refused a report; it stays queued"
                    );
                }
                let more = self.outbox.on_puback(ack.pkid, code);
                self.publish_reports(more);
                self.persist_cursor();
            }
            Event::Incoming(Packet::Publish(p)) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let prefix = format!("{}/cmd/", self.cfg.topic_root);
                let auth_prefix = format!("{}/auth/response/", self.cfg.topic_root);
                if let Some(id) = topic.strip_prefix(&auth_prefix) {
                    let id = id.to_string();
                    self.on_auth_response(&id, &p.payload);
                    return;
                }
                match topic.strip_prefix(&prefix) {
                    Some(name) if !name.contains('/') && !p.retain => {
                        let name = name.to_string();
                        self.on_command(&name, &p.payload)
                    }
                    Some(_) if p.retain => warn!(%topic, "ignoring a retained command"),
                    _ => debug!(%topic, "ignoring a message on an unexpected topic"),
                }
            }
            other => debug!(event = ?other, "mqtt"),
        }
    }

    /// A command arrived: verify it (signature, expiry, replay, arguments) and hand it to
    /// the controller, which applies it all or nothing and journals the outcome; the result
    /// is then reported from the journal. Refused commands are answered at once and change
    /// nothing. A replay is answered with the original result.
    fn on_command(&mut self, name: &str, raw: &[u8]) {
        let now = crate::runtime::now_ms();
        let seen = self.snapshot.borrow().seen_commands.clone();
        let live = |k: String| seen.get(&k).is_some_and(|(exp, ..)| *exp >= now);
        let guard =
            |id: &str, nonce: &str| live(format!("id:{id}")) || live(format!("nonce:{nonce}"));
        let v = match command::verify(
            raw,
            name,
            &self.cfg.operator_keys,
            &self.id.machine,
            now,
            &guard,
        ) {
            Ok(v) => v,
            Err(e) => {
                let original = matches!(e, CommandError::Replayed { .. })
                    .then(|| command::parse_strict(raw).ok())
                    .flatten()
                    .and_then(|j| j.get("id").and_then(|i| i.as_str()).map(str::to_string))
                    .and_then(|id| seen.get(&format!("id:{id}")).map(|o| (id, o.clone())));
                let answer = match original {
                    // The same command again (a QoS 1 redelivery or a retry): same answer.
                    Some((id, (_, ok, code, message))) => json!({
                        "v": 1, "id": id, "name": name, "ok": ok, "code": code,
                        "message": message, "at": now, "replay": true,
                    })
                    .to_string(),
                    None => {
                        warn!(command = name, code = e.code(), "remote command refused");
                        lossy(CommandResult::rejected(raw, name, &e, now).to_json())
                    }
                };
                self.publish_result(name, answer);
                return;
            }
        };
        let mut inputs = v.command.inputs_for(&v.id, self.id.rows, self.id.cols);
        if let RemoteCommand::ReloadConfig {} = v.command {
            match self.reload_config() {
                Ok(i) => inputs = i,
                Err((code, msg)) => {
                    let answer = lossy(CommandResult::failed(&v, code, msg, now).to_json());
                    self.publish_result(name, answer);
                    return;
                }
            }
        }
        if let RemoteCommand::Doctor {} = v.command {
            self.publish_doctor(&v.id, now);
        }
        if let RemoteCommand::AuditExport {} = v.command {
            // The counters as the core last published them; the command is then journaled
            // (no core effect) and answered from the journal like every other.
            self.publish_audit(&v.id, now);
        }
        info!(command = name, id = %v.id, "remote command verified");
        let input = crate::core::Input::RemoteCommand {
            id: v.id.clone(),
            name: name.to_string(),
            nonce: v.nonce.clone(),
            expires_at: v.expires_at,
            digest: v.digest.clone(),
            inputs,
        };
        if self.core.try_send(Request { input, reply: None }).is_err() {
            let msg = "the controller is busy; send the command again";
            let answer = lossy(CommandResult::failed(&v, "busy", msg, now).to_json());
            self.publish_result(name, answer);
        }
    }

    /// `reload_config`: reads and validates the configuration file again and applies its
    /// planogram (prices, products, capacities; stock counts carry over). A file with an
    /// error changes nothing and the answer names its file, line and field. Settings other
    /// than the planogram (time-outs, offline limits, MQTT) take effect at the next restart.
    fn reload_config(&self) -> Result<Vec<crate::core::Input>, (&'static str, String)> {
        let Some(path) = &self.id.config_path else {
            let msg = "this machine runs its embedded configuration: there is no file to reload";
            return Err(("no_config_file", msg.to_string()));
        };
        let cfg = crate::config::Config::load(path)
            .map_err(|e| ("bad_config", format!("{e}; nothing was changed")))?;
        if cfg.machine.id != self.id.machine
            || cfg.machine.rows != self.id.rows
            || cfg.machine.cols != self.id.cols
        {
            let msg =
                "the file describes another machine (id or matrix size); restart to change those";
            return Err(("config_mismatch", msg.to_string()));
        }
        Ok(vec![crate::core::Input::SetPlanogram {
            catalog: cfg.catalog,
            source: cfg.planogram_source,
            rows: cfg.machine.rows,
            cols: cfg.machine.cols,
            stock_given: Vec::new(),
        }])
    }

    /// Publishes the audit counters (lifetime and since the last reset, per slot and per
    /// payment method) as JSON on `<root>/audit`, QoS 1, not retained.
    fn publish_audit(&mut self, command_id: &str, now: u64) {
        let counters = self.snapshot.borrow().counters.clone();
        let payload = json!({
            "schema": super::event::SCHEMA_VERSION,
            "machine": self.id.machine,
            "site": self.id.site,
            "currency": self.id.currency.code(),
            "command_id": command_id,
            "ts": now,
            "ts_iso": rfc3339_utc_ms(now),
            "counters": counters,
            "dex": self.id.dex.as_ref().and_then(|(m, offset)| {
                crate::dex::from_reader(&self.reader, m, self.id.currency, *offset, now)
                    .map_err(|e| warn!(cause = %e, "cannot build the DEX file"))
                    .ok()
            }),
        });
        self.publish_under_root("audit", payload.to_string());
    }

    /// Publishes the `vendd doctor` checks of the running daemon (from its threads' status)
    /// on `<root>/doctor`, QoS 1, not retained.
    fn publish_doctor(&mut self, command_id: &str, now: u64) {
        let checks = match self.diagnostics.get() {
            Some(h) => serde_json::to_value(crate::doctor::live(h)).unwrap_or_default(),
            None => serde_json::Value::Null,
        };
        let payload = json!({
            "schema": super::event::SCHEMA_VERSION,
            "machine": self.id.machine,
            "site": self.id.site,
            "command_id": command_id,
            "ts": now,
            "ts_iso": rfc3339_utc_ms(now),
            "checks": checks,
        });
        self.publish_under_root("doctor", payload.to_string());
    }

    fn publish_result(&mut self, name: &str, payload: String) {
        self.publish_under_root(&command::result_topic(name), payload);
    }

    /// A QoS 1, not retained message outside the outbox, under the topic root.
    fn publish_under_root(&mut self, suffix: &str, payload: String) {
        let topic = format!("{}/{suffix}", self.cfg.topic_root);
        self.publish(Marker::Other, topic, payload, QoS::AtLeastOnce, false);
    }

    fn match_marker(&mut self, pkid: u16) {
        match self.markers.pop_front() {
            Some(Marker::Outbox) => {
                self.outbox.on_published(pkid);
            }
            Some(Marker::Other) => {}
            None => warn!(pkid, "an outgoing publish nobody asked for"),
        }
    }

    /// Runs until `shutdown` turns true: then publishes a retained `offline` status (a clean
    /// disconnect sends no will) and disconnects.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        let mut tick = tokio::time::interval(self.cfg.telemetry_interval);
        let mut retry = tokio::time::interval(RETRY_REFUSED);
        loop {
            self.pump();
            self.publish_status();
            tokio::select! {
                ev = self.eventloop.poll() => match ev {
                    Ok(ev) => { backoff = Duration::from_secs(1); self.on_event(ev); }
                    Err(e) => {
                        if self.outbox.is_connected() || self.last_error.is_none() {
                            warn!(cause = %e, "mqtt connection lost; reports stay in the journal");
                        }
                        self.last_error = Some(e.to_string());
                        if self.outbox.is_connected() {
                            self.set_online(false);
                        }
                        self.outbox.on_disconnect();
                        // rumqttc moved its unacknowledged publishes into `pending` to replay
                        // them; the outbox replays them itself after the next ConnAck.
                        self.eventloop.pending.clear();
                        self.markers.clear();
                        self.awaiting.clear();
                        self.publish_status();
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => break,
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
                _ = self.committed.changed() => {}
                Some(req) = self.auth_rx.recv() => {
                    if self.outbox.is_connected() {
                        self.request_auth(req);
                    } else {
                        // Offline: the authorising time-out hands the decision to the
                        // offline policy.
                        debug!(sid = req.sid, "no link; the offline policy will decide");
                    }
                }
                _ = tick.tick() => if self.outbox.is_connected() { self.telemetry(); },
                _ = retry.tick() => { let again = self.outbox.retry_refused(); self.publish_reports(again); }
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
        if self.outbox.is_connected() {
            let bye = status_payload(&self.id, "offline", self.started);
            self.publish(
                Marker::Other,
                status_topic(&self.cfg),
                bye,
                QoS::AtLeastOnce,
                true,
            );
            let _ = self.client.try_disconnect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                let done = matches!(ev, Event::Outgoing(Outgoing::Disconnect));
                self.on_event(ev);
                if done {
                    break;
                }
            }
        }
        self.persist_cursor();
        info!(cursor = self.outbox.cursor(), "mqtt link stopped");
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
}
