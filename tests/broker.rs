//! A real MQTT broker for the integration tests: a `mosquitto` process on a free loopback
//! port, with optional users, ACL, TLS (a test CA made with the `openssl` CLI) and
//! persistence, plus MQTT 5 test clients (`Subscriber`, `publish_once`, `try_connect`).
//!
//! Needs the Debian packages `mosquitto` (2.0.11 here) and `openssl`; the setup script
//! installs them. Everything listens on 127.0.0.1 only, on a port the kernel picked, so
//! tests can run brokers in parallel. Every process is killed and reaped on drop, also
//! when a test panics; every file lives in a temp dir that goes with its owner.
//!
//! Facts these helpers rely on (mosquitto 2.0.11, rumqttc 0.25 `v5`):
//! - An ACL-denied QoS 1 publish gets a PUBACK with reason 135: rumqttc yields
//!   `Event::Incoming(Packet::PubAck(PubAck { reason: PubAckReason::NotAuthorized, .. }))`
//!   and otherwise only logs a warning (no error). Over MQTT 3.1.1 the same publish is
//!   acked as a success and dropped (setup notes).
//! - mosquitto accepts a SUBSCRIBE the ACL gives no read right to (SUBACK success) and then
//!   delivers nothing on it.
//! - A wrong password is `ConnectionError::ConnectionRefused(NotAuthorized)` (reason 135,
//!   not 134 `BadUserNamePassword`).
//! - A server certificate from an unknown CA is
//!   `ConnectionError::Tls(TlsError::Io(e))` where `e` wraps a
//!   `rustls::Error::InvalidCertificate(UnknownIssuer)`.
//! - rumqttc's `TlsConfiguration::Simple` calls `ClientConfig::builder()`, i.e. rustls's
//!   process-default provider, which exists only while exactly one provider feature is in
//!   the build: `TlsConfiguration::Rustls(tls_client_config(..))` names ring explicitly.
#![allow(dead_code)]

use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Filter, Packet, PubAckReason, RetainForwardRule,
    SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a broker may take to accept TCP, and a client to connect or get its ack.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between a test client's reconnection attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------------------

/// What the broker allows and how it listens.
#[derive(Clone, Debug)]
pub struct BrokerOpts {
    /// `allow_anonymous`.
    pub anonymous: bool,
    /// Users for a `password_file` made with `mosquitto_passwd`; none = no password file.
    pub users: Vec<(String, String)>,
    /// Text of an `acl_file` (e.g. `user k1\ntopic write vend/v1/k1/#`).
    pub acl: Option<String>,
    /// Serve TLS only (no plain listener) with this PKI's server certificate.
    pub tls: Option<TestPki>,
    /// `persistence true` with a 1 s `autosave_interval`: sessions, queued QoS 1 messages
    /// and retained messages survive `stop()` + `restart()` (not `kill()` + `restart()` for
    /// the last second).
    pub persistence: bool,
}

impl Default for BrokerOpts {
    fn default() -> Self {
        BrokerOpts {
            anonymous: true,
            users: Vec::new(),
            acl: None,
            tls: None,
            persistence: true,
        }
    }
}

/// A running `mosquitto` on `127.0.0.1:port()`. Killed and reaped on drop.
///
/// The port is kept for the struct's whole life: while the broker is stopped, a bound but
/// not listening socket holds it, so no other test is given it and connections to it are
/// refused (as with a real broker that is down).
pub struct Mosquitto {
    opts: BrokerOpts,
    port: u16,
    /// Config, passwd, acl, persistence db and log; removed on drop.
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Holds the port while no broker listens on it.
    reservation: Option<OwnedFd>,
}

