//! An audit row's detail as a reviewer reads it: a definition list of
//! labelled fields instead of raw JSON. Each event kind leads with the
//! fields that answer its question (who got which certificate, which
//! session ended why); every other field follows under its own name, so
//! nothing the row holds is hidden. All text is escaped through
//! [`esc`], which shows control, bidi and zero-width characters by their
//! safe-text markers.

use std::fmt::Write as _;

use serde_json::Value;

use super::html::{duration, esc, q, when};

/// Fields an event kind leads with, in this order; the rest follow sorted.
fn leading(kind: &str) -> &'static [&'static str] {
    match kind {
        "certificate.issued" => &[
            "serial",
            "role",
            "principals",
            "reason",
            "incident",
            "req",
            "valid_after",
            "valid_before",
        ],
        "certificate.revoked" => &["serials", "serial", "selector", "reason"],
        k if k.starts_with("request.") => &["request", "req", "role", "requester", "reason"],
        k if k.starts_with("session.") || k.starts_with("recording.") => &[
            "session",
            "identity",
            "role",
            "target",
            "principal",
            "end_reason",
            "purpose",
            "file",
        ],
        k if k.starts_with("incident.") => &["incident", "id", "title", "severity"],
        k if k.starts_with("oncall.") => &["override", "schedule", "member", "start", "end"],
        k if k.starts_with("identity.") => &["identity", "reason"],
        "" => &[],
        _ => &["error", "message"],
    }
}

/// The label a known field is shown under; unknown ones keep their name.
fn label(key: &str) -> Option<&'static str> {
    Some(match key {
        "serial" => "Certificate serial",
        "serials" => "Certificate serials",
        "role" => "Role",
        "principals" => "Principals",
        "logins" => "Logins",
        "reason" => "Reason",
        "incident" => "Incident",
        "req" | "request" => "Request",
        "requester" => "Requester",
        "valid_after" => "Valid from",
        "valid_before" => "Valid until",
        "session" => "Session",
        "identity" => "Identity",
        "target" => "Target",
        "principal" => "Login",
        "end_reason" => "Why it ended",
        "exit_status" => "Exit status",
        "purpose" => "Purpose",
        "file" => "File",
        "override" => "Override",
        "schedule" => "Schedule",
        "member" => "Member",
        "start" => "From",
        "end" => "Until",
        "error" => "Error code",
        "message" => "Message",
        "groups" => "Groups",
        "key_id" => "Key ID",
        "key_fingerprint" => "Key fingerprint",
        "limited_by" => "Lifetime limited by",
        "break_glass" => "Break-glass",
        "title" => "Title",
        "severity" => "Severity",
        "bastion" => "Bastion",
        "client_address" => "Client address",
        "started_at" => "Started",
        "ended_at" => "Ended",
        "duration" => "Duration",
        "digest" => "Manifest digest",
        "authority" => "Allowed by",
        "action" => "Action",
        "via" => "Through",
        "matches" => "Matches",
        "query" => "Query",
        "page" => "Page",
        "why" => "Why",
        _ => return None,
    })
}

/// Objects nested deeper than this are shown as JSON.
const MAX_DEPTH: usize = 3;

/// Unix-seconds fields shown as moments.
fn is_moment(key: &str) -> bool {
    matches!(
        key,
        "valid_after" | "valid_before" | "start" | "end" | "started_at" | "ended_at" | "expires_at"
    )
}

/// One value, escaped: links for sessions, incidents; moments as moments;
/// lists as lists; nested objects as lists of their own.
fn value_html(key: &str, value: &Value, depth: usize) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::Bool(b) => (if *b { "yes" } else { "no" }).to_owned(),
        Value::Number(n) => match (is_moment(key), n.as_i64()) {
            (true, Some(t)) => when(t),
            _ if key == "duration" => n.as_i64().map_or_else(|| esc(&n.to_string()), duration),
            _ => esc(&n.to_string()),
        },
        Value::String(s) => match key {
            "session" => format!(
                r#"<a href="/ui/sessions/{}"><code>{}</code></a>"#,
                esc(&q(s)),
                esc(s)
            ),
            "incident" => format!(r#"<a href="/ui/incidents/{}">{}</a>"#, esc(&q(s)), esc(s)),
            "req" | "request" | "key_id" | "key_fingerprint" | "digest" | "override" => {
                format!("<code>{}</code>", esc(s))
            }
            _ => esc(s),
        },
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            if items.is_empty() {
                return "none".to_owned();
            }
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => format!("<code>{}</code>", esc(s)),
                    other => format!("<code>{}</code>", esc(&other.to_string())),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        // Nested objects lead with no kind's fields.
        Value::Object(map) if depth < MAX_DEPTH => fields("", map, depth + 1),
        other => format!(r#"<code class="json">{}</code>"#, esc(&other.to_string())),
    }
}

