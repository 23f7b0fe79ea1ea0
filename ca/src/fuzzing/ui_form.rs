//! UI form target (`crate::ui`): form posts to the review UI, through the
//! real router (`ui::routes`) in-process, signed in as an approver who may
//! also shorten and delete overrides, over a real SQLite store. The input
//! picks a form (approve, deny, shorten, delete, sign out, or a path made
//! of the input), whether the session cookie, this session's form token
//! and our own `Origin` are sent, and the form body.
//!
//! Properties, on every answer:
//! - no server error, and the security headers (CSP) are there;
//! - a post without this session's token (the first `csrf` field) or from
//!   another origin is refused (403) and changes nothing; without the
//!   session cookie nothing changes either;
//! - a change that is answered as done (303 back to the list) changed the
//!   request or override it named and wrote an audit row; a refusal of
//!   what was typed (422) changed nothing and wrote a refusal row;
//! - a page is only our markup whatever was posted (our tags, no event
//!   handler, no `javascript:` URL, no script but our own file), and holds
//!   no control, bidi or zero-width character except newline and tab.

#![allow(clippy::panic, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use tower::ServiceExt as _;

use super::Reader;
use crate::audit::{Audit, Event, Outcome};
use crate::base::Base;
use crate::config::UiSettings;
use crate::current_policy::CurrentPolicy;
use crate::identity::Caller;
use crate::incidents::Incidents;
use crate::issuance::Issuance;
use crate::keys::{self, CaKind};
use crate::metrics::Metrics;
use crate::oncall::OnCall;
use crate::policy::Policy;
use crate::recording_store::LocalDirectory;
use crate::recordings::Recordings;
use crate::requests::Requests;
use crate::store::{Access, AuditFilter, Change, RequestStatus, Store, StoredRequest};
use crate::ui::{LoginKey, SignIn, UiState};
use crate::web_sessions::WebSessions;

const PUBLIC_URL: &str = "https://ca.example.com:8443";
const APPROVER: &str = "alice@example.com";

/// Alice approves `db` requests and may shorten and delete overrides of
/// `primary`; root (an admin) creates the overrides she works on.
const POLICY: &str = r#"
admins = ["user:root@example.com"]

[[schedule]]
name = "primary"
timezone = "UTC"
rotation = { members = ["carol@example.com"], start = "2026-01-05T09:00", shift = "7d" }

[[role]]
name = "db"
principals = ["postgres"]
hosts = ["db-*"]
max_ttl = "10m"
approvals = 1
approvers = ["user:alice@example.com"]

[[grant]]
identities = ["user:bob@example.com"]
roles = ["db"]

[[authority]]
identities = ["user:alice@example.com"]
actions = ["override.shorten", "override.delete"]
schedules = ["primary"]
"#;

/// A signed-in reviewer's browser and the CA it talks to.
#[derive(Debug)]
pub struct UiForms {
    runtime: tokio::runtime::Runtime,
    router: Router,
    store: Arc<dyn Store>,
    audit: Audit,
    oncall: Arc<OnCall>,
    sessions: WebSessions,
    /// Alice's session value and form token, once signed in.
    signed_in: std::cell::RefCell<Option<(String, String)>>,
    made: std::cell::Cell<u64>,
}

