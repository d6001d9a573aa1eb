//! Face pay routes: status, enrolment with consent, erasure by the shopper, cancel.
//!
//! Enrolment and erasure are kiosk tasks: the request starts the task, the shopper then
//! proves the account with a card or a pay code, and (enrolment) looks at the camera;
//! `GET /api/face` shows where the task stands.

use super::error::{ApiError, ApiJson};
use super::ApiResult;
use crate::facepay::{DeskError, FaceDesk};
use crate::runtime::Handle;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

fn desk(h: &Handle) -> Result<&Arc<FaceDesk>, ApiError> {
    h.face.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "face_not_offered",
            "face pay is not set up on this machine ([face] in the configuration)",
        )
    })
}

fn from_desk(e: DeskError) -> ApiError {
    let status = match e.code {
        "consent_required" | "bad_name" => StatusCode::BAD_REQUEST,
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, e.code, e.message)
}

/// The machine must be idle: enrolling or erasing in the middle of a purchase would take
/// the card meant to pay.
fn idle(h: &Handle) -> Result<(), ApiError> {
    let phase = h.snapshot.borrow().session.phase;
    if phase != "idle" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "session_open",
            "finish or cancel the purchase first",
        ));
    }
    Ok(())
}

/// `GET /api/face`: offered?, faces enrolled, the kiosk task.
pub(super) async fn status(State(h): State<Handle>) -> ApiResult {
    let s = desk(&h)?.status();
    Ok(Json(json!(s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnrolBody {
    /// The shopper agreed to have their face linked to their card or code.
    consent: bool,
    /// Their name (shown only masked, e.g. "A***e").
    name: String,
}

/// `POST /api/face/enrol {"consent": true, "name": "..."}`: starts enrolment; next the
/// shopper taps a card or shows a pay code, then looks at the camera.
pub(super) async fn enrol(State(h): State<Handle>, ApiJson(b): ApiJson<EnrolBody>) -> ApiResult {
    let d = desk(&h)?;
    idle(&h)?;
    let view = d.start_enrol(b.consent, &b.name).map_err(from_desk)?;
    Ok(Json(json!({"task": view})))
}

/// `POST /api/face/erase`: starts erasure; next the shopper taps the card or shows the
/// pay code the face is linked to.
pub(super) async fn erase(State(h): State<Handle>) -> ApiResult {
    let d = desk(&h)?;
    idle(&h)?;
    let view = d.start_erase().map_err(from_desk)?;
    Ok(Json(json!({"task": view})))
}

/// `POST /api/face/cancel`: stops the kiosk task (nothing is enrolled or erased).
pub(super) async fn cancel(State(h): State<Handle>) -> ApiResult {
    let was = desk(&h)?.cancel();
    Ok(Json(json!({"cancelled": was})))
}
