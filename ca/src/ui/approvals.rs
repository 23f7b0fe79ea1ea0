//! Approvals: the pending requests this person may decide, each with
//! what a decision needs at a glance (role, principals, hosts, lifetime,
//! reason, on-call state, incident), and the recently decided ones. The one
//! change, approving or denying, goes through `Requests::decide` as the
//! API's does; input it refuses shows the page again with the message
//! beside that request's form.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{Nav, badge, esc, facts, page, q, when};
use super::{Needs, Signed, UiError, UiState, html_response};
use crate::http::error::ApiError;
use crate::requests::Error as RequestError;

/// A refused decision shown beside the request it was about.
#[derive(Debug)]
struct FormError {
    request: String,
    message: String,
    /// What the person typed, shown again in the field.
    reason: String,
}

/// `GET /ui/approvals`: pending requests this person may decide, and the
/// latest decided ones.
pub(super) async fn approvals(
    State(ui): State<UiState>,
    signed: Signed,
) -> Result<Response, UiError> {
    signed.require(Needs::Decide, "/ui/approvals").await?;
    Ok(html_response(approvals_page(&ui, &signed, None).await?))
}

/// What the requester asked for beyond the role: the lifetime and the
/// principals, from the stored request.
fn asked_for(
    stored: Option<&crate::store::StoredRequest>,
) -> (Option<String>, Option<Vec<String>>) {
    stored
        .and_then(|s| serde_json::from_str::<shiftkey_wire::CertificateRequest>(&s.request).ok())
        .map_or((None, None), |r| (r.ttl, r.principals))
}

