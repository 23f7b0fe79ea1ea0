//! `/v1/oncall`: who is on call, and the overrides (covers and swaps)
//! people create, list, shorten and delete. The domain (`oncall.rs`) asks
//! the policy's authority for every change.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use shiftkey_wire::{OnCallOverride, OverrideRequest, ShortenOverride};

use super::error::ApiError;
use super::state::AppState;
use crate::current_policy::CurrentPolicy;
use crate::identity::Caller;
use crate::oncall::{OnCall, StoredOverride};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/oncall", get(on_call))
        .route("/v1/oncall/overrides", get(list).post(create))
        .route("/v1/oncall/overrides/{id}", patch(shorten).delete(delete))
}

fn wire(o: StoredOverride) -> OnCallOverride {
    OnCallOverride {
        id: o.id,
        schedule: o.schedule,
        member: o.member,
        start: o.start,
        end: o.end,
        reason: o.reason,
        created_by: o.created_by,
        created_at: o.created_at,
    }
}

/// An override ID as the API takes it: `ov_` and hex digits. Anything else
/// is no override, answered before the store is asked.
fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = id.strip_prefix("ov_").is_some_and(|hex| {
        (1..=32).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::MissingOverride(format!(
            "{:?} is not an override ID (ov_ and hex digits)",
            id.chars().take(40).collect::<String>()
        )))
    }
}

#[derive(Debug, Deserialize)]
struct ScheduleFilter {
    schedule: Option<String>,
}

/// Who is on call now and next, per schedule (any authenticated caller: the
/// people paged are no secret to their colleagues).
async fn on_call(
    State(policy): State<Arc<CurrentPolicy>>,
    State(oncall): State<Arc<OnCall>>,
    _caller: Caller,
    Query(filter): Query<ScheduleFilter>,
) -> Result<Json<Vec<shiftkey_wire::OnCallSchedule>>, ApiError> {
    let policy = policy.get();
    let only = filter.schedule.clone();
    let overrides = oncall.overrides().await?;
    // Calendar expansion is CPU work: keep it off the async workers.
    let overview = tokio::task::spawn_blocking(move || {
        policy.on_call_overview(only.as_deref(), chrono::Utc::now(), &overrides)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("on-call lookup failed: {e}")))?;
    if let Some(name) = &filter.schedule
        && overview.is_empty()
    {
        return Err(ApiError::Missing(format!("no schedule {name:?}")));
    }
    let shift = |s: &crate::policy::Shift| shiftkey_wire::OnCallShift {
        member: s.member.to_string(),
        start: s.start.timestamp(),
        end: s.end.timestamp(),
        timezone: s.timezone.name().to_owned(),
    };
    Ok(Json(
        overview
            .into_iter()
            .map(|o| shiftkey_wire::OnCallSchedule {
                schedule: o.schedule,
                now: o.now.iter().map(shift).collect(),
                next: o.next.iter().map(shift).collect(),
            })
            .collect(),
    ))
}

/// Overrides in force now and later (any authenticated caller, as for
/// `/v1/oncall`), optionally for one schedule.
async fn list(
    State(oncall): State<Arc<OnCall>>,
    _caller: Caller,
    Query(filter): Query<ScheduleFilter>,
) -> Result<Json<Vec<OnCallOverride>>, ApiError> {
    Ok(Json(
        oncall
            .list()
            .await?
            .into_iter()
            .filter(|o| filter.schedule.as_ref().is_none_or(|s| *s == o.schedule))
            .map(wire)
            .collect(),
    ))
}

/// A cover or swap: someone on call in place of the schedule, for a while.
async fn create(
    State(oncall): State<Arc<OnCall>>,
    caller: Caller,
    body: Result<Json<OverrideRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<OnCallOverride>), ApiError> {
    let Json(request) = body.map_err(|r| ApiError::InvalidBody(r.body_text()))?;
    let stored = oncall
        .add_override(
            &caller,
            &request.schedule,
            &request.member,
            request.start,
            request.end,
            &request.reason,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(wire(stored))))
}

async fn shorten(
    State(oncall): State<Arc<OnCall>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<ShortenOverride>, JsonRejection>,
) -> Result<Json<OnCallOverride>, ApiError> {
    let Json(request) = body.map_err(|r| ApiError::InvalidBody(r.body_text()))?;
    check_id(&id)?;
    let stored = oncall
        .shorten(&caller, &id, request.end, &request.reason)
        .await?;
    Ok(Json(wire(stored)))
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    reason: Option<String>,
}

/// `DELETE /v1/oncall/overrides/{id}?reason=TEXT`: the override no longer
/// counts; the reason is recorded.
async fn delete(
    State(oncall): State<Arc<OnCall>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Json<OnCallOverride>, ApiError> {
    check_id(&id)?;
    let reason = query.reason.unwrap_or_default();
    let stored = oncall.delete(&caller, &id, &reason).await?;
    Ok(Json(wire(stored)))
}
