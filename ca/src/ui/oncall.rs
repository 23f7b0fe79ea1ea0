//! `/ui/oncall`: the on-call overrides in force and to come, with a form
//! each to shorten or delete it. Whether the signed-in person may is the
//! policy's authority, asked by `OnCall` exactly as for the API; a refusal
//! is a page that says what the policy says.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use serde_json::json;

use super::html::{Nav, esc, facts, page, q, when};
use super::{Signed, UiError, html_response};
use crate::audit::{Audit, Event, Outcome};
use crate::oncall::{Error as OnCallError, OnCall};

/// The longest shortening the form offers, in minutes from now.
const MAX_MINUTES: i64 = 7 * 24 * 60;

/// A refused change shown beside the override's form.
#[derive(Debug)]
struct FormError {
    id: String,
    /// `shorten` or `delete`: which form.
    form: &'static str,
    message: String,
    minutes: String,
    reason: String,
}

pub(super) async fn overrides(
    State(oncall): State<Arc<OnCall>>,
    signed: Signed,
) -> Result<Response, UiError> {
    Ok(html_response(overrides_page(&oncall, &signed, None).await?))
}

async fn overrides_page(
    oncall: &OnCall,
    signed: &Signed,
    error: Option<&FormError>,
) -> Result<String, UiError> {
    let list = oncall.list().await?;
    let mut body = String::from(
        "<h1>On-call overrides</h1><p>Covers and swaps in force now and later. The policy decides who may shorten or delete each; every change is audited.</p>",
    );
    if let Some(e) = error
        && !list.iter().any(|o| o.id == e.id)
    {
        let _ = write!(
            body,
            r#"<div class="alert" role="alert"><h2>Not changed</h2><p>{}: {}</p></div>"#,
            esc(&e.id),
            esc(&e.message)
        );
    }
    if list.is_empty() {
        body.push_str("<p>No override is in force or to come.</p>");
    }
    for o in &list {
        let here = error.filter(|e| e.id == o.id);
        let shown = |form: &str| here.filter(|e| e.form == form);
        let error_html = |form: &str| {
            shown(form).map_or_else(String::new, |e| {
                format!(
                    r#"<p class="form-error" id="error-{form}-{}" role="alert"><strong>Not changed:</strong> {}</p>"#,
                    esc(&o.id),
                    esc(&e.message)
                )
            })
        };
        let invalid = |form: &str| {
            shown(form).map_or_else(String::new, |_| {
                format!(
                    r#" aria-invalid="true" aria-describedby="error-{form}-{}""#,
                    esc(&o.id)
                )
            })
        };
        let _ = write!(
            body,
            r#"<article class="request" aria-labelledby="ov-{id}"><h2 id="ov-{id}">{member} on call for <em>{schedule}</em> <span class="muted">{id}</span></h2>
{facts}
<form method="post" action="/ui/oncall/{qid}/shorten" class="decide"><input type="hidden" name="csrf" value="{csrf}">
<div class="field"><label for="minutes-{id}">End it in (minutes from now)</label><input id="minutes-{id}" name="minutes" type="number" min="1" max="{max}" required value="{minutes}"{inv_s}></div>
<div class="field"><label for="reason-s-{id}">Reason</label><input id="reason-s-{id}" name="reason" type="text" maxlength="500" required value="{reason_s}"{inv_s}></div>
<button type="submit" class="primary">Shorten</button></form>{err_s}
<form method="post" action="/ui/oncall/{qid}/delete" class="decide"><input type="hidden" name="csrf" value="{csrf}">
<div class="field"><label for="reason-d-{id}">Reason</label><input id="reason-d-{id}" name="reason" type="text" maxlength="500" required value="{reason_d}"{inv_d}></div>
<button type="submit" class="danger">Delete</button></form>{err_d}</article>"#,
            id = esc(&o.id),
            qid = esc(&q(&o.id)),
            member = esc(&o.member),
            schedule = esc(&o.schedule),
            facts = facts(&[
                ("From", when(o.start)),
                ("Until", when(o.end)),
                ("Created by", esc(&o.created_by)),
                ("Reason", esc(&o.reason)),
            ]),
            csrf = esc(&signed.csrf),
            max = MAX_MINUTES,
            minutes = esc(shown("shorten").map_or("", |e| e.minutes.as_str())),
            reason_s = esc(shown("shorten").map_or("", |e| e.reason.as_str())),
            reason_d = esc(shown("delete").map_or("", |e| e.reason.as_str())),
            inv_s = invalid("shorten"),
            inv_d = invalid("delete"),
            err_s = error_html("shorten"),
            err_d = error_html("delete"),
        );
    }
    Ok(page(
        "On-call overrides",
        Nav::OnCall,
        Some(&signed.viewer()),
        &body,
    ))
}

