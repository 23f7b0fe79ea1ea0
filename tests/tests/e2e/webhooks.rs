//! Incoming webhooks end to end: Alertmanager and PagerDuty deliveries, with
//! the payload shapes their documentation shows, open and resolve incidents
//! on the real CA over HTTPS; resolving revokes what was issued under the
//! incident (checked with `ssh-keygen -Q` against the served KRL); forged,
//! unsigned, replayed and stale deliveries are refused, audited, and change
//! nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::util::ssh_keygen;

use crate::fixtures::policy;

const AM_TOKEN: &str = "am-token-3f9c1e7a55d04b21";
const PD_SECRET: &str = "pd-secret-8b0e2c4d6f1a3957";

/// A CA whose ca.toml names the given webhook secrets (written 0600).
fn ca_with_webhooks(alertmanager: bool, pagerduty: bool) -> anyhow::Result<TestCa> {
    let ca = TestCa::init(&policy().0, None)?;
    let secrets = ca.data_dir().join("secrets");
    std::fs::create_dir_all(&secrets)?;
    let mut section = String::from("\n[webhooks]\n");
    for (on, file, value, key) in [
        (
            alertmanager,
            "alertmanager.token",
            AM_TOKEN,
            "alertmanager_token_file",
        ),
        (
            pagerduty,
            "pagerduty.secret",
            PD_SECRET,
            "pagerduty_secret_file",
        ),
    ] {
        if on {
            let path = secrets.join(file);
            std::fs::write(&path, format!("{value}\n"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            section.push_str(&format!("{key} = \"secrets/{file}\"\n"));
        }
    }
    let config = ca.data_dir().join("ca.toml");
    let text = std::fs::read_to_string(&config)? + &section;
    std::fs::write(&config, text)?;
    ca.start()
}

/// POSTs `body` to `path` over HTTPS with the given extra headers.
fn post(
    ca: &TestCa,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> anyhow::Result<(u16, Value)> {
    let mut request = ca
        .client()
        .post(ca.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let resp = request.send()?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().unwrap_or(Value::Null)))
}

fn incidents(ca: &TestCa) -> anyhow::Result<Value> {
    let (status, listed) = ca.local("GET", "/v1/incidents", &json!(null))?;
    assert_eq!(status, 200, "{listed}");
    Ok(listed)
}

fn incident<'a>(listed: &'a Value, id: &str) -> Option<&'a Value> {
    listed.as_array()?.iter().find(|i| i["id"] == id)
}

