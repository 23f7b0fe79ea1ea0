//! `/ui/oncall`: the on-call overrides in force and to come, with a form
//! each to shorten or delete it. Whether the signed-in person may is the
//! policy's authority, asked by `OnCall` exactly as for the API; a refusal
//! is a page that says what the policy says.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{Nav, esc, facts, page, q, time};
use super::{Signed, UiError, html_response};
use crate::oncall::OnCall;

/// The longest shortening the form offers, in minutes from now.
const MAX_MINUTES: i64 = 7 * 24 * 60;

pub(super) async fn overrides(
    State(oncall): State<Arc<OnCall>>,
    signed: Signed,
) -> Result<Response, UiError> {
    let list = oncall.list().await?;
    let mut body = String::from(
        "<h1>On-call overrides</h1><p>Covers and swaps in force now and later. The policy decides who may shorten or delete each; every change is audited.</p>",
    );
    if list.is_empty() {
        body.push_str("<p>No override is in force or to come.</p>");
    }
    for o in &list {
        let _ = write!(
            body,
            r#"<article class="request" aria-labelledby="ov-{id}"><h2 id="ov-{id}">{member} on call for <em>{schedule}</em> <span class="muted">{id}</span></h2>
{facts}
<form method="post" action="/ui/oncall/{qid}/shorten" class="decide"><input type="hidden" name="csrf" value="{csrf}">
<div class="field"><label for="minutes-{id}">End it in (minutes from now)</label><input id="minutes-{id}" name="minutes" type="number" min="1" max="{max}" required></div>
<div class="field"><label for="reason-s-{id}">Reason</label><input id="reason-s-{id}" name="reason" type="text" maxlength="500" required></div>
<button type="submit" class="primary">Shorten</button></form>
<form method="post" action="/ui/oncall/{qid}/delete" class="decide"><input type="hidden" name="csrf" value="{csrf}">
<div class="field"><label for="reason-d-{id}">Reason</label><input id="reason-d-{id}" name="reason" type="text" maxlength="500" required></div>
<button type="submit" class="danger">Delete</button></form></article>"#,
            id = esc(&o.id),
            qid = esc(&q(&o.id)),
            member = esc(&o.member),
            schedule = esc(&o.schedule),
            facts = facts(&[
                ("From", esc(&time(o.start))),
                ("Until", esc(&time(o.end))),
                ("Created by", esc(&o.created_by)),
                ("Reason", esc(&o.reason)),
            ]),
            csrf = esc(&signed.csrf),
            max = MAX_MINUTES,
        );
    }
    Ok(html_response(page(
        "On-call overrides",
        Nav::OnCall,
        Some(&signed.viewer()),
        &body,
    )))
}

/// `POST /ui/oncall/{id}/shorten|delete`: CSRF and origin checked, then
/// `OnCall::shorten` / `OnCall::delete`, which ask the policy and audit.
pub(super) async fn change(
    State(oncall): State<Arc<OnCall>>,
    signed: Signed,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, UiError> {
    let form = super::form(&body);
    signed.check_post(&headers, form.get("csrf").map(String::as_str))?;
    let reason = form.get("reason").map_or("", |r| r.trim());
    match what.as_str() {
        "shorten" => {
            let minutes: i64 = form
                .get("minutes")
                .and_then(|m| m.trim().parse().ok())
                .filter(|m| (1..=MAX_MINUTES).contains(m))
                .ok_or_else(|| {
                    UiError::Api(crate::http::error::ApiError::InvalidBody(
                        "say in how many minutes from now the override ends".into(),
                    ))
                })?;
            let end = chrono::Utc::now().timestamp() + minutes * 60;
            oncall.shorten(&signed.caller, &id, end, reason).await?;
        }
        "delete" => {
            oncall.delete(&signed.caller, &id, reason).await?;
        }
        _ => return Err(UiError::NotFound),
    }
    // Post/redirect/get: a reload does not change it twice.
    Ok(Redirect::to("/ui/oncall").into_response())
}
