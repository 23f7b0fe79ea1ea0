//! OIDC ID token verification: the one place that turns a bearer token from
//! the user's identity provider into a [`VerifiedToken`] (subject, email,
//! groups).
//!
//! It owns provider discovery, the provider's JWKS (cached for at most
//! [`JWKS_MAX_AGE`], so a key the provider withdraws stops being trusted;
//! refetched at most once per [`JWKS_REFETCH_MIN_INTERVAL`] when a token
//! names a key we do not know) and every check on the token: algorithm
//! allow-list before any key lookup, signature, `iss`, `aud`/`azp`,
//! `exp`/`iat`/`nbf` with a small clock skew, and the `email` claim that
//! grants name users by (`email_verified` must be `true`; strict ASCII).
//!
//! It must never: accept `alg: none` or a shared-secret (`HS*`) algorithm,
//! follow an HTTP redirect, talk to a plain-`http` provider unless the
//! setting says `danger_allow_http_issuer`, log or echo a token, or install
//! anything process-global (the binary installs the rustls provider).

use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreGenderClaim, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IssuerUrl, JsonWebKey as _,
    JsonWebKeySetUrl, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Claim that carries group names unless the settings say otherwise.
pub(crate) const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// Algorithms accepted unless the settings say otherwise. Never `none` and
/// never `HS*`: a shared secret is known to every client of the provider.
pub(crate) const DEFAULT_ALLOWED_ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
/// Tolerated difference between our clock and the provider's.
pub(crate) const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// INVARIANT: a token naming an unknown `kid` triggers at most one JWKS
/// fetch per this interval, so forged kids cannot make us hammer the
/// provider. The first refetch after discovery is allowed at once, so a
/// key rotated in just after start-up is picked up.
pub(crate) const JWKS_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// INVARIANT: a cached JWKS older than this is refetched before it is used
/// again, so a key the provider withdrew (e.g. after a compromise) stops
/// being trusted within about this long, without a restart.
pub(crate) const JWKS_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// While the provider cannot be reached, a JWKS older than
/// [`JWKS_MAX_AGE`] is still used until it is this old (counted from its
/// fetch); after that, tokens are refused with [`Error::JwksFetch`].
pub(crate) const JWKS_STALE_GRACE: Duration = Duration::from_secs(6 * 60 * 60);
/// Whole-request timeout for discovery and JWKS fetches.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger bearer tokens are refused before any parsing.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// RFC 5321 path limit; emails end up in certificate key IDs.
const MAX_EMAIL_LEN: usize = 254;
const MAX_GROUP_LEN: usize = 256;
const MAX_GROUPS: usize = 256;

/// Checked OIDC settings (built from the config file by the caller).
#[derive(Clone, Debug)]
pub(crate) struct OidcSettings {
    /// Issuer URL, exactly as the provider writes it in `iss`.
    pub(crate) issuer: String,
    /// Our client ID: the `aud` the token must carry.
    pub(crate) audience: String,
    /// Claim holding the user's groups (an array of strings).
    pub(crate) groups_claim: String,
    /// JWS algorithm names accepted; `none` and `HS*` are refused.
    pub(crate) allowed_algs: Vec<String>,
    /// Tolerated clock difference for `exp`, `iat` and `nbf`.
    pub(crate) clock_skew: Duration,
    /// Allow an `http://` issuer and JWKS URL (tests on loopback only).
    pub(crate) danger_allow_http_issuer: bool,
    /// Accept tokens without an `email_verified` claim (for providers that
    /// never send it and only hand out addresses they verified). Tokens
    /// with `email_verified: false` are refused regardless.
    pub(crate) danger_accept_unverified_email: bool,
}

/// What a valid ID token says about its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VerifiedToken {
    pub(crate) subject: String,
    /// Verified by the provider and checked: ASCII
    /// `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+`, at most 254 bytes.
    pub(crate) email: String,
    pub(crate) groups: Vec<String>,
    pub(crate) expires_at: DateTime<Utc>,
}

