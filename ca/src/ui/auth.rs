//! Signing reviewers in: the CA as an OIDC relying party (authorization
//! code with PKCE, state and nonce), server-side sessions behind a random
//! cookie, the per-session CSRF token, and the check that the policy lets
//! this identity in.
//!
//! Cookies:
//! - `__Secure-shiftkey-login` (`Path=/ui/callback`, `SameSite=Lax`, ten
//!   minutes) binds a sign-in to the browser that started it: the provider's
//!   redirect back is a cross-site top-level GET, on which only a Lax cookie
//!   travels. It holds the `state`, which is useless without the PKCE
//!   verifier that stays in the CA's memory.
//! - `__Secure-shiftkey-ui` (`Path=/ui`, `SameSite=Strict`) is the session.
//!   Strict: no request another site starts, not even a link, carries it.
//!   Because a redirect chain that began at the provider counts as
//!   cross-site, the callback answers with a page of our own that moves on
//!   to the UI, instead of a redirect, so the first request with the new
//!   cookie starts from our origin.
//!
//! Never: keep a session ID in the clear (the map is keyed by its SHA-256),
//! sign in an identity the ID token verifier did not return, or let a
//! session outlive the policy's say-so.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{UiError, settings};
use crate::audit::{Event, Outcome};
use crate::config::UiSettings;
use crate::identity::Caller;
use crate::service::Ca;

const SESSION_COOKIE: &str = "__Secure-shiftkey-ui";
const LOGIN_COOKIE: &str = "__Secure-shiftkey-login";
/// A sign-in must come back from the provider within this.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// A session nobody used for this long ends, whatever `session_ttl` says.
const IDLE_TTL: Duration = Duration::from_secs(60 * 60);
/// Sessions and sign-ins held at once; past this the oldest give way.
const MAX_ENTRIES: usize = 10_000;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Session {
    email: String,
    groups: Vec<String>,
    csrf: String,
    expires: Instant,
    last_seen: Instant,
}

#[derive(Debug)]
struct Flow {
    nonce: String,
    verifier: String,
    next: String,
    started: Instant,
}

/// Sessions by SHA-256 (hex) of the cookie's value.
static SESSIONS: Mutex<BTreeMap<String, Session>> = Mutex::new(BTreeMap::new());
/// Sign-ins under way, by `state`.
static FLOWS: Mutex<BTreeMap<String, Flow>> = Mutex::new(BTreeMap::new());
/// The provider's metadata, discovered at the first sign-in.
static PROVIDER: Mutex<Option<Arc<CoreProviderMetadata>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    use ssh_key::rand_core::Rng;
    let mut bytes = [0u8; 32];
    crate::keys::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the policy lets `caller` into the UI: (reviewer, approver).
fn rights(ca: &Ca, caller: &Caller) -> (bool, bool) {
    let policy = ca.policy();
    let identity = caller.identity();
    let reviewer = policy.is_reviewer(&identity, caller.groups());
    // An approver of some role: asked with a requester that can never be
    // the approver, so only the approvers list decides.
    let approver = policy
        .roles()
        .any(|role| policy.may_approve(role.name(), &identity, caller.groups(), "\n"));
    (reviewer, approver)
}

/// A signed-in reviewer or approver, checked against the policy now.
#[derive(Debug)]
pub(crate) struct Signed {
    pub(crate) caller: Caller,
    pub(crate) identity: String,
    pub(crate) csrf: String,
    pub(crate) reviewer: bool,
    pub(crate) approver: bool,
    pub(crate) settings: Arc<UiSettings>,
}

impl Signed {
    pub(super) fn viewer(&self) -> super::html::Viewer<'_> {
        super::html::Viewer {
            identity: &self.identity,
            reviewer: self.reviewer,
            approver: self.approver,
            csrf: &self.csrf,
        }
    }

    /// The checks every POST starts with: our own origin, and this
    /// session's token from the form.
    pub(super) fn check_post(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Result<(), UiError> {
        let origin_ok = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o == self.settings.public_url);
        let token_ok = token.is_some_and(|t| same(t, &self.csrf));
        if origin_ok && token_ok {
            Ok(())
        } else {
            Err(UiError::Csrf)
        }
    }
}

