//! Service page data: recent sessions and today's sales from the journal, and the camera
//! preview with the faces the face thread last saw.

use super::error::ApiError;
use super::ApiResult;
use crate::core::record::Record;
use crate::core::state::day_of;
use crate::runtime::{now_ms, Handle};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// How far back (records) the service page looks for sessions.
const LOOK_BACK: u64 = 20_000;

#[derive(Deserialize)]
pub(super) struct Limit {
    limit: Option<usize>,
}

/// One session, as the service page lists it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SessionRow {
    /// Session.
    pub sid: u64,
    /// Opened (UTC).
    pub opened_iso: String,
    /// How it was paid, if it was.
    pub method: Option<String>,
    /// Captured, minor units.
    pub charged: i64,
    /// How it ended (`completed`, `cancelled`, …; None while open).
    pub outcome: Option<String>,
}

/// Today's sales (local day of the machine), per hour.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Today {
    /// Sales (sessions that captured money).
    pub count: u64,
    /// Value, minor units.
    pub total: i64,
    /// Value per local hour 0..24.
    pub by_hour: Vec<i64>,
}

/// Reads the recent journal: the last `limit` sessions (newest first) and today's sales.
///
/// # Errors
/// A damaged record.
pub fn recent(
    records: impl Iterator<Item = crate::journal::Result<(u64, crate::core::Stamped)>>,
    limit: usize,
    now: u64,
    day_offset_s: i64,
) -> crate::journal::Result<(Vec<SessionRow>, Today)> {
    let mut rows: BTreeMap<u64, SessionRow> = BTreeMap::new();
    let today = day_of(now, day_offset_s);
    let mut t = Today {
        by_hour: vec![0; 24],
        ..Today::default()
    };
    for r in records {
        let (_, st) = r?;
        match &st.record {
            Record::SessionOpened { sid } => {
                rows.insert(
                    *sid,
                    SessionRow {
                        sid: *sid,
                        opened_iso: crate::report::event::rfc3339_utc_ms(st.at),
                        ..SessionRow::default()
                    },
                );
            }
            Record::Authorised { sid, method, .. } => {
                if let Some(row) = rows.get_mut(sid) {
                    row.method = Some(method.as_str().to_owned());
                }
            }
            Record::SessionClosed {
                sid,
                reason,
                captured,
            } => {
                if let Some(row) = rows.get_mut(sid) {
                    row.charged = *captured;
                    row.outcome = serde_json::to_value(reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned));
                }
                if *captured > 0 && day_of(st.at, day_offset_s) == today {
                    t.count += 1;
                    t.total += captured;
                    let local_s = (st.at / 1000) as i64 + day_offset_s;
                    let hour = local_s.rem_euclid(86_400) / 3600;
                    t.by_hour[hour as usize] += captured;
                }
            }
            _ => {}
        }
    }
    let list = rows.into_values().rev().take(limit).collect();
    Ok((list, t))
}

/// `GET /api/service/sessions?limit=N`: recent sessions and today's sales.
pub(super) async fn sessions(State(h): State<Handle>, Query(q): Query<Limit>) -> ApiResult {
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let j = h.journal.clone();
    let offset = h.day_offset_s;
    let res = tokio::task::spawn_blocking(move || {
        let from = j.last_seq().saturating_sub(LOOK_BACK).max(1);
        recent(j.iter_from(from), limit, now_ms(), offset)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "journal", e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "journal", e.to_string()))?;
    Ok(Json(json!({"sessions": res.0, "today": res.1})))
}

/// `GET /api/service/doctor`: the `vendd doctor` checks of the running daemon, from what
/// its threads report.
pub(super) async fn doctor(State(h): State<Handle>) -> ApiResult {
    let checks = tokio::task::spawn_blocking(move || crate::doctor::live(&h))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "doctor", e.to_string()))?;
    Ok(Json(json!({ "checks": checks })))
}

/// `GET /api/service/dex`: the DEX/EVA-DTS audit file, from the journal.
pub(super) async fn dex(State(h): State<Handle>) -> Result<Response, ApiError> {
    let (j, m, c, off) = (
        h.journal.clone(),
        h.machine.clone(),
        h.currency,
        h.day_offset_s,
    );
    let text =
        tokio::task::spawn_blocking(move || crate::dex::from_reader(&j, &m, c, off, now_ms()))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "dex", e.to_string()))?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "dex", e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=us-ascii"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.dex\"",
            ),
        ],
        text,
    )
        .into_response())
}

/// `GET /api/service/camera.jpg`: the camera's latest frame (320×240) with the faces the face
/// thread saw in the last second drawn in; asks the camera to keep a preview for 5 s.
pub(super) async fn camera(State(h): State<Handle>) -> Result<Response, ApiError> {
    let Some(preview) = h.readers.preview.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_camera",
            "this machine has no camera",
        ));
    };
    preview.want(now_ms());
    let faces = h
        .face
        .as_ref()
        .map(|d| d.recent_faces(now_ms(), 1000))
        .unwrap_or_default();
    let jpg = preview.jpeg(&faces).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_frame",
            "no frame yet; the preview starts within a second",
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpg,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{CloseReason, PaymentMethod, Stamped};

    fn st(at: u64, record: Record) -> crate::journal::Result<(u64, Stamped)> {
        Ok((0, Stamped { at, record }))
    }

    #[test]
    fn sessions_and_todays_sales_come_from_the_records() {
        let day = 86_400_000u64;
        let now = 20 * day + 15 * 3_600_000; // 15:00 UTC
        let recs = vec![
            st(now - day, Record::SessionOpened { sid: 1 }),
            st(
                now - day,
                Record::SessionClosed {
                    sid: 1,
                    reason: CloseReason::Completed,
                    captured: 500,
                },
            ),
            st(now - 3_600_000, Record::SessionOpened { sid: 2 }),
            st(
                now - 3_600_000,
                Record::Authorised {
                    sid: 2,
                    amount: 150,
                    method: PaymentMethod::Face,
                    credential: "x".into(),
                    offline: true,
                    auth_ref: "r".into(),
                },
            ),
            st(
                now - 3_500_000,
                Record::SessionClosed {
                    sid: 2,
                    reason: CloseReason::Completed,
                    captured: 150,
                },
            ),
            st(now, Record::SessionOpened { sid: 3 }),
        ];
        let (rows, today) = recent(recs.into_iter(), 2, now, 0).expect("ok");
        assert_eq!(rows.iter().map(|r| r.sid).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(rows[1].method.as_deref(), Some("face"));
        assert_eq!(rows[1].outcome.as_deref(), Some("completed"));
        assert_eq!(rows[0].outcome, None, "still open");
        assert_eq!(
            (today.count, today.total),
            (1, 150),
            "yesterday's sale not counted"
        );
        assert_eq!(today.by_hour[14], 150);
        // Two hours east of UTC the same sale falls in local hour 16.
        let (_, t2) = recent(
            vec![st(
                now - 3_500_000,
                Record::SessionClosed {
                    sid: 2,
                    reason: CloseReason::Completed,
                    captured: 150,
                },
            )]
            .into_iter(),
            5,
            now,
            7200,
        )
        .expect("ok");
        assert_eq!(t2.by_hour[16], 150);
    }
}
