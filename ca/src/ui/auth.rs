//! Signing reviewers in: the CA as an OIDC relying party (authorization
//! code with PKCE, state and nonce), sessions kept in the store behind a
//! random cookie (`web_sessions`), the per-session CSRF token, and the check
//! that the policy lets this identity in.
//!
//! Cookies:
//! - `__Secure-shiftkey-login` (`Path=/ui/callback`, `SameSite=Lax`, ten
//!   minutes) is the sign-in under way: state, nonce, PKCE verifier and
//!   where to go next, signed (`login_cookie.rs`). The provider's redirect
//!   back is a cross-site top-level GET, on which only a Lax cookie
//!   travels; the CA keeps nothing per sign-in.
//! - `__Secure-shiftkey-ui` (`Path=/ui`, `SameSite=Strict`) is the session.
//!   Strict: no request another site starts, not even a link, carries it.
//!   Because a redirect chain that began at the provider counts as
//!   cross-site, the callback answers with a page of our own that moves on
//!   to the UI, instead of a redirect, so the first request with the new
//!   cookie starts from our origin.
//!
//! Never: keep a session ID in the clear (the store keys sessions by its
//! SHA-256), sign in an identity the ID token verifier did not return, or
//! let a session outlive the policy's say-so.

use std::sync::Arc;
use std::time::Duration;

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

use super::login_cookie::{LoginKey, PendingLogin};
use super::{UiError, UiState};
use crate::audit::{Audit, Event, Outcome};
use crate::config::{UiOidc, UiSettings};
use crate::current_policy::CurrentPolicy;
use crate::identity::Caller;
use crate::oidc::OidcVerifier;
use crate::policy::ActionKind;
use crate::secret::Secret;
use crate::web_sessions::WebSessions;

const SESSION_COOKIE: &str = "__Secure-shiftkey-ui";
const LOGIN_COOKIE: &str = "__Secure-shiftkey-login";
/// A sign-in must come back from the provider within this.
const LOGIN_TTL: Duration = Duration::from_secs(600);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// What signing in needs: the `[ui]` settings, the ID token verifier, the
/// login cookie's key, the provider's metadata once discovered, and where
/// sessions live.
#[derive(Debug)]
pub(crate) struct SignIn {
    settings: Arc<UiSettings>,
    /// `None` without `[oidc]`: only one-time local links sign in.
    oidc: Option<Arc<OidcVerifier>>,
    /// A confidential client's secret (`load_client_secret`).
    client_secret: Option<Secret>,
    key: LoginKey,
    provider: tokio::sync::Mutex<Option<Arc<CoreProviderMetadata>>>,
    sessions: WebSessions,
    policy: Arc<CurrentPolicy>,
    audit: Audit,
}

impl SignIn {
    pub(crate) fn new(
        settings: UiSettings,
        oidc: Option<Arc<OidcVerifier>>,
        client_secret: Option<Secret>,
        key: LoginKey,
        sessions: WebSessions,
        policy: Arc<CurrentPolicy>,
        audit: Audit,
    ) -> Self {
        Self {
            settings: Arc::new(settings),
            oidc,
            client_secret,
            key,
            provider: tokio::sync::Mutex::new(None),
            sessions,
            policy,
            audit,
        }
    }

    pub(super) fn settings(&self) -> &UiSettings {
        &self.settings
    }

    /// What the policy lets `caller` do in the UI, now.
    pub(super) fn powers(&self, caller: &Caller) -> Powers {
        powers(&self.policy.get(), caller)
    }

    /// Refuses `caller` the UI or one of its pages: audited (`ui.denied`,
    /// with the identity and groups the CA saw and the policy's words),
    /// then the page that says the same.
    pub(super) async fn refuse_page(
        &self,
        caller: &Caller,
        page: &str,
        needs: Needs,
    ) -> Result<UiError, UiError> {
        let identity = caller.identity();
        let policy = self.policy.get();
        let message = policy.powers_denied(&identity, needs.kinds(), needs == Needs::ReviewAll);
        self.audit
            .record(Event::new(
                "ui.denied",
                identity.clone(),
                Outcome::Deny,
                json!({
                    "page": page,
                    "groups": caller.groups(),
                    "why": message,
                }),
            ))
            .await?;
        Ok(UiError::NotAllowed {
            identity,
            groups: caller.groups().to_vec(),
            page: needs.page_words(),
            message,
        })
    }