/// A key from ssh-keygen and a certificate for it (local socket), issued
/// under `incident` when given; returns the certificate file and the answer.
fn certified(
    ca: &TestCa,
    dir: &Path,
    name: &str,
    incident: Option<&str>,
) -> anyhow::Result<(std::path::PathBuf, Value)> {
    let key = ssh_keygen(dir, name, &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let mut body = json!({ "public_key": public.trim(), "role": "shell" });
    if let Some(id) = incident {
        body["incident"] = json!(id);
    }
    let (status, answer) = ca.request_local(&body)?;
    assert_eq!(status, 200, "{answer}");
    let cert = dir.join(format!("{name}-cert.pub"));
    std::fs::write(
        &cert,
        format!("{}\n", answer["certificate"].as_str().unwrap_or_default()),
    )?;
    Ok((cert, answer))
}

/// Fetches the KRL and asks `ssh-keygen -Q` whether it revokes `cert`.
fn revoked(ca: &TestCa, dir: &Path, cert: &Path) -> anyhow::Result<bool> {
    let krl = dir.join("revoked.krl");
    std::fs::write(&krl, ca.client().get(ca.url("/v1/krl")).send()?.bytes()?)?;
    shiftkey_tests::util::krl_revokes(&krl, cert)
}

fn refused_rows(ca: &TestCa) -> anyhow::Result<Vec<Value>> {
    Ok(ca
        .audit_rows()?
        .into_iter()
        .filter(|r| r["kind"] == "webhook.refused")
        .collect())
}

// ---------------------------------------------------------------------------
// Alertmanager

/// One alert as Alertmanager's webhook sends it.
fn alert(status: &str, name: &str, severity: &str, summary: &str, fingerprint: &str) -> Value {
    json!({
        "status": status,
        "labels": {
            "alertname": name,
            "instance": "db-1.prod.example.com:9100",
            "job": "node",
            "severity": severity
        },
        "annotations": {
            "summary": summary,
            "description": "Filesystem /var on db-1 has less than 5% space left.",
            "runbook_url": "https://runbooks.example.com/disk-full"
        },
        "startsAt": "2024-05-01T10:00:00.123456789Z",
        "endsAt": if status == "resolved" { "2024-05-01T10:30:00.5Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=node_filesystem_avail_bytes",
        "fingerprint": fingerprint
    })
}

/// A version 4 webhook payload, as in Alertmanager's documentation.
fn alertmanager_payload(status: &str, alerts: Vec<Value>) -> Vec<u8> {
    json!({
        "version": "4",
        "groupKey": "{}/{severity=~\"critical|warning\"}:{alertname=\"DiskFull\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "shiftkey",
        "groupLabels": { "alertname": "DiskFull" },
        "commonLabels": { "alertname": "DiskFull", "job": "node" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": alerts
    })
    .to_string()
    .into_bytes()
}

const FP_DISK: &str = "c5d7f8a8b4cde2f0";
const FP_LATENCY: &str = "0a1b2c3d4e5f6789";

#[test]
fn alertmanager_firing_opens_and_resolved_revokes() -> anyhow::Result<()> {
    let ca = ca_with_webhooks(true, false)?;
    let work = tempfile::tempdir()?;
    let path = "/v1/webhooks/alertmanager";
    let bearer = |t: &str| vec![("Authorization", format!("Bearer {t}"))];
    let firing = alertmanager_payload(
        "firing",
        vec![
            alert(
                "firing",
                "DiskFull",
                "critical",
                "Disk full on db-1",
                FP_DISK,
            ),
            alert("firing", "HighLatency", "warning", "", FP_LATENCY),
        ],
    );

    // Not configured: PagerDuty answers 404.
    let (status, answer) = post(&ca, "/v1/webhooks/pagerduty", &[], b"{}")?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("not-configured"))
    );

    // Without the token, or with another one: refused, audited, nothing opened.
    for (headers, reason) in [
        (vec![], "missing-token"),
        (bearer("am-token-guessed-wrongly"), "bad-token"),
        (vec![("Authorization", AM_TOKEN.to_owned())], "bad-token"),
    ] {
        let (status, answer) = post(&ca, path, &headers, &firing)?;
        assert_eq!((status, answer["error"].as_str()), (401, Some(reason)));
        let row = ca.last_audit("webhook.refused")?;
        assert_eq!(row["actor"], "webhook:alertmanager");
        assert_eq!(row["outcome"], "deny");
        assert_eq!(row["detail"]["reason"], reason);
    }
    assert_eq!(incidents(&ca)?, json!([]));

    // Firing: one incident per alert, severity from the label, title from
    // the summary (or the alert name).
    let (status, answer) = post(&ca, path, &bearer(AM_TOKEN), &firing)?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["alerts"][0]["outcome"], "opened");
    let listed = incidents(&ca)?;
    let disk = incident(&listed, "AM-c5d7f8a8b4cd")
        .cloned()
        .unwrap_or_default();
    assert_eq!(disk["status"], "open", "{listed}");
    assert_eq!(disk["severity"], 1);
    assert_eq!(disk["title"], "Disk full on db-1");
    assert_eq!(disk["source"], "alertmanager");
    assert_eq!(disk["opened_by"], "webhook:alertmanager");
    let latency = incident(&listed, "AM-0a1b2c3d4e5f")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&latency["severity"], &latency["title"]),
        (&json!(3), &json!("HighLatency"))
    );

    // Alertmanager repeats firing notifications: no-ops.
    let (status, again) = post(&ca, path, &bearer(AM_TOKEN), &firing)?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["alerts"][0]["outcome"], "already-open");
    assert_eq!(incidents(&ca)?, listed);

    // Access under the incident, and some not under it.
    let (cert_in, under) = certified(&ca, work.path(), "in", Some("AM-c5d7f8a8b4cd"))?;
    let (cert_out, _) = certified(&ca, work.path(), "out", None)?;
    assert!(!revoked(&ca, work.path(), &cert_in)?);

    // Resolved: the incident is resolved and its certificate revoked.
    let resolved = alertmanager_payload(
        "resolved",
        vec![alert(
            "resolved",
            "DiskFull",
            "critical",
            "Disk full on db-1",
            FP_DISK,
        )],
    );
    let (status, answer) = post(&ca, path, &bearer(AM_TOKEN), &resolved)?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["alerts"][0]["outcome"], "resolved");
    assert_eq!(
        answer["alerts"][0]["revoked_serials"],
        json!([under["serial"]])
    );
    let listed = incidents(&ca)?;
    let disk = incident(&listed, "AM-c5d7f8a8b4cd")
        .cloned()
        .unwrap_or_default();
    assert_eq!(disk["status"], "resolved");
    assert_eq!(disk["resolved_by"], "webhook:alertmanager");
    assert_eq!(
        incident(&listed, "AM-0a1b2c3d4e5f").map(|i| &i["status"]),
        Some(&json!("open")),
        "the other alert still fires"
    );
    assert!(
        revoked(&ca, work.path(), &cert_in)?,
        "ssh-keygen -Q reports the certificate issued under the incident"
    );
    assert!(!revoked(&ca, work.path(), &cert_out)?, "and only that one");

    // Resolved again, a late copy of the old firing, or an unknown alert:
    // no-ops.
    let (status, again) = post(&ca, path, &bearer(AM_TOKEN), &resolved)?;
    assert_eq!(
        (status, again["alerts"][0]["outcome"].as_str()),
        (200, Some("not-open"))
    );
    let (status, late) = post(&ca, path, &bearer(AM_TOKEN), &firing)?;
    assert_eq!(
        (status, late["alerts"][0]["outcome"].as_str()),
        (200, Some("already-resolved")),
        "{late}"
    );
    let unknown = alertmanager_payload(
        "resolved",
        vec![alert("resolved", "X", "info", "x", "ffffffffffffffff")],
    );
    let (status, answer) = post(&ca, path, &bearer(AM_TOKEN), &unknown)?;
    assert_eq!(
        (status, answer["alerts"][0]["outcome"].as_str()),
        (200, Some("unknown"))
    );
    assert_eq!(incidents(&ca)?, listed);

    let opened = ca.last_audit("incident.opened")?;
    assert_eq!(opened["actor"], "webhook:alertmanager");
    assert_eq!(opened["detail"]["source"], "alertmanager");
    let row = ca.last_audit("incident.resolved")?;
    assert_eq!(row["actor"], "webhook:alertmanager");
    let revoked = ca.last_audit("certificate.revoked")?;
    assert_eq!(revoked["actor"], "webhook:alertmanager");
    assert_eq!(revoked["detail"]["serials"], json!([under["serial"]]));
    Ok(())
}