impl UiForms {
    /// A CA in `dir` (keys, SQLite store, policy) and a UI session.
    pub fn new(dir: &Path) -> Self {
        // Few blocking threads (the SQLite store's calls): each thread gets
        // its own malloc arena, reserved address space that AFL's memory
        // limit (RLIMIT_AS) counts; eleven of them aborted the first run's
        // child after about 67,000 inputs, as false crashes.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime: {e}"));
        let built = runtime.block_on(async {
            for kind in [CaKind::User, CaKind::Host] {
                keys::create(dir, kind, None).unwrap_or_else(|e| panic!("CA key: {e}"));
            }
            let keys = Arc::new(
                keys::open_both(dir, &keys::KeySettings::default(), None)
                    .unwrap_or_else(|e| panic!("CA keys: {e}")),
            );
            let store = crate::store::open_sqlite(&dir.join("shiftkey.db"), Access::ReadWrite)
                .unwrap_or_else(|e| panic!("the store: {e}"));
            let audit = Audit::start(Arc::clone(&store));
            let metrics = Arc::new(Metrics::new());
            let policy = Arc::new(CurrentPolicy::new(
                Policy::parse(POLICY, "policy.toml").unwrap_or_else(|e| panic!("policy: {e}")),
                dir.join("policy.toml"),
                audit.clone(),
                Arc::clone(&metrics),
            ));
            let base = Base::new(audit.clone(), Arc::clone(&policy), keys, metrics);
            let incidents = Arc::new(Incidents::new(&base));
            let oncall = Arc::new(OnCall::new(&base));
            let issuance = Arc::new(Issuance::new(
                &base,
                Arc::clone(&incidents),
                Arc::clone(&oncall),
            ));
            let sessions = WebSessions::new(Arc::clone(&store));
            let settings = UiSettings {
                public_url: PUBLIC_URL.into(),
                oidc: None,
                assets_dir: None,
                session_ttl: Duration::from_secs(3600),
                local_link: true,
            };
            let ui = UiState {
                signin: Some(Arc::new(SignIn::new(
                    settings,
                    None,
                    None,
                    LoginKey::from_bytes([7; 32]),
                    WebSessions::new(Arc::clone(&store)),
                    Arc::clone(&policy),
                    audit.clone(),
                ))),
                policy,
                audit: audit.clone(),
                recordings: Arc::new(Recordings::new(
                    &base,
                    Arc::new(LocalDirectory::new(dir.join("recordings"))),
                    crate::recordings::Limits::default(),
                )),
                requests: Arc::new(Requests::new(&base, issuance)),
                incidents,
                oncall: Arc::clone(&oncall),
            };
            (crate::ui::routes(ui), store, audit, oncall, sessions)
        });
        let (router, store, audit, oncall, sessions) = built;
        Self {
            runtime,
            router,
            store,
            audit,
            oncall,
            sessions,
            signed_in: std::cell::RefCell::new(None),
            made: std::cell::Cell::new(0),
        }
    }

    /// Alice's session cookie and form token: the current session, or a
    /// new one once a post signed her out.
    async fn signed_in(&self) -> (String, String) {
        let current = self.signed_in.borrow().clone();
        if let Some((value, csrf)) = current
            && self.sessions.find(&value).await.ok().flatten().is_some()
        {
            return (format!("__Secure-shiftkey-ui={value}"), csrf);
        }
        let Some(alice) = Caller::user(APPROVER, Vec::new()) else {
            panic!("a caller");
        };
        let value = self
            .sessions
            .start(&alice, Duration::from_secs(7 * 86_400))
            .await
            .unwrap_or_else(|e| panic!("a UI session: {e}"));
        let csrf = self
            .sessions
            .find(value.expose())
            .await
            .ok()
            .flatten()
            .map(|s| s.csrf)
            .unwrap_or_else(|| panic!("the session just started"));
        let value = value.expose().to_owned();
        *self.signed_in.borrow_mut() = Some((value.clone(), csrf.clone()));
        (format!("__Secure-shiftkey-ui={value}"), csrf)
    }

    /// One form post (the fuzz entry point; see the module for the input).
    pub fn post(&self, data: &[u8]) {
        self.runtime.block_on(self.post_async(data));
    }

