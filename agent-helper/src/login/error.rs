//! Everything that can stop a login, each with what to do next.

use std::path::PathBuf;
use std::time::Duration;

/// Why a login (or the token cache) failed. Every message ends with what the
/// user can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    #[error(
        "the OIDC issuer {issuer:?} is not an https:// URL; use the https issuer URL from your identity provider (plain http is only accepted on loopback)"
    )]
    InsecureIssuer { issuer: String },

    #[error(
        "cannot reach the OIDC provider at {issuer}: {reason}; check the issuer URL and your network, then run `shiftkey login` again"
    )]
    ProviderUnreachable { issuer: String, reason: String },

    #[error(
        "the OIDC provider at {issuer} published unusable discovery metadata: {reason}; check that the issuer URL is exactly the provider's `issuer`"
    )]
    ProviderMetadata { issuer: String, reason: String },

    #[error(
        "the OIDC provider at {issuer} does not offer the device authorization grant; log in with the browser flow (`shiftkey login` without --device)"
    )]
    DeviceGrantUnsupported { issuer: String },

    #[error(
        "cannot listen on 127.0.0.1 for the login redirect: {source}; free a local port or use `shiftkey login --device`"
    )]
    Loopback {
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no login arrived from the browser within {} s; run `shiftkey login` again and finish signing in in the browser (or use --device)",
        waited.as_secs()
    )]
    TimedOut { waited: Duration },

    #[error(
        "the login redirect carried a `state` this login did not issue, so it was refused (a stale browser tab, or someone else's login); run `shiftkey login` again"
    )]
    StateMismatch,

    #[error(
        "the login redirect names issuer {got:?}, not {expected}; refused (possible mix-up attack); check which provider your browser signed in to and run `shiftkey login` again"
    )]
    IssuerMismatch { expected: String, got: String },

    #[error(
        "the login was denied ({error}); sign in with an account allowed to use Shiftkey, or ask your administrator"
    )]
    Denied { error: String },

    #[error(
        "the OIDC provider refused the login: {error}{}; check the client ID and the provider's configuration for it",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    ProviderRefused {
        error: String,
        description: Option<String>,
    },

    #[error(
        "the device code expired before the login was approved; run `shiftkey login --device` again and enter the new code sooner"
    )]
    DeviceCodeExpired,

    #[error(
        "the OIDC provider answered the token request with something unusable: {reason}; run `shiftkey login` again, and report it if it persists"
    )]
    BadTokenResponse { reason: String },

    #[error(
        "the OIDC provider returned no ID token; the client must be allowed the `openid` scope at the provider"
    )]
    NoIdToken,

    #[error(
        "the ID token from the OIDC provider failed verification: {reason}; check the system clock and run `shiftkey login` again"
    )]
    InvalidIdToken { reason: String },

    #[error(
        "the token is not a well-formed JWT ({reason}); pass the ID token itself (three base64url parts separated by dots)"
    )]
    MalformedToken { reason: &'static str },

    #[error(
        "cannot write the login cache {}: {source}; check $XDG_RUNTIME_DIR, or log in again (the token stays in memory)",
        path.display()
    )]
    CacheWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
