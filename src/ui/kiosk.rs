//! The pages the daemon serves on loopback: the shopper's kiosk page (`/`), the service page
//! (`/service`) and, in simulate mode, the sim panel (`/sim`); their strings from the one
//! catalogue (`/api/i18n/{lang}`); the receipt as a QR code; the kiosk's language and voice.
//!
//! Everything the pages need is compiled into the binary: no network resources.

use super::error::ApiError;
use super::ApiResult;
use crate::runtime::Handle;
use crate::voice::catalog::Lang;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Mutex;

const INDEX_HTML: &str = include_str!("../../assets/kiosk/index.html");
const KIOSK_JS: &str = include_str!("../../assets/kiosk/kiosk.js");
const KIOSK_CSS: &str = include_str!("../../assets/kiosk/kiosk.css");
const SERVICE_HTML: &str = include_str!("../../assets/kiosk/service.html");
const SERVICE_JS: &str = include_str!("../../assets/kiosk/service.js");
const SIM_HTML: &str = include_str!("../../assets/kiosk/sim.html");
const SIM_JS: &str = include_str!("../../assets/kiosk/sim.js");

/// The kiosk's language and voice, shared by the pages and the speaker.
#[derive(Debug)]
pub struct KioskState {
    /// The language the page and the voice start in (`[kiosk] language`).
    pub default_lang: Lang,
    /// The language now (the shopper may switch).
    pub lang: Mutex<Lang>,
    /// The voice (None: no voice configured).
    pub voice: Option<std::sync::Arc<crate::speech::Voice>>,
}

impl KioskState {
    /// A kiosk in `lang` with optional voice.
    pub fn new(lang: Lang, voice: Option<std::sync::Arc<crate::speech::Voice>>) -> KioskState {
        KioskState {
            default_lang: lang,
            lang: Mutex::new(lang),
            voice,
        }
    }