// ---------------------------------------------------------------------------
// PagerDuty

/// HMAC-SHA256 (RFC 2104), written out here so that the test does not share
/// the CA's implementation.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

/// A PagerDuty v3 webhook event, as in PagerDuty's documentation.
fn pagerduty_event(event_id: &str, event_type: &str, occurred_at: &str) -> Vec<u8> {
    let status = if event_type == "incident.resolved" {
        "resolved"
    } else {
        "triggered"
    };
    json!({
        "event": {
            "id": event_id,
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": occurred_at,
            "agent": {
                "html_url": "https://acme.pagerduty.com/users/PLH1HKV",
                "id": "PLH1HKV",
                "self": "https://api.pagerduty.com/users/PLH1HKV",
                "summary": "Tenex Engineer",
                "type": "user_reference"
            },
            "client": { "name": "PagerDuty" },
            "data": {
                "id": "PGR0VU2",
                "type": "incident",
                "self": "https://api.pagerduty.com/incidents/PGR0VU2",
                "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                "number": 2,
                "status": status,
                "incident_key": "d3640fbd41094207a1c11e58e46b1662",
                "created_at": "2020-04-09T15:16:27Z",
                "title": "A little bump in the road",
                "service": {
                    "html_url": "https://acme.pagerduty.com/services/PF9KMXH",
                    "id": "PF9KMXH",
                    "self": "https://api.pagerduty.com/services/PF9KMXH",
                    "summary": "API Service",
                    "type": "service_reference"
                },
                "assignees": [{
                    "html_url": "https://acme.pagerduty.com/users/PTUXL6G",
                    "id": "PTUXL6G",
                    "self": "https://api.pagerduty.com/users/PTUXL6G",
                    "summary": "User 123",
                    "type": "user_reference"
                }],
                "escalation_policy": {
                    "html_url": "https://acme.pagerduty.com/escalation_policies/PUS0KTE",
                    "id": "PUS0KTE",
                    "self": "https://api.pagerduty.com/escalation_policies/PUS0KTE",
                    "summary": "Default",
                    "type": "escalation_policy_reference"
                },
                "teams": [],
                "priority": {
                    "html_url": "https://acme.pagerduty.com/account/incident_priorities",
                    "id": "PSO75BM",
                    "self": "https://api.pagerduty.com/priorities/PSO75BM",
                    "summary": "P1",
                    "type": "priority_reference"
                },
                "urgency": "high",
                "conference_bridge": {
                    "conference_number": "+1 1234123412,,987654321#",
                    "conference_url": "https://example.com"
                },
                "resolve_reason": null
            }
        }
    })
    .to_string()
    .into_bytes()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The headers PagerDuty sends, signed with `secret`.
fn signed(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (
            "X-PagerDuty-Signature",
            format!("v1={}", hmac_sha256_hex(secret.as_bytes(), body)),
        ),
        (
            "X-Webhook-Id",
            "ae8a1a8e-4d2e-4ec5-9a0b-0c2fd7ad0e3a".into(),
        ),
        ("User-Agent", "PagerDuty-Webhook/V3.0".into()),
    ]
}

