//! Payment routes: the dynamic merchant QR of a checkout, the readers' status, and in
//! simulate mode the physical world of the readers (tap a card, hold a code up to the
//! camera).

use super::error::{ApiError, ApiJson};
use super::{send, ApiResult};
use crate::core::{Input, Money, PaymentMethod};
use crate::nfc::ndef::NdefRecord;
use crate::nfc::sim::SimCard;
use crate::payment::{dynamic_payload, session_reference};
use crate::runtime::Handle;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// `POST /api/pay/qr`: shows the dynamic EMVCo QR for the open checkout and waits for the
/// authoriser to report it paid (or the credential time-out).
pub(super) async fn start_qr(State(h): State<Handle>) -> ApiResult {
    let Some(pq) = h.pay_qr.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "qr_not_offered",
            "paying by QR code is not set up on this machine ([merchant_qr] in the configuration)",
        ));
    };
    let (sid, total, currency, phase) = {
        let s = h.snapshot.borrow();
        (
            s.session.sid,
            s.session.total,
            s.session.currency.clone(),
            s.session.phase,
        )
    };
    let Some(sid) = sid.filter(|_| phase == "awaiting_credential") else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_awaiting_payment",
            "choose items and press pay before asking for a QR code",
        ));
    };
    let currency = crate::core::Currency::parse(&currency).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "currency",
            "bad currency",
        )
    })?;
    let reference = session_reference(&pq.machine_id, sid);
    let terminal: String = pq.machine_id.chars().take(25).collect();
    let payload = dynamic_payload(
        &pq.merchant,
        Money {
            minor: total,
            currency,
        },
        &reference,
        Some(&terminal),
    )
    .map_err(|e| ApiError::new(StatusCode::CONFLICT, "qr_unavailable", e.to_string()))?;
    *pq.shown.lock().expect("pay qr") = Some((sid, payload.clone()));
    let out = send(
        &h,
        Input::Credential {
            method: PaymentMethod::MerchantQr,
            credential: reference.clone(),
        },
    )
    .await?;
    let mut v = out.0;
    v["qr"] = json!({"payload": payload, "reference": reference, "image": "/api/pay/qr.png"});
    Ok(Json(v))
}

/// The payload shown for the current session, while its QR payment is open.
fn current_payload(h: &Handle) -> Result<String, ApiError> {
    let none = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_qr_payment",
            "no QR payment is open; POST /api/pay/qr first",
        )
    };
    let pq = h.pay_qr.as_ref().ok_or_else(none)?;
    let (sid, paying) = {
        let s = h.snapshot.borrow();
        (s.session.sid, s.session.paying_by)
    };
    let shown = pq.shown.lock().expect("pay qr").clone();
    match shown {
        Some((s, p)) if Some(s) == sid && paying == Some(PaymentMethod::MerchantQr) => Ok(p),
        _ => Err(none()),
    }
}

/// `GET /api/pay/qr`: the open QR payment's payload.
pub(super) async fn get_qr(State(h): State<Handle>) -> ApiResult {
    let payload = current_payload(&h)?;
    Ok(Json(
        json!({"payload": payload, "image": "/api/pay/qr.png"}),
    ))
}

/// `GET /api/pay/qr.png`: the open QR payment as an image, 8 px per module.
pub(super) async fn get_qr_png(State(h): State<Handle>) -> Result<Response, ApiError> {
    let payload = current_payload(&h)?;
    qr_png_response(&payload, 8)
}

/// `text` as a QR code PNG response (`module_px` pixels per module), never cached.
pub(super) fn qr_png_response(text: &str, module_px: u32) -> Result<Response, ApiError> {
    let png = crate::qr::render_qr_png(text, module_px)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "render", e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response())
}

/// `GET /api/readers`: NFC reader and camera health, and counts of codes read.
pub(super) async fn readers(State(h): State<Handle>) -> Json<Value> {
    Json(serde_json::to_value(h.readers.report()).unwrap_or(Value::Null))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SimTap {
    /// Names the card (its UID is derived from it).
    id: String,
    /// An NDEF Text record on the card.
    #[serde(default)]
    ndef_text: Option<String>,
    /// An NDEF URI record on the card.
    #[serde(default)]
    ndef_uri: Option<String>,
}

fn bad(code: &str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, msg)
}

fn no_reader() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_nfc_reader",
        "this machine has no simulated NFC reader ([nfc] reader = \"none\")",
    )
}

