//! The HTTP API (`/v1/...`, `/healthz`, `/metrics`), served over HTTPS and
//! over the local Unix socket by the same router.
//!
//! Handlers parse, authenticate, call a domain service and answer; every
//! domain error becomes a status in `error.rs` alone. Never: touch the store
//! (the domain does), decide what the domain decides.

mod auth;
pub(crate) mod error;
mod events;
mod hosts;
mod oncall;
mod recordings;
mod state;
pub(crate) mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use shiftkey_wire::{CaConfigResponse, CertificateRequest, RoleInfo, RolesResponse};

use crate::current_policy::CurrentPolicy;
use crate::identity::Caller;
use crate::incidents::Incidents;
use crate::issuance::{Issuance, Issued};
use crate::keys::CaKeys;
use crate::metrics::Metrics;
use crate::requests::Requests;
use crate::revocation::Krl;
use error::ApiError;

pub(crate) use auth::{Authenticator, LocalPeer};
pub(crate) use state::{AppState, substates};
pub(crate) use webhooks::Webhooks;

/// Largest request body accepted. A certificate request is well under 16 KiB.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
const OPENAPI: &str = include_str!("openapi.json");

/// The whole service: the API's routes on `state`, `pages` (the review UI,
/// with its own state) beside them, the one fallback, the body limit and
/// the request timeout.
pub(crate) fn app(state: AppState, pages: Router, request_timeout: Duration) -> Router {
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/config", get(config))
        .route("/v1/ca/user.pub", get(user_ca_keys))
        .route("/v1/ca/host.pub", get(host_ca_keys))
        .route("/v1/ca/seal-keys", get(seal_keys))
        .route("/v1/whoami", get(whoami))
        .route("/v1/roles", get(roles))
        .route("/v1/certificates", post(issue_certificate))
        .route("/v1/krl", get(krl))
        .route("/v1/requests", get(list_requests))
        .route("/v1/requests/{id}", get(get_request))
        .route("/v1/requests/{id}/approve", post(approve_request))
        .route("/v1/requests/{id}/deny", post(deny_request))
        .route("/v1/incidents", get(list_incidents).post(open_incident))
        .route("/v1/incidents/{id}/resolve", post(resolve_incident))
        .merge(oncall::routes())
        .merge(webhooks::routes())
        .merge(events::routes())
        .merge(hosts::routes())
        .merge(recordings::routes())
        .with_state(state);
    Router::new()
        .merge(api)
        .merge(pages)
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn config(
    State(auth): State<Arc<Authenticator>>,
    State(keys): State<Arc<CaKeys>>,
) -> Json<CaConfigResponse> {
    Json(CaConfigResponse {
        oidc_issuer: auth.issuer(),
        oidc_client_id: auth.client_id(),
        user_ca_keys: keys.snapshot().user_published.clone(),
        host_ca_keys: keys.snapshot().host_published.clone(),
    })
}

/// Every user CA key the CA has signed with and its state (retired ones
/// too): what a recording's seal verifies with.
async fn seal_keys(State(keys): State<Arc<CaKeys>>) -> Json<shiftkey_wire::SealKeys> {
    Json(shiftkey_wire::SealKeys {
        keys: keys.snapshot().user_seal_keys.clone(),
    })
}

/// Published keys, active first, one per line.
fn lines(keys: &[String]) -> String {
    keys.iter().map(|k| format!("{k}\n")).collect()
}

/// Every published user CA key (active first), one per line, ready for
/// `TrustedUserCAKeys`.
async fn user_ca_keys(State(keys): State<Arc<CaKeys>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain")],
        lines(&keys.snapshot().user_published),
    )
        .into_response()
}

/// Every published host CA key (active first), one per line, each ready
/// for an `@cert-authority` known_hosts line.
async fn host_ca_keys(State(keys): State<Arc<CaKeys>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain")],
        lines(&keys.snapshot().host_published),
    )
        .into_response()
}

async fn whoami(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({ "identity": caller.identity(), "groups": caller.groups() }))
}

