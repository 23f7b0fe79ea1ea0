//! Incidents, the audit log and approvals, read through the domain
//! services; the one change, approving or denying, goes through
//! `Requests::decide` as the API's does.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::html::{Nav, badge, esc, facts, page, q, when, when_text};
use super::{Needs, Signed, UiError, html_response};
use crate::audit::{Audit, Event, Outcome};
use crate::audit::{AuditFilter, AuditRow};
use crate::current_policy::CurrentPolicy;
use crate::http::error::ApiError;
use crate::incidents::Incidents;
use crate::oncall::OnCall;
use crate::recordings::Recordings;
use crate::recordings::SessionFilter;
use crate::requests::{Error as RequestError, Requests};

/// Audit rows on one page.
const AUDIT_PAGE: u32 = 50;
/// Most rows one JSON-lines export holds.
const AUDIT_EXPORT_MAX: u32 = 100_000;

/// `GET /ui/incidents`.
pub(super) async fn incidents(
    State(incidents): State<Arc<Incidents>>,
    signed: Signed,
) -> Result<Response, UiError> {
    signed.require(Needs::ReviewAll, "/ui/incidents").await?;
    let list = incidents.list(false).await?;
    let mut body = String::from("<h1>Incidents</h1>");
    if list.is_empty() {
        body.push_str("<p>No incident has been opened.</p>");
    } else {
        body.push_str(r#"<table class="grid"><thead><tr><th scope="col">Incident</th><th scope="col">Title</th><th scope="col">Severity</th><th scope="col">Status</th><th scope="col">Opened</th><th scope="col">By</th></tr></thead><tbody>"#);
        for i in &list {
            let _ = write!(
                body,
                r#"<tr><td><a href="/ui/incidents/{}">{}</a></td><td>{}</td><td>sev{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&q(&i.id)),
                esc(&i.id),
                esc(&i.title),
                i.severity,
                badge(&i.status),
                when_text(&i.opened_at),
                esc(&i.opened_by)
            );
        }
        body.push_str("</tbody></table>");
    }
    Ok(html_response(page(
        "Incidents",
        Nav::Incidents,
        Some(&signed.viewer()),
        &body,
    )))
}

/// `GET /ui/incidents/{id}`: the incident, what was issued under it, and
/// what was done with it.
pub(super) async fn incident(
    State(incidents): State<Arc<Incidents>>,
    State(recordings): State<Arc<Recordings>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    signed
        .require(Needs::ReviewAll, "/ui/incidents/{id}")
        .await?;
    let incident = incidents.get(&id).await?.ok_or_else(|| {
        UiError::Api(ApiError::Missing(format!(
            "no incident {}",
            id.chars().take(64).collect::<String>()
        )))
    })?;
    let certs = incidents.certificates(&incident.id).await?;
    let reviewer = recordings
        .reviewer(&signed.caller, "/ui/incidents/{id}")
        .await?;
    let sessions = recordings
        .list(
            &reviewer,
            SessionFilter {
                incident: Some(incident.id.clone()),
                limit: crate::recordings::MAX_LIST,
                ..SessionFilter::default()
            },
        )
        .await?;
    let mut body = format!(
        r#"<p class="crumbs"><a href="/ui/incidents">Incidents</a> / {}</p><h1>{} <span class="muted">{}</span></h1>"#,
        esc(&incident.id),
        esc(&incident.id),
        esc(&incident.title)
    );
    body.push_str(&facts(&[
        ("Status", badge(&incident.status)),
        ("Severity", format!("sev{}", incident.severity)),
        ("Source", esc(&incident.source)),
        (
            "Opened",
            format!(
                "{} by {}",
                when_text(&incident.opened_at),
                esc(&incident.opened_by)
            ),
        ),
        (
            "Resolved",
            match (&incident.resolved_at, &incident.resolved_by) {
                (Some(at), Some(by)) => format!("{} by {}", when_text(at), esc(by)),
                _ => "—".into(),
            },
        ),
    ]));
    let _ = write!(
        body,
        r#"<section aria-labelledby="certs-h"><h2 id="certs-h">Certificates issued under {} ({})</h2>"#,
        esc(&incident.id),
        certs.len()
    );
    if certs.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str(r#"<table class="grid"><thead><tr><th scope="col">Serial</th><th scope="col">To</th><th scope="col">Role</th><th scope="col">Valid</th><th scope="col">State</th><th scope="col">Key ID</th></tr></thead><tbody>"#);
        for c in &certs {
            let _ = write!(
                body,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{} – {}</td><td>{}</td><td><code>{}</code></td></tr>"#,
                c.serial,
                esc(&c.identity),
                esc(&c.role),
                when(i64::try_from(c.valid_after).unwrap_or(i64::MAX)),
                when(i64::try_from(c.valid_before).unwrap_or(i64::MAX)),
                badge(if c.revoked { "revoked" } else { "issued" }),
                esc(&c.key_id)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    let _ = write!(
        body,
        r#"<section aria-labelledby="sessions-h"><h2 id="sessions-h">Sessions recorded under {} ({})</h2>"#,
        esc(&incident.id),
        sessions.len()
    );
    if sessions.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str(r#"<table class="grid"><thead><tr><th scope="col">Started</th><th scope="col">Who</th><th scope="col">Login@target</th><th scope="col">Status</th><th scope="col">Session</th></tr></thead><tbody>"#);
        for s in &sessions {
            let _ = write!(
                body,
                r#"<tr><td>{}</td><td>{}</td><td>{}@{}</td><td>{}</td><td><a href="/ui/sessions/{}">{}</a></td></tr>"#,
                when(s.started_at),
                esc(&s.identity),
                esc(&s.principal),
                esc(&s.target),
                badge(&s.status),
                esc(&q(&s.session_id)),
                esc(&s.session_id)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    Ok(html_response(page(
        &format!("Incident {}", incident.id),
        Nav::Incidents,
        Some(&signed.viewer()),
        &body,
    )))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditQuery {
    kind: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Rows before this sequence number (the next page).
    before: Option<u64>,
}

fn clean(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(200).collect())
}

/// A form date (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM`, UTC) as the RFC 3339
/// text the audit log's `ts` compares with.
fn ts_bound(text: &Option<String>, end: bool) -> Option<String> {
    let text = clean(text)?;
    let t = if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M") {
        t.and_utc()
    } else {
        let day = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok()?;
        let t = day.and_hms_opt(0, 0, 0)?.and_utc();
        if end {
            t + chrono::Duration::days(1)
        } else {
            t
        }
    };
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

async fn audit_rows(
    audit: &Audit,
    params: &AuditQuery,
    limit: u32,
) -> Result<Vec<AuditRow>, UiError> {
    Ok(audit
        .rows(AuditFilter {
            kind_prefix: clean(&params.kind),
            actor: clean(&params.actor),
            from_ts: ts_bound(&params.from, false),
            until_ts: ts_bound(&params.to, true),
            before: params.before,
            newest_first: true,
            limit,
            ..AuditFilter::default()
        })
        .await?)
}

/// `GET /ui/audit`: newest first, filtered, paged, with the chain's state.
pub(super) async fn audit(
    State(audit): State<Audit>,
    signed: Signed,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    signed.require(Needs::ReviewAll, "/ui/audit").await?;
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let rows = audit_rows(&audit, &params, AUDIT_PAGE).await?;
    let verification = audit.verify(None).await?;
    record(
        &audit,
        "audit.viewed",
        &signed.identity,
        json!({ "kind": clean(&params.kind), "actor": clean(&params.actor), "from": clean(&params.from), "to": clean(&params.to), "before": params.before }),
    )
    .await?;
    let mut body = String::from("<h1>Audit log</h1>");
    if verification.problems.is_empty() {
        let _ = write!(
            body,
            r#"<div class="chain ok" role="status"><strong>Hash chain verified</strong>: {} rows, head <code>{}:{}</code>. Keep the head elsewhere: a later check against it also detects a truncated tail (<code>shiftkey-ca audit verify --expect-head</code>).</div>"#,
            verification.rows,
            verification.head_seq,
            esc(&verification.head_hash)
        );
    } else {
        let _ = write!(
            body,
            r#"<div class="chain bad" role="alert"><strong>Hash chain BROKEN</strong>: {} problem(s) in {} rows.<ul>"#,
            verification.problems.len(),
            verification.rows
        );
        for p in verification.problems.iter().take(20) {
            let _ = write!(body, "<li>{}</li>", esc(p));
        }
        body.push_str("</ul></div>");
    }
    let field = |name: &str, label: &str, value: &Option<String>, hint: &str| {
        format!(
            r#"<div class="field"><label for="a-{name}">{label}</label><input id="a-{name}" name="{name}" type="text" value="{}" placeholder="{hint}"></div>"#,
            esc(value.as_deref().unwrap_or_default())
        )
    };
    let filters = format!(
        "{}{}{}{}",
        field(
            "kind",
            "Kind (or prefix)",
            &params.kind,
            "recording or request.approved"
        ),
        field("actor", "Actor", &params.actor, "user:alice@example.com"),
        field("from", "From (UTC)", &params.from, "2026-11-25"),
        field("to", "Until (UTC)", &params.to, "2026-11-25"),
    );
    let mut export = String::from("/ui/audit/export?");
    for (k, v) in [
        ("kind", &params.kind),
        ("actor", &params.actor),
        ("from", &params.from),
        ("to", &params.to),
    ] {
        if let Some(v) = clean(v) {
            let _ = write!(export, "{k}={}&", q(&v));
        }
    }
    let _ = write!(
        body,
        r#"<section aria-labelledby="afilter-h" class="panel"><h2 id="afilter-h">Filter</h2><form method="get" action="/ui/audit" class="filters">{filters}<button type="submit">Apply</button> <a href="/ui/audit">Clear</a></form><p><a class="button" href="{}" download>Export as JSON lines</a></p></section>"#,
        esc(export.trim_end_matches(['&', '?']))
    );
    body.push_str(r#"<table class="grid audit"><thead><tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Kind</th><th scope="col">Actor</th><th scope="col">Outcome</th><th scope="col">Detail</th></tr></thead><tbody>"#);
    for r in &rows {
        let _ = write!(
            body,
            r#"<tr data-seq="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            r.seq,
            r.seq,
            when_text(&r.ts),
            esc(&r.kind),
            esc(&r.actor),
            badge(&r.outcome),
            super::audit_detail::detail_html(&r.kind, &r.detail)
        );
    }
    body.push_str("</tbody></table>");
    if rows.len() == AUDIT_PAGE as usize
        && let Some(last) = rows.last()
    {
        let mut next = format!("/ui/audit?before={}", last.seq);
        for (k, v) in [
            ("kind", &params.kind),
            ("actor", &params.actor),
            ("from", &params.from),
            ("to", &params.to),
        ] {
            if let Some(v) = clean(v) {
                let _ = write!(next, "&{k}={}", q(&v));
            }
        }
        let _ = write!(
            body,
            r#"<p class="pager"><a href="{}" rel="next">Older rows</a></p>"#,
            esc(&next)
        );
    }
    Ok(html_response(page(
        "Audit log",
        Nav::Audit,
        Some(&signed.viewer()),
        &body,
    )))
}

/// `GET /ui/audit/export`: the filtered rows as `shiftkey-ca audit export`
/// writes them, oldest first.
pub(super) async fn audit_export(
    State(audit): State<Audit>,
    signed: Signed,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    signed.require(Needs::ReviewAll, "/ui/audit/export").await?;
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let mut rows = audit_rows(&audit, &params, AUDIT_EXPORT_MAX).await?;
    rows.reverse();
    record(
        &audit,
        "audit.exported",
        &signed.identity,
        json!({ "kind": clean(&params.kind), "actor": clean(&params.actor), "from": clean(&params.from), "to": clean(&params.to), "rows": rows.len() }),
    )
    .await?;
    let mut out = String::new();
    for row in rows {
        let detail: serde_json::Value = serde_json::from_str(&row.detail)
            .unwrap_or(serde_json::Value::String(row.detail.clone()));
        let line = json!({
            "seq": row.seq, "ts": row.ts, "kind": row.kind, "actor": row.actor, "outcome": row.outcome,
            "detail": detail, "prev_hash": row.prev_hash, "hash": row.hash,
        });
        let _ = writeln!(out, "{line}");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"shiftkey-audit.jsonl\"",
            ),
        ],
        out,
    )
        .into_response())
}

async fn record(
    audit: &Audit,
    kind: &'static str,
    actor: &str,
    detail: serde_json::Value,
) -> Result<(), UiError> {
    audit
        .record(Event::new(kind, actor, Outcome::Info, detail))
        .await?;
    Ok(())
}

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
    State(requests): State<Arc<Requests>>,
    State(policy): State<Arc<CurrentPolicy>>,
    State(oncall): State<Arc<OnCall>>,
    State(incidents): State<Arc<Incidents>>,
    State(audit): State<Audit>,
    signed: Signed,
) -> Result<Response, UiError> {
    signed.require(Needs::Decide, "/ui/approvals").await?;
    let context = ApprovalsContext {
        requests: &requests,
        policy: &policy,
        oncall: &oncall,
        incidents: &incidents,
        audit: &audit,
    };
    Ok(html_response(
        approvals_page(&context, &signed, None).await?,
    ))
}

/// What the approvals page reads.
struct ApprovalsContext<'a> {
    requests: &'a Requests,
    policy: &'a CurrentPolicy,
    oncall: &'a OnCall,
    incidents: &'a Incidents,
    audit: &'a Audit,
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
    cx: &ApprovalsContext<'_>,
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
#[allow(clippy::too_many_arguments)] // one extractor per service the page reads
pub(super) async fn decide(
    State(requests): State<Arc<Requests>>,
    State(policy): State<Arc<CurrentPolicy>>,
    State(oncall): State<Arc<OnCall>>,
    State(incidents): State<Arc<Incidents>>,
    State(audit): State<Audit>,
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
    let status = match requests.decide(&signed.caller, &id, approve, reason).await {
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
    let context = ApprovalsContext {
        requests: &requests,
        policy: &policy,
        oncall: &oncall,
        incidents: &incidents,
        audit: &audit,
    };
    let shown = FormError {
        request: id.chars().take(64).collect(),
        message,
        reason: typed.chars().take(1000).collect(),
    };
    let page = approvals_page(&context, &signed, Some(&shown)).await?;
    Ok((status, html_response(page)).into_response())
}