impl FromRequestParts<Arc<Ca>> for Signed {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, ca: &Arc<Ca>) -> Result<Self, Self::Rejection> {
        let settings = settings().ok_or(UiError::NotConfigured)?;
        let next = parts
            .uri
            .path_and_query()
            .map_or("/ui/".to_owned(), |p| p.as_str().to_owned());
        let sign_in = || UiError::SignIn { next: next.clone() };
        let key = cookie(&parts.headers, SESSION_COOKIE)
            .map(digest)
            .ok_or_else(sign_in)?;
        let now = Instant::now();
        let (email, groups, csrf) = {
            let mut sessions = lock(&SESSIONS);
            let live = sessions
                .get(&key)
                .is_some_and(|s| now < s.expires && now.duration_since(s.last_seen) < IDLE_TTL);
            if !live {
                sessions.remove(&key);
                return Err(sign_in());
            }
            let session = sessions.get_mut(&key).ok_or_else(sign_in)?;
            session.last_seen = now;
            (
                session.email.clone(),
                session.groups.clone(),
                session.csrf.clone(),
            )
        };
        let caller = Caller::User { email, groups };
        let identity = caller.identity();
        let (reviewer, approver) = rights(ca, &caller);
        if !reviewer && !approver {
            // The policy changed since sign-in.
            lock(&SESSIONS).remove(&key);
            refuse(ca, &identity, "no longer a reviewer or approver").await?;
            return Err(UiError::NotAllowed { identity });
        }
        Ok(Signed {
            caller,
            identity,
            csrf,
            reviewer,
            approver,
            settings,
        })
    }
}

/// Audits a refused sign-in (`ui.denied`).
async fn refuse(ca: &Ca, identity: &str, why: &str) -> Result<(), UiError> {
    ca.audit
        .record(Event {
            kind: "ui.denied",
            actor: identity.to_owned(),
            outcome: Outcome::Deny,
            detail: json!({ "why": why }),
        })
        .await
        .map_err(|e| {
            UiError::Api(crate::http::error::ApiError::AuditUnavailable(
                e.to_string(),
            ))
        })?;
    Ok(())
}

fn http_client() -> Result<reqwest::Client, UiError> {
    reqwest::Client::builder()
        // A redirect could point the token request elsewhere (SSRF).
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| UiError::Login(format!("cannot build the HTTP client: {e}")))
}

async fn provider(
    settings: &UiSettings,
    http: &reqwest::Client,
) -> Result<Arc<CoreProviderMetadata>, UiError> {
    if let Some(found) = lock(&PROVIDER).clone() {
        return Ok(found);
    }
    let issuer = IssuerUrl::new(settings.issuer.clone())
        .map_err(|e| UiError::Login(format!("the issuer URL is invalid: {e}")))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "review UI: OIDC discovery failed");
            UiError::Login("the identity provider cannot be reached; try again in a minute".into())
        })?;
    let plain = |url: &url::Url| url.scheme() != "https" && !settings.danger_allow_http_issuer;
    if plain(metadata.authorization_endpoint().url())
        || metadata.token_endpoint().is_some_and(|t| plain(t.url()))
    {
        return Err(UiError::Login(
            "the identity provider's endpoints are not https".into(),
        ));
    }
    let metadata = Arc::new(metadata);
    *lock(&PROVIDER) = Some(Arc::clone(&metadata));
    Ok(metadata)
}

