use std::os::unix::fs::PermissionsExt;

use axum::http::{HeaderMap, HeaderValue};

use super::*;

fn secret(value: &str) -> Secret {
    Secret::new(value.to_owned())
}

fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn headers(name: &'static str, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(name, HeaderValue::from_str(value).unwrap());
    headers
}

#[test]
fn signature_header_parsing_keeps_v1_entries_only() {
    let a = "a".repeat(64);
    let b = "0123456789abcdef".repeat(4);
    assert_eq!(parse_signatures(&format!("v1={a}")), vec![[0xaa; 32]]);
    // Several (secret rotation), with spaces; other versions and junk skipped.
    let parsed = parse_signatures(&format!(
        "v1={a}, v2={b},v1=zz,v1={},v1=,garbage, v1={b}",
        &a[..62]
    ));
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0], [0xaa; 32]);
    assert_eq!(hex::encode(parsed[1]), b);
    // Upper-case hex is hex too.
    assert_eq!(
        parse_signatures(&format!("v1={}", a.to_uppercase())),
        vec![[0xaa; 32]]
    );
    assert!(parse_signatures("").is_empty());
    assert!(parse_signatures("v1").is_empty());
    assert!(parse_signatures(&format!("V1={a}")).is_empty());
    let many = vec![format!("v1={a}"); 50].join(",");
    assert_eq!(parse_signatures(&many).len(), MAX_SIGNATURES);
}

#[test]
fn signatures_verify_against_the_raw_body() {
    // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
    let body = b"what do ya want for nothing?";
    let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    assert_eq!(signature(b"Jefe", body), expected);
    let key = secret("Jefe");
    let ok = headers(PAGERDUTY_SIGNATURE, &format!("v1={expected}"));
    assert!(check_signature(&key, &ok, body).is_ok());
    // One good signature among several suffices (secret rotation).
    let rotated = headers(
        PAGERDUTY_SIGNATURE,
        &format!("v1={},v1={expected}", "00".repeat(32)),
    );
    assert!(check_signature(&key, &rotated, body).is_ok());
    // A changed body, a changed secret or a flipped bit is refused.
    assert_eq!(
        check_signature(&key, &ok, b"what do ya want for nothing!").unwrap_err(),
        Refusal::BadSignature
    );
    assert_eq!(
        check_signature(&secret("jefe"), &ok, body).unwrap_err(),
        Refusal::BadSignature
    );
    let flipped = format!("v1=4{}", &expected[1..]);
    assert_eq!(
        check_signature(&key, &headers(PAGERDUTY_SIGNATURE, &flipped), body).unwrap_err(),
        Refusal::BadSignature
    );
    // No header, or one without any v1 signature: missing.
    assert_eq!(
        check_signature(&key, &HeaderMap::new(), body).unwrap_err(),
        Refusal::MissingSignature
    );
    assert_eq!(
        check_signature(&key, &headers(PAGERDUTY_SIGNATURE, "v0=abc"), body).unwrap_err(),
        Refusal::MissingSignature
    );
}

#[test]
fn bearer_tokens_must_match_exactly() {
    let token = secret("0123456789abcdef-token");
    let auth = |v: &str| headers("authorization", v);
    assert!(check_token(&token, &auth("Bearer 0123456789abcdef-token"), b"{}").is_ok());
    for wrong in [
        "Bearer 0123456789abcdef-toke",
        "Bearer 0123456789abcdef-token2",
        "Bearer ",
        "Basic 0123456789abcdef-token",
        "0123456789abcdef-token",
    ] {
        assert_eq!(
            check_token(&token, &auth(wrong), b"{}").unwrap_err(),
            Refusal::BadToken,
            "{wrong}"
        );
    }
    assert_eq!(
        check_token(&token, &HeaderMap::new(), b"{}").unwrap_err(),
        Refusal::MissingToken
    );
    assert!(equal_in_constant_time(b"", b""));
    assert!(!equal_in_constant_time(b"a", b""));
}

