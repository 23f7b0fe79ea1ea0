//! API errors and their HTTP status, in one place: every domain error
//! becomes an [`ApiError`] here (`From` impls below, explicit per variant),
//! and every `ApiError` has an explicit status.
//!
//! 4xx answers are the caller's to fix and are not logged as errors; 5xx
//! answers are logged with their cause.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shiftkey_wire::ErrorResponse;

use crate::audit::{self, Explain};
use crate::issue::RequestError;
use crate::policy::Denied;
use crate::{
    authority, events, hosts, incidents, issuance, oncall, recordings, requests, revocation,
    sessions,
};

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
    /// No on-call override with that ID.
    MissingOverride(String),
    /// The caller may not do this.
    Forbidden(String),
    /// The CA refused a bastion session (403, with its code).
    SessionDenied {
        code: &'static str,
        message: String,
    },
    /// The request conflicts with the current state (incident already resolved).
    Conflict(String),
    /// What was asked for existed and was deleted (a recording past its
    /// retention).
    Gone(String),
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
            ApiError::NotFound | ApiError::Missing(_) | ApiError::MissingOverride(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::Forbidden(_) | ApiError::SessionDenied { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
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
            ApiError::NotFound | ApiError::Missing(_) | ApiError::MissingOverride(_) => "not-found",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::SessionDenied { code, .. } => code,
            ApiError::Conflict(_) => "conflict",
            ApiError::Gone(_) => "gone",
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
            ApiError::Missing(m)
            | ApiError::MissingOverride(m)
            | ApiError::Forbidden(m)
            | ApiError::Conflict(m)
            | ApiError::Gone(m) => m.clone(),
            ApiError::SessionDenied { message, .. } => message.clone(),
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
            ApiError::MissingOverride(_) => {
                Some("`shiftkey oncall overrides` lists the overrides in force".into())
            }
            ApiError::Forbidden(_) => Some("ask a policy owner for a grant".into()),
            ApiError::SessionDenied { .. } => {
                Some("`shiftkey roles` shows which hosts and logins your roles allow".into())
            }
            ApiError::Conflict(_) => None,
            ApiError::Gone(_) => Some(
                "the seal and file list remain: `shiftkey recordings export` still gets the signed manifest; `shiftkey-ca recordings hold` keeps a recording from retention".into(),
            ),
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

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl Explain for ApiError {
    fn code(&self) -> &'static str {
        ApiError::code(self)
    }
}

impl From<audit::Error> for ApiError {
    fn from(e: audit::Error) -> Self {
        ApiError::AuditUnavailable(e.to_string())
    }
}

impl From<events::Error> for ApiError {
    fn from(e: events::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<crate::web_sessions::Error> for ApiError {
    fn from(e: crate::web_sessions::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// A store read that failed inside a domain service.
fn store_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("store read failed: {e}"))
}

impl From<issuance::Error> for ApiError {
    fn from(e: issuance::Error) -> Self {
        match e {
            issuance::Error::Rejected(e) => ApiError::BadRequest(e),
            issuance::Error::Denied(d) => ApiError::Denied(d),
            issuance::Error::Signing(m) => ApiError::Internal(m),
            issuance::Error::Audit(e) => e.into(),
            issuance::Error::Store(e) => store_failed(e),
            issuance::Error::OnCall(e) => e.into(),
        }
    }
}

impl From<authority::Error> for ApiError {
    fn from(e: authority::Error) -> Self {
        match e {
            authority::Error::Denied(d) => ApiError::Denied(d),
            authority::Error::Audit(e) => e.into(),
            authority::Error::Store(e) => store_failed(e),
        }
    }
}

impl From<requests::Error> for ApiError {
    fn from(e: requests::Error) -> Self {
        let message = e.to_string();
        match e {
            requests::Error::NotFound(_) => ApiError::Missing(message),
            requests::Error::NotVisible => ApiError::Forbidden(message),
            requests::Error::Authority(e) => e.into(),
            requests::Error::NotPending { .. } | requests::Error::Changed => {
                ApiError::Conflict(message)
            }
            requests::Error::ReasonRequired => ApiError::InvalidBody(message),
            requests::Error::UnsafeText(e) => ApiError::BadRequest(e.into()),
            requests::Error::Corrupt(m) => ApiError::Internal(m),
            requests::Error::Issuance(e) => e.into(),
            requests::Error::Audit(e) => e.into(),
            requests::Error::Store(e) => store_failed(e),
        }
    }
}

impl From<incidents::Error> for ApiError {
    fn from(e: incidents::Error) -> Self {
        let message = e.to_string();
        match e {
            incidents::Error::Authority(e) => e.into(),
            incidents::Error::NotFound(_) => ApiError::Missing(message),
            incidents::Error::Exists(_)
            | incidents::Error::AlreadyResolved(_)
            | incidents::Error::ResolvedMeanwhile(_) => ApiError::Conflict(message),
            incidents::Error::UnsafeText(e) => ApiError::BadRequest(e.into()),
            incidents::Error::Audit(e) => e.into(),
            incidents::Error::Store(e) => store_failed(e),
        }
    }
}

impl From<oncall::Error> for ApiError {
    fn from(e: oncall::Error) -> Self {
        let message = e.to_string();
        match e {
            oncall::Error::Authority(e) => e.into(),
            oncall::Error::NotFound(_) => ApiError::MissingOverride(message),
            oncall::Error::Ended(_) | oncall::Error::Changed(_) => ApiError::Conflict(message),
            oncall::Error::BadMember(_) | oncall::Error::BadTime(_) | oncall::Error::NoReason => {
                ApiError::InvalidBody(message)
            }
            oncall::Error::UnsafeText(e) => ApiError::BadRequest(e.into()),
            oncall::Error::Audit(e) => e.into(),
            oncall::Error::Store(e) => store_failed(e),
        }
    }
}

impl From<revocation::Error> for ApiError {
    fn from(e: revocation::Error) -> Self {
        match e {
            revocation::Error::Krl(m) => ApiError::Internal(format!("cannot encode the KRL: {m}")),
            revocation::Error::Audit(e) => e.into(),
            revocation::Error::Store(e) => store_failed(e),
        }
    }
}

impl From<hosts::Error> for ApiError {
    fn from(e: hosts::Error) -> Self {
        let message = e.to_string();
        match e {
            hosts::Error::TokenUnknown => ApiError::Unauthenticated {
                code: "token-unknown",
                message,
            },
            hosts::Error::TokenUsed => ApiError::Unauthenticated {
                code: "token-used",
                message,
            },
            hosts::Error::TokenExpired => ApiError::Unauthenticated {
                code: "token-expired",
                message,
            },
            hosts::Error::BadKey(e) => ApiError::BadRequest(e),
            hosts::Error::NotABastion(_) | hosts::Error::NotCovered(_) => {
                ApiError::Forbidden(message)
            }
            hosts::Error::Signing(m) => ApiError::Internal(m),
            hosts::Error::Audit(e) => e.into(),
            hosts::Error::Store(e) => store_failed(e),
        }
    }
}

impl From<hosts::AuthError> for ApiError {
    fn from(e: hosts::AuthError) -> Self {
        let code = e.code();
        match e {
            hosts::AuthError::Missing
            | hosts::AuthError::Malformed(_)
            | hosts::AuthError::Stale
            | hosts::AuthError::NotHostCertificate
            | hosts::AuthError::CertificateInvalid(_)
            | hosts::AuthError::SignatureInvalid
            | hosts::AuthError::Unknown => ApiError::Unauthenticated {
                code,
                message: e.to_string(),
            },
            hosts::AuthError::Store(e) => store_failed(e),
            hosts::AuthError::Audit(e) => e.into(),
        }
    }
}

impl From<sessions::Error> for ApiError {
    fn from(e: sessions::Error) -> Self {
        let message = e.to_string();
        match e {
            sessions::Error::Denied { code, message } => ApiError::SessionDenied { code, message },
            sessions::Error::NotABastion => ApiError::Forbidden(message),
            sessions::Error::Signing(m) => ApiError::Internal(m),
            sessions::Error::Audit(e) => e.into(),
        }
    }
}

impl From<recordings::Error> for ApiError {
    fn from(e: recordings::Error) -> Self {
        use recordings::Error as R;
        let message = e.to_string();
        match e {
            R::NotABastion | R::OtherBastion(_) | R::NotAReviewer => ApiError::Forbidden(message),
            R::NoSession(_) | R::BadFileName(_) | R::NoRecording(_) | R::NoFile { .. } => {
                ApiError::Missing(message)
            }
            R::OffsetRequired | R::BadSeal(_) | R::PastEnd { .. } | R::BadQuery | R::BadPurpose => {
                ApiError::InvalidBody(message)
            }
            R::NotLive { .. }
            | R::Sealing(_)
            | R::Gap { .. }
            | R::Mismatch { .. }
            | R::SealFinal { .. }
            | R::SealedMeanwhile(_)
            | R::TooLarge { .. }
            | R::HoldTooLate(_)
            | R::NotHeld(_) => ApiError::Conflict(message),
            R::Deleted { .. } => ApiError::Gone(message),
            R::BadHold(_) | R::BadHeartbeat(_) => ApiError::InvalidBody(message),
            R::Bytes(_) | R::Signing(_) => ApiError::Internal(message),
            R::Audit(e) => e.into(),
            R::Store(e) => store_failed(e),
            R::Authority(e) => e.into(),
        }
    }
}