impl Mosquitto {
    /// Writes the config and starts the broker; returns once its port accepts TCP.
    ///
    /// # Panics
    /// If mosquitto or mosquitto_passwd is missing, the config is refused, or the port does
    /// not accept TCP within 10 s; the message carries the broker's log.
    pub fn start(opts: &BrokerOpts) -> Mosquitto {
        let dir = tempfile::Builder::new()
            .prefix("mosquitto-")
            .tempdir()
            .expect("temp dir");
        let (port, reservation) = reserve_free_port();
        let mut broker = Mosquitto {
            opts: opts.clone(),
            port,
            dir,
            child: None,
            reservation: Some(reservation),
        };
        // Another process may take the port between our probe and mosquitto's bind: retry.
        for _ in 0..5 {
            broker.write_config();
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(e) if e.contains("Address already in use") => {
                    let (port, reservation) = reserve_free_port();
                    (broker.port, broker.reservation) = (port, Some(reservation));
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!(
            "mosquitto found no free port in 5 tries; log:\n{}",
            broker.log()
        );
    }

    /// The broker's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `"127.0.0.1"` (the test certificate has it as an IP SAN).
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The options the broker was started with.
    pub fn opts(&self) -> &BrokerOpts {
        &self.opts
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the broker process is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops the broker gracefully (SIGTERM, which saves the persistence db) and reaps it;
    /// SIGKILL after 5 s. The port stays reserved. No-op when already stopped.
    pub fn stop(&mut self) {
        self.end(libc::SIGTERM);
    }

    /// Kills the broker with SIGKILL (a crash: nothing is saved beyond the last autosave)
    /// and reaps it. The port stays reserved.
    pub fn kill(&mut self) {
        self.end(libc::SIGKILL);
    }

    /// Starts the broker again on the same port with the same config and persistence dir
    /// (stopping it first if it runs).
    ///
    /// # Panics
    /// As [`Mosquitto::start`].
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!("mosquitto restart on port {}: {e}", self.port);
        }
    }

    /// The broker's log so far (all runs), plus its stderr.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Path of the log file (for a panic message from a helper that outlives `&self`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    /// Client options for this broker: host and port, TLS with the test CA when the broker
    /// has TLS, and the first of `opts.users` as credentials. Keep-alive 5 s, connection
    /// timeout 5 s.
    pub fn client_options(&self, client_id: &str) -> MqttOptions {
        let user = self
            .opts
            .users
            .first()
            .map(|(u, p)| (u.as_str(), p.as_str()));
        self.client_options_as(client_id, user)
    }

    /// As [`Mosquitto::client_options`], with the given credentials (`None`: anonymous).
    pub fn client_options_as(&self, client_id: &str, user: Option<(&str, &str)>) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, self.host(), self.port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_connection_timeout(5);
        if let Some((u, p)) = user {
            o.set_credentials(u, p);
        }
        if let Some(pki) = &self.opts.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls_client_config(&pki.ca_pem),
            )));
        }
        o
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let mut conf = String::new();
        // Relative paths in the config would depend on the broker's cwd: use absolute ones.
        conf += &format!("listener {} 127.0.0.1\n", self.port);
        if let Some(pki) = &self.opts.tls {
            conf += &format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate false\n",
                pki.ca_pem.display(),
                pki.server_cert.display(),
                pki.server_key.display()
            );
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // Otherwise mosquitto drops to user `mosquitto` and cannot write the temp dir.
            conf += "user root\n";
        }
        conf += &format!("allow_anonymous {}\n", self.opts.anonymous);
        if self.opts.persistence {
            conf += &format!(
                "persistence true\npersistence_location {}/\npersistence_file mosquitto.db\n\
                 autosave_interval 1\n",
                d.display()
            );
        } else {
            conf += "persistence false\n";
        }
        if !self.opts.users.is_empty() {
            let passwd = d.join("passwd");
            for (i, (user, pass)) in self.opts.users.iter().enumerate() {
                let mut cmd = Command::new("mosquitto_passwd");
                if i == 0 {
                    cmd.arg("-c");
                }
                let out = cmd
                    .arg("-b")
                    .arg(&passwd)
                    .arg(user)
                    .arg(pass)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run mosquitto_passwd (apt-get install mosquitto)");
                assert!(out.status.success(), "mosquitto_passwd {user}: {out:?}");
            }
            conf += &format!("password_file {}\n", passwd.display());
        }
        if let Some(acl) = &self.opts.acl {
            let path = d.join("acl");
            fs::write(&path, acl).expect("write acl");
            conf += &format!("acl_file {}\n", path.display());
        }
        conf += &format!("log_dest file {}\n", d.join("mosquitto.log").display());
        conf += "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
                 log_type subscribe\nlog_type unsubscribe\nconnection_messages true\n\
                 log_timestamp_format %H:%M:%S\n";
        fs::write(d.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
    }

    /// Releases the port reservation, starts mosquitto and waits until the port accepts
    /// TCP. On failure the port is reserved again and the error carries the log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let d = self.dir.path().to_path_buf();
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("mosquitto.stderr"))
            .expect("stderr file");
        self.reservation = None; // closes the socket: mosquitto can bind now
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(d.join("mosquitto.conf"))
            .current_dir(&d)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("dup"))
            .stderr(stderr)
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            let child = self.child.as_mut().expect("child");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                self.reservation = Some(reserve_port(self.port).expect("re-reserve port"));
                return Err(format!(
                    "mosquitto exited ({status}) before accepting on port {}; log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                self.end(libc::SIGKILL);
                return Err(format!(
                    "mosquitto did not accept TCP on port {} within {READY_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal`, reaps the process (SIGKILL after 5 s) and reserves the port again.
    fn end(&mut self, signal: libc::c_int) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid; it is not reaped yet, so the pid is ours.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        // Best effort: another process may (rarely) have taken the port in between.
        self.reservation = reserve_port(self.port).ok();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_log(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default();
    let err = fs::read_to_string(dir.join("mosquitto.stderr")).unwrap_or_default();
    if err.trim().is_empty() {
        log
    } else {
        format!("{log}--- stderr ---\n{err}")
    }
}

/// A free loopback port, held by a bound (not listening) socket.
fn reserve_free_port() -> (u16, OwnedFd) {
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind 127.0.0.1:0")
            .local_addr()
            .unwrap()
            .port();
        if let Ok(fd) = reserve_port(port) {
            return (port, fd);
        }
    }
    panic!("no free loopback port");
}

/// Binds 127.0.0.1:`port` without listening: the kernel gives the port to no one else,
/// and a connect to it is refused.
fn reserve_port(port: u16) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket calls on a fresh fd that OwnedFd then owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        // Like mosquitto's own listener: allowed while old connections sit in TIME_WAIT.
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::bind(
            owned.as_raw_fd(),
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(owned)
    }
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

/// A throw-away PKI made with the `openssl` CLI (EC P-256): a CA, a server certificate it
/// signed for `DNS:localhost, IP:127.0.0.1`, and an unrelated second CA.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// Folder holding all files; removed when the last clone is dropped.
    pub dir: PathBuf,
    pub ca_pem: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A CA that signed nothing here: trusting only it must fail the handshake.
    pub other_ca_pem: PathBuf,
    _keep: Arc<tempfile::TempDir>,
}

impl TestPki {
    /// # Panics
    /// If `openssl` is missing or fails.
    pub fn generate() -> TestPki {
        let tmp = tempfile::Builder::new()
            .prefix("test-pki-")
            .tempdir()
            .expect("temp dir");
        let d = tmp.path().to_path_buf();
        // Run in `d` with relative names, so each command is a list of plain words.
        const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        const CA: &str = "-days 3650 -addext basicConstraints=critical,CA:TRUE \
                          -addext keyUsage=critical,keyCertSign,cRLSign";
        openssl(
            &d,
            &format!("req -x509 {EC} {CA} -subj /CN=vendd-test-CA -keyout ca.key -out ca.pem"),
        );
        openssl(
            &d,
            &format!(
                "req -x509 {EC} {CA} -subj /CN=other-CA -keyout other-ca.key -out other-ca.pem"
            ),
        );
        fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            &d,
            &format!("req -new {EC} -subj /CN=localhost -keyout server.key -out server.csr"),
        );
        let serial = format!(
            "0x{:x}",
            u64::from(std::process::id()) * 1_000_003 + nanos()
        );
        openssl(
            &d,
            &format!(
                "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial {serial} \
                 -days 825 -sha256 -extfile server.ext -out server.pem"
            ),
        );
        TestPki {
            ca_pem: d.join("ca.pem"),
            server_cert: d.join("server.pem"),
            server_key: d.join("server.key"),
            other_ca_pem: d.join("other-ca.pem"),
            dir: d,
            _keep: Arc::new(tmp),
        }
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// Runs `openssl` in `dir` with `args` split at whitespace.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A rustls client config (ring provider, TLS 1.2 and 1.3) trusting only the CA
/// certificate(s) in `ca_pem`. Use it as `TlsConfiguration::Rustls(..)`.
///
/// # Panics
/// If the file holds no certificate rustls accepts.
pub fn tls_client_config(ca_pem: &Path) -> Arc<rustls::ClientConfig> {
    let pem = fs::read(ca_pem).unwrap_or_else(|e| panic!("read {}: {e}", ca_pem.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("CA certificate accepted by rustls");
    }
    assert!(!roots.is_empty(), "no certificate in {}", ca_pem.display());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

/// One message a [`Subscriber`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    /// As delivered: true for a retained message sent because of the subscription.
    pub retain: bool,
}

impl Msg {
    /// The payload as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The payload parsed as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "payload on {} is not JSON ({e}): {}",
                self.topic,
                self.text()
            )
        })
    }
}

