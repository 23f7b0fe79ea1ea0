//! HTML building for the review UI: escaping and the page frame. Every piece
//! of text that reaches a page goes through [`esc`] (or [`attr`]); nothing
//! here writes a `<script>` body or an inline event handler, so the
//! Content-Security-Policy can forbid inline script.

use std::fmt::Write as _;

/// Text escaped for an HTML element body or a double-quoted attribute.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Terminal output and typed input hold control characters, and
            // any text can hold bidi and zero-width ones: show each as its
            // visible marker (`␛`, `⟨CSI⟩`, `⟨RLO⟩`), never pass it.
            '\n' | '\t' => out.push(c),
            c if shiftkey_safe_text::hazard(c).is_some() => {
                if let Some(marker) = shiftkey_safe_text::marker(c) {
                    out.push_str(&marker);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A value for a query string (`?user=...`), percent-encoded.
pub(super) fn q(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Unix seconds in the one format every page uses: `2026-12-07 05:12:03 UTC`.
pub(super) fn utc(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// How long ago (or how far ahead) `unix` is from `now`, in words:
/// `just now`, `3 min ago`, `in 2 h 5 min`, `4 days ago`.
pub(super) fn relative(unix: i64, now: i64) -> String {
    let delta = now.saturating_sub(unix);
    let span = delta.unsigned_abs();
    if span < 10 {
        return "just now".to_owned();
    }
    let words = if span < 60 {
        format!("{span} s")
    } else if span < 3600 {
        format!("{} min", span / 60)
    } else if span < 86_400 {
        let minutes = (span % 3600) / 60;
        if minutes == 0 {
            format!("{} h", span / 3600)
        } else {
            format!("{} h {minutes} min", span / 3600)
        }
    } else {
        let days = span / 86_400;
        format!("{days} day{}", if days == 1 { "" } else { "s" })
    };
    if delta >= 0 {
        format!("{words} ago")
    } else {
        format!("in {words}")
    }
}

/// A moment as every page shows it: the UTC time, the relative time beside
/// it and on hover, computed here so the page reads right without script
/// (`ui.js` only refreshes the relative part from `datetime`).
pub(super) fn when(unix: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let iso = chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let rel = relative(unix, now);
    format!(
        r#"<time datetime="{}" title="{}">{}</time> <span class="ago" data-ago="{unix}">({})</span>"#,
        esc(&iso),
        esc(&rel),
        esc(&utc(unix)),
        esc(&rel)
    )
}

/// [`when`] for an optional moment (`—` when absent).
pub(super) fn when_opt(unix: Option<i64>) -> String {
    unix.map_or_else(|| "—".to_owned(), when)
}

/// [`when`] for an RFC 3339 timestamp as the store keeps them (audit rows,
/// incidents); text that is not one is shown as it is, escaped.
pub(super) fn when_text(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => when(t.timestamp()),
        Err(_) => esc(rfc3339),
    }
}

/// A length of time as people say it: `42 s`, `3 min 05 s`, `2 h 04 min`.
pub(super) fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else if (s % 3600) / 60 == 0 {
        format!("{} h", s / 3600)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// A byte count as people read it: `812 B`, `12.1 KiB`, `3.4 MiB`.
pub(super) fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    }
}

/// Why a session ended, in words, from its status and the bastion's reason.
pub(super) fn end_reason(status: &str, reason: Option<&str>) -> String {
    match (status, reason.map(str::trim).filter(|r| !r.is_empty())) {
        ("live", _) => "still running".to_owned(),
        (_, Some(r)) => r.to_owned(),
        ("lost", None) => "lost: its bastion went silent".to_owned(),
        (_, None) => "not recorded".to_owned(),
    }
}

/// Seconds into a recording as `m:ss.s`.
pub(super) fn offset(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    let minutes = (seconds / 60.0).floor();
    format!("{}:{:04.1}", minutes as u64, seconds - minutes * 60.0)
}

/// A status as a badge whose class the stylesheet colours.
pub(super) fn badge(status: &str) -> String {
    let class = match status {
        "sealed" | "issued" | "approved" | "ok" | "resolved" | "allow" | "info" => "good",
        "live" | "pending" | "open" => "live",
        "verification-failed" | "lost" | "denied" | "deny" | "error" | "broken" | "revoked" => {
            "bad"
        }
        _ => "plain",
    };
    format!(r#"<span class="badge {class}">{}</span>"#, esc(status))
}

/// What the navigation shows for the signed-in person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Sessions,
    Incidents,
    Audit,
    Approvals,
    OnCall,
    None,
}

/// The person in the header and the links they may follow.
#[derive(Debug)]
pub(super) struct Viewer<'a> {
    pub(super) identity: &'a str,
    pub(super) powers: super::auth::Powers,
    pub(super) csrf: &'a str,
}

/// A whole page: landmarks (banner, navigation, main), one `h1`, our
/// stylesheet and script only.
pub(super) fn page(title: &str, nav: Nav, viewer: Option<&Viewer<'_>>, body: &str) -> String {
    let mut links = String::new();
    if let Some(v) = viewer {
        let mut item = |href: &str, label: &str, this: Nav| {
            let current = if nav == this {
                r#" aria-current="page""#
            } else {
                ""
            };
            let _ = write!(links, r#"<li><a href="{href}"{current}>{label}</a></li>"#);
        };
        let p = v.powers;
        if p.review_some {
            item("/ui/sessions", "Sessions", Nav::Sessions);
        }
        if p.review_all {
            item("/ui/incidents", "Incidents", Nav::Incidents);
            item("/ui/audit", "Audit log", Nav::Audit);
        }
        if p.decide {
            item("/ui/approvals", "Approvals", Nav::Approvals);
        }
        // Anyone signed in may see who covers whom; the forms are decided
        // by the policy's override.* entries.
        item("/ui/oncall", "On call", Nav::OnCall);
    }
    let who = match viewer {
        Some(v) => format!(
            r#"<form class="who" method="post" action="/ui/logout"><span>{}</span><input type="hidden" name="csrf" value="{}"><button type="submit" class="link">Sign out</button></form>"#,
            esc(v.identity),
            esc(v.csrf)
        ),
        None => String::new(),
    };
    let nav_html = if links.is_empty() {
        String::new()
    } else {
        format!(r#"<nav aria-label="Main"><ul>{links}</ul></nav>"#)
    };
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<link rel="icon" href="data:,">
<title>{title} · Shiftkey review</title>
<link rel="stylesheet" href="/ui/assets/ui.css">
<script src="/ui/assets/ui.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="/ui/">Shiftkey <span>review</span></a>{nav_html}{who}</header>
<main id="main" tabindex="-1">
{body}
</main>
<footer><p>Every view and decision here is written to the CA's audit log.</p></footer>
</body>
</html>
"##,
        title = esc(title),
    )
}

/// `<dl>` rows of label and already-escaped HTML value.
pub(super) fn facts(rows: &[(&str, String)]) -> String {
    let mut out = String::from(r#"<dl class="facts">"#);
    for (label, value) in rows {
        let _ = write!(out, "<dt>{}</dt><dd>{value}</dd>", esc(label));
    }
    out.push_str("</dl>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_are_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(esc("a\u{1b}[31mb\r"), "a\u{241b}[31mb\u{240d}");
        assert_eq!(q("a b&c=d"), "a+b%26c%3Dd");
        assert_eq!(offset(75.25), "1:15.2");
    }

    /// One timestamp format on every page: UTC with the relative time.
    #[test]
    fn moments_read_as_utc_with_the_relative_time() {
        assert_eq!(utc(1_796_620_323), "2026-12-07 05:12:03 UTC");
        assert_eq!(relative(100, 103), "just now");
        assert_eq!(relative(100, 100 + 3 * 60 + 5), "3 min ago");
        assert_eq!(relative(100 + 7500, 100), "in 2 h 5 min");
        assert_eq!(relative(0, 4 * 86_400 + 5), "4 days ago");
        let html = when(1_796_620_323);
        assert!(
            html.starts_with(r#"<time datetime="2026-12-07T05:12:03Z" title=""#),
            "{html}"
        );
        assert!(html.contains(">2026-12-07 05:12:03 UTC</time>"), "{html}");
        assert!(html.contains(r#"class="ago""#), "{html}");
        assert_eq!(when_text("not a time <b>"), "not a time &lt;b&gt;");
        assert!(when_text("2026-12-07T05:12:03.123456Z").contains("2026-12-07 05:12:03 UTC"));
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(185), "3 min 05 s");
        assert_eq!(duration(7440), "2 h 04 min");
        assert_eq!(duration(3600), "1 h");
        assert_eq!(size(812), "812 B");
        assert_eq!(size(12_390), "12.1 KiB");
        assert_eq!(end_reason("sealed", Some("client closed")), "client closed");
        assert_eq!(end_reason("lost", None), "lost: its bastion went silent");
        assert_eq!(end_reason("live", Some("x")), "still running");
    }

    /// Issue 16: a recorded reason with bidi controls reads as what it is;
    /// DEL and a C1 CSI get their own markers (not US's and ESC's).
    #[test]
    fn text_that_could_hide_or_reorder_is_shown_marked() {
        assert_eq!(
            esc("LGTM \u{202e}devorppa\u{202c} \u{2014} per CISO"),
            "LGTM \u{27e8}RLO\u{27e9}devorppa\u{27e8}PDF\u{27e9} \u{2014} per CISO"
        );
        assert_eq!(esc("\x7f\u{9b}\x1b"), "\u{2421}\u{27e8}CSI\u{27e9}\u{241b}");
        assert_eq!(esc("a\u{200b}b"), "a\u{27e8}ZWSP\u{27e9}b");
        assert_eq!(esc("<a href='x'>\n"), "&lt;a href=&#39;x&#39;&gt;\n");
    }
}
