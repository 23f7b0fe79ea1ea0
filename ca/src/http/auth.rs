//! Who is asking: the `Caller` extractor. The local socket's middleware has
//! put the peer's `local:USER` in the request's extensions, or the Bearer
//! token is verified by `oidc`. Failures are audited (`auth.failed`) and
//! counted before the 401.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde_json::json;

use super::error::ApiError;
use super::state::AppState;
use crate::audit::{Audit, Outcome};
use crate::identity::Caller;
use crate::metrics::{KindLabels, Metrics};
use crate::oidc::OidcVerifier;

/// Marks a request that arrived on the local socket, with the peer's identity.
/// Only the socket listener inserts it; nothing from the wire can.
#[derive(Debug, Clone)]
pub(crate) struct LocalPeer(pub(crate) Caller);

/// How callers prove who they are over HTTPS.
#[derive(Debug)]
pub(crate) struct Authenticator {
    oidc: Option<Arc<OidcVerifier>>,
    client_id: Option<String>,
    audit: Audit,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub(crate) fn new(
        oidc: Option<(Arc<OidcVerifier>, String)>,
        audit: Audit,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (oidc, client_id) = match oidc {
            Some((verifier, client_id)) => (Some(verifier), Some(client_id)),
            None => (None, None),
        };
        Self {
            oidc,
            client_id,
            audit,
            metrics,
        }
    }

    pub(crate) fn issuer(&self) -> Option<String> {
        self.oidc.as_ref().map(|o| o.issuer().to_owned())
    }

    pub(crate) fn client_id(&self) -> Option<String> {
        self.client_id.clone()
    }

    /// Counts and audits a failed authentication, then hands back the 401.
    pub(crate) async fn fail(&self, error: ApiError, path: &str) -> ApiError {
        self.metrics
            .auth_failures
            .get_or_create(&KindLabels {
                kind: error.code().to_owned(),
            })
            .inc();
        self.audit
            .refuse(
                "auth.failed",
                "anonymous".into(),
                Outcome::Deny,
                error,
                json!({ "path": path }),
            )
            .await
    }

    async fn caller(&self, parts: &Parts) -> Result<Caller, ApiError> {
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
        let verified = match (token, &self.oidc) {
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(fail(
                "oidc-not-configured",
                "this CA has no OIDC issuer configured; use its local socket or ask the operator to set [oidc] in ca.toml".into(),
            )),
            (Ok(token), Some(verifier)) => match verifier.verify(token).await {
                Ok(token) => Ok(token),
                // Not the caller's fault, and the cause (URLs, resolver
                // errors) is for the operator's log, not for the caller.
                Err(e) if e.is_provider_unavailable() => {
                    Err(ApiError::IdentityProviderUnavailable(e.to_string()))
                }
                Err(e) => Err(fail(e.code(), format!("the ID token was refused: {e}"))),
            },
        };
        match verified {
            // The email becomes the key ID's first field and the identity
            // every check compares, in its one canonical spelling; `oidc`
            // already refuses unsafe ones, and this keeps it so whatever
            // changes there.
            Ok(token) => match Caller::user(&token.email, token.groups) {
                Some(caller) => Ok(caller),
                None => Err(self
                    .audit
                    .refuse(
                        "auth.failed",
                        "anonymous".into(),
                        Outcome::Deny,
                        fail(
                            "invalid-email",
                            "the ID token's email cannot be used as an identity".into(),
                        ),
                        json!({ "path": parts.uri.path() }),
                    )
                    .await),
            },
            Err(error) => Err(self.fail(error, parts.uri.path()).await),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state.auth.caller(parts).await
    }
}