/// The detail of a row of `kind`, as a definition list; text that is not a
/// JSON object is shown as it is, escaped.
pub(super) fn detail_html(kind: &str, detail: &str) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(detail) else {
        return format!(r#"<code class="detail">{}</code>"#, esc(detail));
    };
    fields(kind, &map, 0)
}

/// One object's fields as a definition list, `kind`'s leading fields first,
/// nested objects as lists of their own (up to `MAX_DEPTH`, then JSON).
fn fields(kind: &str, map: &serde_json::Map<String, Value>, depth: usize) -> String {
    if map.is_empty() {
        return r#"<span class="muted">—</span>"#.to_owned();
    }
    let first = leading(kind);
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| {
        (
            first.iter().position(|f| f == k).unwrap_or(first.len()),
            (*k).clone(),
        )
    });
    let mut out = String::from(r#"<dl class="fields">"#);
    for key in keys {
        let (name, known) = match label(key) {
            Some(l) => (l.to_owned(), true),
            None => (key.clone(), false),
        };
        let _ = write!(
            out,
            r#"<dt{}>{}</dt><dd>{}</dd>"#,
            if known { "" } else { r#" class="raw""# },
            esc(&name),
            value_html(key, &map[key], depth)
        );
    }
    out.push_str("</dl>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuance_reads_as_labelled_fields_leading_with_what_matters() {
        let html = detail_html(
            "certificate.issued",
            r#"{"zeta":1,"reason":"INC-7 debugging","serial":42,"role":"shell","principals":["deploy@shell"],"incident":"INC-7","valid_before":1796620323}"#,
        );
        assert!(
            html.starts_with(
                r#"<dl class="fields"><dt>Certificate serial</dt><dd>42</dd><dt>Role</dt>"#
            ),
            "{html}"
        );
        assert!(
            html.contains("<dt>Principals</dt><dd><code>deploy@shell</code></dd>"),
            "{html}"
        );
        assert!(
            html.contains(r#"<a href="/ui/incidents/INC-7">INC-7</a>"#),
            "{html}"
        );
        assert!(html.contains("2026-12-07 05:12:03 UTC"), "{html}");
        // Unknown fields are still shown, under their own name, last.
        assert!(
            html.ends_with(r#"<dt class="raw">zeta</dt><dd>1</dd></dl>"#),
            "{html}"
        );
    }

    #[test]
    fn hostile_fields_are_escaped_and_marked() {
        let html = detail_html(
            "request.denied",
            r#"{"reason":"ok \u202e<script>","<b>":"\u001b[31m","nested":{"a":"<i>"}}"#,
        );
        assert!(
            !html.contains("<script>") && !html.contains("<b>") && !html.contains("<i>"),
            "{html}"
        );
        assert!(html.contains("\u{27e8}RLO\u{27e9}&lt;script&gt;"), "{html}");
        assert!(html.contains("\u{241b}[31m"), "{html}");
        assert!(html.contains(r#"<dt class="raw">&lt;b&gt;</dt>"#), "{html}");
        // A nested object is a list of its own, escaped the same way.
        assert!(html.contains(r#"<dt class="raw">nested</dt><dd><dl class="fields"><dt class="raw">a</dt><dd>&lt;i&gt;</dd></dl></dd>"#), "{html}");
        assert_eq!(
            detail_html("x", "not json <"),
            r#"<code class="detail">not json &lt;</code>"#
        );
    }
}