/// An MQTT 5 client on its own thread and tokio runtime, subscribed at QoS 1 to one filter,
/// collecting every message it receives (duplicates included). It reconnects every 100 ms
/// after a connection loss and subscribes again after every CONNACK (with MQTT 5 retain
/// handling 1, so a resumed session does not get the retained messages twice).
/// Run one `Subscriber` per client id at a time: two would take the session from each
/// other in a loop.
/// Disconnects gracefully on drop.
pub struct Subscriber {
    messages: Arc<Mutex<Vec<Msg>>>,
    stop: Arc<AtomicBool>,
    client: AsyncClient,
    thread: Option<JoinHandle<()>>,
    log_path: PathBuf,
    filter: String,
}

impl Subscriber {
    /// Connects with `broker.client_options(client_id)` (TLS and the first user when the
    /// broker has them) and subscribes to `filter`; returns after the SUBACK.
    ///
    /// `persistent`: clean_start false and a 1 h session expiry, so the broker queues QoS 1
    /// messages while this client id is away (also across a broker restart with
    /// persistence on). Otherwise clean_start true, no session.
    ///
    /// # Panics
    /// If it is not subscribed within 10 s (the message carries the last error and the
    /// broker log), or the broker refuses the subscription.
    pub fn start(
        broker: &Mosquitto,
        client_id: &str,
        filter: &str,
        persistent: bool,
    ) -> Subscriber {
        Self::start_with(broker, broker.client_options(client_id), filter, persistent)
    }