#[test]
fn pagerduty_signed_events_open_and_resolve_and_forgeries_change_nothing() -> anyhow::Result<()> {
    let ca = ca_with_webhooks(false, true)?;
    let work = tempfile::tempdir()?;
    let path = "/v1/webhooks/pagerduty";

    let (status, answer) = post(&ca, "/v1/webhooks/alertmanager", &[], b"{}")?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("not-configured"))
    );

    // Refused before anything is open: unsigned, forged, stale.
    let triggered = pagerduty_event("01BZTGK7XA6QEGWRQ6DLSPDH4O", "incident.triggered", &now());
    let stale_time = (chrono::Utc::now() - chrono::TimeDelta::minutes(20))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let stale = pagerduty_event(
        "01BZTGK7XA6QEGWRQ6DLSPDH4P",
        "incident.triggered",
        &stale_time,
    );
    let forged_headers = signed("not-the-subscription-secret", &triggered);
    // The right secret over another body does not sign this one either.
    let mut tampered = triggered.clone();
    if let Some(at) = tampered.windows(2).position(|w| w == b"P1") {
        tampered[at + 1] = b'4';
    }
    for (headers, body, reason) in [
        (vec![], &triggered, "missing-signature"),
        (
            vec![("X-PagerDuty-Signature", "v1=".to_owned())],
            &triggered,
            "missing-signature",
        ),
        (forged_headers, &triggered, "bad-signature"),
        (signed(PD_SECRET, &triggered), &tampered, "bad-signature"),
        (signed(PD_SECRET, &stale), &stale, "stale-event"),
    ] {
        let (status, answer) = post(&ca, path, &headers, body)?;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some(reason)),
            "{answer}"
        );
        let row = ca.last_audit("webhook.refused")?;
        assert_eq!(row["actor"], "webhook:pagerduty");
        assert_eq!(row["detail"]["reason"], reason);
        assert_eq!(
            incidents(&ca)?,
            json!([]),
            "a refused delivery opens nothing"
        );
    }

    // Validly signed: PD-<number> opens, P1 → sev1.
    let (status, answer) = post(&ca, path, &signed(PD_SECRET, &triggered), &triggered)?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "opened");
    let listed = incidents(&ca)?;
    let pd = incident(&listed, "PD-2").cloned().unwrap_or_default();
    assert_eq!(
        (
            &pd["status"],
            &pd["severity"],
            &pd["title"],
            &pd["opened_by"]
        ),
        (
            &json!("open"),
            &json!(1),
            &json!("A little bump in the road"),
            &json!("webhook:pagerduty")
        ),
        "{listed}"
    );
    let (cert, under) = certified(&ca, work.path(), "pd", Some("PD-2"))?;

    // The same delivery again (captured and replayed): refused.
    let (status, answer) = post(&ca, path, &signed(PD_SECRET, &triggered), &triggered)?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("replayed-event"))
    );
    assert_eq!(
        ca.last_audit("webhook.refused")?["detail"]["event"],
        "01BZTGK7XA6QEGWRQ6DLSPDH4O"
    );

    // A forged or unsigned resolve does not end the access.
    let resolved = pagerduty_event("01BZTGK7XA6QEGWRQ6DLSPDH4Q", "incident.resolved", &now());
    for headers in [vec![], signed("forged", &resolved)] {
        let (status, _) = post(&ca, path, &headers, &resolved)?;
        assert_eq!(status, 401);
    }
    assert_eq!(incidents(&ca)?, listed, "refused deliveries change nothing");
    assert!(!revoked(&ca, work.path(), &cert)?);

    // The signed resolve resolves PD-2 and revokes its certificate.
    let (status, answer) = post(&ca, path, &signed(PD_SECRET, &resolved), &resolved)?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "resolved");
    assert_eq!(answer["revoked_serials"], json!([under["serial"]]));
    let listed = incidents(&ca)?;
    assert_eq!(
        incident(&listed, "PD-2").map(|i| &i["status"]),
        Some(&json!("resolved"))
    );
    assert!(
        revoked(&ca, work.path(), &cert)?,
        "ssh-keygen -Q reports it"
    );

    let reasons: Vec<Value> = refused_rows(&ca)?
        .into_iter()
        .map(|r| r["detail"]["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        json!([
            "missing-signature",
            "missing-signature",
            "bad-signature",
            "bad-signature",
            "stale-event",
            "replayed-event",
            "missing-signature",
            "bad-signature"
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()
    );
    let row = ca.last_audit("incident.resolved")?;
    assert_eq!(row["actor"], "webhook:pagerduty");
    Ok(())
}

