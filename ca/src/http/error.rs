//! API errors and their HTTP status, in one place.
//!
//! Every variant has an explicit status. 4xx answers are the caller's to fix
//! and are not logged as errors; 5xx answers are logged with their cause.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shiftkey_wire::ErrorResponse;

use crate::issue::RequestError;
use crate::policy::Denied;

#[derive(Debug)]
pub(crate) enum ApiError {
    /// A field of the request is invalid.
    BadRequest(RequestError),
    /// The body is not the JSON we expect.
    InvalidBody(String),
    /// The body is larger than the limit.
    PayloadTooLarge,
    /// No credentials, or credentials that do not verify.
    Unauthenticated {
        code: &'static str,
        message: String,
    },
    /// The policy said no.
    Denied(Denied),
    /// The audit log could not record the decision, so nothing was done.
    AuditUnavailable(String),
    /// The OIDC provider (discovery or JWKS) cannot be reached.
    IdentityProviderUnavailable(String),
    NotFound,
    /// A named thing (an incident) does not exist.
    Missing(String),
    /// The caller may not do this.
    Forbidden(String),
    /// An approval or denial the caller may not make (403, with its code).
    Decision {
        code: &'static str,
        message: String,
    },
    /// The CA refused a bastion session (403, with its code).
    SessionDenied {
        code: &'static str,
        message: String,
    },
    /// The request conflicts with the current state (incident already resolved).
    Conflict(String),
    /// An incoming webhook whose source has no secret in `ca.toml`.
    WebhookNotConfigured(&'static str),
    /// An incoming webhook that failed authentication: no or a wrong token or
    /// signature, a replayed or stale event.
    WebhookRefused {
        code: &'static str,
        message: String,
    },
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidBody(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthenticated { .. } | ApiError::WebhookRefused { .. } => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::WebhookNotConfigured(_) => StatusCode::NOT_FOUND,
            ApiError::Denied(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) | ApiError::Decision { .. } | ApiError::SessionDenied { .. } => {
                StatusCode::FORBIDDEN
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::AuditUnavailable(_) | ApiError::IdentityProviderUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(e) => e.code(),
            ApiError::InvalidBody(_) => "invalid-json",
            ApiError::PayloadTooLarge => "body-too-large",
            ApiError::Unauthenticated { code, .. } => code,
            ApiError::Denied(d) => d.code.as_str(),
            ApiError::NotFound | ApiError::Missing(_) => "not-found",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Decision { code, .. } | ApiError::SessionDenied { code, .. } => code,
            ApiError::Conflict(_) => "conflict",
            ApiError::WebhookNotConfigured(_) => "not-configured",
            ApiError::WebhookRefused { code, .. } => code,
            ApiError::AuditUnavailable(_) => "audit-unavailable",
            ApiError::IdentityProviderUnavailable(_) => "identity-provider-unavailable",
            ApiError::Internal(_) => "internal-error",
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            ApiError::BadRequest(e) => e.to_string(),
            ApiError::InvalidBody(m) => format!("the request body is not valid: {m}"),
            ApiError::PayloadTooLarge => format!(
                "the request body is larger than {} bytes",
                super::MAX_BODY_BYTES
            ),
            ApiError::Unauthenticated { message, .. } => message.clone(),
            ApiError::Denied(d) => d.message.clone(),
            ApiError::NotFound => "no such endpoint".into(),
            ApiError::Missing(m) | ApiError::Forbidden(m) | ApiError::Conflict(m) => m.clone(),
            ApiError::Decision { message, .. } | ApiError::SessionDenied { message, .. } => {
                message.clone()
            }
            ApiError::WebhookNotConfigured(source) => {
                format!("the {source} webhook is not configured on this CA")
            }
            ApiError::WebhookRefused { message, .. } => message.clone(),
            ApiError::AuditUnavailable(_) => {
                "the CA cannot write its audit log, so it refuses to act".into()
            }
            ApiError::IdentityProviderUnavailable(_) => {
                "the CA cannot reach the identity provider to check your token".into()
            }
            ApiError::Internal(_) => "the CA failed to handle the request".into(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidBody(_) | ApiError::PayloadTooLarge => {
                Some("see /v1/openapi.json for the request format".into())
            }
            ApiError::Unauthenticated { code, .. } if code.starts_with("token-") => Some(
                "join tokens work once and expire: ask the CA operator for a new one (`shiftkey-ca hosts token`)".into(),
            ),
            ApiError::Unauthenticated { code, .. } if code.contains("host") => Some(
                "the host's enrollment is not valid: check its clock, or enroll it again with a new join token".into(),
            ),
            ApiError::Unauthenticated { .. } => Some("sign in again with `shiftkey login`".into()),
            ApiError::Denied(_) => {
                Some("`shiftkey-ca policy explain` shows how the policy decides".into())
            }
            ApiError::NotFound => Some("see /v1/openapi.json for the API".into()),
            ApiError::Missing(_) => Some("`shiftkey incident list` shows the incidents".into()),
            ApiError::Forbidden(_) => Some("ask a policy owner for a grant".into()),
            ApiError::Decision { .. } => {
                Some("`shiftkey requests` lists what you may approve".into())
            }
            ApiError::SessionDenied { .. } => {
                Some("`shiftkey roles` shows which hosts and logins your roles allow".into())
            }
            ApiError::Conflict(_) => None,
            ApiError::WebhookNotConfigured(_) => {
                Some("operators: set it in ca.toml [webhooks] (docs/configuration.md)".into())
            }
            ApiError::WebhookRefused { .. } => Some(
                "check that the sender uses the secret in ca.toml [webhooks] (docs/runbook.md)"
                    .into(),
            ),
            ApiError::AuditUnavailable(_)
            | ApiError::IdentityProviderUnavailable(_)
            | ApiError::Internal(_) => {
                Some("retry shortly; operators: check the CA's logs (docs/runbook.md)".into())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::AuditUnavailable(cause)
            | ApiError::IdentityProviderUnavailable(cause)
            | ApiError::Internal(cause) => {
                tracing::error!(code = self.code(), cause = %cause, "request failed");
            }
            _ => tracing::debug!(code = self.code(), "request refused"),
        }
        let body = ErrorResponse {
            error: self.code().to_owned(),
            message: self.message(),
            hint: self.hint(),
        };
        (status, Json(body)).into_response()
    }
}