#[test]
fn replayed_event_ids_are_remembered_until_they_would_be_stale() {
    // The store keeps the IDs (behaviour tested on every backend in
    // store::tests::webhooks); the window must cover the age check.
    assert!(REPLAY_WINDOW >= MAX_EVENT_AGE + MAX_CLOCK_AHEAD);
}

#[test]
fn alerts_map_to_incidents() {
    let alert: Alert = serde_json::from_value(json!({
        "status": "firing",
        "labels": { "alertname": "DiskFull", "severity": "Critical" },
        "annotations": { "summary": "  /var\tis full  " },
        "startsAt": "2024-05-01T10:00:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "C5D7F8A8B4CDE2F0"
    }))
    .unwrap();
    let AlertAction::Fire {
        base_id,
        title,
        severity,
        ..
    } = alert_action(&alert).unwrap()
    else {
        panic!("firing opens");
    };
    assert_eq!(
        (base_id.as_str(), title.as_str(), severity),
        ("AM-c5d7f8a8b4cd", "/var is full", 1)
    );
    for (label, sev) in [
        (Some("high"), 2),
        (Some("error"), 2),
        (Some("warning"), 3),
        (Some("info"), 4),
        (None, 4),
    ] {
        assert_eq!(alert_severity(label), sev, "{label:?}");
    }
    for bad in ["", "c5d7f8a8b4c", "c5d7f8a8b4cdxx", "../../etc/passwd"] {
        let alert = Alert {
            fingerprint: bad.into(),
            ..serde_json::from_value(json!({
                "status": "resolved", "startsAt": "2024-05-01T10:00:00Z", "fingerprint": ""
            }))
            .unwrap()
        };
        assert!(alert_action(&alert).is_err(), "{bad:?}");
    }
}

#[test]
fn pagerduty_incidents_map_to_ids_and_severities() {
    let data = |v: Value| PagerDutyIncident::deserialize(&v).unwrap();
    let p1 = data(json!({ "id": "PGR0VU2", "number": 2, "urgency": "low",
        "priority": { "id": "PSO75BM", "summary": "P1", "type": "priority_reference" } }));
    assert_eq!(
        (p1.incident_id().unwrap(), p1.severity()),
        ("PD-2".into(), 1)
    );
    let p2 = data(json!({ "id": "X", "number": 3, "priority": { "name": "p2" } }));
    assert_eq!(p2.severity(), 2);
    let high = data(json!({ "id": "PGR0VU2", "urgency": "high", "priority": null }));
    assert_eq!(
        (high.incident_id().unwrap(), high.severity()),
        ("PD-PGR0VU2".into(), 1)
    );
    let low = data(json!({ "id": "Q1", "urgency": "low" }));
    assert_eq!(low.severity(), 3);
    assert!(data(json!({ "id": "a b/c" })).incident_id().is_err());
}

#[test]
fn titles_are_cleaned_and_bounded() {
    assert_eq!(clean_title(" a\nb\u{7}c ").as_deref(), Some("a b c"));
    assert_eq!(clean_title(" \t\n"), None);
    let long = "é".repeat(150);
    let cut = clean_title(&long).unwrap();
    assert!(cut.len() <= MAX_TITLE_BYTES && cut.chars().all(|c| c == 'é'));
}

#[test]
fn secret_files_must_be_private_and_long_enough() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pd.secret");
    std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = read_secret(&path).unwrap();
    assert_eq!(
        loaded.expose(),
        "0123456789abcdef0123",
        "the newline is trimmed"
    );
    let store = crate::store::open_sqlite(
        &dir.path().join("shiftkey.db"),
        crate::store::Access::ReadWrite,
    )
    .unwrap();
    let webhooks = Webhooks::load(
        &WebhookFiles {
            alertmanager_token: None,
            pagerduty_secret: Some(path.clone()),
        },
        crate::deliveries::Deliveries::new(store),
    )
    .unwrap();
    let shown = format!("{webhooks:?}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");

    for mode in [0o640, 0o604, 0o620] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = read_secret(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
    std::fs::write(&path, "short\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(matches!(
        read_secret(&path),
        Err(LoadError::TooShort { .. })
    ));
    assert!(matches!(
        read_secret(&dir.path().join("missing")),
        Err(LoadError::Read { .. })
    ));
}
