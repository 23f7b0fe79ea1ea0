//! The HTTP API (`/v1/...`, `/healthz`, `/metrics`), served over HTTPS and
//! over the local Unix socket by the same router.

pub(crate) mod error;
mod events;
mod hosts;
mod recordings;
pub(crate) mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use shiftkey_wire::{CaConfigResponse, CertificateRequest, RoleInfo, RolesResponse};

use crate::identity::Caller;
use crate::service::Ca;
use error::ApiError;

/// Largest request body accepted. A certificate request is well under 16 KiB.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
const OPENAPI: &str = include_str!("openapi.json");

/// Marks a request that arrived on the local socket, with the peer's identity.
/// Only the socket listener inserts it; nothing from the wire can.
#[derive(Debug, Clone)]
pub(crate) struct LocalPeer(pub(crate) Caller);

pub(crate) fn router(ca: Arc<Ca>, request_timeout: Duration) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/config", get(config))
        .route("/v1/ca/user.pub", get(user_ca_keys))
        .route("/v1/ca/host.pub", get(host_ca_keys))
        .route("/v1/whoami", get(whoami))
        .route("/v1/roles", get(roles))
        .route("/v1/certificates", post(issue_certificate))
        .route("/v1/krl", get(krl))
        .route("/v1/requests", get(list_requests))
        .route("/v1/requests/{id}", get(get_request))
        .route("/v1/requests/{id}/approve", post(approve_request))
        .route("/v1/requests/{id}/deny", post(deny_request))
        .route("/v1/oncall", get(on_call))
        .route("/v1/oncall/overrides", post(add_override))
        .route("/v1/incidents", get(list_incidents).post(open_incident))
        .route("/v1/incidents/{id}/resolve", post(resolve_incident))
        .merge(webhooks::routes())
        .merge(events::routes())
        .merge(hosts::routes())
        .merge(recordings::routes())
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(ca)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(ca): State<Arc<Ca>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ca.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn config(State(ca): State<Arc<Ca>>) -> Json<CaConfigResponse> {
    Json(CaConfigResponse {
        oidc_issuer: ca.oidc.as_ref().map(|o| o.issuer().to_owned()),
        oidc_client_id: ca.oidc_client_id.clone(),
        user_ca_keys: vec![ca.keys.user.public_line().to_owned()],
        host_ca_keys: vec![ca.keys.host.public_line().to_owned()],
    })
}

/// One key per line, ready for `TrustedUserCAKeys`.
async fn user_ca_keys(State(ca): State<Arc<Ca>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain")],
        format!("{}\n", ca.keys.user.public_line()),
    )
        .into_response()
}

/// One key per line, ready for an `@cert-authority` known_hosts line.
async fn host_ca_keys(State(ca): State<Arc<Ca>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain")],
        format!("{}\n", ca.keys.host.public_line()),
    )
        .into_response()
}

async fn whoami(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({ "identity": caller.identity(), "groups": caller.groups() }))
}

/// The roles granted to the caller, with their hosts: what `shiftkey
/// ssh-config` and `shiftkey access` show. Read-only, not audited.
async fn roles(State(ca): State<Arc<Ca>>, caller: Caller) -> Json<RolesResponse> {
    let identity = caller.identity();
    let policy = ca.policy();
    let roles = policy
        .granted_roles(&identity, caller.groups())
        .into_iter()
        .map(|role| RoleInfo {
            name: role.name().to_owned(),
            description: role.description().to_owned(),
            principals: role.principals().to_vec(),
            hosts: role.hosts().to_vec(),
            max_ttl_seconds: role.max_ttl().as_secs(),
            require_on_call: role.require_on_call().to_vec(),
            require_incident: role.require_incident(),
            incident_severity: role.incident_severity(),
            require_reason: role.require_reason(),
            extensions: role.extensions().to_vec(),
            proxy_jump: role
                .via_bastion()
                .then(|| policy.settings().bastion().map(str::to_owned))
                .flatten(),
        })
        .collect();
    Json(RolesResponse { identity, roles })
}

#[derive(Debug, serde::Deserialize)]
struct ScheduleFilter {
    schedule: Option<String>,
}

