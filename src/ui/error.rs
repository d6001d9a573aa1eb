//! API errors: `{"error": {"code": "...", "message": "..."}}` with a 4xx status. A refused
//! request changes nothing.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// An API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: String,
    /// Plain-language message.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<crate::runtime::SendError> for ApiError {
    fn from(e: crate::runtime::SendError) -> Self {
        match e {
            crate::runtime::SendError::Rejected(r) => {
                let status = match r.code {
                    "unknown_slot" | "not_in_cart" => StatusCode::NOT_FOUND,
                    _ => StatusCode::CONFLICT,
                };
                ApiError::new(status, r.code, r.message)
            }
            crate::runtime::SendError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopped",
                "the controller is not running",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// A JSON body whose rejection is an [`ApiError`] (400 malformed, 415 wrong content type,
/// 413 too large, 422 wrong fields).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_error(rej)),
        }
    }
}

fn json_error(rej: JsonRejection) -> ApiError {
    let code = match &rej {
        JsonRejection::JsonDataError(_) => "invalid_fields",
        JsonRejection::JsonSyntaxError(_) => "malformed_json",
        JsonRejection::MissingJsonContentType(_) => "json_required",
        JsonRejection::BytesRejection(_) => "body_unreadable",
        _ => "bad_request",
    };
    // body_text() carries serde's precise message (field, line and column).
    ApiError::new(rej.status(), code, rej.body_text())
}
