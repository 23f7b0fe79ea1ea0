//! Routes for enrolled hosts and bastions: enrollment with a join token,
//! renewal, the bastion's certificates for target names, and sessions.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde_json::json;
use shiftkey_wire::{EnrollRequest, HostCertificateResponse, SessionGrant};

use crate::hosts::EnrolledHost;
use crate::http::error::ApiError;
use crate::identity::Caller;
use crate::service::Ca;

pub(crate) fn routes() -> Router<Arc<Ca>> {
    Router::new()
        .route("/v1/hosts/enroll", post(enroll))
        .route("/v1/hosts/renew", post(renew))
        .route("/v1/hosts/present", post(present))
        .route("/v1/sessions", post(sessions))
        .route("/v1/sessions/refused", post(refused))
}

async fn enroll(
    State(ca): State<Arc<Ca>>,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<HostCertificateResponse>, ApiError> {
    let request = match body {
        Ok(Json(r)) => r,
        Err(rejection) => {
            return Err(ca
                .refuse(
                    "host.enroll_refused",
                    "anonymous".into(),
                    ApiError::InvalidBody(rejection.body_text()),
                    json!({}),
                )
                .await);
        }
    };
    Ok(Json(ca.enroll(request, "https").await?))
}

async fn renew(
    State(ca): State<Arc<Ca>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::RenewRequest>,
) -> Result<Json<HostCertificateResponse>, ApiError> {
    Ok(Json(ca.renew_host(&host, body).await?))
}

async fn present(
    State(ca): State<Arc<Ca>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::PresentRequest>,
) -> Result<Json<HostCertificateResponse>, ApiError> {
    Ok(Json(ca.present_as(&host, &body.target).await?))
}

async fn sessions(
    State(ca): State<Arc<Ca>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::SessionRequest>,
) -> Result<Json<SessionGrant>, ApiError> {
    let started = std::time::Instant::now();
    let result = ca.authorize_session(&host, body).await;
    ca.metrics
        .issue_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(result?))
}

async fn refused(
    State(ca): State<Arc<Ca>>,
    Enrolled(host, body): Enrolled<shiftkey_wire::SessionRefusal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    ca.record_bastion_refusal(&host, body).await?;
    Ok(Json(json!({ "recorded": true })))
}

/// A request signed by an enrolled host (`Shiftkey-Host` authorization),
/// with its JSON body. The signature covers the body, so the body is read
/// here, checked, then parsed. Failures are audited like failed logins.
#[derive(Debug)]
pub(crate) struct Enrolled<T>(pub(crate) EnrolledHost, pub(crate) T);

impl<T: DeserializeOwned + Send> FromRequest<Arc<Ca>> for Enrolled<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, ca: &Arc<Ca>) -> Result<Self, Self::Rejection> {
        let path = path_and_query(request.uri());
        let EnrolledBytes(host, body) = EnrolledBytes::from_request(request, ca).await?;
        let parsed = serde_json::from_slice(if body.is_empty() { b"{}" } else { &body })
            .map_err(|e| ApiError::InvalidBody(e.to_string()));
        match parsed {
            Ok(value) => Ok(Enrolled(host, value)),
            Err(e) => Err(ca
                .refuse(
                    "request.rejected",
                    host.identity(),
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
pub(crate) struct EnrolledBytes(pub(crate) EnrolledHost, pub(crate) Bytes);

impl FromRequest<Arc<Ca>> for EnrolledBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, ca: &Arc<Ca>) -> Result<Self, Self::Rejection> {
        let method = request.method().as_str().to_owned();
        let path = path_and_query(request.uri());
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Bytes::from_request(request, ca)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let host = authenticate(ca, header.as_deref(), &method, &path, &body).await?;
        Ok(EnrolledBytes(host, body))
    }
}

/// What the host signed: the path with its query.
fn path_and_query(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned())
}

async fn authenticate(
    ca: &Ca,
    header: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<EnrolledHost, ApiError> {
    let result = match header {
        None => Err(ApiError::Unauthenticated {
            code: "missing-host-auth",
            message: "enrolled hosts sign their requests (`Authorization: Shiftkey-Host ...`); enroll first with a join token".into(),
        }),
        Some(value) => ca.authenticate_host(value, method, path, body),
    };
    match result {
        Ok(host) => Ok(host),
        Err(error) => {
            ca.metrics
                .auth_failures
                .get_or_create(&crate::metrics::KindLabels {
                    kind: error.code().to_owned(),
                })
                .inc();
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

/// Who may follow `/v1/events`: any authenticated caller, or an enrolled
/// bastion (which must end sessions the moment their access ends).
#[derive(Debug)]
pub(crate) enum Subscriber {
    Caller(Caller),
    Host(EnrolledHost),
}

impl Subscriber {
    pub(crate) fn identity(&self) -> String {
        match self {
            Subscriber::Caller(c) => c.identity(),
            Subscriber::Host(h) => h.identity(),
        }
    }
}

impl FromRequestParts<Arc<Ca>> for Subscriber {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ca: &Arc<Ca>) -> Result<Self, Self::Rejection> {
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
                    authenticate(ca, Some(&value), &method, &path, b"").await?,
                ))
            }
            None => Ok(Subscriber::Caller(
                Caller::from_request_parts(parts, ca).await?,
            )),
        }
    }
}
