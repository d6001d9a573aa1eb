//! Configuration: `RawConfig` mirrors the TOML file; [`Config`] is the validated form,
//! built once at start-up. Every error names the file, the line and the field.
//!
//! Nothing reads the environment or the file again after [`Config::load`] returns.

use crate::camera::{CameraConfig, PixelFormat, SourceKind};
use crate::core::{
    Catalog, CoreConfig, Currency, PaymentMethod, PolicyConfig, Product, Slot, SlotId, Timeouts,
};
use crate::hw::{PinMap, SimConfig, VendTiming};
use crate::nfc::reader::PollerConfig;
use crate::payment::paycode::{PayCodePattern, PayCodeRules};
use crate::payment::MerchantConfig;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The configuration embedded in the binary: a 6×10 machine, simulated hardware.
/// It is also the documented example (`config/example-6x10.toml`).
pub const EMBEDDED: &str = include_str!("../config/example-6x10.toml");

/// A configuration error: file, line (1-based, 0 when unknown), field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    /// The file (or `<embedded>`).
    pub file: String,
    /// Line of the offending value.
    pub line: usize,
    /// Dotted field path, e.g. `slots[3].price`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    machine: Spanned<RawMachine>,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    http: Option<Spanned<RawHttp>>,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    vend: RawVend,
    #[serde(default)]
    offline: Option<Spanned<RawOffline>>,
    #[serde(default)]
    security: Option<Spanned<RawSecurity>>,
    #[serde(default)]
    hardware: Option<Spanned<RawHardware>>,
    #[serde(default)]
    sim: SimConfig,
    #[serde(default)]
    mqtt: Option<Spanned<RawMqtt>>,
    #[serde(default)]
    nfc: Option<Spanned<RawNfc>>,
    #[serde(default)]
    camera: Option<Spanned<RawCamera>>,
    #[serde(default)]
    paycodes: Option<Spanned<RawPayCodes>>,
    #[serde(default)]
    merchant_qr: Option<Spanned<RawMerchantQr>>,
    #[serde(default)]
    face: Option<Spanned<RawFace>>,
    #[serde(default)]
    retention: crate::journal::RetentionConfig,
    // Not `Spanned`: `[kiosk.voice]` alone (no `[kiosk]` line) is an implicit table, which
    // toml cannot give a span for.
    #[serde(default)]
    kiosk: Option<RawKiosk>,
    planogram: RawPlanogram,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawKiosk {
    language: Option<String>,
    voice: Option<RawVoice>,
    listen: Option<RawListen>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawVoice {
    enabled: bool,
    clips: Option<PathBuf>,
    output: Option<String>,
    device: Option<String>,
    wav_dir: Option<PathBuf>,
    volume: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawListen {
    enabled: bool,
    input: Option<String>,
    device: Option<String>,
    wav_dir: Option<PathBuf>,
    language: Option<String>,
    models: BTreeMap<String, PathBuf>,
    min_confidence: Option<f32>,
    trigger: Option<String>,
}

/// The kiosk page and its voice.
#[derive(Debug, Clone, PartialEq)]
pub struct KioskConfig {
    /// The language the page and the voice start in.
    pub language: crate::voice::catalog::Lang,
    /// Voice prompts (None: silent).
    pub voice: Option<crate::speech::VoiceConfig>,
    /// Voice commands (None: touch only).
    pub listen: Option<crate::speech::ListenConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawFace {
    enabled: bool,
    models: Option<PathBuf>,
    gallery: Option<PathBuf>,
    detect_width: Option<u32>,
    detect_height: Option<u32>,
    score_threshold: Option<f32>,
    roi_size: Option<u32>,
    roi_scale: Option<f32>,
    full_every: Option<u32>,
    challenge: Option<String>,
    enrol_timeout_s: Option<u32>,
    capture_gap_ms: Option<u64>,
    quality: crate::face::quality::QualityConfig,
    matching: crate::face::matcher::MatchConfig,
    liveness: crate::face::liveness::LivenessConfig,
    enrol: crate::face::gallery::EnrolConfig,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawNfc {
    reader: Option<String>,
    spi_bus: u8,
    spi_slave_select: u8,
    spi_clock_hz: Option<u32>,
    i2c_bus: Option<u8>,
    uart: Option<PathBuf>,
    reset_pin: Option<u8>,
    irq_pin: Option<u8>,
    poll: PollerConfig,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawCamera {
    source: Option<String>,
    device: u32,
    format: Option<PixelFormat>,
    replay: Option<PathBuf>,
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<u32>,
    idle_fps: Option<u32>,
    activity_threshold: Option<f32>,
    repeat_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPayCodes {
    pattern: Vec<RawPattern>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    name: String,
    regex: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMerchantQr {
    enabled: bool,
    account_template_id: u8,
    guid: String,
    merchant_id: String,
    mcc: String,
    name: String,
    city: String,
    country: String,
    postal_code: Option<String>,
}

/// Which NFC reader is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NfcReader {
    /// None: cards are not offered.
    None,
    /// The simulated PN532 (driven by the sim API).
    Sim,
    /// PN532 on SPI (`/dev/spidev<bus>.<ss>`).
    Spi {
        /// Bus.
        bus: u8,
        /// Slave select.
        slave_select: u8,
        /// Clock.
        clock_hz: u32,
    },
    /// PN532 on I2C (`/dev/i2c-<bus>`, address 0x24).
    I2c {
        /// Bus.
        bus: u8,
    },
    /// PN532 on a UART (HSU, 115200 8N1).
    Uart {
        /// Serial device.
        path: PathBuf,
    },
}

/// The NFC reader (`[nfc]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfcConfig {
    /// Reader and its bus.
    pub reader: NfcReader,
    /// Optional RSTPDN and IRQ pins.
    pub pins: crate::nfc::rpi::Pins,
    /// De-bounce and recovery.
    pub poll: PollerConfig,
}

/// Camera, QR scanning and payment codes.
#[derive(Debug, Clone)]
pub struct CodesConfig {
    /// The camera.
    pub camera: CameraConfig,
    /// The same payload read again within this is one read.
    pub repeat_ms: u64,
    /// Accepted pay codes.
    pub paycodes: PayCodeRules,
    /// Merchant data for the dynamic QR shown at checkout (None: not offered).
    pub merchant_qr: Option<MerchantConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMqtt {
    enabled: bool,
    host: String,
    port: u16,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    keep_alive_s: Option<u64>,
    topic_root: Option<String>,
    telemetry_interval_s: Option<u64>,
    max_in_flight: Option<usize>,
    low_stock: Option<u32>,
    operator_keys: Vec<String>,
    ha_discovery: bool,
    online_auth: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlanogram {
    products: Vec<Spanned<RawProduct>>,
    slots: Vec<Spanned<RawSlot>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    id: String,
    site: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    location: String,
    rows: u8,
    cols: u8,
    currency: Currency,
    #[serde(default)]
    day_offset_minutes: i32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: String,
    allow_non_loopback: bool,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:8080".into(),
            allow_non_loopback: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTimeouts {
    shopping_ms: u64,
    credential_ms: u64,
    warn_before_ms: u64,
    authorising_ms: u64,
    vend_watchdog_ms: u64,
    settling_ms: u64,
    receipt_ms: u64,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        let t = Timeouts::default();
        RawTimeouts {
            shopping_ms: t.shopping,
            credential_ms: t.credential,
            warn_before_ms: t.warn_before,
            authorising_ms: t.authorising,
            vend_watchdog_ms: t.vend_watchdog,
            settling_ms: t.settling,
            receipt_ms: t.receipt,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawVend {
    max_attempts: u32,
    max_cart_items: u32,
    max_extends: u32,
    leave_home_timeout_ms: u64,
    motor_timeout_ms: u64,
    drop_window_ms: u64,
    drop_debounce_ms: u64,
}

impl Default for RawVend {
    fn default() -> Self {
        RawVend {
            max_attempts: 2,
            max_cart_items: 10,
            max_extends: 3,
            leave_home_timeout_ms: 800,
            motor_timeout_ms: 4000,
            drop_window_ms: 1500,
            drop_debounce_ms: 8,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawOffline {
    floor_limit: i64,
    max_offline_total: i64,
    max_uses_per_day: u32,
    methods: Vec<PaymentMethod>,
    deny: Vec<String>,
}

impl Default for RawOffline {
    fn default() -> Self {
        let p = PolicyConfig::default();
        RawOffline {
            floor_limit: p.floor_limit,
            max_offline_total: p.max_offline_total,
            max_uses_per_day: p.max_uses_per_day,
            methods: p.offline_methods.into_iter().collect(),
            deny: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    device_secret: Option<String>,
    device_secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHardware {
    backend: Backend,
    pinmap: Option<PathBuf>,
}

impl Default for RawHardware {
    fn default() -> Self {
        RawHardware {
            backend: Backend::Sim,
            pinmap: None,
        }
    }
}

/// Which hardware backend drives the machine.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The simulated machine.
    Sim,
    /// A Raspberry Pi through rppal.
    Rpi,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    id: SlotId,
    product: String,
    price: i64,
    capacity: u32,
    #[serde(default)]
    stock: Option<u32>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

/// The link to the operator's MQTT broker.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id (fixed: the broker keeps the persistent session under it).
    pub client_id: String,
    /// Username and password, if the broker wants them.
    pub credentials: Option<(String, String)>,
    /// CA certificates (PEM) to trust: TLS is on when set.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM), for brokers that require one.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Topic root, e.g. `vend/v1/<site>/<machine>`.
    pub topic_root: String,
    /// Telemetry period.
    pub telemetry_interval: Duration,
    /// Reports in flight (unacknowledged) at most.
    pub max_in_flight: usize,
    /// Stock at or below this raises a `stock_low` event.
    pub low_stock: u32,
    /// Operators' Ed25519 public keys: remote commands must be signed by one of them.
    /// Empty: every command is refused (`no_operator_keys`).
    pub operator_keys: Vec<ed25519_dalek::VerifyingKey>,
    /// Publish Home Assistant discovery messages after each connect.
    pub ha_discovery: bool,
    /// Ask the operator's authoriser (`auth/request`) while the link is up; otherwise (and
    /// while it is down, or slow) the offline policy decides.
    pub online_auth: bool,
}

/// Machine identity.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Machine id (MQTT topic part).
    pub id: String,
    /// Site id.
    pub site: String,
    /// Serial number (DEX ID1).
    pub serial: String,
    /// Model (DEX ID1).
    pub model: String,
    /// Location text.
    pub location: String,
    /// Motor matrix rows.
    pub rows: u8,
    /// Motor matrix columns.
    pub cols: u8,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub file: String,
    /// Identity.
    pub machine: Machine,
    /// Journal and state directory (None: the caller picks one).
    pub state_dir: Option<PathBuf>,
    /// HTTP listen address (loopback unless allowed).
    pub http_listen: SocketAddr,
    /// Controller configuration.
    pub core: CoreConfig,
    /// Motor timing.
    pub vend_timing: VendTiming,
    /// The configured planogram (initial stock included).
    pub catalog: Catalog,
    /// `config:<sha256>` of the planogram section, so a changed file is noticed.
    pub planogram_source: String,
    /// Seconds east of UTC for "per day" limits.
    pub day_offset_s: i64,
    /// Initial deny list (credential hashes).
    pub deny: Vec<String>,
    /// Secret for keyed hashes of credentials.
    pub device_secret: Vec<u8>,
    /// Hardware backend.
    pub backend: Backend,
    /// Pin map (for the Pi backend).
    pub pinmap: Option<PinMap>,
    /// Simulator parameters.
    pub sim: SimConfig,
    /// The MQTT link (None: reporting off).
    pub mqtt: Option<MqttConfig>,
    /// The NFC reader.
    pub nfc: NfcConfig,
    /// Camera, pay codes and the dynamic merchant QR.
    pub codes: CodesConfig,
    /// Face pay (None: not offered).
    pub face: Option<crate::facepay::FacePayConfig>,
    /// The kiosk page's language and voice.
    pub kiosk: KioskConfig,
    /// Journal retention (archiving and compaction).
    pub retention: crate::journal::RetentionConfig,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, pos: usize) -> usize {
        self.text[..pos.min(self.text.len())].matches('\n').count() + 1
    }
    /// An error at `key` inside the section `span` (or at the section when the key is absent).
    fn err_at(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let start = self
            .text
            .get(span.clone())
            .and_then(|sec| sec.find(key))
            .map_or(span.start, |i| span.start + i);
        self.err(start..start, field, message)
    }
    fn err(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line(span.start),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line and field.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            field: "-".into(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, &file, path.parent())
    }

    /// The embedded default configuration.
    ///
    /// # Panics
    /// Never in a released build: a test checks that the embedded file is valid.
    pub fn embedded() -> Config {
        Config::parse(EMBEDDED, "<embedded>", None).expect("the embedded configuration is valid")
    }

    /// Validates configuration text. `base` resolves relative paths (pin map, secret file).
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line and field.
    pub fn parse(text: &str, file: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
        let cx = Ctx { file, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().to_string();
            let field = match msg.split('`').nth(1).filter(|_| msg.contains("field")) {
                Some(f) => f.to_string(),
                None => field_at(text, span.start),
            };
            cx.err(span, field, msg)
        })?;
        let m_span = raw.machine.span();
        let m = raw.machine.into_inner();
        if m.id.is_empty()
            || !m
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(cx.err_at(
                m_span.clone(),
                "id",
                "machine.id",
                "use letters, digits, '-' and '_' (it becomes an MQTT topic level)",
            ));
        }
        if m.site.is_empty()
            || !m
                .site
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(cx.err_at(
                m_span.clone(),
                "site",
                "machine.site",
                "use letters, digits, '-' and '_' (it becomes an MQTT topic level)",
            ));
        }
        if !(1..=26).contains(&m.rows) || !(1..=99).contains(&m.cols) {
            return Err(cx.err_at(
                m_span.clone(),
                "rows",
                "machine.rows/cols",
                "rows 1–26 (A–Z) and columns 1–99",
            ));
        }
        if !(-14 * 60..=14 * 60).contains(&m.day_offset_minutes) {
            return Err(cx.err_at(
                m_span.clone(),
                "day_offset_minutes",
                "machine.day_offset_minutes",
                "must be within ±840 minutes of UTC",
            ));
        }

        let (h_span, http) = take(raw.http);
        let http_listen: SocketAddr = http.listen.parse().map_err(|_| {
            cx.err_at(
                h_span.clone(),
                "listen",
                "http.listen",
                format!("`{}` is not an address:port", http.listen),
            )
        })?;
        if !http_listen.ip().is_loopback() && !http.allow_non_loopback {
            return Err(cx.err_at(
                h_span,
                "listen",
                "http.listen",
                "the API listens on loopback only; set http.allow_non_loopback = true to override",
            ));
        }

        let t = raw.timeouts;
        let timeouts = Timeouts {
            shopping: t.shopping_ms,
            credential: t.credential_ms,
            warn_before: t.warn_before_ms,
            authorising: t.authorising_ms,
            vend_watchdog: t.vend_watchdog_ms,
            settling: t.settling_ms,
            receipt: t.receipt_ms,
        };
        for (name, v) in [
            ("timeouts.shopping_ms", timeouts.shopping),
            ("timeouts.credential_ms", timeouts.credential),
            ("timeouts.authorising_ms", timeouts.authorising),
            ("timeouts.vend_watchdog_ms", timeouts.vend_watchdog),
            ("timeouts.settling_ms", timeouts.settling),
            ("timeouts.receipt_ms", timeouts.receipt),
        ] {
            if !(50..=3_600_000).contains(&v) {
                return Err(cx.err(find(text, name), name, "must be 50 ms to 1 hour"));
            }
        }
        if timeouts.warn_before >= timeouts.shopping.min(timeouts.credential) {
            return Err(cx.err(
                find(text, "warn_before_ms"),
                "timeouts.warn_before_ms",
                "must be shorter than the shopping and credential time-outs",
            ));
        }
        let v = raw.vend;
        let vend_timing = VendTiming {
            leave_home_timeout: Duration::from_millis(v.leave_home_timeout_ms),
            motor_timeout: Duration::from_millis(v.motor_timeout_ms),
            drop_window: Duration::from_millis(v.drop_window_ms),
            drop_debounce: Duration::from_millis(v.drop_debounce_ms),
        };
        if !(1..=5).contains(&v.max_attempts) {
            return Err(cx.err(
                find(text, "max_attempts"),
                "vend.max_attempts",
                "must be 1 to 5",
            ));
        }
        if !(1..=50).contains(&v.max_cart_items) {
            return Err(cx.err(
                find(text, "max_cart_items"),
                "vend.max_cart_items",
                "must be 1 to 50",
            ));
        }
        let cycle = v.leave_home_timeout_ms + v.motor_timeout_ms + v.drop_window_ms;
        if timeouts.vend_watchdog <= cycle {
            return Err(cx.err(
                find(text, "vend_watchdog_ms"),
                "timeouts.vend_watchdog_ms",
                format!(
                    "must exceed one motor cycle (leave_home + motor + drop_window = {cycle} ms)"
                ),
            ));
        }

        let (o_span, o) = take(raw.offline);
        if o.floor_limit < 0 || o.max_offline_total < 0 {
            return Err(cx.err(
                o_span,
                "offline.floor_limit/max_offline_total",
                "limits cannot be negative",
            ));
        }
        for d in &o.deny {
            if d.is_empty() || d.len() > 128 {
                return Err(cx.err_at(
                    o_span.clone(),
                    "deny",
                    "offline.deny",
                    "entries are credential hashes of 1–128 characters",
                ));
            }
        }
        let policy = PolicyConfig {
            floor_limit: o.floor_limit,
            max_offline_total: o.max_offline_total,
            max_uses_per_day: o.max_uses_per_day,
            offline_methods: o.methods.iter().copied().collect(),
        };

        let mut products = BTreeMap::new();
        for (i, p) in raw.planogram.products.iter().enumerate() {
            let span = p.span();
            let p = p.get_ref();
            if p.id.is_empty() || p.name.is_empty() {
                return Err(cx.err(
                    span,
                    format!("planogram.products[{i}]"),
                    "id and name must not be empty",
                ));
            }
            if products
                .insert(
                    p.id.clone(),
                    Product {
                        id: p.id.clone(),
                        name: p.name.clone(),
                    },
                )
                .is_some()
            {
                return Err(cx.err(
                    span,
                    format!("planogram.products[{i}].id"),
                    format!("product `{}` is defined twice", p.id),
                ));
            }
        }
        let mut slots = BTreeMap::new();
        for (i, s) in raw.planogram.slots.iter().enumerate() {
            let span = s.span();
            let s = s.get_ref();
            let f = |name: &str| format!("planogram.slots[{i}].{name}");
            if s.id.row() >= m.rows || s.id.col() >= m.cols {
                return Err(cx.err(
                    span,
                    f("id"),
                    format!("slot {} is outside the {}×{} matrix", s.id, m.rows, m.cols),
                ));
            }
            if !products.contains_key(&s.product) {
                return Err(cx.err(
                    span,
                    f("product"),
                    format!(
                        "no product `{}` is defined in planogram.products",
                        s.product
                    ),
                ));
            }
            if !(0..=100_000_000).contains(&s.price) {
                return Err(cx.err(span, f("price"), "a price is 0 to 100000000 minor units"));
            }
            if s.capacity == 0 || s.capacity > 200 {
                return Err(cx.err(span, f("capacity"), "capacity is 1 to 200"));
            }
            let stock = s.stock.unwrap_or(s.capacity);
            if stock > s.capacity {
                return Err(cx.err(
                    span,
                    f("stock"),
                    format!("stock {stock} is more than the capacity {}", s.capacity),
                ));
            }
            let slot = Slot {
                id: s.id.clone(),
                product: s.product.clone(),
                price: s.price,
                capacity: s.capacity,
                stock,
                enabled: s.enabled,
                fault: None,
            };
            if slots.insert(s.id.clone(), slot).is_some() {
                return Err(cx.err(span, f("id"), format!("slot {} is defined twice", s.id)));
            }
        }
        if slots.is_empty() {
            return Err(cx.err(0..0, "planogram.slots", "define at least one slot"));
        }
        let catalog = Catalog {
            currency: m.currency,
            products,
            slots,
        };
        let planogram_source = {
            let mut shape = catalog.clone();
            for s in shape.slots.values_mut() {
                s.stock = 0;
            }
            let bytes = serde_json::to_vec(&shape).expect("catalog serialises");
            format!("config:{}", hex::encode(&Sha256::digest(&bytes)[..8]))
        };

        let (sec_span, sec) = take(raw.security);
        let device_secret = match (sec.device_secret, sec.device_secret_file) {
            (Some(_), Some(_)) => {
                return Err(cx.err(
                    sec_span,
                    "security",
                    "give device_secret or device_secret_file, not both",
                ))
            }
            (Some(s), None) => hex::decode(&s).map_err(|_| {
                cx.err_at(
                    sec_span.clone(),
                    "device_secret",
                    "security.device_secret",
                    "must be hex",
                )
            })?,
            (None, Some(p)) => {
                let p = resolve(base, &p);
                let s = std::fs::read_to_string(&p).map_err(|e| {
                    cx.err(
                        sec_span.clone(),
                        "security.device_secret_file",
                        format!("cannot read {}: {e}", p.display()),
                    )
                })?;
                hex::decode(s.trim()).map_err(|_| {
                    cx.err(
                        sec_span.clone(),
                        "security.device_secret_file",
                        "must contain hex",
                    )
                })?
            }
            (None, None) => b"vendd-simulation-only-secret".to_vec(),
        };
        if device_secret.len() < 16 {
            return Err(cx.err_at(
                sec_span,
                "device_secret",
                "security.device_secret",
                "use at least 16 bytes (32 hex digits)",
            ));
        }

        let (hw_span, hw) = take(raw.hardware);
        let pinmap = match (&hw.backend, &hw.pinmap) {
            (Backend::Rpi, None) => {
                return Err(cx.err_at(
                    hw_span,
                    "backend",
                    "hardware.pinmap",
                    "the rpi backend needs a pin map file (see hardware/)",
                ))
            }
            (_, Some(p)) => {
                let p = resolve(base, p);
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    cx.err_at(
                        hw_span.clone(),
                        "pinmap",
                        "hardware.pinmap",
                        format!("cannot read {}: {e}", p.display()),
                    )
                })?;
                let map = PinMap::from_toml_str(&text).map_err(|e| {
                    cx.err_at(
                        hw_span.clone(),
                        "pinmap",
                        "hardware.pinmap",
                        format!("{}: {e}", p.display()),
                    )
                })?;
                Some(map)
            }
            (Backend::Sim, None) => None,
        };

        let mqtt = match raw.mqtt {
            Some(sp) if sp.get_ref().enabled => {
                let span = sp.span();
                Some(mqtt_config(
                    &cx,
                    span,
                    sp.into_inner(),
                    base,
                    &m.site,
                    &m.id,
                )?)
            }
            _ => None,
        };

        let nfc = nfc_config(&cx, raw.nfc, hw.backend)?;
        let codes = codes_config(
            &cx,
            raw.camera,
            raw.paycodes,
            raw.merchant_qr,
            hw.backend,
            base,
        )?;
        let face = face_config(&cx, raw.face, &nfc, &codes, base)?;
        let kiosk = kiosk_config(&cx, raw.kiosk, base)?;
        let r = &raw.retention;
        if r.keep_records == 0 || r.batch == 0 || r.batch > 100_000 || r.rewrite_ratio < 2 {
            return Err(cx.err(
                find(text, "[retention]"),
                "retention",
                "keep_records ≥ 1, batch 1 to 100000 and rewrite_ratio ≥ 2",
            ));
        }

        Ok(Config {
            file: file.to_string(),
            machine: Machine {
                id: m.id,
                site: m.site,
                serial: m.serial,
                model: m.model,
                location: m.location,
                rows: m.rows,
                cols: m.cols,
            },
            state_dir: raw.state.dir,
            http_listen,
            core: CoreConfig {
                timeouts,
                max_attempts: v.max_attempts,
                max_cart_items: v.max_cart_items,
                max_extends: v.max_extends,
                policy,
            },
            vend_timing,
            catalog,
            planogram_source,
            day_offset_s: i64::from(m.day_offset_minutes) * 60,
            deny: o.deny,
            device_secret,
            backend: hw.backend,
            pinmap,
            sim: raw.sim,
            mqtt,
            nfc,
            codes,
            face,
            kiosk,
            retention: raw.retention,
        })
    }
}

fn kiosk_config(
    cx: &Ctx<'_>,
    kiosk: Option<RawKiosk>,
    base: Option<&Path>,
) -> Result<KioskConfig, ConfigError> {
    use crate::speech::{ListenConfig, Mic, Output, Trigger, VoiceConfig};
    use crate::voice::catalog::Lang;
    let span = find(cx.text, "[kiosk");
    let k = kiosk.unwrap_or_default();
    let err = |key: &str, msg: &str| cx.err_at(span.clone(), key, format!("kiosk.{key}"), msg);
    let language = match k.language.as_deref() {
        None => Lang::En,
        Some(l) => Lang::parse(l).ok_or_else(|| err("language", "\"en\" or \"zh\""))?,
    };
    let rel = |p: &Path| resolve(base, p);
    let voice = match k.voice.filter(|v| v.enabled) {
        None => None,
        Some(v) => {
            let output = match v.output.as_deref().unwrap_or("alsa") {
                "alsa" => Output::Alsa(v.device.unwrap_or_else(|| "default".into())),
                "wav" => Output::Wav(rel(v.wav_dir.as_deref().ok_or_else(|| {
                    err("voice.wav_dir", "output = \"wav\" needs wav_dir = a folder")
                })?)),
                _ => return Err(err("voice.output", "\"alsa\" or \"wav\"")),
            };
            let volume = v.volume.unwrap_or(80);
            if volume > 100 {
                return Err(err("voice.volume", "0 to 100 (%)"));
            }
            Some(VoiceConfig {
                clips: rel(v
                    .clips
                    .as_deref()
                    .unwrap_or(Path::new("models/cache/voice"))),
                output,
                volume,
            })
        }
    };
    let listen = match k.listen.filter(|l| l.enabled) {
        None => None,
        Some(l) => {
            if !cfg!(feature = "vosk") {
                return Err(err(
                    "listen.enabled",
                    "this vendd was built without speech recognition (the vosk feature)",
                ));
            }
            let input = match l.input.as_deref().unwrap_or("alsa") {
                "alsa" => Mic::Alsa(l.device.unwrap_or_else(|| "default".into())),
                "wav" => Mic::Wav(rel(l.wav_dir.as_deref().ok_or_else(|| {
                    err(
                        "listen.wav_dir",
                        "input = \"wav\" needs wav_dir = a folder of WAV files",
                    )
                })?)),
                _ => return Err(err("listen.input", "\"alsa\" or \"wav\"")),
            };
            let language = l.language.unwrap_or_else(|| language.as_str().to_owned());
            if !crate::voice::grammar::languages().contains(&language.as_str()) {
                return Err(err(
                    "listen.language",
                    "a language of assets/voice/commands.toml (en, zh, ko)",
                ));
            }
            let model = l.models.get(&language).ok_or_else(|| {
                err(
                    "listen.models",
                    "give the Vosk model folder for the listening language, e.g. models = { ko = \"models/cache/vosk/model-ko\" }",
                )
            })?;
            let min_confidence = l.min_confidence.unwrap_or(0.7);
            if !(0.0..=1.0).contains(&min_confidence) {
                return Err(err("listen.min_confidence", "0 to 1"));
            }
            let trigger = match l.trigger.as_deref().unwrap_or("presence") {
                "presence" => Trigger::Presence,
                "push" => Trigger::PushToTalk,
                "always" => Trigger::Always,
                _ => {
                    return Err(err(
                        "listen.trigger",
                        "\"presence\", \"push\" or \"always\"",
                    ))
                }
            };
            Some(ListenConfig {
                input,
                language,
                model: rel(model),
                min_confidence,
                trigger,
            })
        }
    };
    Ok(KioskConfig {
        language,
        voice,
        listen,
    })
}

fn face_config(
    cx: &Ctx<'_>,
    face: Option<Spanned<RawFace>>,
    nfc: &NfcConfig,
    codes: &CodesConfig,
    base: Option<&Path>,
) -> Result<Option<crate::facepay::FacePayConfig>, ConfigError> {
    use crate::facepay::{ChallengeChoice, FacePayConfig};
    let Some(sp) = face.filter(|f| f.get_ref().enabled) else {
        return Ok(None);
    };
    let span = sp.span();
    let f = sp.into_inner();
    let err = |key: &str, msg: &str| cx.err_at(span.clone(), key, format!("face.{key}"), msg);
    if codes.camera.source == SourceKind::None {
        return Err(err(
            "enabled",
            "face pay needs a camera: set [camera] source (or enabled = false)",
        ));
    }
    // Face pay is offered beside card and code, never alone.
    if nfc.reader == NfcReader::None && codes.paycodes.names().is_empty() {
        return Err(err(
            "enabled",
            "face pay is offered only beside a card reader or pay codes: configure [nfc] or \
             [paycodes] too",
        ));
    }
    let mut cfg = FacePayConfig::default();
    if let Some(m) = &f.models {
        cfg.models = resolve(base, m);
    } else if let Some(b) = base {
        cfg.models = resolve(Some(b), &cfg.models);
    }
    cfg.gallery = f.gallery.as_ref().map(|g| resolve(base, g));
    let e = &mut cfg.engine;
    e.detect_width = f.detect_width.unwrap_or(e.detect_width);
    e.detect_height = f.detect_height.unwrap_or(e.detect_height);
    for (key, v) in [
        ("detect_width", e.detect_width),
        ("detect_height", e.detect_height),
    ] {
        if !(64..=1280).contains(&v) || v % 32 != 0 {
            return Err(err(key, "a multiple of 32 from 64 to 1280"));
        }
    }
    e.score_threshold = f.score_threshold.unwrap_or(e.score_threshold);
    if !(0.05..=0.99).contains(&e.score_threshold) {
        return Err(err("score_threshold", "from 0.05 to 0.99"));
    }
    e.roi_size = f.roi_size.unwrap_or(e.roi_size);
    if e.roi_size != 0 && (!(64..=640).contains(&e.roi_size) || e.roi_size % 32 != 0) {
        return Err(err(
            "roi_size",
            "0 (no region-of-interest detector) or a multiple of 32 from 64 to 640",
        ));
    }
    e.roi_scale = f.roi_scale.unwrap_or(e.roi_scale);
    if !(1.2..=4.0).contains(&e.roi_scale) {
        return Err(err("roi_scale", "from 1.2 to 4.0 times the face box"));
    }
    cfg.stream.roi = e.roi_size > 0;
    cfg.stream.full_every = f.full_every.unwrap_or(cfg.stream.full_every);
    if !(1..=30).contains(&cfg.stream.full_every) {
        return Err(err("full_every", "1 to 30 frames"));
    }
    e.quality = f.quality;
    if !(0.0..=1.0).contains(&f.matching.threshold) || !(0.0..1.0).contains(&f.matching.margin) {
        return Err(err(
            "matching",
            "matching.threshold is a cosine from 0 to 1 and matching.margin from 0 to below 1",
        ));
    }
    e.matching = f.matching;
    if !(1000..=60_000).contains(&f.liveness.time_limit_ms) {
        return Err(err("liveness", "liveness.time_limit_ms is 1000 to 60000"));
    }
    cfg.liveness = f.liveness;
    cfg.challenge = match f.challenge.as_deref().unwrap_or("random") {
        "random" => ChallengeChoice::Random,
        "left" => ChallengeChoice::Left,
        "right" => ChallengeChoice::Right,
        _ => return Err(err("challenge", "one of random, left, right")),
    };
    if !(2..=20).contains(&f.enrol.min_captures) || !(0.0..=1.0).contains(&f.enrol.min_agreement) {
        return Err(err(
            "enrol",
            "enrol.min_captures is 2 to 20 and enrol.min_agreement a cosine from 0 to 1",
        ));
    }
    cfg.enrol = f.enrol;
    let t = f.enrol_timeout_s.unwrap_or(60);
    if !(10..=600).contains(&t) {
        return Err(err("enrol_timeout_s", "10 to 600 seconds"));
    }
    cfg.enrol_timeout_ms = u64::from(t) * 1000;
    cfg.capture_gap_ms = f.capture_gap_ms.unwrap_or(cfg.capture_gap_ms);
    if cfg.capture_gap_ms > 5000 {
        return Err(err("capture_gap_ms", "at most 5000"));
    }
    Ok(Some(cfg))
}

fn mqtt_config(
    cx: &Ctx<'_>,
    span: std::ops::Range<usize>,
    r: RawMqtt,
    base: Option<&Path>,
    site: &str,
    machine: &str,
) -> Result<MqttConfig, ConfigError> {
    let read = |key: &str, p: &Path| -> Result<Vec<u8>, ConfigError> {
        let p = resolve(base, p);
        std::fs::read(&p).map_err(|e| {
            cx.err_at(
                span.clone(),
                key,
                format!("mqtt.{key}"),
                format!("cannot read {}: {e}", p.display()),
            )
        })
    };
    if r.host.is_empty() {
        return Err(cx.err_at(
            span.clone(),
            "enabled",
            "mqtt.host",
            "set the broker's host name or address",
        ));
    }
    if r.port == 0 {
        return Err(cx.err_at(
            span.clone(),
            "port",
            "mqtt.port",
            "set the broker's port (1883, or 8883 for TLS)",
        ));
    }
    let password = match (r.password, r.password_file) {
        (Some(_), Some(_)) => {
            return Err(cx.err_at(
                span.clone(),
                "password",
                "mqtt.password",
                "give password or password_file, not both",
            ))
        }
        (Some(p), None) => Some(p),
        (None, Some(f)) => Some(
            String::from_utf8_lossy(&read("password_file", &f)?)
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let credentials = match (r.username, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (Some(u), None) => Some((u, String::new())),
        (None, Some(_)) => {
            return Err(cx.err_at(
                span.clone(),
                "password",
                "mqtt.username",
                "a password needs a username",
            ))
        }
        (None, None) => None,
    };
    let ca_pem = r
        .ca_file
        .as_deref()
        .map(|p| read("ca_file", p))
        .transpose()?;
    let client_auth = match (r.client_cert_file, r.client_key_file) {
        (Some(c), Some(k)) => Some((read("client_cert_file", &c)?, read("client_key_file", &k)?)),
        (None, None) => None,
        _ => {
            return Err(cx.err_at(
                span.clone(),
                "client_",
                "mqtt.client_cert_file",
                "give both client_cert_file and client_key_file",
            ))
        }
    };
    if client_auth.is_some() && ca_pem.is_none() {
        return Err(cx.err_at(
            span.clone(),
            "client_",
            "mqtt.ca_file",
            "a client certificate needs TLS: set ca_file",
        ));
    }
    let topic_root = r
        .topic_root
        .unwrap_or_else(|| format!("vend/v1/{site}/{machine}"));
    if topic_root.is_empty() || topic_root.contains(['#', '+']) || topic_root.ends_with('/') {
        return Err(cx.err_at(
            span.clone(),
            "topic_root",
            "mqtt.topic_root",
            "a topic prefix without wildcards or a trailing '/'",
        ));
    }
    let keep_alive = r.keep_alive_s.unwrap_or(30);
    if !(5..=600).contains(&keep_alive) {
        return Err(cx.err_at(
            span.clone(),
            "keep_alive_s",
            "mqtt.keep_alive_s",
            "5 to 600 seconds",
        ));
    }
    let telemetry = r.telemetry_interval_s.unwrap_or(60);
    if !(1..=86_400).contains(&telemetry) {
        return Err(cx.err_at(
            span.clone(),
            "telemetry_interval_s",
            "mqtt.telemetry_interval_s",
            "1 s to 1 day",
        ));
    }
    let max_in_flight = r.max_in_flight.unwrap_or(32);
    if !(1..=1000).contains(&max_in_flight) {
        return Err(cx.err_at(
            span.clone(),
            "max_in_flight",
            "mqtt.max_in_flight",
            "1 to 1000",
        ));
    }
    let mut operator_keys = Vec::new();
    for (i, k) in r.operator_keys.iter().enumerate() {
        let key = crate::report::command::parse_verifying_key(k).map_err(|e| {
            cx.err_at(
                span.clone(),
                "operator_keys",
                format!("mqtt.operator_keys[{i}]"),
                e.to_string(),
            )
        })?;
        operator_keys.push(key);
    }
    Ok(MqttConfig {
        operator_keys,
        ha_discovery: r.ha_discovery,
        online_auth: r.online_auth,
        host: r.host,
        port: r.port,
        client_id: r
            .client_id
            .unwrap_or_else(|| format!("vendd-{site}-{machine}")),
        credentials,
        ca_pem,
        client_auth,
        keep_alive: Duration::from_secs(keep_alive),
        topic_root,
        telemetry_interval: Duration::from_secs(telemetry),
        max_in_flight,
        low_stock: r.low_stock.unwrap_or(2),
    })
}

/// The span and value of an optional section (defaults, with no span, when absent).
fn take<T: Default>(o: Option<Spanned<T>>) -> (std::ops::Range<usize>, T) {
    match o {
        Some(s) => (s.span(), s.into_inner()),
        None => (0..0, T::default()),
    }
}

fn resolve(base: Option<&Path>, p: &Path) -> PathBuf {
    match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    }
}

/// The dotted `section.key` of the `key = value` line holding `pos` ("-" when unknown).
fn field_at(text: &str, pos: usize) -> String {
    let pos = pos.min(text.len());
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let Some((key, _)) = line.split_once('=') else {
        return "-".into();
    };
    let key = key.trim().trim_start_matches('{').trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string());
    match section {
        Some(sec) => format!("{sec}.{key}"),
        None => key.to_string(),
    }
}

/// Span of the first occurrence of a key (for errors about values with defaults).
fn find(text: &str, key: &str) -> std::ops::Range<usize> {
    let k = key.rsplit('.').next().unwrap_or(key);
    text.find(k).map_or(0..0, |i| i..i + k.len())
}

fn nfc_config(
    cx: &Ctx<'_>,
    raw: Option<Spanned<RawNfc>>,
    backend: Backend,
) -> Result<NfcConfig, ConfigError> {
    let (span, n) = take(raw);
    let default = match backend {
        Backend::Sim => "sim",
        Backend::Rpi => "none",
    };
    let reader = match n.reader.as_deref().unwrap_or(default) {
        "none" => NfcReader::None,
        "sim" => NfcReader::Sim,
        "spi" => NfcReader::Spi {
            bus: n.spi_bus,
            slave_select: n.spi_slave_select,
            clock_hz: n.spi_clock_hz.unwrap_or(1_000_000),
        },
        "i2c" => NfcReader::I2c {
            bus: n.i2c_bus.unwrap_or(1),
        },
        "uart" => NfcReader::Uart {
            path: n
                .uart
                .clone()
                .unwrap_or_else(|| PathBuf::from("/dev/serial0")),
        },
        other => {
            return Err(cx.err_at(
                span,
                "reader",
                "nfc.reader",
                format!("`{other}` is not one of none, sim, spi, i2c, uart"),
            ))
        }
    };
    if let NfcReader::Spi { clock_hz, .. } = reader {
        if !(10_000..=5_000_000).contains(&clock_hz) {
            return Err(cx.err_at(
                span,
                "spi_clock_hz",
                "nfc.spi_clock_hz",
                "the PN532 takes 10 kHz to 5 MHz",
            ));
        }
    }
    let p = &n.poll;
    if p.arrive_after == 0
        || p.leave_after == 0
        || p.wedge_after == 0
        || !(10..=5_000).contains(&p.poll_interval_ms)
        || p.backoff_initial_ms == 0
        || p.backoff_max_ms < p.backoff_initial_ms
    {
        return Err(cx.err_at(
            span,
            "poll",
            "nfc.poll",
            "arrive_after, leave_after and wedge_after are at least 1; poll_interval_ms is 10 to 5000; backoff_max_ms is at least backoff_initial_ms",
        ));
    }
    Ok(NfcConfig {
        reader,
        pins: crate::nfc::rpi::Pins {
            reset: n.reset_pin,
            irq: n.irq_pin,
        },
        poll: n.poll,
    })
}

fn codes_config(
    cx: &Ctx<'_>,
    camera: Option<Spanned<RawCamera>>,
    paycodes: Option<Spanned<RawPayCodes>>,
    merchant: Option<Spanned<RawMerchantQr>>,
    backend: Backend,
    base: Option<&Path>,
) -> Result<CodesConfig, ConfigError> {
    let (c_span, c) = take(camera);
    let d = CameraConfig::default();
    let default = match backend {
        Backend::Sim => "sim",
        Backend::Rpi => "none",
    };
    let source = match c.source.as_deref().unwrap_or(default) {
        "none" => SourceKind::None,
        "sim" => SourceKind::Sim,
        "v4l2" => SourceKind::V4l2 {
            index: c.device,
            format: c.format.unwrap_or(PixelFormat::Mjpeg),
        },
        "replay" => match &c.replay {
            Some(p) => SourceKind::Replay(resolve(base, p)),
            None => {
                return Err(cx.err_at(
                    c_span,
                    "source",
                    "camera.replay",
                    "source = \"replay\" needs replay = a folder of images or an MJPEG file",
                ))
            }
        },
        other => {
            return Err(cx.err_at(
                c_span,
                "source",
                "camera.source",
                format!("`{other}` is not one of none, sim, v4l2, replay"),
            ))
        }
    };
    let cam = CameraConfig {
        source,
        width: c.width.unwrap_or(d.width),
        height: c.height.unwrap_or(d.height),
        fps: c.fps.unwrap_or(d.fps),
        idle_fps: c.idle_fps.unwrap_or(d.idle_fps),
        activity_threshold: c.activity_threshold.unwrap_or(d.activity_threshold),
    };
    if !(160..=4096).contains(&cam.width) || !(120..=4096).contains(&cam.height) {
        return Err(cx.err_at(
            c_span,
            "width",
            "camera.width/height",
            "160×120 to 4096×4096",
        ));
    }
    if !(1..=60).contains(&cam.fps) || cam.idle_fps == 0 || cam.idle_fps > cam.fps {
        return Err(cx.err_at(
            c_span,
            "fps",
            "camera.fps/idle_fps",
            "fps is 1 to 60 and idle_fps is 1 to fps",
        ));
    }
    if !(0.0..=255.0).contains(&cam.activity_threshold) {
        return Err(cx.err_at(
            c_span,
            "activity_threshold",
            "camera.activity_threshold",
            "a mean grey-level difference from 0 to 255",
        ));
    }
    let repeat_ms = c.repeat_ms.unwrap_or(3000);
    if repeat_ms > 600_000 {
        return Err(cx.err_at(
            c_span,
            "repeat_ms",
            "camera.repeat_ms",
            "at most 600000 (10 minutes)",
        ));
    }

    let paycodes = match paycodes {
        None => PayCodeRules::default(),
        Some(sp) => {
            let span = sp.span();
            let mut pats = Vec::new();
            for (i, p) in sp.into_inner().pattern.iter().enumerate() {
                pats.push(PayCodePattern::new(&p.name, &p.regex).map_err(|e| {
                    cx.err_at(span.clone(), &p.regex, format!("paycodes.pattern[{i}]"), e)
                })?);
            }
            PayCodeRules::new(pats)
        }
    };

    let merchant_qr = match merchant {
        Some(sp) if sp.get_ref().enabled => {
            let span = sp.span();
            let m = sp.into_inner();
            let mc = MerchantConfig {
                account_template_id: m.account_template_id,
                guid: m.guid,
                merchant_id: m.merchant_id,
                mcc: m.mcc,
                name: m.name,
                city: m.city,
                country: m.country,
                postal_code: m.postal_code,
            };
            if let Err(e) = mc.validate() {
                let field = match &e {
                    crate::payment::EmvError::Config { field, .. } => *field,
                    _ => "merchant_qr",
                };
                return Err(cx.err_at(span, field, format!("merchant_qr.{field}"), e.to_string()));
            }
            Some(mc)
        }
        _ => None,
    };
    Ok(CodesConfig {
        camera: cam,
        repeat_ms,
        paycodes,
        merchant_qr,
    })
}