    pub(super) fn audit(&self) -> &Audit {
        &self.audit
    }

    pub(super) fn sessions(&self) -> &WebSessions {
        &self.sessions
    }

    /// The provider's metadata, discovered at the first sign-in.
    async fn provider(
        &self,
        oidc: &UiOidc,
        http: &reqwest::Client,
    ) -> Result<Arc<CoreProviderMetadata>, UiError> {
        let mut cached = self.provider.lock().await;
        if let Some(found) = cached.as_ref() {
            return Ok(Arc::clone(found));
        }
        let issuer = IssuerUrl::new(oidc.issuer.clone())
            .map_err(|e| UiError::Login(format!("the issuer URL is invalid: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "review UI: OIDC discovery failed");
                UiError::Login(
                    "the identity provider cannot be reached; try again in a minute".into(),
                )
            })?;
        let plain = |url: &url::Url| url.scheme() != "https" && !oidc.danger_allow_http_issuer;
        if plain(metadata.authorization_endpoint().url())
            || metadata.token_endpoint().is_some_and(|t| plain(t.url()))
        {
            return Err(UiError::Login(
                "the identity provider's endpoints are not https".into(),
            ));
        }
        let metadata = Arc::new(metadata);
        *cached = Some(Arc::clone(&metadata));
        Ok(metadata)
    }

    /// The UI's client at the provider and the ID token verifier; a sign-in
    /// page that says so when `[oidc]` is not configured.
    fn provider_settings(&self) -> Result<(&UiOidc, &Arc<OidcVerifier>), UiError> {
        match (&self.settings.oidc, &self.oidc) {
            (Some(settings), Some(verifier)) => Ok((settings, verifier)),
            _ => Err(UiError::Login(
                "this CA has no identity provider ([oidc] in ca.toml); on the CA's host, \
                 `shiftkey-ca ui link` prints a one-time sign-in link"
                    .into(),
            )),
        }
    }
}

/// What the signed-in person may do in the UI, from the policy now. Each
/// use (a recording read, a decision, an override change) is still
/// authorized on its own; these only decide which pages they get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Powers {
    /// `recording.review` for every role and person (reviewers, admins):
    /// every session, the incidents and the audit log.
    pub(crate) review_all: bool,
    /// `recording.review` for some roles or people: the sessions pages,
    /// listing only what they may review.
    pub(crate) review_some: bool,
    /// `request.approve` or `request.deny` for some role: the approvals.
    pub(crate) decide: bool,
    /// `override.shorten` or `override.delete` for some schedule: on call.
    pub(crate) overrides: bool,
}

impl Powers {
    /// Whether any of them lets the person in at all.
    pub(crate) fn any(self) -> bool {
        self.review_all || self.review_some || self.decide || self.overrides
    }
}

/// What a page needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Any power the UI serves (to sign in).
    Any,
    /// Reviewing every recording (incidents, the audit log).
    ReviewAll,
    /// Deciding some requests (approvals).
    Decide,
}

impl Needs {
    pub(crate) fn kinds(self) -> &'static [ActionKind] {
        match self {
            Needs::Any => &[
                ActionKind::RecordingReview,
                ActionKind::RequestApprove,
                ActionKind::RequestDeny,
                ActionKind::OverrideShorten,
                ActionKind::OverrideDelete,
            ],
            Needs::ReviewAll => &[ActionKind::RecordingReview],
            Needs::Decide => &[ActionKind::RequestApprove, ActionKind::RequestDeny],
        }
    }

    fn page_words(self) -> &'static str {
        match self {
            Needs::Any => "the review UI",
            Needs::ReviewAll => {
                "this page (incidents and the audit log are for those who may review every recording)"
            }
            Needs::Decide => "the approvals (for those who may approve or deny requests)",
        }
    }

    /// Whether `powers` open a page that needs this.
    pub(crate) fn met(self, powers: Powers) -> bool {
        match self {
            Needs::Any => powers.any(),
            Needs::ReviewAll => powers.review_all,
            Needs::Decide => powers.decide,
        }
    }
}