/// Why a provider could not be set up or a token was refused.
///
/// Messages never contain the token. Variants from discovery and JWKS
/// fetches are the provider's (or our configuration's) fault; the others are
/// the token's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    #[error("invalid OIDC settings: {0}")]
    InvalidSettings(String),
    #[error(
        "OIDC issuer {0} is not https; hint: use the provider's https URL (plain http is only for tests, with danger_allow_http_issuer)"
    )]
    InsecureIssuer(String),
    #[error(
        "OIDC discovery failed: {0}; hint: check the issuer URL and that the provider is reachable"
    )]
    Discovery(String),
    #[error("fetching the provider's JWKS failed: {0}; hint: check that the provider is reachable")]
    JwksFetch(String),
    #[error("malformed ID token: {0}")]
    Malformed(&'static str),
    #[error("unsupported ID token header: {0}")]
    UnsupportedHeader(&'static str),
    #[error("ID token algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("ID token is signed with key {0:?}, which the provider does not publish")]
    UnknownKey(String),
    #[error("ID token names no key (kid) and the provider publishes several")]
    MissingKeyId,
    #[error("ID token signature is invalid")]
    BadSignature,
    #[error("ID token was issued by another issuer; hint: log in with the configured provider")]
    WrongIssuer,
    #[error("ID token is not for this client (aud); hint: log in with the configured client ID")]
    WrongAudience,
    #[error("ID token has several audiences and its authorized party (azp) is not this client")]
    WrongAuthorizedParty,
    #[error("ID token has expired; hint: log in again")]
    Expired,
    #[error(
        "ID token is issued in the future (iat); hint: check the clocks of the CA and the provider"
    )]
    IssuedInFuture,
    #[error("ID token is not valid yet (nbf); hint: check the clocks of the CA and the provider")]
    NotYetValid,
    #[error("ID token has no email claim; hint: request the `email` scope")]
    MissingEmail,
    #[error(
        "ID token's email is not verified by the provider (email_verified is not true); hint: verify the address at the provider"
    )]
    EmailNotVerified,
    #[error("ID token's email is not usable: {0}")]
    InvalidEmail(&'static str),
    #[error("ID token claim {claim:?} is invalid: {reason}")]
    InvalidClaim { claim: String, reason: &'static str },
}

impl Error {
    /// True when the provider (discovery or its JWKS) could not be reached
    /// or answered nonsense: the token may be fine, so callers answer
    /// "service unavailable" rather than "unauthorized", and keep the
    /// details (URLs) in the log.
    pub(crate) fn is_provider_unavailable(&self) -> bool {
        matches!(self, Error::Discovery(_) | Error::JwksFetch(_))
    }

    /// Stable kebab-case label for audit records and metrics.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Error::InvalidSettings(_) => "invalid-settings",
            Error::InsecureIssuer(_) => "insecure-issuer",
            Error::Discovery(_) => "discovery",
            Error::JwksFetch(_) => "jwks-fetch",
            Error::Malformed(_) => "malformed",
            Error::UnsupportedHeader(_) => "unsupported-header",
            Error::AlgorithmNotAllowed(_) => "algorithm-not-allowed",
            Error::UnknownKey(_) => "unknown-key",
            Error::MissingKeyId => "missing-key-id",
            Error::BadSignature => "bad-signature",
            Error::WrongIssuer => "wrong-issuer",
            Error::WrongAudience => "wrong-audience",
            Error::WrongAuthorizedParty => "wrong-authorized-party",
            Error::Expired => "expired",
            Error::IssuedInFuture => "issued-in-future",
            Error::NotYetValid => "not-yet-valid",
            Error::MissingEmail => "missing-email",
            Error::EmailNotVerified => "email-not-verified",
            Error::InvalidEmail(_) => "invalid-email",
            Error::InvalidClaim { .. } => "invalid-claim",
        }
    }
}

