//! Incidents and the audit log, read through the domain services.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::html::{Nav, badge, esc, facts, page, q, when, when_text};
use super::{Needs, Signed, UiError, html_response};
use crate::audit::{Audit, Event, Outcome};
use crate::audit::{AuditFilter, AuditRow};
use crate::http::error::ApiError;
use crate::incidents::Incidents;
use crate::recordings::Recordings;
use crate::recordings::SessionFilter;

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