/// What the policy lets `caller` do in the UI.
pub(crate) fn powers(policy: &crate::policy::Policy, caller: &Caller) -> Powers {
    let identity = caller.identity();
    let groups = caller.groups();
    let holds = |kind| policy.holds_power(kind, &identity, groups);
    Powers {
        review_all: policy.is_reviewer(&identity, groups),
        review_some: policy.may_review_some(&identity, groups),
        // An approver of some role: asked with a requester that can never
        // be the approver, so only the policy's entries decide.
        decide: policy
            .roles()
            .any(|role| policy.may_approve(role.name(), &identity, groups, "\n"))
            || holds(ActionKind::RequestDeny),
        overrides: holds(ActionKind::OverrideShorten) || holds(ActionKind::OverrideDelete),
    }
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

/// A signed-in reviewer or approver, checked against the policy now.
#[derive(Debug)]
pub(crate) struct Signed {
    pub(crate) caller: Caller,
    pub(crate) identity: String,
    pub(crate) csrf: String,
    pub(crate) powers: Powers,
    pub(crate) settings: Arc<UiSettings>,
    signin: Arc<SignIn>,
}

impl Signed {
    pub(super) fn viewer(&self) -> super::html::Viewer<'_> {
        super::html::Viewer {
            identity: &self.identity,
            powers: self.powers,
            csrf: &self.csrf,
        }
    }

    /// Passes when the person's powers open a page that needs `needs`;
    /// else the audited refusal page.
    pub(super) async fn require(&self, needs: Needs, page: &str) -> Result<(), UiError> {
        if needs.met(self.powers) {
            return Ok(());
        }
        Err(self.signin.refuse_page(&self.caller, page, needs).await?)
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

impl FromRequestParts<UiState> for Signed {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &UiState,
    ) -> Result<Self, Self::Rejection> {
        let signin = state.signin.as_ref().ok_or(UiError::NotConfigured)?;
        let next = parts
            .uri
            .path_and_query()
            .map_or("/ui/".to_owned(), |p| p.as_str().to_owned());
        let sign_in = || UiError::SignIn { next: next.clone() };
        let value = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(sign_in)?;
        let session = signin.sessions.find(value).await?.ok_or_else(sign_in)?;
        let caller = session.caller.ok_or_else(sign_in)?;
        let identity = caller.identity();
        let powers = signin.powers(&caller);
        if !powers.any() {
            // The policy changed since sign-in.
            signin.sessions.end(value).await?;
            return Err(signin
                .refuse_page(&caller, parts.uri.path(), Needs::Any)
                .await?);
        }
        Ok(Signed {
            caller,
            identity,
            csrf: session.csrf,
            powers,
            settings: Arc::clone(&signin.settings),
            signin: Arc::clone(signin),
        })
    }
}

fn http_client() -> Result<reqwest::Client, UiError> {
    reqwest::Client::builder()
        // A redirect could point the token request elsewhere (SSRF).
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| UiError::Login(format!("cannot build the HTTP client: {e}")))
}

/// The UI client's secret, read once at start: from `[ui]
/// client_secret_file` (which only the CA's user may read), else from
/// `SHIFTKEY_UI_CLIENT_SECRET`; `None` for a public client. Kept in a
/// [`Secret`] (zeroized on drop); the error never holds the secret.
pub(crate) fn load_client_secret(settings: &UiOidc) -> Result<Option<Secret>, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let text = match &settings.client_secret_file {
        Some(path) => {
            let fail = |why: String| format!("[ui] client_secret_file {}: {why}", path.display());
            let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(fail("group or others may read it; chmod 600 it".into()));
            }
            zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?)
        }
        None => match std::env::var(crate::env_vars::UI_CLIENT_SECRET) {
            Ok(value) => zeroize::Zeroizing::new(value),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!(
                    "${} is not UTF-8",
                    crate::env_vars::UI_CLIENT_SECRET
                ));
            }
        },
    };
    let secret = text.trim();
    if secret.is_empty() {
        return Err("the review UI's client secret is empty".into());
    }
    Ok(Some(Secret::new(secret.to_owned())))
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

fn client(
    signin: &SignIn,
    oidc: &UiOidc,
    metadata: &CoreProviderMetadata,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    UiError,
> {
    Ok(CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(oidc.client_id.clone()),
        // openidconnect's copy lives for this one request.
        signin
            .client_secret
            .as_ref()
            .map(|secret| ClientSecret::new(secret.expose().to_owned())),
    )
    .set_redirect_uri(redirect_uri(&signin.settings)?))
}