    async fn post_async(&self, data: &[u8]) {
        let mut r = Reader(data);
        let Some(selector) = r.u8() else {
            return;
        };
        let len = usize::from(r.u8().unwrap_or(0));
        let other = r
            .take(len.min(r.0.len()))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let typed = r.0;
        let with_token = selector & 0x08 != 0;
        let with_origin = selector & 0x10 != 0;
        let with_cookie = selector & 0x20 != 0;
        let (cookie, csrf) = self.signed_in().await;

        let request = self.pending_request().await;
        let stored_override = self.current_override().await;
        let (path, target) = match selector & 0x07 {
            0 => (format!("/ui/approvals/{request}/approve"), Target::Request),
            1 => (format!("/ui/approvals/{request}/deny"), Target::Request),
            2 => (
                format!("/ui/oncall/{stored_override}/shorten"),
                Target::Override,
            ),
            3 => (
                format!("/ui/oncall/{stored_override}/delete"),
                Target::Override,
            ),
            4 => (format!("/ui/approvals/{}", path_part(&other)), Target::None),
            5 => (format!("/ui/oncall/{}", path_part(&other)), Target::None),
            6 => ("/ui/logout".to_owned(), Target::None),
            _ => (format!("/ui/{}", path_part(&other)), Target::None),
        };
        let mut body = Vec::new();
        if with_token {
            body.extend_from_slice(b"csrf=");
            body.extend_from_slice(csrf.as_bytes());
            body.push(b'&');
        }
        body.extend_from_slice(typed);
        let form = crate::ui::form(&body);
        let origin = if with_origin { PUBLIC_URL } else { &other };

        let Ok(uri) = path.parse::<axum::http::Uri>() else {
            return;
        };
        let mut builder = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, origin);
        if with_cookie {
            builder = builder.header(header::COOKIE, &cookie);
        }
        let Ok(http_request) = builder.body(Body::from(body.clone())) else {
            // An origin that is not a header value: nothing to send.
            return;
        };
        let before = Snapshot::take(self, &request, &stored_override).await;
        let response = self
            .router
            .clone()
            .oneshot(http_request)
            .await
            .unwrap_or_else(|e| panic!("the router failed: {e}"));
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "{path}: {status} for {:?}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            response
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY),
            "{path}: no CSP on a {status}"
        );
        let html = axum::body::to_bytes(response.into_body(), 4 << 20)
            .await
            .unwrap_or_else(|e| panic!("the answer's body: {e}"));
        let html = String::from_utf8_lossy(&html);
        check_page(&html, &path);
        let after = Snapshot::take(self, &request, &stored_override).await;

        let token_ok = form.get("csrf").is_some_and(|t| *t == csrf);
        let allowed = with_cookie && with_origin && token_ok;
        if !allowed {
            assert_eq!(
                before.state, after.state,
                "{path}: changed by a forged post"
            );
            if with_cookie && target != Target::None {
                assert_eq!(status, StatusCode::FORBIDDEN, "{path}: forged post");
            }
            return;
        }
        match (target, status) {
            (Target::None, _) => {}
            (_, StatusCode::SEE_OTHER) => {
                assert_ne!(before.state, after.state, "{path}: 303 but nothing changed");
                assert!(after.audit > before.audit, "{path}: changed without audit");
            }
            (_, StatusCode::UNPROCESSABLE_ENTITY) => {
                assert_eq!(before.state, after.state, "{path}: refused but changed");
                assert!(
                    after.audit > before.audit,
                    "{path}: a refusal with no audit row"
                );
            }
            (_, StatusCode::CONFLICT) => {
                assert_eq!(before.state, after.state, "{path}: conflict but changed");
            }
            (_, other) => panic!("{path}: answered {other} to a well-formed post"),
        }
    }

    /// A request of Bob's for `db`, pending: the last one if it still is.
    async fn pending_request(&self) -> String {
        let id = format!("r_fuzz{}", self.made.get());
        if let Ok(Some(r)) = self.store.access_request(&id).await
            && r.status == RequestStatus::Pending
        {
            return id;
        }
        self.made.set(self.made.get() + 1);
        let id = format!("r_fuzz{}", self.made.get());
        let now = Utc::now().timestamp();
        let request = StoredRequest {
            id: id.clone(),
            requester: "user:bob@example.com".into(),
            role: "db".into(),
            incident: None,
            reason: Some("replica lag on db-2".into()),
            request: "{}".into(),
            status: RequestStatus::Pending,
            approvals: Vec::new(),
            approvals_needed: 1,
            denied_by: None,
            decision_reason: None,
            serial: None,
            created_at: now,
            expires_at: now + 86_400,
        };
        self.audit
            .record_change(
                Event::new(
                    "request.created",
                    "user:bob@example.com",
                    Outcome::Info,
                    serde_json::json!({ "request": id }),
                ),
                Change::CreateRequest(request),
            )
            .await
            .unwrap_or_else(|e| panic!("a pending request: {e}"));
        id
    }

    /// An override of `primary` Alice may change: the first in force, or a
    /// new one from root.
    async fn current_override(&self) -> String {
        let list = self
            .oncall
            .list()
            .await
            .unwrap_or_else(|e| panic!("overrides: {e}"));
        // Shortened to its last minute, it cannot be shortened again: a
        // fresh one keeps the shorten form reachable.
        let now = Utc::now().timestamp();
        if let Some(o) = list.iter().find(|o| o.end > now + 600) {
            return o.id.clone();
        }
        let root = Caller::user("root@example.com", Vec::new())
            .unwrap_or_else(|| panic!("root's identity"));
        self.oncall
            .add_override(
                &root,
                "primary",
                "user:carol@example.com",
                now + 60,
                now + 6 * 3600,
                "cover while dan is away",
            )
            .await
            .unwrap_or_else(|e| panic!("an override: {e}"))
            .id
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Request,
    Override,
    None,
}

