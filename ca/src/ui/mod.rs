//! The web review UI at `/ui/`: security reviewers find, replay and export
//! session recordings, read the audit log and an incident's whole story;
//! approvers act on pending access requests. Server-rendered HTML, our own
//! stylesheet and a little script, the asciinema-player bundle from
//! `[ui] assets_dir`; nothing is loaded from anywhere but the CA.
//!
//! Sign-in is OIDC authorization code with PKCE, the CA as relying party of
//! the `[oidc]` provider and client (`auth.rs`), or a one-time link for a
//! user of the CA's host, used from loopback (`link.rs`). Only identities
//! that hold a power the UI serves (`auth::Powers`: reviewing recordings,
//! deciding requests, changing overrides) get a session, and each page is
//! there for the powers that cover it; the policy is asked again on every
//! request, and a refusal says what the CA saw and what the policy needs.
//!
//! Never: read or change anything except through the same domain services
//! the API uses (so the audit rows are the API's); accept a POST
//! without the session's CSRF token and our own Origin; put unescaped text
//! in a page; serve inline script.

mod access;
mod approvals;
mod assets;
mod audit_detail;
mod auth;
mod html;
mod keys;
pub(crate) mod link;
mod live;
mod login_cookie;
mod oncall;
mod review;
mod sessions;
mod streams;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::audit::Audit;
use crate::current_policy::CurrentPolicy;
use crate::http::error::ApiError;
use crate::incidents::Incidents;
use crate::oncall::OnCall;
use crate::recordings::Recordings;
use crate::requests::Requests;

pub(crate) use auth::{Needs, SignIn, Signed, load_client_secret};
pub(crate) use login_cookie::{KeyError, LoginKey, PendingLogin, Refused as LoginRefused};

/// What the review UI's pages take: the domain services they show, and
/// the sign-in (`None` when `[ui]` is not in `ca.toml`).
#[derive(Debug, Clone)]
pub(crate) struct UiState {
    pub(crate) signin: Option<Arc<SignIn>>,
    pub(crate) policy: Arc<CurrentPolicy>,
    pub(crate) audit: Audit,
    pub(crate) recordings: Arc<Recordings>,
    pub(crate) requests: Arc<Requests>,
    pub(crate) incidents: Arc<Incidents>,
    pub(crate) oncall: Arc<OnCall>,
}

crate::http::substates! { UiState {
    signin: Option<Arc<SignIn>>,
    policy: Arc<CurrentPolicy>,
    audit: Audit,
    recordings: Arc<Recordings>,
    requests: Arc<Requests>,
    incidents: Arc<Incidents>,
    oncall: Arc<OnCall>,
}}

/// Scripts only from us (plus compiling the player's WebAssembly terminal),
/// no inline script, no plugins, no framing, forms only to us.
const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every `/ui` route, with the security headers on every answer.
pub(crate) fn routes(state: UiState) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(sessions::list))
        .route("/ui/login", get(auth::login))
        .route("/ui/callback", get(auth::callback))
        .route("/ui/link", get(link::open))
        .route("/ui/logout", post(auth::logout))
        .route("/ui/sessions", get(sessions::list))
        .route("/ui/sessions/{id}", get(sessions::detail))
        .route("/ui/sessions/{id}/cast/{name}", get(sessions::cast))
        .route("/ui/sessions/{id}/live/{name}", get(live::live))
        .route("/ui/sessions/{id}/export", get(sessions::export))
        .route("/ui/incidents", get(review::incidents))
        .route("/ui/incidents/{id}", get(review::incident))
        .route("/ui/audit", get(review::audit))
        .route("/ui/audit/export", get(review::audit_export))
        .route("/ui/approvals", get(approvals::approvals))
        .route("/ui/approvals/{id}/{decision}", post(approvals::decide))
        .route("/ui/oncall", get(oncall::overrides))
        .route("/ui/oncall/{id}/{change}", post(oncall::change))
        .route("/ui/assets/{name}", get(assets::serve))
        // The API router holds the one fallback; unknown UI paths get a page.
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn not_found() -> UiError {
    UiError::NotFound
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    // The callback's URL carries the code, pages carry session IDs: no
    // Referer leaves for another site. Not `no-referrer`: with it, Chromium
    // sends `Origin: null` on our own form POSTs, which the CSRF check
    // (rightly) refuses.
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// What a UI request can end in besides its page. Each has its status and
/// an HTML page saying what to do next.
#[derive(Debug)]
pub(crate) enum UiError {
    /// `[ui]` is not in `ca.toml`.
    NotConfigured,
    /// No (valid) session: the sign-in page, then back to `next`.
    SignIn {
        next: String,
    },
    /// The policy does not let this identity in (any more), or not to this
    /// page: who the CA saw, and the policy's words.
    NotAllowed {
        identity: String,
        groups: Vec<String>,
        /// What was refused, in words.
        page: &'static str,
        /// The policy's denial: which entries would allow it.
        message: String,
    },
    /// A POST without the session's CSRF token or from another origin.
    Csrf,
    /// Sign-in failed (state, provider, token).
    Login(String),
    NotFound,
    Api(ApiError),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::Api(e)
    }
}