/// `GET /ui/login`: off to the provider with a fresh state, nonce and PKCE
/// challenge, all three kept in the signed login cookie.
pub(super) async fn login(
    State(signin): State<Option<Arc<SignIn>>>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, UiError> {
    let signin = signin.ok_or(UiError::NotConfigured)?;
    let (oidc, _) = signin.provider_settings()?;
    let http = http_client()?;
    let metadata = signin.provider(oidc, &http).await?;
    let client = client(&signin, oidc, &metadata)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(oidc.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .url();
    let pending = PendingLogin::new(
        state.secret().clone(),
        nonce.secret().clone(),
        verifier.secret().clone(),
        safe_next(query.next.as_deref()),
        LOGIN_TTL,
    );
    let cookie = format!(
        "{LOGIN_COOKIE}={}; Path=/ui/callback; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
        pending.seal(&signin.key),
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
    State(signin): State<Option<Arc<SignIn>>>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, UiError> {
    let signin = signin.ok_or(UiError::NotConfigured)?;
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
    // The sign-in must be the one this browser was sent off with.
    let not_ours = || {
        UiError::Login(
            "this sign-in was not started in this browser (or took longer than ten minutes)".into(),
        )
    };
    let flow = cookie(&headers, LOGIN_COOKIE)
        .and_then(|c| PendingLogin::open(c, &signin.key, chrono::Utc::now().timestamp()).ok())
        .ok_or_else(not_ours)?;
    if !same(&flow.state, state) {
        return Err(not_ours());
    }
    let (oidc, verifier) = signin.provider_settings()?;
    let http = http_client()?;
    let metadata = signin.provider(oidc, &http).await?;
    let client = client(&signin, oidc, &metadata)?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .map_err(|e| UiError::Login(format!("the provider has no token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
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
    let Some(caller) = Caller::user(&verified.email, verified.groups) else {
        return Err(UiError::Login(
            "the ID token's email cannot be used as an identity".into(),
        ));
    };
    let identity = caller.identity();
    let powers = signin.powers(&caller);
    let clear_login =
        format!("{LOGIN_COOKIE}=; Path=/ui/callback; Max-Age=0; Secure; HttpOnly; SameSite=Lax");
    if !powers.any() {
        let mut response = signin
            .refuse_page(&caller, "/ui/callback", Needs::Any)
            .await?
            .into_response();
        set_cookie(&mut response, &clear_login);
        return Ok(response);
    }
    signin
        .audit
        .record(Event::new(
            "ui.signed_in",
            identity.clone(),
            Outcome::Info,
            signed_in_detail(powers, "identity provider"),
        ))
        .await?;
    let value = signin
        .sessions
        .start(&caller, signin.settings.session_ttl)
        .await?;
    let mut response = signed_in_page(&flow.next, &value, signin.settings.session_ttl);
    set_cookie(&mut response, &clear_login);
    Ok(response)
}

/// The `ui.signed_in` row's detail: what the person may do, and how they
/// signed in.
pub(super) fn signed_in_detail(powers: Powers, via: &str) -> serde_json::Value {
    json!({
        "review_all": powers.review_all,
        "review_some": powers.review_some,
        "decide": powers.decide,
        "overrides": powers.overrides,
        "via": via,
    })
}

/// The answer that gives a browser its session cookie and moves it on to
/// `next` (one of our pages): a page of ours, not a redirect, so that the
/// first request with the Strict cookie starts from our origin.
pub(super) fn signed_in_page(next: &str, value: &crate::secret::Secret, ttl: Duration) -> Response {
    let next = super::html::esc(next);
    let body = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={next}"><title>Signed in · Shiftkey review</title><link rel="stylesheet" href="/ui/assets/ui.css"></head><body><main id="main"><p>Signed in. <a href="{next}">Continue</a>.</p></main></body></html>"#
    );
    let mut response = super::html_response(body);
    set_cookie(
        &mut response,
        &format!(
            "{SESSION_COOKIE}={}; Path=/ui; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
            value.expose(),
            ttl.as_secs()
        ),
    );
    response
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
    State(signin): State<Option<Arc<SignIn>>>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, UiError> {
    let signin = signin.ok_or(UiError::NotConfigured)?;
    let form = super::form(&body);
    signed.check_post(&headers, form.get("csrf").map(String::as_str))?;
    if let Some(value) = cookie(&headers, SESSION_COOKIE) {
        signin.sessions.end(value).await?;
    }
    signin
        .audit
        .record(Event::new(
            "ui.signed_out",
            signed.identity.clone(),
            Outcome::Info,
            json!({}),
        ))
        .await?;
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
