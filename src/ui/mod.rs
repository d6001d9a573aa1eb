//! The HTTP API on loopback (axum): shopper actions, live session state (SSE), operator
//! service actions and, in simulate mode, the sim API that plays the physical world.
//! The routes are documented in the README ("HTTP API").

pub mod error;
mod face;
pub mod kiosk;
mod pay;
pub mod service;
pub mod view;

use crate::core::{Input, PaymentMethod, SlotId};
use crate::hw::{SimFault, SlotAddr};
use crate::runtime::Handle;
use crate::token::credential_token;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use error::{ApiError, ApiJson};
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::StreamExt;

/// Largest request body accepted.
const BODY_LIMIT: usize = 16 * 1024;
/// Largest image the sim API holds up to the camera (base64 in JSON).
const SIM_IMAGE_LIMIT: usize = 8 * 1024 * 1024;

type ApiResult = Result<Json<Value>, ApiError>;

/// Builds the router. The sim routes exist only when `handle.sim` is set.
pub fn router(handle: Handle) -> Router {
    let mut r = Router::new()
        .route("/api/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/catalog", get(catalog))
        .route("/api/session", get(session))
        .route("/api/events", get(events))
        .route("/api/cart/items", post(add_item))
        .route("/api/cart/items/{slot}", delete(remove_item))
        .route("/api/checkout", post(|s| simple(s, Input::Checkout)))
        .route("/api/cancel", post(|s| simple(s, Input::Cancel)))
        .route("/api/extend", post(|s| simple(s, Input::Extend)))
        .route("/api/dismiss", post(|s| simple(s, Input::Dismiss)))
        .route("/api/service/stock", post(service_stock))
        .route("/api/service/price", post(service_price))
        .route("/api/service/enable", post(service_enable))
        .route("/api/service/clear-fault", post(service_clear_fault))
        .route("/api/service/counters", get(counters))
        .route("/api/pay/qr", post(pay::start_qr).get(pay::get_qr))
        .route("/api/pay/qr.png", get(pay::get_qr_png))
        .route("/api/readers", get(pay::readers))
        .route("/api/face", get(face::status))
        .route("/api/face/enrol", post(face::enrol))
        .route("/api/face/erase", post(face::erase))
        .route("/api/face/cancel", post(face::cancel))
        .route("/", get(kiosk::index))
        .route("/kiosk.js", get(kiosk::kiosk_js))
        .route("/kiosk.css", get(kiosk::kiosk_css))
        .route("/service", get(kiosk::service))
        .route("/service.js", get(kiosk::service_js))
        .route("/api/i18n/{lang}", get(kiosk::i18n))
        .route("/api/kiosk", get(kiosk::kiosk))
        .route("/api/kiosk/language", post(kiosk::set_language))
        .route("/api/kiosk/repeat", post(kiosk::repeat))
        .route("/api/kiosk/screen", post(kiosk::screen))
        .route("/api/kiosk/listen", post(kiosk::listen))
        .route("/api/kiosk/volume", post(kiosk::volume))
        .route("/api/receipt", get(kiosk::receipt))
        .route("/api/receipt.png", get(kiosk::receipt_png))
        .route("/api/service/sessions", get(service::sessions))
        .route("/api/service/dex", get(service::dex))
        .route("/api/service/doctor", get(service::doctor))
        .route("/api/service/test-vend", post(service_test_vend))
        .route("/api/service/camera.jpg", get(service::camera));
    if handle.sim.is_some() {
        r = r
            .route("/sim/credential", post(sim_credential))
            .route("/sim/fault", post(sim_fault))
            .route("/sim/door", post(sim_door))
            .route("/sim/stock", post(sim_stock))
            .route("/sim/state", get(sim_state))
            .route("/sim/nfc/tap", post(pay::sim_tap))
            .route("/sim/nfc/remove", post(pay::sim_remove))
            .route("/sim/nfc/fault", post(pay::sim_nfc_fault))
            .route(
                "/sim/camera/show",
                post(pay::sim_show).layer(DefaultBodyLimit::max(SIM_IMAGE_LIMIT)),
            )
            .route("/sim/camera/clear", post(pay::sim_clear))
            .route("/sim", get(kiosk::sim))
            .route("/sim.js", get(kiosk::sim_js));
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(handle)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see the README's API table",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

async fn health(State(h): State<Handle>) -> Json<Value> {
    let s = h.snapshot.borrow().session.journal_seq;
    let mqtt = h
        .link
        .as_ref()
        .map(|l| serde_json::to_value(&*l.borrow()).unwrap_or(Value::Null));
    Json(json!({
        "ok": true,
        "version": crate::runtime::VERSION,
        "journal_seq": s,
        "simulate": h.sim.is_some(),
        "mqtt": mqtt,
    }))
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics(State(h): State<Handle>) -> impl IntoResponse {
    let link = h.link.as_ref().map(|l| l.borrow().clone());
    let body = crate::metrics::render(
        &h.snapshot.borrow(),
        &h.metrics,
        link.as_ref(),
        &h.readers.report(),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn catalog(State(h): State<Handle>) -> Json<Value> {
    Json(serde_json::to_value(&h.snapshot.borrow().catalog).unwrap_or(Value::Null))
}

async fn session(State(h): State<Handle>) -> Json<Value> {
    Json(serde_json::to_value(&h.snapshot.borrow().session).unwrap_or(Value::Null))
}

async fn events(State(h): State<Handle>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = WatchStream::new(h.snapshot.clone()).map(|snap| {
        Ok(Event::default()
            .event("session")
            .json_data(&snap.session)
            .unwrap_or_default())
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

/// Sends an input and answers with the durable journal sequence and the new session.
async fn send(h: &Handle, input: Input) -> ApiResult {
    let ack = h.send(input).await?;
    let session = serde_json::to_value(&h.snapshot.borrow().session).unwrap_or(Value::Null);
    Ok(Json(
        json!({"ok": true, "journal_seq": ack.seq, "session": session}),
    ))
}

async fn simple(State(h): State<Handle>, input: Input) -> ApiResult {
    send(&h, input).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddItem {
    slot: SlotId,
    #[serde(default = "one")]
    qty: u32,
}

fn one() -> u32 {
    1
}

async fn add_item(State(h): State<Handle>, ApiJson(b): ApiJson<AddItem>) -> ApiResult {
    send(
        &h,
        Input::AddItem {
            slot: b.slot,
            qty: b.qty,
        },
    )
    .await
}

fn parse_slot(s: &str) -> Result<SlotId, ApiError> {
    SlotId::parse(s).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_slot", e.to_string()))
}

async fn remove_item(
    State(h): State<Handle>,
    slot: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(slot) =
        slot.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_slot", e.body_text()))?;
    let slot = parse_slot(&slot)?;
    send(&h, Input::RemoveItem { slot }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotCount {
    slot: SlotId,
    count: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotPrice {
    slot: SlotId,
    price: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotEnable {
    slot: SlotId,
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotOnly {
    slot: SlotId,
}

fn sim_addr(h: &Handle, slot: &SlotId) -> Result<SlotAddr, ApiError> {
    let (rows, cols) = h.matrix;
    if slot.row() >= rows || slot.col() >= cols {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_slot",
            format!("there is no slot {slot}"),
        ));
    }
    Ok(SlotAddr {
        row: slot.row(),
        col: slot.col(),
    })
}

async fn service_stock(State(h): State<Handle>, ApiJson(b): ApiJson<SlotCount>) -> ApiResult {
    send(
        &h,
        Input::Restock {
            slot: b.slot,
            count: b.count,
        },
    )
    .await
}

async fn service_price(State(h): State<Handle>, ApiJson(b): ApiJson<SlotPrice>) -> ApiResult {
    send(
        &h,
        Input::SetPrice {
            slot: b.slot,
            price: b.price,
        },
    )
    .await
}

async fn service_enable(State(h): State<Handle>, ApiJson(b): ApiJson<SlotEnable>) -> ApiResult {
    send(
        &h,
        Input::SetEnabled {
            slot: b.slot,
            enabled: b.enabled,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestVendBody {
    slot: SlotId,
}

/// `POST /api/service/test-vend {"slot":"A3"}`: service mode (door open) — run the slot's
/// motor once with no sale; the outcome shows as `last_test_vend` in the session.
async fn service_test_vend(
    State(h): State<Handle>,
    ApiJson(b): ApiJson<TestVendBody>,
) -> ApiResult {
    send(&h, Input::TestVend { slot: b.slot }).await
}

async fn service_clear_fault(State(h): State<Handle>, ApiJson(b): ApiJson<SlotOnly>) -> ApiResult {
    let out = send(
        &h,
        Input::ClearFault {
            slot: b.slot.clone(),
        },
    )
    .await?;
    // The operator has cleared the mechanism too (in the simulator: the jammed spiral).
    if let Some(sim) = &h.sim {
        sim.jam_clear(sim_addr(&h, &b.slot)?);
    }
    Ok(out)
}

async fn counters(State(h): State<Handle>) -> Json<Value> {
    Json(serde_json::to_value(&h.snapshot.borrow().counters).unwrap_or(Value::Null))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimCredential {
    kind: PaymentMethod,
    id: String,
}

async fn sim_credential(State(h): State<Handle>, ApiJson(b): ApiJson<SimCredential>) -> ApiResult {
    if b.id.is_empty() || b.id.len() > 256 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_credential",
            "id must be 1 to 256 characters",
        ));
    }
    let credential = credential_token(&h.secret, b.kind.as_str(), &b.id);
    send(
        &h,
        Input::Credential {
            method: b.kind,
            credential,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FaultKind {
    Jam,
    MissedDrop,
    DoubleDrop,
    StuckHome,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimFaultReq {
    slot: SlotId,
    fault: FaultKind,
    #[serde(default = "one")]
    count: u32,
}

async fn sim_fault(State(h): State<Handle>, ApiJson(b): ApiJson<SimFaultReq>) -> ApiResult {
    let sim = h
        .sim
        .as_ref()
        .expect("sim routes exist only in simulate mode");
    if !(1..=100).contains(&b.count) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_count",
            "count must be 1 to 100",
        ));
    }
    let a = sim_addr(&h, &b.slot)?;
    let f = match b.fault {
        FaultKind::Jam => SimFault::Jam,
        FaultKind::MissedDrop => SimFault::MissedDrop,
        FaultKind::DoubleDrop => SimFault::DoubleDrop,
        FaultKind::StuckHome => SimFault::StuckHome,
    };
    sim.force_fault(a, f, b.count);
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimDoor {
    open: bool,
}

async fn sim_door(State(h): State<Handle>, ApiJson(b): ApiJson<SimDoor>) -> ApiResult {
    let sim = h
        .sim
        .as_ref()
        .expect("sim routes exist only in simulate mode");
    sim.set_door(b.open);
    // Wait until the door switch has been read and the controller has journaled it.
    let mut rx = h.snapshot.clone();
    let seen = tokio::time::timeout(
        Duration::from_secs(3),
        rx.wait_for(|s| s.session.door_open == b.open),
    )
    .await;
    if !matches!(seen, Ok(Ok(_))) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "door_not_seen",
            "the door switch change was not seen in time",
        ));
    }
    let session = serde_json::to_value(&h.snapshot.borrow().session).unwrap_or(Value::Null);
    Ok(Json(json!({"ok": true, "session": session})))
}

async fn sim_stock(State(h): State<Handle>, ApiJson(b): ApiJson<SlotCount>) -> ApiResult {
    let sim = h
        .sim
        .as_ref()
        .expect("sim routes exist only in simulate mode");
    let a = sim_addr(&h, &b.slot)?;
    // The operator fills the spiral and enters the count; refused counts change nothing.
    let out = send(
        &h,
        Input::Restock {
            slot: b.slot,
            count: b.count,
        },
    )
    .await?;
    sim.set_stock(a, b.count);
    Ok(out)
}

async fn sim_state(State(h): State<Handle>) -> impl IntoResponse {
    let sim = h
        .sim
        .as_ref()
        .expect("sim routes exist only in simulate mode");
    let (rows, cols) = h.matrix;
    let mut stock = serde_json::Map::new();
    let mut jammed = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let a = SlotAddr { row: r, col: c };
            let id = SlotId::from_matrix(r, c).to_string();
            if sim.jammed(a) {
                jammed.push(id.clone());
            }
            stock.insert(id, sim.stock(a).into());
        }
    }
    Json(json!({
        "stock": stock,
        "jammed": jammed,
        "door_open": sim.door_open(),
        "items_dispensed": sim.items_dispensed(),
        "violations": sim.violations(),
        "locked": sim.locked(),
        "led": format!("{:?}", sim.led()),
    }))
}