    /// As [`Subscriber::start`] with the caller's options (other credentials, keep-alive...).
    /// `persistent` overrides clean_start and session expiry.
    pub fn start_with(
        broker: &Mosquitto,
        mut options: MqttOptions,
        filter: &str,
        persistent: bool,
    ) -> Subscriber {
        options.set_clean_start(!persistent);
        options.set_session_expiry_interval(if persistent { Some(3600) } else { None });
        let (client, eventloop) = AsyncClient::new(options, 64);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(SubState::Connecting(String::new())));
        let thread = {
            let (messages, stop, state, client) = (
                messages.clone(),
                stop.clone(),
                state.clone(),
                client.clone(),
            );
            let filter = filter.to_owned();
            std::thread::Builder::new()
                .name(format!("mqtt-sub-{}", eventloop.options.client_id()))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(subscriber_loop(
                        eventloop, client, filter, messages, stop, state,
                    ));
                })
                .expect("spawn subscriber thread")
        };
        let sub = Subscriber {
            messages,
            stop,
            client,
            thread: Some(thread),
            log_path: broker.log_path(),
            filter: filter.to_owned(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match &*state.lock().unwrap() {
                SubState::Subscribed => return sub,
                SubState::Refused(why) => panic!(
                    "subscription to {filter} refused: {why}\nbroker log:\n{}",
                    sub.log()
                ),
                SubState::Connecting(last) if Instant::now() > deadline => {
                    panic!("not subscribed to {filter} within {READY_TIMEOUT:?}; last error: {last}\nbroker log:\n{}", sub.log())
                }
                SubState::Connecting(_) => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything received so far, in order of arrival.
    pub fn messages(&self) -> Vec<Msg> {
        self.messages.lock().unwrap().clone()
    }

    /// How many messages arrived so far.
    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// Polls (every 5 ms) until `pred(all messages so far)` holds; returns those messages.
    ///
    /// # Panics
    /// After `timeout`, with the messages received and the broker log.
    pub fn wait_for(&self, pred: impl Fn(&[Msg]) -> bool, timeout: Duration) -> Vec<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages();
            if pred(&msgs) {
                return msgs;
            }
            if Instant::now() > deadline {
                panic!(
                    "subscriber on {}: condition not met within {timeout:?}; received {} message(s): {:#?}\nbroker log:\n{}",
                    self.filter,
                    msgs.len(),
                    msgs,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log(&self) -> String {
        read_log(self.log_path.parent().expect("log dir"))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect(); // wakes a poll blocked on an idle connection
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum SubState {
    /// Last connection error, if any.
    Connecting(String),
    Subscribed,
    Refused(String),
}

async fn subscriber_loop(
    mut eventloop: rumqttc::v5::EventLoop,
    client: AsyncClient,
    filter: String,
    messages: Arc<Mutex<Vec<Msg>>>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<SubState>>,
) {
    loop {
        if stop.load(Ordering::SeqCst) && !matches!(&*state.lock().unwrap(), SubState::Subscribed) {
            return;
        }
        // Returns at least every keep-alive (5 s); a connect attempt gives up after 5 s.
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Subscribe after every CONNACK: a new session has no subscription. A resumed
                // one keeps it, and then "retain handling 1" stops the broker from sending
                // the retained messages a second time.
                let f = Filter {
                    retain_forward_rule: RetainForwardRule::OnNewSubscribe,
                    ..Filter::new(filter.clone(), QoS::AtLeastOnce)
                };
                let _ = client.subscribe_many([f]).await;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                *state.lock().unwrap() = match ack.return_codes.first() {
                    Some(SubscribeReasonCode::Success(_)) => SubState::Subscribed,
                    other => SubState::Refused(format!("{other:?}")),
                };
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                messages.lock().unwrap().push(Msg {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload.to_vec(),
                    retain: p.retain,
                });
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if stop.load(Ordering::SeqCst) => return,
            Ok(_) => {}
            Err(e) => {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if let SubState::Connecting(last) = &mut *state.lock().unwrap() {
                    *last = e.to_string();
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
}

static CLIENT_SEQ: AtomicU64 = AtomicU64::new(0);

/// A client id unique in this process (and across parallel test processes).
pub fn unique_client_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        CLIENT_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Publishes one QoS 1 message with `broker.client_options` (TLS and the first user when
/// the broker has them) and returns the PUBACK's reason (`Success`,
/// `NoMatchingSubscribers`, or e.g. `NotAuthorized` = 135 for an ACL denial).
///
/// # Panics
/// If the client cannot connect or gets no PUBACK within 10 s.
pub fn publish_once(broker: &Mosquitto, topic: &str, payload: &[u8], retain: bool) -> PubAckReason {
    let options = broker.client_options(&unique_client_id("pub"));
    publish_with(options, topic, payload, retain)
        .unwrap_or_else(|e| panic!("publish to {topic}: {e:?}\nbroker log:\n{}", broker.log()))
}

/// Connects with `options`, publishes one QoS 1 message, waits for its PUBACK and
/// disconnects. Runs on its own thread and runtime, so it may be called from async tests.
///
/// # Errors
/// The first `ConnectionError` (refused, TLS, I/O) or `Timeout` after 10 s.
pub fn publish_with(
    options: MqttOptions,
    topic: &str,
    payload: &[u8],
    retain: bool,
) -> Result<PubAckReason, ConnectionError> {
    let (topic, payload) = (topic.to_owned(), payload.to_vec());
    on_own_runtime(async move {
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .expect("request channel open");
        let reason = loop {
            if let Event::Incoming(Packet::PubAck(ack)) = eventloop.poll().await? {
                break ack.reason;
            }
        };
        disconnect(&client, &mut eventloop).await;
        Ok(reason)
    })
}

/// Connects once with `options` and returns the CONNACK, then disconnects.
///
/// # Errors
/// E.g. `ConnectionRefused(BadUserNamePassword)` for a wrong password, `Tls(..)` for an
/// untrusted server certificate, `Io(ConnectionRefused)` when no broker listens.
pub fn try_connect(options: MqttOptions) -> Result<ConnAck, ConnectionError> {
    on_own_runtime(async move {
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        let ack = loop {
            if let Event::Incoming(Packet::ConnAck(ack)) = eventloop.poll().await? {
                break ack;
            }
        };
        disconnect(&client, &mut eventloop).await;
        Ok(ack)
    })
}

async fn disconnect(client: &AsyncClient, eventloop: &mut rumqttc::v5::EventLoop) {
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(ev) = eventloop.poll().await {
            if ev == Event::Outgoing(Outgoing::Disconnect) {
                break;
            }
        }
    })
    .await;
}

/// Runs `fut` to completion on a fresh current-thread runtime on a new thread, with a 10 s
/// limit (so it works from sync and async tests alike).
fn on_own_runtime<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, ConnectionError>> + Send + 'static,
) -> Result<T, ConnectionError> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move { tokio::time::timeout(READY_TIMEOUT, fut).await? })
    })
    .join()
    .expect("client thread panicked")
}

// ---------------------------------------------------------------------------------------
// Self-tests of the harness
// ---------------------------------------------------------------------------------------

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_broker_starts_on_a_free_port_and_relays_a_message() {
    let broker = Mosquitto::start(&BrokerOpts {
        persistence: false,
        ..Default::default()
    });
    assert_ne!(broker.port(), 1883);
    let sub = Subscriber::start(&broker, &unique_client_id("sub"), "vend/v1/#", false);
    let reason = publish_once(&broker, "vend/v1/test/k1/event", br#"{"n":1}"#, false);
    assert_eq!(reason, PubAckReason::Success);
    let msgs = sub.wait_for(|m| !m.is_empty(), secs(5));
    assert_eq!(msgs[0].topic, "vend/v1/test/k1/event");
    assert_eq!(msgs[0].json()["n"], 1);
    assert!(!msgs[0].retain);
}

#[test]
fn a_stopped_broker_restarts_on_the_same_port() {
    let mut broker = Mosquitto::start(&BrokerOpts::default());
    let port = broker.port();
    let id = unique_client_id("kiosk-cmds");
    let sub = Subscriber::start(&broker, &id, "cmd/#", true);
    drop(sub); // the kiosk goes away; its persistent session stays

    publish_once(&broker, "cmd/retained", b"r", true);
    publish_once(&broker, "cmd/queued", b"q1", false); // queued for the absent subscriber
    broker.stop();
    let refused = try_connect(broker.client_options(&unique_client_id("probe")));
    assert!(
        matches!(refused, Err(ConnectionError::Io(_))),
        "{refused:?}"
    );

    broker.restart();
    assert_eq!(broker.port(), port);
    // The session, its queued message and the retained message survived the restart.
    let sub = Subscriber::start(&broker, &id, "cmd/#", true);
    let msgs = sub.wait_for(|m| m.iter().any(|m| m.topic == "cmd/queued"), secs(5));
    assert_eq!(
        msgs.iter()
            .find(|m| m.topic == "cmd/queued")
            .unwrap()
            .payload,
        b"q1"
    );
    let sub2 = Subscriber::start(&broker, &unique_client_id("fresh"), "cmd/retained", false);
    assert!(sub2.wait_for(|m| !m.is_empty(), secs(5))[0].retain);

    // A connected persistent subscriber reconnects by itself after a restart.
    broker.restart();
    publish_once(&broker, "cmd/after", b"a", false);
    sub.wait_for(|m| m.iter().any(|m| m.topic == "cmd/after"), secs(5));
}

#[test]
fn tls_with_the_test_ca_works_and_a_wrong_ca_is_refused() {
    let pki = TestPki::generate();
    let broker = Mosquitto::start(&BrokerOpts {
        tls: Some(pki.clone()),
        persistence: false,
        ..Default::default()
    });
    let sub = Subscriber::start(&broker, &unique_client_id("tls-sub"), "t/#", false);
    assert_eq!(
        publish_once(&broker, "t/1", b"x", false),
        PubAckReason::Success
    );
    sub.wait_for(|m| m.len() == 1, secs(5));

    let mut wrong = MqttOptions::new(unique_client_id("wrong-ca"), broker.host(), broker.port());
    wrong.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        tls_client_config(&pki.other_ca_pem),
    )));
    let err = try_connect(wrong).expect_err("a server cert from another CA must be refused");
    let ConnectionError::Tls(rumqttc::TlsError::Io(io)) = &err else {
        panic!("unexpected error: {err:?}")
    };
    let tls = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            tls,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );

    // Plain MQTT against the TLS listener does not get a CONNACK.
    let mut plain = MqttOptions::new(unique_client_id("plain"), broker.host(), broker.port());
    plain.set_connection_timeout(2);
    assert!(try_connect(plain).is_err());
}