/// What a post may change: the request's and the override's rows (as
/// their debug text) and the audit log's last sequence number.
struct Snapshot {
    state: (String, String),
    audit: u64,
}

impl Snapshot {
    async fn take(forms: &UiForms, request: &str, stored_override: &str) -> Self {
        let request = forms
            .store
            .access_request(request)
            .await
            .unwrap_or_else(|e| panic!("request: {e}"));
        let list = forms
            .oncall
            .list()
            .await
            .unwrap_or_else(|e| panic!("overrides: {e}"));
        let stored_override = list.iter().find(|o| o.id == stored_override);
        let audit = forms
            .audit
            .rows(AuditFilter {
                newest_first: true,
                limit: 1,
                ..AuditFilter::default()
            })
            .await
            .unwrap_or_else(|e| panic!("audit: {e}"))
            .first()
            .map_or(0, |row| row.seq);
        Self {
            state: (format!("{request:?}"), format!("{stored_override:?}")),
            audit,
        }
    }
}

/// Input text as one path segment or two (`id/decision`), percent-encoded
/// where a URI needs it.
fn path_part(text: &str) -> String {
    text.split('/')
        .take(2)
        .map(|part| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
}

/// Tags the UI's pages are made of. Text the person posted that reached
/// a page unescaped shows up as a tag or an attribute outside these.
const TAGS: &[&str] = &[
    "!doctype", "html", "head", "body", "meta", "title", "link", "script", "main", "header", "nav",
    "footer", "section", "article", "aside", "div", "span", "p", "a", "h1", "h2", "h3", "h4", "ul",
    "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th", "td", "form", "input",
    "label", "button", "select", "option", "textarea", "strong", "em", "code", "pre", "small",
    "time", "details", "summary", "abbr", "br", "hr", "caption", "fieldset", "legend", "output",
    "kbd", "mark", "b", "i", "s", "q", "sup", "sub", "del", "ins",
];

/// What a page may hold: only our tags, no event-handler attribute, no
/// `javascript:` URL, no script but our own file, and no control, bidi or
/// zero-width character except newline and tab (what the person typed is
/// shown back escaped and marked). A hand-written scan: the pages are our
/// own well-formed HTML, and what is checked is that nothing posted
/// changed their structure.
fn check_page(html: &str, path: &str) {
    if let Some(c) = html
        .chars()
        .find(|&c| c != '\n' && c != '\t' && shiftkey_safe_text::hazard(c).is_some())
    {
        panic!("{path}: the page holds U+{:04X} unmarked", u32::from(c));
    }
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let tag_end = tag_end(rest).unwrap_or_else(|| panic!("{path}: a tag never ends"));
        let tag = &rest[..tag_end];
        rest = &rest[tag_end..];
        let closing = tag.starts_with('/');
        let tag = tag.strip_prefix('/').unwrap_or(tag);
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect::<String>()
            .to_ascii_lowercase();
        assert!(
            TAGS.contains(&name.as_str()),
            "{path}: a <{name}> tag in the page: <{tag}"
        );
        let lower = tag.to_ascii_lowercase();
        for attribute in attribute_names(&lower) {
            assert!(
                !attribute.starts_with("on") && attribute != "style" && attribute != "srcdoc",
                "{path}: the attribute {attribute} in <{tag}"
            );
        }
        assert!(
            !lower.contains("javascript:"),
            "{path}: a javascript: URL in <{tag}"
        );
        if name == "script" && !closing {
            assert!(
                lower.contains("src=\"/ui/assets/"),
                "{path}: a script that is not ours: <{tag}"
            );
            assert!(
                rest.starts_with("></script>"),
                "{path}: a script with a body: <{tag}"
            );
        }
    }
}