/// Every claim the standard types do not model (groups, nbf, ...).
#[derive(Debug, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, Value>,
}
impl AdditionalClaims for OtherClaims {}

type IdToken = openidconnect::IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The part of the JOSE header we look at before trusting anything.
#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: String,
    kid: Option<String>,
}

/// The provider's key set and when we fetched it.
#[derive(Debug)]
struct KeySet {
    keys: CoreJsonWebKeySet,
    fetched_at: Instant,
}

impl KeySet {
    fn has_kid(&self, kid: &str) -> bool {
        self.keys
            .keys()
            .iter()
            .any(|key| key.key_id().is_some_and(|id| id.as_str() == kid))
    }

    fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.fetched_at)
    }
}

/// When the JWKS was last fetched after discovery (unknown kid or age),
/// and why the last attempt failed, if it did.
#[derive(Debug, Default)]
struct RefetchState {
    last: Option<Instant>,
    last_error: Option<String>,
}

/// Verifies ID tokens from one provider. Cheap to share in an `Arc`.
pub(crate) struct OidcVerifier {
    issuer: IssuerUrl,
    client_id: ClientId,
    jwks_uri: JsonWebKeySetUrl,
    groups_claim: String,
    accept_unverified_email: bool,
    allowed_alg_names: HashSet<String>,
    allowed_algs: Vec<CoreJwsSigningAlgorithm>,
    clock_skew: chrono::Duration,
    http: reqwest::Client,
    jwks: RwLock<Arc<KeySet>>,
    refetch: tokio::sync::Mutex<RefetchState>,
    /// [`JWKS_REFETCH_MIN_INTERVAL`]; shorter in tests.
    refetch_interval: Duration,
    /// [`JWKS_MAX_AGE`]; shorter in tests.
    jwks_max_age: Duration,
    /// [`JWKS_STALE_GRACE`]; shorter in tests.
    jwks_stale_grace: Duration,
    verified: cache::VerifiedCache,
}