fn code_list(items: &[String]) -> String {
    if items.is_empty() {
        return "—".to_owned();
    }
    items
        .iter()
        .map(|i| format!("<code>{}</code>", esc(i)))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn approvals_page(
    cx: &UiState,
    signed: &Signed,
    error: Option<&FormError>,
) -> Result<String, UiError> {
    let pending = cx.requests.pending_for(&signed.caller).await?;
    let policy = cx.policy.get();
    let overrides = cx.oncall.overrides().await?;
    let now = chrono::Utc::now();
    let overview = tokio::task::spawn_blocking({
        let policy = Arc::clone(&policy);
        move || policy.on_call_overview(None, now, &overrides)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("on-call lookup failed: {e}")))?;
    let on_call = |requester: &str| -> Vec<String> {
        let email = requester.strip_prefix("user:").unwrap_or(requester);
        overview
            .iter()
            .filter(|o| {
                o.now.iter().any(|s| {
                    let m = s.member.to_string();
                    m == requester || m == email
                })
            })
            .map(|o| o.schedule.clone())
            .collect()
    };
    let mut body = String::from("<h1>Approvals</h1>");
    if let Some(e) = error
        && !pending.iter().any(|r| r.id == e.request)
    {
        // The request is no longer pending (or never was): say so on top.
        let _ = write!(
            body,
            r#"<div class="alert" role="alert"><h2>Not decided</h2><p>{}: {}</p></div>"#,
            esc(&e.request),
            esc(&e.message)
        );
    }
    let _ = write!(
        body,
        r#"<section aria-labelledby="pending-h"><h2 id="pending-h">Waiting for you ({})</h2>"#,
        pending.len()
    );
    if pending.is_empty() {
        body.push_str("<p>No request waits for your decision.</p>");
    }
    for r in &pending {
        let schedules = on_call(&r.requester);
        let on_call_html = if schedules.is_empty() {
            r#"<span class="badge plain">not on call</span>"#.to_owned()
        } else {
            format!(
                r#"<span class="badge good">on call: {}</span>"#,
                esc(&schedules.join(", "))
            )
        };
        let incident = match &r.incident {
            Some(i) => {
                let state = cx
                    .incidents
                    .get(i)
                    .await?
                    .map(|inc| {
                        format!(
                            " — {} (sev{}, {})",
                            esc(&inc.title),
                            inc.severity,
                            esc(&inc.status)
                        )
                    })
                    .unwrap_or_default();
                if signed.powers.review_all {
                    format!(
                        r#"<a href="/ui/incidents/{}">{}</a>{state}"#,
                        esc(&q(i)),
                        esc(i)
                    )
                } else {
                    format!("{}{state}", esc(i))
                }
            }
            None => "—".into(),
        };
        let approvals = if r.approvals.is_empty() {
            "none yet".to_owned()
        } else {
            r.approvals.join(", ")
        };
        let stored = cx
            .audit
            .store()
            .access_request(&r.id)
            .await
            .map_err(|e| ApiError::Internal(format!("reading request {}: {e}", r.id)))?;
        let (ttl, principals) = asked_for(stored.as_ref());
        let role = policy.role(&r.role);
        let principals_html = match (principals, role) {
            (Some(p), _) => code_list(&p),
            (None, Some(role)) => code_list(role.principals()),
            (None, None) => "—".to_owned(),
        };
        let hosts_html = role.map_or_else(|| "—".to_owned(), |role| code_list(role.hosts()));
        let max = role.map(|role| {
            super::html::duration(i64::try_from(role.max_ttl().as_secs()).unwrap_or(i64::MAX))
        });
        let ttl_html = match (ttl, max) {
            (Some(t), Some(max)) => format!(
                "{} <span class=\"muted\">(the role allows up to {})</span>",
                esc(&t),
                esc(&max)
            ),
            (Some(t), None) => esc(&t),
            (None, Some(max)) => format!(
                "the role's default <span class=\"muted\">(up to {})</span>",
                esc(&max)
            ),
            (None, None) => "—".to_owned(),
        };
        let here = error.filter(|e| e.request == r.id);
        let (error_html, invalid, typed) = match here {
            Some(e) => (
                format!(
                    r#"<p class="form-error" id="error-{}" role="alert"><strong>Not decided:</strong> {}</p>"#,
                    esc(&r.id),
                    esc(&e.message)
                ),
                format!(
                    r#" aria-invalid="true" aria-describedby="error-{}""#,
                    esc(&r.id)
                ),
                e.reason.as_str(),
            ),
            None => (String::new(), String::new(), ""),
        };
        let _ = write!(
            body,
            r#"<article class="request{cls}" aria-labelledby="req-{id}" data-request="{id}"><h3 id="req-{id}">{requester} asks for <em>{role}</em> <span class="muted">{id}</span></h3>{facts}
<form method="post" action="/ui/approvals/{qid}/approve" class="decide"><input type="hidden" name="csrf" value="{csrf}">
<div class="field"><label for="reason-{id}">Reason for your decision (needed to deny)</label><input id="reason-{id}" name="reason" type="text" maxlength="1000" value="{typed}"{invalid}></div>
<button type="submit" class="primary">Approve</button>
<button type="submit" class="danger" formaction="/ui/approvals/{qid}/deny">Deny</button></form>{error_html}</article>"#,
            cls = if here.is_some() { " has-error" } else { "" },
            id = esc(&r.id),
            qid = esc(&q(&r.id)),
            requester = esc(&r.requester),
            role = esc(&r.role),
            csrf = esc(&signed.csrf),
            typed = esc(typed),
            facts = facts(&[
                ("Reason", esc(r.reason.as_deref().unwrap_or("(none given)"))),
                ("Role", format!("<em>{}</em>", esc(&r.role))),
                ("Principals", principals_html),
                ("Hosts", hosts_html),
                ("Lifetime (TTL)", ttl_html),
                ("On call", on_call_html),
                ("Incident", incident),
                (
                    "Approvals",
                    format!(
                        "{} of {} ({})",
                        r.approvals.len(),
                        r.approvals_needed,
                        esc(&approvals)
                    )
                ),
                ("Asked", when(r.created_at)),
                ("Expires", when(r.expires_at)),
            ]),
        );
    }
    body.push_str("</section>");
    let decided = cx.requests.decided_for(&signed.caller, 20).await?;
    let _ = write!(
        body,
        r#"<section aria-labelledby="decided-h"><h2 id="decided-h">Recently decided</h2>"#
    );
    if decided.is_empty() {
        body.push_str("<p>Nothing yet.</p>");
    } else {
        body.push_str(r#"<table class="grid" id="decided"><thead><tr><th scope="col">Request</th><th scope="col">Requester</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col">Approved by / denied by</th><th scope="col">Certificate</th><th scope="col">Asked</th></tr></thead><tbody>"#);
        for d in &decided {
            let by = match &d.denied_by {
                Some(by) => format!("{} ({})", by, d.decision_reason.as_deref().unwrap_or("")),
                None => d.approvals.join(", "),
            };
            let _ = write!(
                body,
                r#"<tr data-request="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&d.id),
                esc(&d.id),
                esc(&d.requester),
                esc(&d.role),
                badge(d.status.as_str()),
                esc(&by),
                d.serial.map_or("—".into(), |s| format!("serial {s}")),
                when(d.created_at)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    Ok(page(
        "Approvals",
        Nav::Approvals,
        Some(&signed.viewer()),
        &body,
    ))
}

/// `POST /ui/approvals/{id}/approve|deny`: CSRF and origin checked, then
/// `Requests::decide`, which checks and audits exactly as for the API. A
/// refusal of what was typed (no reason, characters that could hide text)
/// or of a request decided meanwhile shows the page again, the message
/// beside that request's form (the refusal is already in the audit log).
pub(super) async fn decide(
    State(ui): State<UiState>,
    signed: Signed,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, UiError> {
    let form = super::form(&body);
    signed.check_post(&headers, form.get("csrf").map(String::as_str))?;
    let approve = match decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Err(UiError::NotFound),
    };
    let typed = form.get("reason").cloned().unwrap_or_default();
    let reason = Some(typed.trim().to_owned()).filter(|r| !r.is_empty());
    let status = match ui
        .requests
        .decide(&signed.caller, &id, approve, reason)
        .await
    {
        // Post/redirect/get: a reload does not decide twice.
        Ok(_) => return Ok(Redirect::to("/ui/approvals").into_response()),
        Err(e @ (RequestError::ReasonRequired | RequestError::UnsafeText(_))) => {
            (StatusCode::UNPROCESSABLE_ENTITY, e)
        }
        Err(e @ (RequestError::NotPending { .. } | RequestError::Changed)) => {
            (StatusCode::CONFLICT, e)
        }
        Err(other) => return Err(other.into()),
    };
    let (status, error) = status;
    let message = match &error {
        RequestError::ReasonRequired => {
            "a denial needs a reason: say why in the field, then deny again".to_owned()
        }
        other => other.to_string(),
    };
    let shown = FormError {
        request: id.chars().take(64).collect(),
        message,
        reason: typed.chars().take(1000).collect(),
    };
    let page = approvals_page(&ui, &signed, Some(&shown)).await?;
    Ok((status, html_response(page)).into_response())
}