/// `POST /ui/oncall/{id}/shorten|delete`: CSRF and origin checked, then
/// `OnCall::shorten` / `OnCall::delete`, which ask the policy and audit.
/// Input the CA refuses (no reason, characters that could hide text, a
/// time it cannot use) shows the page again with the message beside that
/// form, refused and audited.
pub(super) async fn change(
    State(oncall): State<Arc<OnCall>>,
    State(audit): State<Audit>,
    signed: Signed,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, UiError> {
    let form = super::form(&body);
    signed.check_post(&headers, form.get("csrf").map(String::as_str))?;
    let typed_reason = form.get("reason").cloned().unwrap_or_default();
    let typed_minutes = form.get("minutes").cloned().unwrap_or_default();
    let reason = typed_reason.trim();
    let (which, done) = match what.as_str() {
        "shorten" => {
            let minutes = typed_minutes
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|m| (1..=MAX_MINUTES).contains(m));
            let done = match minutes {
                Some(minutes) => {
                    let end = chrono::Utc::now().timestamp() + minutes * 60;
                    oncall.shorten(&signed.caller, &id, end, reason).await
                }
                None => {
                    // Refused before the service: audited here, as the
                    // service audits its own refusals.
                    let message = format!(
                        "say in how many minutes from now the override ends (1 to {MAX_MINUTES})"
                    );
                    audit
                        .record(Event::new(
                            "oncall.override_refused",
                            signed.identity.clone(),
                            Outcome::Deny,
                            json!({
                                "override": id.chars().take(64).collect::<String>(),
                                "error": "invalid-form",
                                "message": message,
                            }),
                        ))
                        .await?;
                    return refused(
                        &oncall,
                        &signed,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        FormError {
                            id,
                            form: "shorten",
                            message,
                            minutes: typed_minutes,
                            reason: typed_reason,
                        },
                    )
                    .await;
                }
            };
            ("shorten", done)
        }
        "delete" => ("delete", oncall.delete(&signed.caller, &id, reason).await),
        _ => return Err(UiError::NotFound),
    };
    let status = match done {
        // Post/redirect/get: a reload does not change it twice.
        Ok(_) => return Ok(Redirect::to("/ui/oncall").into_response()),
        Err(e @ (OnCallError::NoReason | OnCallError::UnsafeText(_) | OnCallError::BadTime(_))) => {
            (StatusCode::UNPROCESSABLE_ENTITY, e)
        }
        Err(e @ (OnCallError::Ended(_) | OnCallError::Changed(_) | OnCallError::NotFound(_))) => {
            (StatusCode::CONFLICT, e)
        }
        Err(other) => return Err(other.into()),
    };
    let (status, error) = status;
    let message = match &error {
        OnCallError::NoReason => "say why in the Reason field, then try again".to_owned(),
        other => other.to_string(),
    };
    refused(
        &oncall,
        &signed,
        status,
        FormError {
            id: id.chars().take(64).collect(),
            form: which,
            message,
            minutes: typed_minutes,
            reason: typed_reason,
        },
    )
    .await
}

async fn refused(
    oncall: &OnCall,
    signed: &Signed,
    status: StatusCode,
    error: FormError,
) -> Result<Response, UiError> {
    let mut error = error;
    error.minutes = error.minutes.chars().take(16).collect();
    error.reason = error.reason.chars().take(500).collect();
    let page = overrides_page(oncall, signed, Some(&error)).await?;
    Ok((status, html_response(page)).into_response())
}