/// Builds the simulated card a tap request names.
fn sim_card(b: &SimTap) -> Result<SimCard, ApiError> {
    if b.id.is_empty() || b.id.len() > 64 {
        return Err(bad("bad_card", "id must be 1 to 64 characters"));
    }
    let record = match (&b.ndef_text, &b.ndef_uri) {
        (Some(_), Some(_)) => return Err(bad("bad_card", "give ndef_text or ndef_uri, not both")),
        (Some(t), None) => Some(NdefRecord::Text {
            language: "en".into(),
            text: t.clone(),
        }),
        (None, Some(u)) => Some(NdefRecord::Uri(u.clone())),
        (None, None) => None,
    };
    SimCard::from_id(&b.id, record.as_ref()).map_err(|e| bad("bad_card", e.to_string()))
}

/// `POST /sim/nfc/tap`: puts a card in the reader's field (it stays until removed). The
/// answer carries the card's credential token, for accounts files and deny lists.
pub(super) async fn sim_tap(State(h): State<Handle>, ApiJson(b): ApiJson<SimTap>) -> ApiResult {
    let reader = h.nfc_sim.as_ref().ok_or_else(no_reader)?;
    let card = sim_card(&b)?;
    let token = card.token(&h.secret);
    reader.tap(card);
    Ok(Json(json!({"ok": true, "token": token})))
}

/// `POST /sim/nfc/remove`: takes the card away.
pub(super) async fn sim_remove(State(h): State<Handle>) -> ApiResult {
    h.nfc_sim.as_ref().ok_or_else(no_reader)?.remove();
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SimNfcFault {
    fault: String,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// `POST /sim/nfc/fault`: `wedge`, `unwedge`, `break` (dead until `repair`: a reset does
/// not help), `repair`, `corrupt` (next `count` responses),
/// `leave-mid-read` (the card leaves after `count` page reads).
pub(super) async fn sim_nfc_fault(
    State(h): State<Handle>,
    ApiJson(b): ApiJson<SimNfcFault>,
) -> ApiResult {
    let reader = h.nfc_sim.as_ref().ok_or_else(no_reader)?;
    if !(1..=100).contains(&b.count) {
        return Err(bad("bad_count", "count must be 1 to 100"));
    }
    match b.fault.as_str() {
        "wedge" => reader.wedge(),
        "unwedge" => reader.unwedge(),
        "break" => reader.break_down(),
        "repair" => reader.repair(),
        "corrupt" => reader.corrupt_next_responses(b.count),
        "leave-mid-read" => reader.leave_after_reads(b.count),
        other => {
            return Err(bad(
                "bad_fault",
                format!(
                "`{other}` is not one of wedge, unwedge, break, repair, corrupt, leave-mid-read"
            ),
            ))
        }
    }
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SimShow {
    /// Text to show as a QR code (rendered as a phone screen would show it).
    #[serde(default)]
    text: Option<String>,
    /// Or an image (PNG/JPEG, base64) to hold up to the camera.
    #[serde(default)]
    image_base64: Option<String>,
}

fn no_camera() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_sim_camera",
        "this machine has no simulated camera ([camera] source is not \"sim\")",
    )
}

/// `POST /sim/camera/show`: holds a code (or an image) up to the simulated camera until
/// `/sim/camera/clear`.
pub(super) async fn sim_show(State(h): State<Handle>, ApiJson(b): ApiJson<SimShow>) -> ApiResult {
    let scene = h.scene.as_ref().ok_or_else(no_camera)?;
    let img = match (b.text, b.image_base64) {
        (Some(t), None) => {
            if t.is_empty() || t.len() > 1000 {
                return Err(bad("bad_code", "text must be 1 to 1000 characters"));
            }
            let code = crate::qr::render_qr(&t, 4).map_err(|e| bad("bad_code", e.to_string()))?;
            image::DynamicImage::ImageLuma8(code).to_rgb8()
        }
        (None, Some(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| bad("bad_image", "image_base64 is not base64"))?;
            image::load_from_memory(&bytes)
                .map_err(|e| bad("bad_image", format!("not a PNG or JPEG image: {e}")))?
                .to_rgb8()
        }
        _ => return Err(bad("bad_request", "give text or image_base64")),
    };
    scene.show(img);
    Ok(Json(json!({"ok": true})))
}

/// `POST /sim/camera/clear`: nothing in front of the camera.
pub(super) async fn sim_clear(State(h): State<Handle>) -> ApiResult {
    h.scene.as_ref().ok_or_else(no_camera)?.clear();
    Ok(Json(json!({"ok": true})))
}