/// Where the tag that `text` starts (after its `<`) ends: its `>`, outside
/// double-quoted attribute values.
fn tag_end(text: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The attribute names of a tag's text (after its name).
fn attribute_names(tag: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = tag.chars().skip_while(|c| !c.is_whitespace()).peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == '/').is_some() {}
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=' && *c != '/'))
                .collect();
        if name.is_empty() {
            break;
        }
        names.push(name);
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                while chars.next().is_some_and(|c| c != '"') {}
            } else {
                while chars.next_if(|c| !c.is_whitespace()).is_some() {}
            }
        }
    }
    names
}

/// Posts as a browser sends them: each form filled in, forged, or empty.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    const ALL: u8 = 0x38;
    let post = |selector: u8, other: &str, body: &str| {
        [
            &[selector, other.len() as u8][..],
            other.as_bytes(),
            body.as_bytes(),
        ]
        .concat()
    };
    vec![
        post(ALL, "", "reason=looks+right"),
        post(ALL | 1, "", "reason=not+during+the+freeze"),
        post(ALL | 1, "", "reason="),
        post(
            ALL | 1,
            "",
            "reason=LGTM+%E2%80%AEdevorppa%E2%80%AC+%E2%80%94+per+CISO",
        ),
        post(ALL | 2, "", "minutes=30&reason=dan+is+back"),
        post(ALL | 2, "", "minutes=0&reason=x"),
        post(
            ALL | 2,
            "",
            "minutes=%3Cscript%3E&reason=%22%3E%3Cimg+src%3Dx%3E",
        ),
        post(
            ALL | 2,
            "",
            "minutes=x&reason=%22+autofocus+onfocus%3D%22alert(1)",
        ),
        post(
            ALL | 1,
            "",
            "reason=%22+onfocus%3D%22alert(1)%E2%80%AE&csrf=second",
        ),
        post(ALL | 3, "", "reason=created+by+mistake"),
        post(ALL | 3, "", "reason=%1B%5B2J"),
        post(0x30, "", "csrf=forged&reason=x"),
        post(0x28, "https://evil.example", "reason=x"),
        post(0x18, "", "reason=no+cookie"),
        post(ALL | 4, "r_nope/approve", "reason=x"),
        post(ALL | 5, "ov_00/shorten", "minutes=5&reason=x"),
        post(ALL | 6, "", ""),
        post(ALL | 7, "sessions", "a=b"),
        post(0x30, "", "csrf=&csrf=forged"),
    ]
}