impl OidcVerifier {
    /// The issuer URL, as configured (served to clients by `/v1/config`).
    pub(crate) fn issuer(&self) -> &str {
        self.issuer.as_str()
    }
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("jwks_uri", &self.jwks_uri.as_str())
            .field("allowed_algs", &self.allowed_alg_names)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// Discovers the provider (`/.well-known/openid-configuration`) and
    /// fetches its JWKS.
    pub(crate) async fn discover(settings: OidcSettings) -> Result<Self, Error> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|err| Error::InvalidSettings(format!("issuer URL: {err}")))?;
        check_scheme(issuer.url(), settings.danger_allow_http_issuer)?;
        if settings.audience.is_empty() {
            return Err(Error::InvalidSettings(
                "audience (client ID) is empty".to_owned(),
            ));
        }
        if settings.groups_claim.is_empty() {
            return Err(Error::InvalidSettings(
                "groups claim name is empty".to_owned(),
            ));
        }
        let allowed_algs = parse_allowed_algs(&settings.allowed_algs)?;
        let clock_skew = chrono::Duration::from_std(settings.clock_skew)
            .ok()
            .filter(|skew| *skew <= chrono::Duration::minutes(10))
            .ok_or_else(|| {
                Error::InvalidSettings("clock skew must be at most 10 minutes".to_owned())
            })?;
        let http = http_client()?;

        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &http)
            .await
            .map_err(|err| Error::Discovery(error_chain(&err)))?;
        let jwks_uri = metadata.jwks_uri().clone();
        check_scheme(jwks_uri.url(), settings.danger_allow_http_issuer)?;
        let jwks = KeySet {
            keys: metadata.jwks().clone(),
            fetched_at: Instant::now(),
        };
        tracing::info!(
            issuer = issuer.as_str(),
            keys = jwks.keys.keys().len(),
            "OIDC provider discovered"
        );

        Ok(Self {
            issuer,
            client_id: ClientId::new(settings.audience),
            jwks_uri,
            groups_claim: settings.groups_claim,
            accept_unverified_email: settings.danger_accept_unverified_email,
            allowed_alg_names: settings.allowed_algs.into_iter().collect(),
            allowed_algs,
            clock_skew,
            http,
            jwks: RwLock::new(Arc::new(jwks)),
            refetch: tokio::sync::Mutex::new(RefetchState::default()),
            refetch_interval: JWKS_REFETCH_MIN_INTERVAL,
            jwks_max_age: JWKS_MAX_AGE,
            jwks_stale_grace: JWKS_STALE_GRACE,
            verified: cache::VerifiedCache::default(),
        })
    }

    /// Verifies an ID token now. A token that verified before against the
    /// current, fresh key set is answered from memory (see `cache.rs`).
    pub(crate) async fn verify(&self, bearer_token: &str) -> Result<VerifiedToken, Error> {
        let now = Utc::now();
        let keys = self.current_keys();
        let fresh = keys.fetched_at.elapsed() < self.jwks_max_age;
        if fresh && let Some(hit) = self.verified.get(bearer_token, &keys, now) {
            return Ok(hit);
        }
        let token = self.verify_at(bearer_token, now).await?;
        // Remember it only if it was checked against the set we looked at
        // (verify_at may have refetched).
        if fresh && Arc::ptr_eq(&keys, &self.current_keys()) {
            self.verified.put(bearer_token, keys, token.clone(), now);
        }
        Ok(token)
    }

    /// Verifies an ID token as of `now` (injectable clock).
    pub(crate) async fn verify_at(
        &self,
        bearer_token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, Error> {
        let header = parse_header(bearer_token)?;
        // The allow-list comes before any key lookup or JWKS fetch.
        if !self.allowed_alg_names.contains(&header.alg) {
            return Err(Error::AlgorithmNotAllowed(printable(&header.alg)));
        }
        let id_token = IdToken::from_str(bearer_token)
            .map_err(|_| Error::Malformed("claims are not a valid ID token"))?;
        let jwks = self.keys_for(header.kid.as_deref()).await?;

        let skew = self.clock_skew;
        // Saturating: an injected `now` at the edge of time must not panic.
        let earliest = now
            .checked_sub_signed(skew)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let latest = now
            .checked_add_signed(skew)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let verifier = CoreIdTokenVerifier::new_public_client(
            self.client_id.clone(),
            self.issuer.clone(),
            jwks.keys.clone(),
        )
        .set_allowed_algs(self.allowed_algs.iter().cloned())
        // Other audiences are acceptable only when azp names us (below).
        .set_other_audience_verifier_fn(|_| true)
        .set_time_fn(move || earliest);
        let claims = id_token
            .into_claims(&verifier, |_: Option<&openidconnect::Nonce>| Ok(()))
            .map_err(|err| map_claims_error(err, header.kid.as_deref()))?;

        // azp: required when there are several audiences, must be us if present.
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != self.client_id.as_str() => {
                return Err(Error::WrongAuthorizedParty);
            }
            None if claims.audiences().len() > 1 => return Err(Error::WrongAuthorizedParty),
            _ => {}
        }
        if claims.issue_time() > latest {
            return Err(Error::IssuedInFuture);
        }
        let other = &claims.additional_claims().claims;
        if let Some(nbf) = other.get("nbf") {
            let nbf = nbf
                .as_i64()
                // A fractional NumericDate: `as` saturates, and
                // from_timestamp refuses what is out of range.
                .or_else(|| nbf.as_f64().map(|secs| secs.floor() as i64))
                .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
                .ok_or_else(|| invalid_claim("nbf", "not a timestamp"))?;
            if nbf > latest {
                return Err(Error::NotYetValid);
            }
        }

        let subject = claims.subject().as_str();
        if subject.is_empty() || subject.chars().any(char::is_control) {
            return Err(invalid_claim("sub", "empty or contains control characters"));
        }
        let email = claims.email().ok_or(Error::MissingEmail)?;
        // The email alone names the user, so an address the user merely
        // typed in at the provider must not count (nOAuth).
        match claims.email_verified() {
            Some(true) => {}
            None if self.accept_unverified_email => {}
            Some(false) | None => return Err(Error::EmailNotVerified),
        }
        check_email(email.as_str())?;
        let groups = parse_groups(&self.groups_claim, other.get(&self.groups_claim))?;

        Ok(VerifiedToken {
            subject: subject.to_owned(),
            email: email.as_str().to_owned(),
            groups,
            expires_at: claims.expiration(),
        })
    }

    /// The key set to verify a token naming `kid` with: the cached one
    /// while it is younger than the maximum age and knows the kid;
    /// otherwise a freshly fetched one, when the rate limit allows a fetch.
    /// A set past its maximum age is still used, when the provider cannot
    /// be reached, until it is past the grace period too.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Error> {
        let current = self.current_keys();
        let known = |keys: &KeySet| kid.is_none_or(|kid| keys.has_kid(kid));
        let age = current.age(Instant::now());
        if age < self.jwks_max_age && known(&current) {
            return Ok(current);
        }
        // One fetch at a time. A stale set the token's kid is in stays
        // usable while someone else refreshes it: logins need not queue
        // behind a slow provider.
        let mut state = if age < self.jwks_stale_grace && known(&current) {
            match self.refetch.try_lock() {
                Ok(state) => state,
                Err(_) => return Ok(current),
            }
        } else {
            self.refetch.lock().await
        };
        // Whoever waited here may find the work done.
        let current = self.current_keys();
        let now = Instant::now();
        let age = current.age(now);
        let stale = age >= self.jwks_max_age;
        if !stale && known(&current) {
            return Ok(current);
        }

        let may_fetch = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.refetch_interval);
        let mut fetch_error = None;
        if may_fetch {
            // Counted before the fetch, so failures are rate limited too.
            state.last = Some(now);
            if stale {
                tracing::info!(age = ?age, "the cached JWKS is too old; refetching it");
            } else if let Some(kid) = kid {
                tracing::info!(kid = %printable(kid), "ID token names an unknown key; refetching the JWKS");
            }
            match CoreJsonWebKeySet::fetch_async(&self.jwks_uri, &self.http).await {
                Ok(keys) => {
                    state.last_error = None;
                    let fetched = Arc::new(KeySet {
                        keys,
                        fetched_at: Instant::now(),
                    });
                    *self.jwks.write().unwrap_or_else(PoisonError::into_inner) =
                        Arc::clone(&fetched);
                    return match kid {
                        Some(kid) if !fetched.has_kid(kid) => {
                            Err(Error::UnknownKey(printable(kid)))
                        }
                        _ => Ok(fetched),
                    };
                }
                Err(err) => {
                    let err = error_chain(&err);
                    tracing::warn!(
                        jwks_uri = self.jwks_uri.as_str(),
                        error = %err,
                        cached_age = ?age,
                        "JWKS refetch failed"
                    );
                    state.last_error = Some(err.clone());
                    fetch_error = Some(err);
                }
            }
        }

        // No fresh set: the provider failed, or was asked too recently.
        if age >= self.jwks_stale_grace {
            let reason = fetch_error
                .or_else(|| state.last_error.clone())
                .unwrap_or_else(|| "no answer yet".to_owned());
            return Err(Error::JwksFetch(format!(
                "the cached key set is {}s old and cannot be refreshed: {reason}",
                age.as_secs()
            )));
        }
        match kid {
            Some(kid) if !current.has_kid(kid) => Err(match fetch_error {
                Some(err) => Error::JwksFetch(err),
                None => Error::UnknownKey(printable(kid)),
            }),
            _ => Ok(current),
        }
    }

    fn current_keys(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a whole Arc: writers only swap it.
        Arc::clone(&self.jwks.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl OidcVerifier {
    /// A verifier over a key set given here that never fetches one: for
    /// the fuzz targets (`crate::fuzzing`), which feed it tokens and JWKS
    /// documents without a provider. Settings are checked as by
    /// [`OidcVerifier::discover`].
    pub(crate) fn with_fixed_keys(
        settings: OidcSettings,
        keys: CoreJsonWebKeySet,
    ) -> Result<Self, Error> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|err| Error::InvalidSettings(format!("issuer URL: {err}")))?;
        let jwks_uri = JsonWebKeySetUrl::new(format!("{}/jwks", settings.issuer))
            .map_err(|err| Error::InvalidSettings(format!("JWKS URL: {err}")))?;
        let allowed_algs = parse_allowed_algs(&settings.allowed_algs)?;
        let clock_skew = chrono::Duration::from_std(settings.clock_skew)
            .map_err(|_| Error::InvalidSettings("clock skew out of range".to_owned()))?;
        let now = Instant::now();
        Ok(Self {
            issuer,
            client_id: ClientId::new(settings.audience),
            jwks_uri,
            groups_claim: settings.groups_claim,
            accept_unverified_email: settings.danger_accept_unverified_email,
            allowed_alg_names: settings.allowed_algs.into_iter().collect(),
            allowed_algs,
            clock_skew,
            http: http_client()?,
            jwks: RwLock::new(Arc::new(KeySet {
                keys,
                fetched_at: now,
            })),
            // Fetched "just now", never stale, and no refetch ever allowed.
            refetch: tokio::sync::Mutex::new(RefetchState {
                last: Some(now),
                last_error: None,
            }),
            refetch_interval: Duration::MAX,
            jwks_max_age: Duration::MAX,
            jwks_stale_grace: Duration::MAX,
            verified: cache::VerifiedCache::default(),
        })
    }
}