/// A cover or swap: someone on call in place of the schedule, for a while.
async fn add_override(
    State(ca): State<Arc<Ca>>,
    caller: Caller,
    body: Result<Json<shiftkey_wire::OverrideRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<crate::store::StoredOverride>), ApiError> {
    let Json(request) = body.map_err(|r| ApiError::InvalidBody(r.body_text()))?;
    let stored = ca
        .add_override(
            &caller,
            &request.schedule,
            &request.member,
            request.start,
            request.end,
            &request.reason,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Who is on call now and next, per schedule (any authenticated caller: the
/// people paged are no secret to their colleagues).
async fn on_call(
    State(ca): State<Arc<Ca>>,
    _caller: Caller,
    axum::extract::Query(filter): axum::extract::Query<ScheduleFilter>,
) -> Result<Json<Vec<shiftkey_wire::OnCallSchedule>>, ApiError> {
    let policy = ca.policy();
    let only = filter.schedule.clone();
    let overrides = ca.overrides()?;
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

/// The OpenSSH KRL hosts fetch into `RevokedKeys`: built from the store on
/// every request, so a revocation is served the moment it is committed.
async fn krl(State(ca): State<Arc<Ca>>) -> Result<Response, ApiError> {
    let bytes = ca.krl()?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, serde::Deserialize)]
struct IncidentFilter {
    #[serde(default)]
    status: Option<String>,
}

async fn list_incidents(
    State(ca): State<Arc<Ca>>,
    _caller: Caller,
    axum::extract::Query(filter): axum::extract::Query<IncidentFilter>,
) -> Result<Json<Vec<shiftkey_wire::Incident>>, ApiError> {
    let open_only = filter.status.as_deref() == Some("open");
    Ok(Json(ca.incidents(open_only)?))
}

async fn open_incident(
    State(ca): State<Arc<Ca>>,
    caller: Caller,
    body: Result<Json<shiftkey_wire::OpenIncidentRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<shiftkey_wire::Incident>), ApiError> {
    let Json(request) = body.map_err(|r| ApiError::InvalidBody(r.body_text()))?;
    let bad = |field: &'static str, value: &str, why: &'static str| {
        ApiError::BadRequest(crate::issue::RequestError::InvalidField {
            field,
            value: value.chars().take(64).collect(),
            why,
        })
    };
    if let Some(id) = &request.id
        && !crate::issue::is_valid_name(id)
    {
        return Err(bad(
            "incident",
            id,
            "use letters, digits and . _ @ + - (at most 64), e.g. INC-42",
        ));
    }
    let title = request.title.trim();
    if title.is_empty() || title.len() > 200 || title.chars().any(char::is_control) {
        return Err(bad(
            "reason",
            title,
            "a title of 1 to 200 characters, no control characters",
        ));
    }
    let severity = crate::policy::parse_severity(&request.severity).map_err(|_| {
        bad(
            "reason",
            &request.severity,
            "severity is sev1 (the worst) to sev4",
        )
    })?;
    let incident = ca
        .open_incident(&caller, request.id, title.to_owned(), severity, "manual")
        .await?;
    Ok((StatusCode::CREATED, Json(incident)))
}

async fn resolve_incident(
    State(ca): State<Arc<Ca>>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<shiftkey_wire::ResolveIncidentResponse>, ApiError> {
    if ca
        .policy()
        .granted_roles(&caller.identity(), caller.groups())
        .is_empty()
    {
        return Err(ApiError::Forbidden(
            "only people who hold a role may resolve incidents".into(),
        ));
    }
    let (incident, revoked_serials) = ca.resolve_incident(caller.identity(), &id).await?;
    Ok(Json(shiftkey_wire::ResolveIncidentResponse {
        incident,
        revoked_serials,
    }))
}

async fn issue_certificate(
    State(ca): State<Arc<Ca>>,
    caller: Caller,
    body: Result<Json<CertificateRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = match body {
        Ok(Json(request)) => ca.issue(&caller, request).await,
        Err(rejection) => {
            let error = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidBody(rejection.body_text())
            };
            Err(ca
                .refuse("certificate.rejected", caller.identity(), error, json!({}))
                .await)
        }
    };
    ca.metrics
        .issue_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(match result? {
        crate::service::Issued::Certificate(certificate) => Json(certificate).into_response(),
        // The role needs approvals: 202, and the request to follow.
        crate::service::Issued::Pending(request) => {
            (StatusCode::ACCEPTED, Json(request)).into_response()
        }
    })
}

async fn list_requests(
    State(ca): State<Arc<Ca>>,
    caller: Caller,
) -> Result<Json<Vec<shiftkey_wire::AccessRequest>>, ApiError> {
    Ok(Json(ca.requests_for(&caller)?))
}

async fn get_request(
    State(ca): State<Arc<Ca>>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<shiftkey_wire::AccessRequest>, ApiError> {
    Ok(Json(ca.look_at_request(&caller, &id).await?))
}

async fn decide_request(
    ca: Arc<Ca>,
    caller: Caller,
    id: String,
    body: Result<Json<shiftkey_wire::Decision>, JsonRejection>,
    approve: bool,
) -> Result<Json<shiftkey_wire::AccessRequest>, ApiError> {
    // An empty body is a decision without a reason.
    let reason = match body {
        Ok(Json(decision)) => decision.reason,
        Err(JsonRejection::MissingJsonContentType(_)) => None,
        Err(rejection) => return Err(ApiError::InvalidBody(rejection.body_text())),
    };
    Ok(Json(ca.decide(&caller, &id, approve, reason).await?))
}

async fn approve_request(
    State(ca): State<Arc<Ca>>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Result<Json<shiftkey_wire::Decision>, JsonRejection>,
) -> Result<Json<shiftkey_wire::AccessRequest>, ApiError> {
    decide_request(ca, caller, id, body, true).await
}

async fn deny_request(
    State(ca): State<Arc<Ca>>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Result<Json<shiftkey_wire::Decision>, JsonRejection>,
) -> Result<Json<shiftkey_wire::AccessRequest>, ApiError> {
    decide_request(ca, caller, id, body, false).await
}

impl FromRequestParts<Arc<Ca>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ca: &Arc<Ca>) -> Result<Self, Self::Rejection> {
        if let Some(LocalPeer(caller)) = parts.extensions.get::<LocalPeer>() {
            return Ok(caller.clone());
        }
        let fail =
            |code: &'static str, message: String| ApiError::Unauthenticated { code, message };
        let token = match parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
            None => Err(fail(
                "missing-token",
                "send an OIDC ID token as `Authorization: Bearer TOKEN`".into(),
            )),
            Some(Err(_)) => Err(fail(
                "malformed-authorization",
                "the Authorization header is not text".into(),
            )),
            Some(Ok(value)) => match value.strip_prefix("Bearer ") {
                Some(token) if !token.trim().is_empty() => Ok(token.trim()),
                _ => Err(fail(
                    "malformed-authorization",
                    "the Authorization header must be `Bearer TOKEN`".into(),
                )),
            },
        };
        let verified = match (token, &ca.oidc) {
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(fail(
                "oidc-not-configured",
                "this CA has no OIDC issuer configured; use its local socket or ask the operator to set [oidc] in ca.toml".into(),
            )),
            (Ok(token), Some(verifier)) => match verifier.verify(token).await {
                Ok(token) => Ok(token),
                // Not the caller's fault, and the cause (URLs, resolver
                // errors) is for the operator's log, not for the caller.
                Err(e) if e.is_provider_unavailable() => Err(ApiError::IdentityProviderUnavailable(e.to_string())),
                Err(e) => Err(fail(e.code(), format!("the ID token was refused: {e}"))),
            },
        };
        match verified {
            // The email becomes the key ID's first field; `oidc` already
            // refuses unsafe ones, and this keeps it so whatever changes there.
            Ok(token) if crate::identity::is_safe_token(&token.email) => Ok(Caller::User {
                email: token.email,
                groups: token.groups,
            }),
            Ok(_) => Err(ca
                .refuse(
                    "auth.failed",
                    "anonymous".into(),
                    fail(
                        "invalid-email",
                        "the ID token's email cannot be used as an identity".into(),
                    ),
                    json!({ "path": parts.uri.path() }),
                )
                .await),
            Err(error) => {
                ca.metrics
                    .auth_failures
                    .get_or_create(&crate::metrics::KindLabels {
                        kind: error.code().to_owned(),
                    })
                    .inc();
                let path = parts.uri.path().to_owned();
                Err(ca
                    .refuse(
                        "auth.failed",
                        "anonymous".into(),
                        error,
                        json!({ "path": path }),
                    )
                    .await)
            }
        }
    }
}
