//! Sessions: the list with its filters and the search over typed input,
//! one session's page with the player and its input events, the live
//! follow, and the signed bundle. Every read goes through the recordings
//! service (`reviewer`, `list`, `search`, `recording`, `read_file`), so it
//! is checked and audited as the API's reads are, and recordings are
//! streamed (decompressed or bundled as they are read), never held whole.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::html::{
    Nav, badge, duration, end_reason, esc, facts, offset, page, q, size, when, when_opt, when_text,
};
use super::streams::{file_entry, gunzip_body, scan_lines, tar_entry};
use super::{Signed, UiError, html_response};
use crate::audit::Audit;
use crate::http::error::ApiError;
use crate::recordings::{self, MAX_LIST, Purpose, Recordings, SessionFilter, is_file_name};

/// Where the event count goes in the facts, filled in once the cast was
/// read (no escaped text can contain it: `esc` turns `<` into `&lt;`).
const EVENTS_MARK: &str = "<!--events-->";
/// Most input lines listed beside the player.
const MAX_INPUTS: usize = 5_000;
const STATUSES: [&str; 5] = ["live", "ended", "sealed", "verification-failed", "lost"];

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    user: Option<String>,
    host: Option<String>,
    role: Option<String>,
    incident: Option<String>,
    status: Option<String>,
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (UTC).
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A form's date or date-time (UTC) as unix seconds; `end` rounds a bare
/// date to its end.
fn parse_when(text: &str, end: bool) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M") {
        return Some(t.and_utc().timestamp());
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let t = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(if end { t + 86_399 } else { t })
}

