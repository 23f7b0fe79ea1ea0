//! Routes for enrolled hosts and bastions: enrollment with a join token,
//! renewal, the bastion's certificates for target names, and sessions; and
//! the extractors that authenticate a host's signed request.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde_json::json;
use shiftkey_wire::{
    EnrollRequest, HostCertificateResponse, SessionGrant, SessionHeartbeat, SessionHeartbeatAck,
};

use super::error::ApiError;
use super::state::AppState;
use crate::audit::{Audit, Explain, Outcome};
use crate::hosts::{EnrolledHost, Hosts};
use crate::identity::Caller;
use crate::metrics::{KindLabels, Metrics};
use crate::recordings::{MAX_HEARTBEAT_BODY, Recordings};
use crate::sessions::Sessions;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/hosts/enroll", post(enroll))
        .route("/v1/hosts/renew", post(renew))
        .route("/v1/hosts/present", post(present))
        .route("/v1/hosts/principals", post(principals))
        .route("/v1/sessions", post(sessions))
        .route("/v1/sessions/refused", post(refused))
        .route(
            "/v1/sessions/heartbeat",
            post(heartbeat).layer(DefaultBodyLimit::max(MAX_HEARTBEAT_BODY)),
        )
        .route("/v1/sessions/{session}/events", post(session_event))
        .route("/v1/sessions/{session}/forwards", post(forward))
}

async fn enroll(
    State(hosts): State<Arc<Hosts>>,
    State(audit): State<Audit>,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<HostCertificateResponse>, ApiError> {
    let request = match body {
        Ok(Json(r)) => r,
        Err(rejection) => {
            return Err(audit
                .refuse(
                    "host.enroll_refused",
                    "anonymous".into(),
                    Outcome::Deny,
                    ApiError::InvalidBody(rejection.body_text()),
                    json!({}),
                )
                .await);
        }
    };
    Ok(Json(hosts.enroll(request, "https").await?))
}

async fn renew(
    State(hosts): State<Arc<Hosts>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::RenewRequest>,
) -> Result<Json<HostCertificateResponse>, ApiError> {
    Ok(Json(hosts.renew(&host, body).await?))
}

async fn present(
    State(hosts): State<Arc<Hosts>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::PresentRequest>,
) -> Result<Json<HostCertificateResponse>, ApiError> {
    Ok(Json(hosts.present_as(&host, &body.target).await?))
}

/// The host's principals files under the policy in force now.
async fn principals(
    State(hosts): State<Arc<Hosts>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::PrincipalsRequest>,
) -> Json<shiftkey_wire::HostPrincipals> {
    hosts.note_ca_keys(&host, body.ca_keys).await;
    Json(hosts.principals(&host))
}

async fn sessions(
    State(sessions): State<Arc<Sessions>>,
    State(metrics): State<Arc<Metrics>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::SessionRequest>,
) -> Result<Json<SessionGrant>, ApiError> {
    let started = Instant::now();
    let result = sessions.authorize(&host, body).await;
    metrics
        .issue_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(result?))
}

async fn refused(
    State(sessions): State<Arc<Sessions>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::SessionRefusal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let recorded = sessions.record_bastion_refusal(&host, body).await?;
    Ok(Json(json!({ "recorded": recorded })))
}

async fn heartbeat(
    State(recordings): State<Arc<Recordings>>,
    Enrolled(host, body): Enrolled<SessionHeartbeat>,
) -> Result<Json<SessionHeartbeatAck>, ApiError> {
    Ok(Json(recordings.heartbeat(&host, body).await?))
}

async fn session_event(
    State(recordings): State<Arc<Recordings>>,
    Path(session): Path<String>,
    Enrolled(host, body): Enrolled<shiftkey_wire::SessionEvent>,
) -> Result<Json<serde_json::Value>, ApiError> {
    recordings
        .record_session_event(&host, &session, body)
        .await?;
    Ok(Json(json!({ "recorded": true })))
}

/// May the session forward a TCP connection there (`ssh -L`)?
async fn forward(
    State(sessions): State<Arc<Sessions>>,
    Path(session): Path<String>,
    Enrolled(host, body): Enrolled<shiftkey_wire::ForwardRequest>,
) -> Result<Json<shiftkey_wire::ForwardGrant>, ApiError> {
    Ok(Json(
        sessions.authorize_forward(&host, &session, body).await?,
    ))
}

/// A request signed by an enrolled host (`Shiftkey-Host` authorization),
/// with its JSON body. The signature covers the body, so the body is read
/// here, checked, then parsed. Failures are audited like failed logins.
#[derive(Debug)]
pub(super) struct Enrolled<T>(pub(super) EnrolledHost, pub(super) T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Enrolled<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let path = path_and_query(request.uri());
        let EnrolledBytes(host, body) = EnrolledBytes::from_request(request, state).await?;
        let parsed = serde_json::from_slice(if body.is_empty() { b"{}" } else { &body })
            .map_err(|e| ApiError::InvalidBody(e.to_string()));
        match parsed {
            Ok(value) => Ok(Enrolled(host, value)),
            Err(e) => Err(state
                .audit
                .refuse(
                    "request.rejected",
                    host.identity(),
                    Outcome::Deny,
                    e,
                    json!({ "path": path }),
                )
                .await),
        }
    }
}

/// Like [`Enrolled`], with the body as the raw bytes the host signed (a
/// recording chunk). The route's own `DefaultBodyLimit` bounds it.
#[derive(Debug)]
pub(super) struct EnrolledBytes(pub(super) EnrolledHost, pub(super) Bytes);

impl FromRequest<AppState> for EnrolledBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let method = request.method().as_str().to_owned();
        let path = path_and_query(request.uri());
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let host = authenticate(state, header.as_deref(), &method, &path, &body).await?;
        Ok(EnrolledBytes(host, body))
    }
}

/// What the host signed: the path with its query.
fn path_and_query(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned())
}

/// The host behind a signed request; a refusal is audited (by `Hosts`)
/// and counted.
async fn authenticate(
    state: &AppState,
    header: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<EnrolledHost, ApiError> {
    state
        .hosts
        .authenticate(header, method, path, body)
        .await
        .map_err(|error| {
            state
                .metrics
                .auth_failures
                .get_or_create(&KindLabels {
                    kind: error.code().to_owned(),
                })
                .inc();
            ApiError::from(error)
        })
}

/// Who may follow `/v1/events`: any authenticated caller, or an enrolled
/// bastion (which must end sessions the moment their access ends).
#[derive(Debug)]
pub(super) enum Subscriber {
    Caller(Caller),
    Host(EnrolledHost),
}

impl Subscriber {
    pub(super) fn identity(&self) -> String {
        match self {
            Subscriber::Caller(c) => c.identity(),
            Subscriber::Host(h) => h.identity(),
        }
    }
}

impl FromRequestParts<AppState> for Subscriber {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let host_auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with(shiftkey_wire::host_auth::SCHEME))
            .map(str::to_owned);
        match host_auth {
            Some(value) => {
                let path = path_and_query(&parts.uri);
                let method = parts.method.as_str().to_owned();
                Ok(Subscriber::Host(
                    authenticate(state, Some(&value), &method, &path, b"").await?,
                ))
            }
            None => Ok(Subscriber::Caller(
                Caller::from_request_parts(parts, state).await?,
            )),
        }
    }
}