fn http_client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        // Following redirects would let the provider (or anyone between)
        // point discovery and key fetches elsewhere (SSRF).
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_CONNECT_TIMEOUT)
        .build()
        .map_err(|err| {
            Error::Discovery(format!(
                "cannot build the HTTP client: {}",
                error_chain(&err)
            ))
        })
}

fn check_scheme(url: &reqwest::Url, danger_allow_http: bool) -> Result<(), Error> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if danger_allow_http => Ok(()),
        "http" => Err(Error::InsecureIssuer(url.to_string())),
        other => Err(Error::InvalidSettings(format!(
            "URL {url} has scheme {other:?}; use https"
        ))),
    }
}

fn parse_allowed_algs(names: &[String]) -> Result<Vec<CoreJwsSigningAlgorithm>, Error> {
    if names.is_empty() {
        return Err(Error::InvalidSettings("allowed_algs is empty".to_owned()));
    }
    names
        .iter()
        .map(|name| {
            let alg: CoreJwsSigningAlgorithm = serde_json::from_value(Value::String(name.clone()))
                .map_err(|_| Error::InvalidSettings(format!("unknown JWS algorithm {name:?}")))?;
            match alg {
                CoreJwsSigningAlgorithm::None
                | CoreJwsSigningAlgorithm::HmacSha256
                | CoreJwsSigningAlgorithm::HmacSha384
                | CoreJwsSigningAlgorithm::HmacSha512 => Err(Error::InvalidSettings(format!(
                    "JWS algorithm {name:?} is never allowed (unsigned or shared secret)"
                ))),
                alg => Ok(alg),
            }
        })
        .collect()
}