fn client_secret(settings: &UiSettings) -> Result<Option<ClientSecret>, UiError> {
    let Some(path) = &settings.client_secret_file else {
        return Ok(None);
    };
    use std::os::unix::fs::PermissionsExt as _;
    let fail = |why: String| {
        tracing::error!(path = %path.display(), "review UI client secret: {why}");
        UiError::Login(
            "the CA's client secret for the identity provider is not usable; tell the operator"
                .into(),
        )
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(fail("group or others may read it; chmod 600".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    Ok(Some(ClientSecret::new(text.trim().to_owned())))
}

fn redirect_uri(settings: &UiSettings) -> Result<RedirectUrl, UiError> {
    RedirectUrl::new(format!("{}/ui/callback", settings.public_url))
        .map_err(|e| UiError::Login(format!("the redirect URI is invalid: {e}")))
}

/// Only our own pages: `/ui/...`, never `//host` or a scheme.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.starts_with("/ui//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && !n.starts_with("/ui/login")
                && !n.starts_with("/ui/callback") =>
        {
            n.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// `GET /ui/login`: off to the provider with a fresh state, nonce and PKCE
/// challenge.
pub(super) async fn login(Query(query): Query<LoginQuery>) -> Result<Response, UiError> {
    let settings = settings().ok_or(UiError::NotConfigured)?;
    let http = http_client()?;
    let metadata = provider(&settings, &http).await?;
    let client = CoreClient::from_provider_metadata(
        (*metadata).clone(),
        ClientId::new(settings.client_id.clone()),
        client_secret(&settings)?,
    )
    .set_redirect_uri(redirect_uri(&settings)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let now = Instant::now();
    {
        let mut flows = lock(&FLOWS);
        flows.retain(|_, f| now.duration_since(f.started) < LOGIN_TTL);
        if flows.len() >= MAX_ENTRIES {
            return Err(UiError::Login(
                "too many sign-ins are under way; try again in a few minutes".into(),
            ));
        }
        flows.insert(
            state.secret().clone(),
            Flow {
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
                next: safe_next(query.next.as_deref()),
                started: now,
            },
        );
    }
    let cookie = format!(
        "{LOGIN_COOKIE}={}; Path=/ui/callback; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
        state.secret(),
        LOGIN_TTL.as_secs()
    );
    let mut response = axum::response::Redirect::to(url.as_str()).into_response();
    set_cookie(&mut response, &cookie);
    Ok(response)
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /ui/callback`: the provider sends the browser back with a code.
pub(super) async fn callback(
    State(ca): State<Arc<Ca>>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, UiError> {
    let settings = settings().ok_or(UiError::NotConfigured)?;
    if let Some(error) = &query.error {
        let error: String = error
            .chars()
            .take(100)
            .filter(|c| !c.is_control())
            .collect();
        return Err(UiError::Login(format!(
            "the identity provider said: {error}"
        )));
    }
    let (Some(code), Some(state)) = (&query.code, &query.state) else {
        return Err(UiError::Login(
            "the provider's answer has no code or state".into(),
        ));
    };
    // The state must be the one this browser was sent off with.
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same(c, state)) {
        return Err(UiError::Login(
            "this sign-in was not started in this browser (or took longer than ten minutes)".into(),
        ));
    }
    let flow = lock(&FLOWS)
        .remove(state)
        .filter(|f| f.started.elapsed() < LOGIN_TTL)
        .ok_or_else(|| UiError::Login("this sign-in has expired or was already used".into()))?;
    let http = http_client()?;
    let metadata = provider(&settings, &http).await?;
    let client = CoreClient::from_provider_metadata(
        (*metadata).clone(),
        ClientId::new(settings.client_id.clone()),
        client_secret(&settings)?,
    )
    .set_redirect_uri(redirect_uri(&settings)?);
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .map_err(|e| UiError::Login(format!("the provider has no token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier))
        .request_async(&http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "review UI: code exchange failed");
            UiError::Login("the identity provider refused the sign-in code".into())
        })?;
    use openidconnect::TokenResponse as _;
    let raw = tokens
        .id_token()
        .map(ToString::to_string)
        .ok_or_else(|| UiError::Login("the provider sent no ID token".into()))?;
    let verifier = ca.oidc.as_ref().ok_or(UiError::NotConfigured)?;
    // The same checks as a bearer token on the API.
    let verified = verifier.verify(&raw).await.map_err(|e| {
        tracing::warn!(error = %e, "review UI: ID token refused");
        UiError::Login(format!("the ID token was refused: {e}"))
    })?;
    if nonce_of(&raw).is_none_or(|n| !same(&n, &flow.nonce)) {
        return Err(UiError::Login(
            "the ID token does not answer this sign-in (nonce)".into(),
        ));
    }
    if !crate::identity::is_safe_token(&verified.email) {
        return Err(UiError::Login(
            "the ID token's email cannot be used as an identity".into(),
        ));
    }
    let caller = Caller::User {
        email: verified.email,
        groups: verified.groups,
    };
    let identity = caller.identity();
    let (reviewer, approver) = rights(&ca, &caller);
    let clear_login =
        format!("{LOGIN_COOKIE}=; Path=/ui/callback; Max-Age=0; Secure; HttpOnly; SameSite=Lax");
    if !reviewer && !approver {
        refuse(
            &ca,
            &identity,
            "neither a reviewer nor an approver in the policy",
        )
        .await?;
        let mut response = UiError::NotAllowed { identity }.into_response();
        set_cookie(&mut response, &clear_login);
        return Ok(response);
    }
    ca.audit
        .record(Event {
            kind: "ui.signed_in",
            actor: identity.clone(),
            outcome: Outcome::Info,
            detail: json!({ "reviewer": reviewer, "approver": approver }),
        })
        .await
        .map_err(|e| {
            UiError::Api(crate::http::error::ApiError::AuditUnavailable(
                e.to_string(),
            ))
        })?;
    let id = random_token();
    let now = Instant::now();
    {
        let mut sessions = lock(&SESSIONS);
        sessions.retain(|_, s| now < s.expires && now.duration_since(s.last_seen) < IDLE_TTL);
        if sessions.len() >= MAX_ENTRIES
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        let Caller::User { email, groups } = caller else {
            return Err(UiError::NotFound);
        };
        sessions.insert(
            digest(&id),
            Session {
                email,
                groups,
                csrf: random_token(),
                expires: now + settings.session_ttl,
                last_seen: now,
            },
        );
    }
    let next = super::html::esc(&flow.next);
    let body = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={next}"><title>Signed in · Shiftkey review</title><link rel="stylesheet" href="/ui/assets/ui.css"></head><body><main id="main"><p>Signed in. <a href="{next}">Continue</a>.</p></main></body></html>"#
    );
    let mut response = super::html_response(body);
    set_cookie(
        &mut response,
        &format!(
            "{SESSION_COOKIE}={id}; Path=/ui; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
            settings.session_ttl.as_secs()
        ),
    );
    set_cookie(&mut response, &clear_login);
    Ok(response)
}

/// The `nonce` claim of a JWT whose signature the verifier has checked.
fn nonce_of(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["nonce"].as_str().map(str::to_owned)
}

/// `POST /ui/logout`: ends the session here (not at the provider).
pub(super) async fn logout(
    State(ca): State<Arc<Ca>>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, UiError> {
    let form = super::form(&body);
    signed.check_post(&headers, form.get("csrf").map(String::as_str))?;
    if let Some(key) = cookie(&headers, SESSION_COOKIE).map(digest) {
        lock(&SESSIONS).remove(&key);
    }
    ca.audit
        .record(Event {
            kind: "ui.signed_out",
            actor: signed.identity.clone(),
            outcome: Outcome::Info,
            detail: json!({}),
        })
        .await
        .map_err(|e| {
            UiError::Api(crate::http::error::ApiError::AuditUnavailable(
                e.to_string(),
            ))
        })?;
    let mut response = super::error_page(
        axum::http::StatusCode::OK,
        "Signed out",
        r#"<section class="signin"><h1>Signed out</h1><p><a class="button primary" href="/ui/login">Sign in again</a></p></section>"#,
    );
    set_cookie(
        &mut response,
        &format!("{SESSION_COOKIE}=; Path=/ui; Max-Age=0; Secure; HttpOnly; SameSite=Strict"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_our_pages() {
        assert_eq!(
            safe_next(Some("/ui/sessions?user=a")),
            "/ui/sessions?user=a"
        );
        for bad in [
            "//evil.example",
            "/ui//evil.example",
            "https://x",
            "/v1/krl",
            "/ui/\\x",
            "/ui/callback?x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Secure-shiftkey-ui=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "shiftkey-ui"), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