#[test]
fn a_wrong_password_is_refused_and_an_acl_denial_gives_reason_135() {
    let broker = Mosquitto::start(&BrokerOpts {
        anonymous: false,
        users: vec![
            ("ops".into(), "ops-secret".into()),
            ("k1".into(), "k1-secret".into()),
        ],
        acl: Some("user ops\ntopic readwrite #\n\npattern write vend/v1/%u/#\n".into()),
        persistence: false,
        ..Default::default()
    });
    let err = try_connect(broker.client_options_as(&unique_client_id("k1"), Some(("k1", "nope"))))
        .unwrap_err();
    // mosquitto 2.0.11 answers a wrong password over MQTT 5 with 135 (not authorised),
    // not 134 (bad user name or password).
    assert!(
        matches!(
            err,
            ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)
        ),
        "{err:?}"
    );

    let sub = Subscriber::start(&broker, &unique_client_id("ops"), "vend/#", false); // as ops
    let as_k1 = |topic: &str| {
        publish_with(
            broker.client_options_as(&unique_client_id("k1"), Some(("k1", "k1-secret"))),
            topic,
            b"p",
            false,
        )
        .expect("k1 connects")
    };
    assert_eq!(as_k1("vend/v1/k2/event"), PubAckReason::NotAuthorized);
    assert_eq!(as_k1("vend/v1/k1/event"), PubAckReason::Success);
    let msgs = sub.wait_for(|m| !m.is_empty(), secs(5));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        sub.messages(),
        msgs,
        "the denied publish must not be delivered"
    );
    assert_eq!(msgs[0].topic, "vend/v1/k1/event");
}