/// Decodes the JOSE header of a compact JWS without trusting it.
fn parse_header(token: &str) -> Result<UnverifiedHeader, Error> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Error::Malformed("token is too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Malformed(
            "not a compact JWS (three dot-separated parts)",
        ));
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Error::Malformed("header is not base64url"))?;
    serde_json::from_slice(&header)
        .map_err(|_| Error::Malformed("header is not a JOSE header with alg"))
}

fn map_claims_error(err: ClaimsVerificationError, kid: Option<&str>) -> Error {
    match err {
        ClaimsVerificationError::InvalidIssuer(_) => Error::WrongIssuer,
        ClaimsVerificationError::InvalidAudience(_) => Error::WrongAudience,
        // Only exp: iat is checked by us, after the library.
        ClaimsVerificationError::Expired(_) => Error::Expired,
        ClaimsVerificationError::InvalidNonce(_) => invalid_claim("nonce", "rejected"),
        ClaimsVerificationError::InvalidAuthContext(_) => invalid_claim("acr", "rejected"),
        ClaimsVerificationError::InvalidAuthTime(_) => invalid_claim("auth_time", "rejected"),
        ClaimsVerificationError::InvalidSubject(_) => invalid_claim("sub", "rejected"),
        ClaimsVerificationError::Unsupported(_) => {
            Error::UnsupportedHeader("typ, cty, crit or encryption not supported")
        }
        ClaimsVerificationError::SignatureVerification(sig) => match sig {
            SignatureVerificationError::NoMatchingKey => match kid {
                Some(kid) => Error::UnknownKey(printable(kid)),
                None => Error::UnknownKey(String::new()),
            },
            SignatureVerificationError::AmbiguousKeyId(_) => Error::MissingKeyId,
            SignatureVerificationError::DisallowedAlg(alg)
            | SignatureVerificationError::UnsupportedAlg(alg) => {
                Error::AlgorithmNotAllowed(printable(&alg))
            }
            SignatureVerificationError::NoSignature => {
                Error::AlgorithmNotAllowed("none".to_owned())
            }
            // CryptoError, InvalidKey (kid names a key of another type),
            // Other, and whatever a later version adds.
            _ => Error::BadSignature,
        },
        // Other, and whatever a later version adds.
        _ => Error::Malformed("claims could not be verified"),
    }
}