    /// The language now.
    pub fn lang(&self) -> Lang {
        *self.lang.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the shopper's page.
pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /kiosk.js`.
pub(super) async fn kiosk_js() -> Response {
    asset("text/javascript; charset=utf-8", KIOSK_JS)
}

/// `GET /kiosk.css`.
pub(super) async fn kiosk_css() -> Response {
    asset("text/css; charset=utf-8", KIOSK_CSS)
}

/// `GET /service`: the service page.
pub(super) async fn service() -> Response {
    asset("text/html; charset=utf-8", SERVICE_HTML)
}

/// `GET /service.js`.
pub(super) async fn service_js() -> Response {
    asset("text/javascript; charset=utf-8", SERVICE_JS)
}

/// `GET /sim` (simulate mode): the sim panel.
pub(super) async fn sim() -> Response {
    asset("text/html; charset=utf-8", SIM_HTML)
}

/// `GET /sim.js` (simulate mode).
pub(super) async fn sim_js() -> Response {
    asset("text/javascript; charset=utf-8", SIM_JS)
}

fn bad_lang(l: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_language",
        format!("`{l}` is not a kiosk language (en, zh)"),
    )
}

/// `GET /api/i18n/{lang}`: the page's strings (templates with `{placeholders}`) from the
/// catalogue.
pub(super) async fn i18n(Path(lang): Path<String>) -> ApiResult {
    let l = Lang::parse(&lang).ok_or_else(|| bad_lang(&lang))?;
    let strings = crate::voice::catalog::Catalog::embedded()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "catalog", e.to_string()))?
        .page_strings(l);
    Ok(Json(json!({"lang": l.as_str(), "strings": strings})))
}

/// `GET /api/kiosk`: the language now and the default, and whether voice is on.
pub(super) async fn kiosk(State(h): State<Handle>) -> ApiResult {
    let k = &h.kiosk;
    Ok(Json(json!({
        "language": k.lang().as_str(),
        "default_language": k.default_lang.as_str(),
        "languages": ["en", "zh"],
        "voice": k.voice.as_ref().map(|v| v.status()),
        "listen": h.listen_trigger,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LangBody {
    lang: String,
}

/// `POST /api/kiosk/language {"lang":"zh"}`: the shopper switched language (the voice
/// follows).
pub(super) async fn set_language(
    State(h): State<Handle>,
    super::error::ApiJson(b): super::error::ApiJson<LangBody>,
) -> ApiResult {
    let l = Lang::parse(&b.lang).ok_or_else(|| bad_lang(&b.lang))?;
    *h.kiosk.lang.lock().unwrap_or_else(|p| p.into_inner()) = l;
    if let Some(v) = &h.kiosk.voice {
        v.set_language(l);
    }
    Ok(Json(json!({"ok": true, "language": l.as_str()})))
}

/// `POST /api/kiosk/repeat`: say the current prompt again.
pub(super) async fn repeat(State(h): State<Handle>) -> ApiResult {
    let v = h.kiosk.voice.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_voice",
            "voice prompts are not set up on this machine ([kiosk.voice])",
        )
    })?;
    v.repeat();
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
pub(super) struct SidQuery {
    sid: Option<u64>,
}

/// The receipt on screen as plain text (what the receipt QR holds): readable by any phone's
/// camera app, with no link to follow.
pub fn receipt_text(h: &Handle, sid: Option<u64>) -> Option<String> {
    let snap = h.snapshot.borrow();
    let r = snap.session.receipt.as_ref()?;
    if sid.is_some_and(|s| s != r.sid) {
        return None;
    }
    let cat = &snap.catalog;
    let money = |m: i64| {
        let e = cat.exponent;
        let div = 10i64.pow(e);
        if e == 0 {
            format!("{m} {}", cat.currency)
        } else {
            format!(
                "{}.{:0w$} {}",
                m / div,
                (m % div).abs(),
                cat.currency,
                w = e as usize
            )
        }
    };
    let name = |slot: &str| {
        cat.slots
            .iter()
            .find(|s| s.id == slot)
            .map_or_else(String::new, |s| s.name.clone())
    };
    let mut t = format!(
        "RECEIPT {} #{}\n{}\n",
        h.machine_id,
        r.sid,
        crate::report::event::rfc3339_utc_ms(crate::runtime::now_ms())
    );
    for l in &r.items {
        t.push_str(&format!(
            "{} {} {} {}\n",
            l.slot,
            name(&l.slot.to_string()),
            money(l.price),
            if l.delivered { "OK" } else { "NOT CHARGED" }
        ));
    }
    t.push_str(&format!(
        "CHARGED {}\nPAID BY {}\n",
        money(r.charged),
        r.method.as_str()
    ));
    if r.released > 0 {
        t.push_str(&format!("RELEASED {}\n", money(r.released)));
    }
    Some(t)
}

/// `GET /api/receipt?sid=N`: the receipt shown now, as text and JSON.
pub(super) async fn receipt(State(h): State<Handle>, Query(q): Query<SidQuery>) -> ApiResult {
    let text = receipt_text(&h, q.sid).ok_or_else(no_receipt)?;
    let r = h.snapshot.borrow().session.receipt.clone();
    Ok(Json(json!({"text": text, "receipt": r})))
}

fn no_receipt() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_receipt",
        "no receipt is shown (for that session)",
    )
}

/// `GET /api/receipt.png?sid=N`: the receipt as a QR code.
pub(super) async fn receipt_png(
    State(h): State<Handle>,
    Query(q): Query<SidQuery>,
) -> Result<Response, ApiError> {
    let text = receipt_text(&h, q.sid).ok_or_else(no_receipt)?;
    super::pay::qr_png_response(&text, 4)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScreenBody {
    id: String,
}

fn voice(h: &Handle) -> Result<&crate::speech::Voice, ApiError> {
    h.kiosk.voice.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_voice",
            "voice prompts are not set up on this machine ([kiosk.voice])",
        )
    })
}

/// `POST /api/kiosk/screen {"id":"screen.choose_method"}`: the page shows one of its own
/// screens (not a core prompt): say it.
pub(super) async fn screen(
    State(h): State<Handle>,
    super::error::ApiJson(b): super::error::ApiJson<ScreenBody>,
) -> ApiResult {
    let catalog = crate::voice::catalog::Catalog::embedded()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "catalog", e.to_string()))?;
    let spoken = (b.id.starts_with("screen.") || b.id.starts_with("present_credential."))
        && catalog.entry(&b.id).is_some_and(|e| e.voiced());
    if !spoken {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_screen",
            format!("`{}` is not a spoken screen of the catalogue", b.id),
        ));
    }
    voice(&h)?.say(&b.id, crate::voice::catalog::Args::new());
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VolumeBody {
    percent: u8,
}

/// `POST /api/kiosk/volume {"percent": 60}`: the shopper's volume (0–100 %).
pub(super) async fn volume(
    State(h): State<Handle>,
    super::error::ApiJson(b): super::error::ApiJson<VolumeBody>,
) -> ApiResult {
    if b.percent > 100 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_volume",
            "volume is 0 to 100 (%)",
        ));
    }
    let v = voice(&h)?;
    v.set_volume(b.percent);
    Ok(Json(json!({"ok": true, "volume": b.percent})))
}

/// `POST /api/kiosk/listen`: push-to-talk — listen for voice commands for the next 8 s.
pub(super) async fn listen(State(h): State<Handle>) -> ApiResult {
    voice(&h)?.push_to_talk(8);
    Ok(Json(json!({"ok": true})))
}