/// Domain errors reach a page through the API's one status map.
macro_rules! through_the_api {
    ($($error:ty),* $(,)?) => {
        $(
            impl From<$error> for UiError {
                fn from(e: $error) -> Self {
                    UiError::Api(e.into())
                }
            }
        )*
    };
}

through_the_api! {
    crate::audit::Error,
    crate::oncall::Error,
    crate::web_sessions::Error,
    crate::incidents::Error,
    crate::recordings::Error,
    crate::requests::Error,
}

fn error_page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = html::page(title, html::Nav::None, None, body);
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        use html::esc;
        match self {
            UiError::NotConfigured => error_page(
                StatusCode::NOT_FOUND,
                "Review UI not configured",
                "<h1>The review UI is not configured</h1><p>Ask the operator to add a <code>[ui]</code> section (and <code>[oidc]</code>) to <code>ca.toml</code>; see docs/ui.md.</p>",
            ),
            UiError::SignIn { next } => error_page(
                StatusCode::UNAUTHORIZED,
                "Sign in",
                &format!(
                    r#"<section class="signin"><h1>Shiftkey review</h1><p>Session recordings, the audit log and pending approvals, for the reviewers and approvers the policy names.</p><p><a class="button primary" href="/ui/login?next={}">Sign in with your identity provider</a></p></section>"#,
                    esc(&html::q(&next))
                ),
            ),
            UiError::NotAllowed {
                identity,
                groups,
                page,
                message,
            } => {
                let groups = if groups.is_empty() {
                    "none".to_owned()
                } else {
                    groups
                        .iter()
                        .map(|g| format!("<code>{}</code>", esc(g)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let heading = if page == "the review UI" {
                    "You may not use the review UI".to_owned()
                } else {
                    "You may not see this page".to_owned()
                };
                error_page(
                    StatusCode::FORBIDDEN,
                    "Not allowed",
                    &format!(
                        r#"<section class="refused"><h1>{heading}</h1><p>The policy does not let you see {}.</p><dl class="facts"><dt>Signed in as</dt><dd><strong>{}</strong></dd><dt>Groups the CA saw</dt><dd>{groups}</dd><dt>The policy says</dt><dd class="denial"><ul>{}</ul></dd></dl><p>If a group is missing, your identity provider did not send it (the CA asks for the scopes in <code>[ui] scopes</code>). This refusal was written to the audit log. When the policy or your groups change, <a href="/ui/login">sign in again</a>.</p></section>"#,
                        esc(page),
                        esc(&identity),
                        message
                            .split("; ")
                            .map(|part| format!("<li>{}</li>", esc(part)))
                            .collect::<String>()
                    ),
                )
            }
            UiError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "Refused",
                "<h1>Refused: the form did not come from this page</h1><p>The request lacked this session's form token or came from another site. Nothing was changed. Go back, reload the page and try again.</p>",
            ),
            UiError::Login(why) => error_page(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                &format!(
                    r#"<h1>Sign-in failed</h1><p>{}</p><p><a href="/ui/login">Try again</a>.</p>"#,
                    esc(&why)
                ),
            ),
            UiError::NotFound => error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                r#"<h1>Not found</h1><p>No such page. <a href="/ui/">Back to the sessions</a>.</p>"#,
            ),
            UiError::Api(e) => {
                let status = e.status();
                if status.is_server_error() {
                    tracing::error!(error = ?e, "review UI request failed");
                }
                error_page(
                    status,
                    "Error",
                    &format!(
                        "<h1>{}</h1><p>{}</p>",
                        esc(status.canonical_reason().unwrap_or("Error")),
                        esc(&e.message())
                    ),
                )
            }
        }
    }
}

/// A page answer.
fn html_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// A form body (`application/x-www-form-urlencoded`); later fields with the
/// same name lose.
pub(crate) fn form(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut fields = std::collections::BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    fields
}