fn invalid_claim(claim: &str, reason: &'static str) -> Error {
    Error::InvalidClaim {
        claim: printable(claim),
        reason,
    }
}

/// Emails name users in grants (`user:EMAIL`) and become the first field
/// of certificate key IDs (`EMAIL role=.. serial=..`), so only a strict
/// ASCII form gets through: `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+`. No `=`,
/// whitespace, commas, quotes or look-alike Unicode that could forge or
/// split a field.
fn check_email(email: &str) -> Result<(), Error> {
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return Err(Error::InvalidEmail("empty or longer than 254 bytes"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(Error::InvalidEmail("not of the form local@domain"));
    };
    if local.is_empty() || domain.is_empty() {
        return Err(Error::InvalidEmail("not of the form local@domain"));
    }
    let local_ok = local
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-'));
    // A second `@` fails here.
    let domain_ok = domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(Error::InvalidEmail(
            "only ASCII letters, digits and ._%+- before the @, and letters, digits and .- after it, are accepted",
        ))
    }
}

/// A missing claim means no groups; anything but an array of plain
/// strings is refused rather than guessed at.
fn parse_groups(claim: &str, value: Option<&Value>) -> Result<Vec<String>, Error> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(invalid_claim(claim, "not an array of strings"));
    };
    if items.len() > MAX_GROUPS {
        return Err(invalid_claim(claim, "too many groups"));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(group)
                if !group.is_empty()
                    && group.len() <= MAX_GROUP_LEN
                    && !group.chars().any(char::is_control) =>
            {
                Ok(group.clone())
            }
            Value::String(_) => Err(invalid_claim(
                claim,
                "a group is empty, too long or contains control characters",
            )),
            _ => Err(invalid_claim(claim, "not an array of strings")),
        })
        .collect()
}

/// Attacker-controlled text made safe to put in an error message or log:
/// escaped and cut short.
fn printable(text: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

fn error_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

mod cache;
#[cfg(test)]
mod tests;
