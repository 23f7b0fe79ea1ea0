//! Fuzz entry point for the webhook receivers (`crate::fuzzing::webhook`
//! calls it): a child of `webhooks` so that it drives the very functions
//! the handlers use, before anything is looked up in the store.
//!
//! Properties:
//! - Alertmanager's bearer token is accepted exactly when the header is
//!   `Bearer ` and the configured token (surrounding blanks aside);
//! - a PagerDuty signature header verifies only when it holds the
//!   HMAC-SHA256 of the body (the only way to pass without the secret is
//!   to know the MAC), and ours always verifies, alone or among other
//!   entries; a body changed by one byte never does;
//! - a verified body either parses to actions whose IDs, titles and
//!   severities have the shapes the incident store takes (`AM-` and 12
//!   hex digits, `PD-` and a valid name; a title of at most 200 bytes
//!   with no control, bidi or zero-width character; severity 1 to 4), or
//!   is refused with `InvalidBody` whose message stays short.

#![allow(clippy::panic, clippy::indexing_slicing)]

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::Mac;

use super::{
    AlertAction, AlertmanagerPayload, HmacSha256, MAX_TITLE_BYTES, PAGERDUTY_SIGNATURE,
    PagerDutyPayload, check_signature, check_token, clean_title, incident_data, parse,
};
use crate::http::error::ApiError;
use crate::secret::Secret;

const TOKEN: &str = "fuzz-alertmanager-token-4f1c9e";
const SECRET: &str = "fuzz-pagerduty-secret-8d2b7a";

/// The input: a selector byte (even: Alertmanager, odd: PagerDuty), a
/// length byte and that many bytes of header value, then the body.
pub(crate) fn webhook(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return;
    };
    let (header_value, body) = rest.split_at(usize::from(len).min(rest.len()));
    if selector & 1 == 0 {
        alertmanager(header_value, body);
    } else {
        pagerduty(header_value, body, selector);
    }
}

fn headers(name: &'static str, value: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.insert(name, value);
    }
    headers
}

fn check_refusal(error: &ApiError) {
    match error {
        ApiError::InvalidBody(message) => assert!(
            message.len() <= 512,
            "a refusal echoes {} bytes of the body",
            message.len()
        ),
        other => panic!("a body is refused with {other:?}, not InvalidBody"),
    }
}

fn check_title(title: &str) {
    assert!(
        !title.is_empty() && title.len() <= MAX_TITLE_BYTES,
        "{title:?}"
    );
    assert_eq!(title, title.trim(), "{title:?}");
    assert!(
        crate::free_text::check("title", title).is_ok(),
        "an incident title the API would refuse: {title:?}"
    );
}

fn alertmanager(header_value: &[u8], body: &[u8]) {
    let token = Secret::new(TOKEN.to_owned());
    let presented = headers("authorization", header_value);
    let expected = presented.get(header::AUTHORIZATION).is_some_and(|v| {
        v.as_bytes()
            .strip_prefix(b"Bearer ")
            .is_some_and(|t| t.trim_ascii() == TOKEN.as_bytes())
    });
    assert_eq!(
        check_token(&token, &presented, body).is_ok(),
        expected,
        "Authorization {:?}",
        String::from_utf8_lossy(header_value)
    );
    let ours = headers("authorization", format!("Bearer {TOKEN}").as_bytes());
    let Ok(authenticated) = check_token(&token, &ours, body) else {
        panic!("our own token is refused");
    };
    let payload: AlertmanagerPayload = match parse(&authenticated) {
        Ok(payload) => payload,
        Err(e) => return check_refusal(&e),
    };
    for alert in &payload.alerts {
        match super::alert_action(alert) {
            Ok(AlertAction::Fire {
                base_id,
                title,
                severity,
                alert_key,
                ..
            }) => {
                check_alert_id(&base_id);
                check_title(&title);
                assert!((1..=4).contains(&severity));
                assert!(alert_key.starts_with(&alert.fingerprint.trim().to_ascii_lowercase()));
            }
            Ok(AlertAction::Resolve { base_id, .. }) => check_alert_id(&base_id),
            Err(e) => check_refusal(&e),
        }
    }
}

fn check_alert_id(id: &str) {
    let hex = id.strip_prefix("AM-").unwrap_or_default();
    assert!(
        hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "alert incident ID {id:?}"
    );
    assert!(crate::issue::is_valid_name(id));
}

fn mac(body: &[u8]) -> String {
    let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(SECRET.as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn pagerduty(header_value: &[u8], body: &[u8], selector: u8) {
    let secret = Secret::new(SECRET.to_owned());
    let good = mac(body);
    let presented = headers(PAGERDUTY_SIGNATURE, header_value);
    if check_signature(&secret, &presented, body).is_ok() {
        assert!(
            String::from_utf8_lossy(header_value)
                .to_ascii_lowercase()
                .contains(&good),
            "a signature header without the body's MAC verifies: {:?}",
            String::from_utf8_lossy(header_value)
        );
    }
    // Ours verifies however PagerDuty lists it (a rotation sends several).
    let wrong = "0".repeat(64);
    let listed = match (selector >> 1) & 3 {
        0 => format!("v1={good}"),
        1 => format!("v1={wrong}, v1={good}"),
        2 => format!("v2=abc,v1={}", good.to_ascii_uppercase()),
        _ => format!(" v1={good} "),
    };
    let ours = headers(PAGERDUTY_SIGNATURE, listed.as_bytes());
    let Ok(signed) = check_signature(&secret, &ours, body) else {
        panic!("our own signature is refused: {listed}");
    };
    // One byte changed: refused.
    if !body.is_empty() {
        let mut changed = body.to_vec();
        let at = usize::from(selector) % changed.len();
        changed[at] ^= 0x01;
        assert!(
            check_signature(&secret, &ours, &changed).is_err(),
            "a changed body verifies"
        );
    }
    let payload: PagerDutyPayload = match parse(&signed) {
        Ok(payload) => payload,
        Err(e) => return check_refusal(&e),
    };
    let event = payload.event;
    if !matches!(
        event.event_type.as_str(),
        "incident.triggered" | "incident.resolved"
    ) {
        return;
    }
    let data = match incident_data(&event) {
        Ok(data) => data,
        Err(e) => return check_refusal(&e),
    };
    match data.incident_id() {
        Ok(id) => {
            assert!(
                id.starts_with("PD-") && crate::issue::is_valid_name(&id),
                "{id:?}"
            );
        }
        Err(e) => check_refusal(&e),
    }
    assert!((1..=4).contains(&data.severity()));
    if let Some(title) = data.title.as_deref().and_then(clean_title) {
        check_title(&title);
    }
}