#[test]
fn a_group_readable_webhook_secret_stops_the_ca_from_starting() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?;
    let secret = ca.data_dir().join("pagerduty.secret");
    std::fs::write(&secret, format!("{PD_SECRET}\n"))?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640))?;
    let config = ca.data_dir().join("ca.toml");
    let text = std::fs::read_to_string(&config)?
        + "\n[webhooks]\npagerduty_secret_file = \"pagerduty.secret\"\n";
    std::fs::write(&config, text)?;
    let err = ca.start().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(PD_SECRET), "the secret is never printed");
    Ok(())
}

/// A `resolved` that arrives late, for an earlier firing of an alert that
/// has fired again since, must not resolve the newer incident: the CA
/// matches the firing (fingerprint and `startsAt`), not just the alert.
#[test]
fn a_late_resolved_leaves_the_newer_firing_open() -> anyhow::Result<()> {
    let ca = ca_with_webhooks(true, false)?;
    let path = "/v1/webhooks/alertmanager";
    let bearer = vec![("Authorization", format!("Bearer {AM_TOKEN}"))];
    let at = |status: &str, starts_at: &str| {
        let mut one = alert(status, "DiskFull", "critical", "Disk full on db-1", FP_DISK);
        one["startsAt"] = json!(starts_at);
        alertmanager_payload(status, vec![one])
    };
    let first = "2024-05-01T10:00:00.123456789Z";
    let (status, answer) = post(&ca, path, &bearer, &at("firing", first))?;
    assert_eq!(
        (status, answer["alerts"][0]["outcome"].as_str()),
        (200, Some("opened")),
        "{answer}"
    );
    let (status, answer) = post(&ca, path, &bearer, &at("resolved", first))?;
    assert_eq!(
        (status, answer["alerts"][0]["outcome"].as_str()),
        (200, Some("resolved")),
        "{answer}"
    );

    // It fires again, after that resolution: a second incident.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, answer) = post(&ca, path, &bearer, &at("firing", &second))?;
    assert_eq!(
        (
            status,
            answer["alerts"][0]["outcome"].as_str(),
            answer["alerts"][0]["incident"].as_str()
        ),
        (200, Some("opened"), Some("AM-c5d7f8a8b4cd-2")),
        "{answer}"
    );

    // A late copy of the first firing's `resolved` (an HA peer's, a retry).
    let (status, answer) = post(&ca, path, &bearer, &at("resolved", first))?;
    assert_eq!(
        (
            status,
            answer["alerts"][0]["outcome"].as_str(),
            answer["alerts"][0]["incident"].as_str()
        ),
        (200, Some("not-open"), Some("AM-c5d7f8a8b4cd")),
        "{answer}"
    );
    let listed = incidents(&ca)?;
    assert_eq!(
        incident(&listed, "AM-c5d7f8a8b4cd-2").map(|i| &i["status"]),
        Some(&json!("open")),
        "the newer firing's incident stays open: {listed}"
    );

    // Its own `resolved` ends it.
    let (status, answer) = post(&ca, path, &bearer, &at("resolved", &second))?;
    assert_eq!(
        (
            status,
            answer["alerts"][0]["outcome"].as_str(),
            answer["alerts"][0]["incident"].as_str()
        ),
        (200, Some("resolved"), Some("AM-c5d7f8a8b4cd-2")),
        "{answer}"
    );
    Ok(())
}
