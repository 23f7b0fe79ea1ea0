//! Who gets into the review UI, and which pages: the policy's authority
//! model decides (`recording.review` for some or every role, approving some
//! role, override powers, admins), and a refusal says which identity and
//! groups the CA saw and what the policy would need, in its own words,
//! naming nobody else; the audit row says the same.

use anyhow::{Context, ensure};
use serde_json::Value;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;

use crate::ui::{page_status, set_cookie, start_ca_with, start_sign_in};

/// petra reviews the `shell` role's recordings only; olga may shorten
/// overrides and nothing else.
const POWERS: &str = r#"
[[authority]]
identities = ["user:petra@example.com"]
actions = ["recording.review"]
roles = ["shell"]

[[authority]]
identities = ["user:olga@example.com"]
actions = ["override.shorten"]
schedules = ["primary"]
"#;

/// A sign-in as `email` with `groups`, without a browser: the callback's
/// status, its page and the session cookie (if any).
pub(crate) fn sign_in_as(
    ca: &TestCa,
    email: &str,
    groups: &str,
) -> anyhow::Result<(u16, String, Option<String>)> {
    let (authorize, cookie) = start_sign_in(ca)?;
    let at_provider = ca
        .client()
        .get(format!("{authorize}&login_hint={email}&groups={groups}"))
        .send()?;
    let callback = at_provider
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("the provider did not send the browser back")?
        .to_owned();
    let answer = ca
        .client()
        .get(callback)
        .header(
            reqwest::header::COOKIE,
            format!("__Secure-shiftkey-login={cookie}"),
        )
        .send()?;
    let session = set_cookie(&answer, "__Secure-shiftkey-ui").filter(|s| !s.is_empty());
    let status = answer.status().as_u16();
    Ok((status, answer.text()?, session))
}

fn get(ca: &TestCa, path: &str, session: &str) -> anyhow::Result<(u16, String)> {
    let response = ca
        .client()
        .get(ca.url(path))
        .header(
            reqwest::header::COOKIE,
            format!("__Secure-shiftkey-ui={session}"),
        )
        .send()?;
    Ok((response.status().as_u16(), response.text()?))
}

fn last_denial(ca: &TestCa, actor: &str) -> anyhow::Result<Value> {
    ca.audit_rows()?
        .into_iter()
        .rev()
        .find(|r| r["kind"] == "ui.denied" && r["actor"] == actor)
        .with_context(|| format!("no ui.denied row for {actor}"))
}

#[test]
fn each_power_opens_its_pages_and_refusals_say_why() -> anyhow::Result<()> {
    let provider = OidcProvider::start()?;
    let ca = start_ca_with(&provider, POWERS)?;

    // A reviewer of one role signs in and sees the sessions (the service
    // lists only that role's), but not the audit log or incidents.
    let (status, page, session) = sign_in_as(&ca, "petra@example.com", "qa,staff")?;
    ensure!(status == 200, "petra's sign-in: {status}: {page}");
    let petra = session.context("petra got no session")?;
    ensure!(page_status(&ca, "/ui/sessions", &petra)? == 200);
    let (status, page) = get(&ca, "/ui/audit", &petra)?;
    ensure!(status == 403, "petra's audit page: {status}");
    for shown in [
        "user:petra@example.com",
        "<code>qa</code>, <code>staff</code>",
        "hold none of recording.review for every role and person</li>",
        "reviewers at",
    ] {
        ensure!(
            page.contains(shown),
            "the refusal page lacks {shown:?}:\n{page}"
        );
    }
    ensure!(
        !page.contains("rita@example.com"),
        "the refusal names another user:\n{page}"
    );
    let denied = last_denial(&ca, "user:petra@example.com")?;
    ensure!(
        denied["detail"]["page"] == "/ui/audit"
            && denied["detail"]["groups"] == serde_json::json!(["qa", "staff"])
            && denied["detail"]["why"]
                .as_str()
                .is_some_and(|w| w.contains("hold none of recording.review")),
        "{denied}"
    );
    ensure!(get(&ca, "/ui/incidents", &petra)?.0 == 403);

    // An approver of one role only: approvals, no sessions.
    let (status, _, session) = sign_in_as(&ca, "lee@example.com", "sre-leads")?;
    ensure!(status == 200, "lee's sign-in: {status}");
    let lee = session.context("lee got no session")?;
    ensure!(page_status(&ca, "/ui/approvals", &lee)? == 200);
    ensure!(
        page_status(&ca, "/ui/sessions", &lee)? == 303,
        "lee is sent to the approvals"
    );
    ensure!(page_status(&ca, "/ui/audit", &lee)? == 403);

    // Override powers alone let olga in, to the on-call page.
    let (status, _, session) = sign_in_as(&ca, "olga@example.com", "")?;
    ensure!(status == 200, "olga's sign-in: {status}");
    let olga = session.context("olga got no session")?;
    ensure!(page_status(&ca, "/ui/oncall", &olga)? == 200);
    ensure!(page_status(&ca, "/ui/approvals", &olga)? == 403);

    // No power at all: refused at sign-in, with what the CA saw.
    let (status, page, session) = sign_in_as(&ca, "mallory@example.com", "contractors")?;
    ensure!(status == 403 && session.is_none(), "mallory: {status}");
    for shown in [
        "You may not use the review UI",
        "user:mallory@example.com",
        "<code>contractors</code>",
        "hold none of recording.review, request.approve, request.deny, override.shorten, override.delete",
        "group:sre-leads",
    ] {
        ensure!(
            page.contains(shown),
            "mallory's page lacks {shown:?}:\n{page}"
        );
    }
    ensure!(!page.contains("petra@example.com") && !page.contains("olga@example.com"));
    let denied = last_denial(&ca, "user:mallory@example.com")?;
    ensure!(
        denied["detail"]["groups"] == serde_json::json!(["contractors"])
            && denied["detail"]["page"] == "/ui/callback",
        "{denied}"
    );
    Ok(())
}