/// `GET /ui/` and `/ui/sessions`: filters, search, the sessions.
pub(super) async fn list(
    State(recordings): State<Arc<Recordings>>,
    signed: Signed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    if !signed.powers.review_some {
        // No recordings to review: their page is the approvals or on call.
        let theirs = if signed.powers.decide {
            "/ui/approvals"
        } else {
            "/ui/oncall"
        };
        return Ok(axum::response::Redirect::to(theirs).into_response());
    }
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let reviewer = recordings.reviewer(&signed.caller, "/ui/sessions").await?;
    let mut body = String::from("<h1>Sessions</h1>");
    let field = |name: &str, label: &str, value: &Option<String>, kind: &str, hint: &str| {
        format!(
            r#"<div class="field"><label for="f-{name}">{label}</label><input id="f-{name}" name="{name}" type="{kind}" value="{}" placeholder="{hint}"></div>"#,
            esc(value.as_deref().unwrap_or_default())
        )
    };
    let search_text = nonempty(&params.q);
    let _ = write!(
        body,
        r#"<section aria-labelledby="search-h" class="panel"><h2 id="search-h">Search typed input and commands</h2>
<form method="get" action="/ui/sessions" role="search" class="search">{}<button type="submit" class="primary">Search</button></form></section>"#,
        field(
            "q",
            "Text typed or run",
            &params.q,
            "search",
            "e.g. systemctl restart"
        )
    );
    if let Some(text) = &search_text {
        let matches = recordings.search(&reviewer, text, 200).await?;
        let _ = write!(
            body,
            r#"<section aria-labelledby="results-h" class="panel"><h2 id="results-h">{} match(es) for “{}”</h2>"#,
            matches.len(),
            esc(text)
        );
        if matches.is_empty() {
            body.push_str(
                "<p>Nothing typed or run contains that text. Only sealed sessions are indexed.</p>",
            );
        } else {
            body.push_str(r#"<table class="grid"><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Target</th><th scope="col">Line</th><th scope="col">At</th></tr></thead><tbody>"#);
            for m in &matches {
                let file = if m.source == "sftp" {
                    format!("{}.sftp.jsonl.gz", m.channel)
                } else {
                    format!("{}.cast.gz", m.channel)
                };
                let href = format!(
                    "/ui/sessions/{}?file={}&t={:.1}",
                    q(&m.session_id),
                    q(&file),
                    m.offset_seconds
                );
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td>{}</td><td>{}</td><td><a class="match" href="{}"><code>{}</code></a> <span class="muted">{}</span></td><td>{}</td></tr>"#,
                    when(m.started_at),
                    esc(&m.identity),
                    esc(&m.target),
                    esc(&href),
                    esc(&m.line),
                    esc(&m.source),
                    esc(&offset(m.offset_seconds)),
                );
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("</section>");
    }

    let status = nonempty(&params.status).filter(|s| STATUSES.contains(&s.as_str()));
    let from = nonempty(&params.from).and_then(|t| parse_when(&t, false));
    let to = nonempty(&params.to).and_then(|t| parse_when(&t, true));
    let filter = SessionFilter {
        identity: nonempty(&params.user).map(|u| {
            if u.contains(':') {
                u
            } else {
                format!("user:{u}")
            }
        }),
        host: nonempty(&params.host),
        incident: nonempty(&params.incident),
        role: nonempty(&params.role),
        since: from,
        status: status.as_deref().and_then(recordings::parse_status),
        limit: MAX_LIST,
    };
    let sessions: Vec<_> = recordings
        .list(&reviewer, filter)
        .await?
        .into_iter()
        .filter(|s| to.is_none_or(|to| s.started_at <= to))
        .collect();
    let mut options = String::from(r#"<option value="">any</option>"#);
    for s in STATUSES {
        let selected = if status.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(options, r#"<option value="{s}"{selected}>{s}</option>"#);
    }
    let _ = write!(
        body,
        r#"<section aria-labelledby="filter-h" class="panel"><h2 id="filter-h">Filter</h2><form method="get" action="/ui/sessions" class="filters">{}{}{}{}<div class="field"><label for="f-status">Status</label><select id="f-status" name="status">{options}</select></div>{}{}<button type="submit">Apply</button> <a href="/ui/sessions">Clear</a></form></section>"#,
        field("user", "User", &params.user, "text", "alice@example.com"),
        field("host", "Host", &params.host, "text", "db-1.prod"),
        field("role", "Role", &params.role, "text", "db-debug"),
        field("incident", "Incident", &params.incident, "text", "INC-42"),
        field(
            "from",
            "Started from (UTC)",
            &params.from,
            "text",
            "2026-11-25 or 2026-11-25T08:00"
        ),
        field(
            "to",
            "Started until (UTC)",
            &params.to,
            "text",
            "2026-11-25"
        ),
    );
    let _ = write!(
        body,
        r#"<section aria-labelledby="list-h"><h2 id="list-h">{} session(s)</h2>"#,
        sessions.len()
    );
    if sessions.is_empty() {
        body.push_str("<p>No session matches.</p>");
    } else {
        body.push_str(r#"<table class="grid"><thead><tr><th scope="col">Started</th><th scope="col">Who</th><th scope="col">Login@target</th><th scope="col">Role</th><th scope="col">Incident</th><th scope="col">Status</th><th scope="col">Duration</th><th scope="col">Why it ended</th><th scope="col">Session</th></tr></thead><tbody>"#);
        let now = chrono::Utc::now().timestamp();
        for s in &sessions {
            let incident = s.incident.as_deref().map_or(String::from("—"), |i| {
                format!(r#"<a href="/ui/incidents/{}">{}</a>"#, esc(&q(i)), esc(i))
            });
            let _ = write!(
                body,
                r#"<tr data-session="{}"><td>{}</td><td>{}</td><td>{}@{}</td><td>{}</td><td>{incident}</td><td>{}</td><td class="duration">{}</td><td class="end-reason">{}</td><td><a href="/ui/sessions/{}">{}</a></td></tr>"#,
                esc(&s.session_id),
                when(s.started_at),
                esc(&s.identity),
                esc(&s.principal),
                esc(&s.target),
                esc(&s.role),
                badge(&s.status),
                session_duration(s.started_at, s.ended_at, &s.status, now),
                esc(&end_reason(&s.status, s.end_reason.as_deref())),
                esc(&q(&s.session_id)),
                esc(&s.session_id),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    Ok(html_response(page(
        "Sessions",
        Nav::Sessions,
        Some(&signed.viewer()),
        &body,
    )))
}

/// How long a session ran (or has run, while live), escaped HTML.
fn session_duration(started_at: i64, ended_at: Option<i64>, status: &str, now: i64) -> String {
    match ended_at {
        Some(end) => esc(&duration(end - started_at)),
        None if status == "live" => format!(
            r#"<span class="muted">running</span> {}"#,
            esc(&duration(now - started_at))
        ),
        None => "—".to_owned(),
    }
}

/// Typed input grouped into lines: (time of the first keystroke, text),
/// fed one asciicast line at a time.
#[derive(Debug, Default)]
struct InputLines {
    lines: Vec<(f64, String)>,
    current: Option<(f64, String)>,
    /// The header line (the first) has been seen.
    header: Option<Value>,
    /// Events in the cast (output, input, resizes).
    events: u64,
}

impl InputLines {
    /// Takes one line of the cast; false once enough lines are kept.
    fn feed(&mut self, line: &str) -> bool {
        if self.header.is_none() {
            self.header = Some(serde_json::from_str(line).unwrap_or_default());
            return true;
        }
        let Ok(Value::Array(event)) = serde_json::from_str::<Value>(line) else {
            return true;
        };
        self.events += 1;
        if event.get(1).and_then(Value::as_str) != Some("i") {
            return true;
        }
        if self.lines.len() >= MAX_INPUTS {
            // Enough lines kept; the events are still counted.
            return true;
        }
        let t = event.first().and_then(Value::as_f64).unwrap_or(0.0);
        let data = event.get(2).and_then(Value::as_str).unwrap_or_default();
        for c in data.chars() {
            let (_, text) = self.current.get_or_insert_with(|| (t, String::new()));
            text.push(c);
            if (c == '\r' || c == '\n')
                && let Some(done) = self.current.take()
            {
                self.lines.push(done);
            }
        }
        true
    }

    fn finish(mut self) -> (Option<Value>, Vec<(f64, String)>, u64) {
        self.lines.extend(self.current.take());
        (self.header, self.lines, self.events)
    }
}

#[cfg(test)]
fn input_lines(cast: &str) -> Vec<(f64, String)> {
    let mut input = InputLines::default();
    for line in cast.lines() {
        if !input.feed(line) {
            break;
        }
    }
    input.finish().1
}

#[derive(Debug, Deserialize)]
pub(super) struct DetailQuery {
    file: Option<String>,
    t: Option<f64>,
}

/// `GET /ui/sessions/{id}`: who, when, where, why; the player; the input.
pub(super) async fn detail(
    State(recordings): State<Arc<Recordings>>,
    State(audit): State<Audit>,
    signed: Signed,
    Path(id): Path<String>,
    Query(params): Query<DetailQuery>,
) -> Result<Response, UiError> {
    let reviewer = recordings
        .reviewer(&signed.caller, "/ui/sessions/{id}")
        .await?;
    let detail = recordings.recording(&reviewer, &id, Purpose::View).await?;
    let info = &detail.info;
    let incident = info.incident.as_deref().map_or(String::from("—"), |i| {
        format!(r#"<a href="/ui/incidents/{}">{}</a>"#, esc(&q(i)), esc(i))
    });
    let mut body = format!(
        r#"<p class="crumbs"><a href="/ui/sessions">Sessions</a> / {}</p><h1>{}@{} <span class="muted">by {}</span></h1>"#,
        esc(&info.session_id),
        esc(&info.principal),
        esc(&info.target),
        esc(&info.identity)
    );
    let access = super::access::access_of(&audit, info.user_serial, info.started_at).await?;
    let now = chrono::Utc::now().timestamp();
    let live = info.status == "live";
    let stored_bytes: u64 = info.files.iter().map(|f| f.bytes).sum();
    let approval_html = if !access.found {
        r#"<span class="muted">the certificate's issuance is not in the audit log's reach</span>"#
            .to_owned()
    } else if access.approvals_needed == 0 && access.approvals.is_empty() {
        "none needed: issued at once by the policy".to_owned()
    } else if access.approvals.is_empty() {
        format!("none of {} given", access.approvals_needed)
    } else {
        let mut list = String::from(r#"<ul class="approvals">"#);
        for a in &access.approvals {
            let at = if a.at.is_empty() {
                r#"<span class="muted">time not in the log's reach</span>"#.to_owned()
            } else {
                when_text(&a.at)
            };
            let _ = write!(list, "<li><strong>{}</strong>, {at}</li>", esc(&a.by));
        }
        list.push_str("</ul>");
        list
    };
    let request_html = access
        .request
        .as_deref()
        .map_or_else(|| "—".to_owned(), |r| format!("<code>{}</code>", esc(r)));
    let facts_html = facts(&[
        (
            "Status",
            format!(
                r#"<span id="session-status">{}</span>"#,
                badge(&info.status)
            ),
        ),
        ("Identity", esc(&info.identity)),
        ("Role", esc(&info.role)),
        (
            "Access reason",
            format!(
                r#"<span id="access-reason">{}</span>"#,
                access.reason.as_deref().map_or_else(
                    || r#"<span class="muted">none given</span>"#.to_owned(),
                    esc
                )
            ),
        ),
        (
            "Incident",
            format!(r#"<span id="access-incident">{incident}</span>"#),
        ),
        (
            "Approval",
            format!(r#"<div id="access-approval">{approval_html}</div>"#),
        ),
        ("Request", request_html),
        ("Login", esc(&info.principal)),
        ("Target", esc(&info.target)),
        ("Client address", esc(&info.client_address)),
        ("Bastion", esc(&info.bastion)),
        (
            "User certificate serial",
            esc(&info.user_serial.to_string()),
        ),
        ("Started", when(info.started_at)),
        (
            "Duration",
            format!(
                r#"<span id="session-duration" data-started="{}" data-live="{live}">{}</span>"#,
                info.started_at,
                session_duration(info.started_at, info.ended_at, &info.status, now)
            ),
        ),
        (
            "Recorded",
            format!(
                r#"<span id="session-bytes" data-bytes="{stored_bytes}">{}</span> stored, <span id="session-events">{EVENTS_MARK}</span> events"#,
                esc(&size(stored_bytes))
            ),
        ),
        (
            "Ended",
            format!(
                r#"<span id="session-ended">{}</span>"#,
                when_opt(info.ended_at)
            ),
        ),
        (
            "Why it ended",
            format!(
                r#"<span id="session-end-reason">{}</span>"#,
                esc(&end_reason(&info.status, info.end_reason.as_deref()))
            ),
        ),
        (
            "Exit status",
            format!(
                r#"<span id="session-exit">{}</span>"#,
                esc(&info.exit_status.map_or("—".into(), |s| s.to_string()))
            ),
        ),
        (
            "Manifest digest",
            format!(
                r#"<code id="session-digest">{}</code>"#,
                esc(info.digest.as_deref().unwrap_or("not sealed yet"))
            ),
        ),
        ("Legal hold", esc(info.held.as_deref().unwrap_or("—"))),
        ("Recording deleted", when_opt(info.deleted_at)),
    ]);
    let _ = write!(
        body,
        r#"<div class="actions"><a class="button" href="/ui/sessions/{}/export" download>Export signed bundle (.tar)</a></div>{facts_html}"#,
        esc(&q(&info.session_id))
    );
    if !detail.problems.is_empty() {
        // A lost session's seal names why its recording is truncated.
        let heading = if info.status == "lost" {
            "Lost session: the recording is truncated"
        } else {
            "Verification problems"
        };
        let _ = write!(
            body,
            r#"<div class="alert" role="alert"><h2>{heading}</h2><ul>"#
        );
        for p in &detail.problems {
            let _ = write!(body, "<li>{}</li>", esc(p));
        }
        body.push_str("</ul></div>");
    }
    // The channels, and the one shown.
    let casts: Vec<_> = info
        .files
        .iter()
        .filter(|f| f.name.ends_with(".cast.gz"))
        .collect();
    let chosen = params
        .file
        .as_deref()
        .filter(|f| info.files.iter().any(|x| x.name == *f))
        .map(str::to_owned)
        .or_else(|| casts.first().map(|f| f.name.clone()));
    body.push_str(r#"<nav aria-label="Channels" class="tabs"><ul>"#);
    for f in &info.files {
        let current = if chosen.as_deref() == Some(f.name.as_str()) {
            r#" aria-current="true""#
        } else {
            ""
        };
        let label = match &f.command {
            Some(c) => format!("{} · {} · {}", f.name, f.kind, c),
            None => format!("{} · {}", f.name, f.kind),
        };
        let _ = write!(
            body,
            r#"<li><a href="/ui/sessions/{}?file={}"{current}>{}</a></li>"#,
            esc(&q(&info.session_id)),
            esc(&q(&f.name)),
            esc(&label)
        );
    }
    body.push_str("</ul></nav>");
    match chosen {
        _ if info.deleted_at.is_some() => body.push_str(
            "<p>Retention deleted this recording: its metadata and signed manifest remain, its bytes do not.</p>",
        ),
        Some(name) if name.ends_with(".cast.gz") => {
            let opened = recordings
                .read_file(&reviewer, &info.session_id, &name, 0, None, Purpose::Play)
                .await?;
            let (header, inputs, events) =
                scan_lines(opened.reader, InputLines::default(), InputLines::feed)
                    .await?
                    .finish();
            body = body.replacen(EVENTS_MARK, &events.to_string(), 1);
            // A client without a terminal (`ssh -tt` from a pipe) asks
            // for a 0x0 pty, which the bastion records as 1x1: give the
            // player a size it can draw.
            let header = header.unwrap_or_default();
            let size = |key: &str, fallback: u64| {
                header[key]
                    .as_u64()
                    .filter(|n| (2..=1000).contains(n))
                    .unwrap_or(fallback)
            };
            let (cols, rows) = (size("width", 80), size("height", 24));
            let start = params
                .t
                .filter(|t| t.is_finite() && *t >= 0.0)
                .unwrap_or(0.0);
            let _ = write!(
                body,
                r#"<section class="replay" aria-labelledby="replay-h"><h2 id="replay-h" class="visually-hidden">Replay</h2>
<div class="player-col">{}<div class="controls"><label for="speed">Speed</label><select id="speed"><option value="0.5">0.5×</option><option value="1" selected>1×</option><option value="2">2×</option><option value="4">4×</option><option value="8">8×</option></select>
<span class="muted">Space plays and pauses, ←/→ seek 5 s, 0–9 jump to 0–90 %.</span></div>
<div id="player" class="player" data-cast="/ui/sessions/{}/cast/{}" data-start="{start:.1}" data-live-url="/ui/sessions/{}/live/{}" data-live="{live}" data-cols="{cols}" data-rows="{rows}" tabindex="-1"></div>
<p id="player-missing" class="alert" hidden>The player could not be loaded: its assets are missing on this CA (<code>[ui] assets_dir</code>).</p>
</div>
<aside class="inputs" aria-labelledby="inputs-h"><h2 id="inputs-h">Input (<span id="input-count">{}</span> lines)</h2><p class="muted">Every keystroke, also those typed with echo off. Choose a line to seek there.</p><ol id="input-list">"#,
                if live {
                    r#"<p id="live-banner" class="live-note" role="status"><span class="badge live">live</span> The player follows this session as the bastion ships it; the facts above follow too, and settle when it ends.</p>"#
                } else {
                    ""
                },
                esc(&q(&info.session_id)),
                esc(&q(&name)),
                esc(&q(&info.session_id)),
                esc(&q(&name)),
                inputs.len(),
            );
            for (t, text) in &inputs {
                let _ = write!(
                    body,
                    r#"<li><button type="button" class="seek" data-seek="{t:.3}"><span class="t">{}</span> <code>{}</code></button></li>"#,
                    esc(&offset(*t)),
                    super::keys::typed(text.trim_end_matches(['\r', '\n']))
                );
            }
            body.push_str("</ol></aside></section>");
        }
        Some(name) => {
            // sftp operations: one JSON line each.
            let opened = recordings
                .read_file(&reviewer, &info.session_id, &name, 0, None, Purpose::View)
                .await?;
            let operations =
                scan_lines(opened.reader, Vec::new(), |kept: &mut Vec<String>, line| {
                    kept.push(line.to_owned());
                    kept.len() < MAX_INPUTS
                })
                .await?;
            body.push_str(r#"<section aria-labelledby="sftp-h"><h2 id="sftp-h">File operations</h2><table class="grid"><thead><tr><th scope="col">Operation</th></tr></thead><tbody>"#);
            for line in &operations {
                let _ = write!(body, "<tr><td><code>{}</code></td></tr>", esc(line));
            }
            body.push_str("</tbody></table></section>");
        }
        None => body.push_str("<p>This session recorded no channel.</p>"),
    }
    // No cast was read (an sftp channel, a deleted recording): no count.
    let body = body.replacen(EVENTS_MARK, "—", 1);
    Ok(html_response(page(
        &format!("Session {}", info.session_id),
        Nav::Sessions,
        Some(&signed.viewer()),
        &body,
    )))
}

/// `GET /ui/sessions/{id}/cast/{name}`: the asciicast, decompressed as it
/// is sent, for the player.
pub(super) async fn cast(
    State(recordings): State<Arc<Recordings>>,
    signed: Signed,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let reviewer = recordings
        .reviewer(&signed.caller, "/ui/sessions/{id}/cast/{name}")
        .await?;
    if !is_file_name(&name) || !name.ends_with(".cast.gz") {
        return Err(UiError::NotFound);
    }
    let opened = recordings
        .read_file(&reviewer, &id, &name, 0, None, Purpose::Play)
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        gunzip_body(opened.reader),
    )
        .into_response())
}

/// `GET /ui/sessions/{id}/export`: the bundle `shiftkey recordings export`
/// writes, as one tar (`ID/N.cast.gz`, `ID/metadata.json`, `ID/ca.pub`),
/// streamed file by file: `tar xf` it, then `shiftkey recordings verify ID`.
pub(super) async fn export(
    State(recordings): State<Arc<Recordings>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let reviewer = recordings
        .reviewer(&signed.caller, "/ui/sessions/{id}/export")
        .await?;
    let detail = recordings
        .recording(&reviewer, &id, Purpose::Export)
        .await?;
    let dir = detail.info.session_id.clone();
    let metadata = serde_json::to_string_pretty(&detail)
        .map_err(|e| ApiError::Internal(format!("encoding the metadata: {e}")))?;
    let mut trailer = Vec::new();
    tar_entry(
        &mut trailer,
        &format!("{dir}/metadata.json"),
        format!("{metadata}\n").as_bytes(),
    );
    tar_entry(
        &mut trailer,
        &format!("{dir}/ca.pub"),
        format!("{}\n", recordings.seal_keys()).as_bytes(),
    );
    trailer.extend_from_slice(&[0u8; 1024]);
    let names: Vec<String> = detail.info.files.iter().map(|f| f.name.clone()).collect();
    let session = dir.clone();
    let files = stream::iter(names)
        .then(move |name| {
            let (recordings, reviewer, session) =
                (Arc::clone(&recordings), reviewer.clone(), session.clone());
            async move { file_entry(&recordings, &reviewer, &session, &name).await }
        })
        .flatten();
    let body = files.chain(stream::once(async move { Ok(Bytes::from(trailer)) }));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{dir}.tar\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_grouped_into_lines_with_the_first_keystroke_time() {
        let cast = "{\"version\":2}\n[0.5,\"i\",\"ec\"]\n[0.6,\"o\",\"ec\"]\n[0.7,\"i\",\"ho hi\\r\"]\n[2.0,\"i\",\"exit\\r\"]\n";
        assert_eq!(
            input_lines(cast),
            vec![(0.5, "echo hi\r".to_owned()), (2.0, "exit\r".to_owned())]
        );
    }

    #[test]
    fn every_status_can_be_filtered_on_lost_too() {
        let all: Vec<&str> = crate::store::SessionStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(STATUSES.as_slice(), all.as_slice());
        assert!(badge("lost").contains("bad"));
    }

    #[test]
    fn dates_from_the_filter_form() {
        assert_eq!(parse_when("1970-01-02", false), Some(86_400));
        assert_eq!(parse_when("1970-01-02", true), Some(86_400 + 86_399));
        assert_eq!(parse_when("1970-01-01T01:00", false), Some(3600));
        assert_eq!(parse_when("yesterday", false), None);
    }
}