/// The roles granted to the caller, with their hosts: what `shiftkey
/// ssh-config` and `shiftkey access` show. Read-only, not audited.
async fn roles(State(policy): State<Arc<CurrentPolicy>>, caller: Caller) -> Json<RolesResponse> {
    let identity = caller.identity();
    let policy = policy.get();
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

/// The OpenSSH KRL hosts fetch into `RevokedKeys`: built from the store on
/// every request, so a revocation is served the moment it is committed.
async fn krl(State(krl): State<Arc<Krl>>) -> Result<Response, ApiError> {
    let bytes = krl.bytes().await?;
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
    State(incidents): State<Arc<Incidents>>,
    _caller: Caller,
    axum::extract::Query(filter): axum::extract::Query<IncidentFilter>,
) -> Result<Json<Vec<shiftkey_wire::Incident>>, ApiError> {
    let open_only = filter.status.as_deref() == Some("open");
    Ok(Json(incidents.list(open_only).await?))
}

async fn open_incident(
    State(incidents): State<Arc<Incidents>>,
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
    // Characters that hide or reorder text are refused (and audited) by
    // `Incidents::open`.
    if title.is_empty() || title.chars().count() > 200 {
        return Err(bad("title", title, "a title of 1 to 200 characters"));
    }
    let severity = crate::policy::parse_severity(&request.severity).map_err(|_| {
        bad(
            "reason",
            &request.severity,
            "severity is sev1 (the worst) to sev4",
        )
    })?;
    let incident = incidents
        .open(
            &caller,
            request.id,
            title.to_owned(),
            severity,
            "manual",
            None,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(incident)))
}

async fn resolve_incident(
    State(incidents): State<Arc<Incidents>>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<shiftkey_wire::ResolveIncidentResponse>, ApiError> {
    let resolved = incidents.resolve(&caller, &id).await?;
    Ok(Json(shiftkey_wire::ResolveIncidentResponse {
        incident: resolved.incident,
        revoked_serials: resolved.revoked_serials,
    }))
}

async fn issue_certificate(
    State(issuance): State<Arc<Issuance>>,
    State(metrics): State<Arc<Metrics>>,
    caller: Caller,
    body: Result<Json<CertificateRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = match body {
        Ok(Json(request)) => issuance
            .issue(&caller, request)
            .await
            .map_err(ApiError::from),
        Err(rejection) => {
            let error = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidBody(rejection.body_text())
            };
            Err(issuance.reject(caller.identity(), error, json!({})).await)
        }
    };
    metrics
        .issue_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(match result? {
        Issued::Certificate(certificate) => Json(certificate).into_response(),
        // The role needs approvals: 202, and the request to follow.
        Issued::Pending(request) => (StatusCode::ACCEPTED, Json(request)).into_response(),
    })
}

async fn list_requests(
    State(requests): State<Arc<Requests>>,
    caller: Caller,
) -> Result<Json<Vec<shiftkey_wire::AccessRequest>>, ApiError> {
    Ok(Json(requests.pending_for(&caller).await?))
}

async fn get_request(
    State(requests): State<Arc<Requests>>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<shiftkey_wire::AccessRequest>, ApiError> {
    Ok(Json(requests.look(&caller, &id).await?))
}

async fn decide_request(
    requests: &Requests,
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
    Ok(Json(requests.decide(&caller, &id, approve, reason).await?))
}

async fn approve_request(
    State(requests): State<Arc<Requests>>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Result<Json<shiftkey_wire::Decision>, JsonRejection>,
) -> Result<Json<shiftkey_wire::AccessRequest>, ApiError> {
    decide_request(&requests, caller, id, body, true).await
}

async fn deny_request(
    State(requests): State<Arc<Requests>>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Result<Json<shiftkey_wire::Decision>, JsonRejection>,
) -> Result<Json<shiftkey_wire::AccessRequest>, ApiError> {
    decide_request(&requests, caller, id, body, false).await
}
