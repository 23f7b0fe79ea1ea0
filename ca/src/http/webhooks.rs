//! Incoming webhooks: Prometheus Alertmanager and PagerDuty (v3) open and
//! resolve incidents, so access follows the pager without anyone typing
//! `shiftkey incident open`.
//!
//! Owns authenticating each delivery (Alertmanager's shared bearer token;
//! PagerDuty's HMAC-SHA256 signature over the raw body, then the event's age
//! and a replay check) and turning the verified payload into
//! `Incidents::open` / `Incidents::resolve` as `webhook:SOURCE`.
//!
//! Never: parse or act on a body before it is authenticated (only the checks
//! here build an [`AuthenticatedBody`]); change anything for a refused
//! delivery, and never refuse one without a `webhook.refused` audit row;
//! print or log a secret (they stay in `Secret`, zeroized on drop).

// Untrusted input from the network: fail with an error, never panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::AppState;
use crate::audit::{Audit, Outcome};
use crate::config::WebhookFiles;
use crate::deliveries::{Admission, Deliveries};
use crate::identity::Caller;
use crate::incidents::{self, Incident, Incidents};
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// PagerDuty's signature header: `v1=HEX[,v1=HEX...]` (several while a
/// subscription's secret is being rotated).
const PAGERDUTY_SIGNATURE: &str = "x-pagerduty-signature";
/// At most this many signatures of one delivery are checked.
const MAX_SIGNATURES: usize = 8;
/// A PagerDuty event that occurred longer ago than this many minutes is
/// refused as stale: with the replay set, a captured delivery cannot be
/// replayed.
const MAX_EVENT_AGE_MINUTES: i64 = 10;
const MAX_EVENT_AGE: TimeDelta = TimeDelta::minutes(MAX_EVENT_AGE_MINUTES);
/// How far in the future (the sender's clock ahead of ours) an event may be.
const MAX_CLOCK_AHEAD_MINUTES: i64 = 2;
const MAX_CLOCK_AHEAD: TimeDelta = TimeDelta::minutes(MAX_CLOCK_AHEAD_MINUTES);
/// How long accepted event IDs are remembered, in minutes.
/// INVARIANT: at least as long as an event could still pass the age check
/// (age limit plus clock lead), so a replay is caught by one or the other.
const REPLAY_WINDOW_MINUTES: i64 = MAX_EVENT_AGE_MINUTES + MAX_CLOCK_AHEAD_MINUTES;
const REPLAY_WINDOW: TimeDelta = TimeDelta::minutes(REPLAY_WINDOW_MINUTES);
/// Event IDs remembered at most; beyond it deliveries are refused (fail
/// closed) until old IDs age out. PagerDuty sends a few per incident.
const MAX_RECENT_EVENTS: u64 = 10_000;
/// Secrets shorter than this are refused at start.
const MIN_SECRET_LEN: usize = 16;
/// Incident titles are at most this many bytes (as `POST /v1/incidents`).
const MAX_TITLE_BYTES: usize = 200;
/// An alert that fires again after its incident was resolved opens
/// `AM-<fp>-2`, `-3`, ... up to this many times.
const MAX_EPISODES: u32 = 1000;

/// Alert sources batch alerts: a large Alertmanager group must not be
/// refused (it would retry forever and never resolve anything).
const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks/alertmanager", post(alertmanager))
        .route("/v1/webhooks/pagerduty", post(pagerduty))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_WEBHOOK_BODY))
}

/// Why a webhook secret could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("{}: cannot read the webhook secret: {source}\nhint: check [webhooks] in ca.toml", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the webhook secret may be read or changed by group or others (mode {mode:o})\nhint: chmod 600 {}", path.display(), path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{}: the webhook secret is shorter than {MIN_SECRET_LEN} characters\nhint: generate one with `openssl rand -hex 32`", path.display())]
    TooShort { path: PathBuf },
}

/// The webhooks' secrets, and the event IDs accepted recently (kept in the
/// store, so a replay to any replica is refused).
pub(crate) struct Webhooks {
    alertmanager_token: Option<Secret>,
    pagerduty_secret: Option<Secret>,
    deliveries: Deliveries,
    /// One delivery changes incidents at a time, so two deliveries of the
    /// same alert cannot both open it.
    apply: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field("alertmanager", &self.alertmanager_token.is_some())
            .field("pagerduty", &self.pagerduty_secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Reads the configured secret files (mode 0600 or stricter).
    pub(crate) fn load(files: &WebhookFiles, deliveries: Deliveries) -> Result<Self, LoadError> {
        Ok(Self {
            alertmanager_token: files
                .alertmanager_token
                .as_deref()
                .map(read_secret)
                .transpose()?,
            pagerduty_secret: files
                .pagerduty_secret
                .as_deref()
                .map(read_secret)
                .transpose()?,
            deliveries,
            apply: tokio::sync::Mutex::new(()),
        })
    }
}

/// Reads a shared secret from a file only its owner may read (also used for
/// the notification webhook's signing secret).
pub(crate) fn read_secret(path: &Path) -> Result<Secret, LoadError> {
    let read = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mode = file.metadata().map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(LoadError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(read)?;
    let value = text.trim();
    if value.len() < MIN_SECRET_LEN {
        return Err(LoadError::TooShort {
            path: path.to_owned(),
        });
    }
    Ok(Secret::new(value.to_owned()))
}

/// Proof that a body came from a configured sender: only [`check_token`]
/// and [`check_signature`] build one, and only parsing takes one.
#[derive(Debug)]
struct AuthenticatedBody<'a>(&'a [u8]);

/// Why a delivery was refused (401, audited as `webhook.refused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    MissingToken,
    BadToken,
    MissingSignature,
    BadSignature,
    StaleEvent,
    ReplayedEvent,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing-token",
            Refusal::BadToken => "bad-token",
            Refusal::MissingSignature => "missing-signature",
            Refusal::BadSignature => "bad-signature",
            Refusal::StaleEvent => "stale-event",
            Refusal::ReplayedEvent => "replayed-event",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::MissingToken => {
                "send the shared token as `Authorization: Bearer TOKEN` (Alertmanager: http_config.authorization)"
            }
            Refusal::BadToken => "the bearer token is not the one configured for this webhook",
            Refusal::MissingSignature => "the delivery has no `X-PagerDuty-Signature: v1=...`",
            Refusal::BadSignature => {
                "no signature in X-PagerDuty-Signature matches the body and the configured secret"
            }
            Refusal::StaleEvent => {
                "the event occurred more than 10 minutes ago, or in the future; check the clocks"
            }
            Refusal::ReplayedEvent => "this event was already delivered",
        }
    }
}

/// True when `a` and `b` are equal, in time independent of where they differ
/// and of their lengths (both are hashed to 32 bytes first).
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    let tag = |bytes: &[u8]| {
        // INVARIANT: HMAC takes keys of any length.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"shiftkey webhook token comparison")
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(bytes);
        mac
    };
    tag(a).verify_slice(&tag(b).finalize().into_bytes()).is_ok()
}

/// Alertmanager's `Authorization: Bearer TOKEN` against the configured token.
fn check_token<'a>(
    token: &Secret,
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<AuthenticatedBody<'a>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Refusal::MissingToken);
    };
    let presented = value
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .ok_or(Refusal::BadToken)?;
    if equal_in_constant_time(presented.trim_ascii(), token.expose().as_bytes()) {
        Ok(AuthenticatedBody(body))
    } else {
        Err(Refusal::BadToken)
    }
}

/// The `v1=` signatures of an `X-PagerDuty-Signature` header, decoded.
/// Other versions and malformed entries are skipped; at most
/// [`MAX_SIGNATURES`] are returned.
fn parse_signatures(header: &str) -> Vec<[u8; 32]> {
    header
        .split(',')
        .filter_map(|entry| entry.trim().strip_prefix("v1="))
        .filter_map(|hex_sig| {
            let mut sig = [0u8; 32];
            hex::decode_to_slice(hex_sig.trim(), &mut sig).ok()?;
            Some(sig)
        })
        .take(MAX_SIGNATURES)
        .collect()
}

/// PagerDuty's signature: HMAC-SHA256 of the raw body with the
/// subscription's secret; one matching `v1=` signature suffices.
fn check_signature<'a>(
    secret: &Secret,
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<AuthenticatedBody<'a>, Refusal> {
    let signatures: Vec<[u8; 32]> = headers
        .get_all(PAGERDUTY_SIGNATURE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_signatures)
        .take(MAX_SIGNATURES)
        .collect();
    if signatures.is_empty() {
        return Err(Refusal::MissingSignature);
    }
    // INVARIANT: HMAC takes keys of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    // `verify_slice` compares in constant time.
    if signatures
        .iter()
        .any(|sig| mac.clone().verify_slice(sig).is_ok())
    {
        Ok(AuthenticatedBody(body))
    } else {
        Err(Refusal::BadSignature)
    }
}

/// Audits a refused delivery and returns the 401 to answer with.
async fn refuse(
    audit: &Audit,
    caller: &Caller,
    refusal: Refusal,
    body: &[u8],
    mut detail: Value,
) -> ApiError {
    tracing::warn!(webhook = %caller, reason = refusal.code(), "webhook refused");
    if let Some(map) = detail.as_object_mut() {
        map.insert("reason".into(), json!(refusal.code()));
        map.insert(
            "body_sha256".into(),
            json!(hex::encode(Sha256::digest(body))),
        );
    }
    let error = ApiError::WebhookRefused {
        code: refusal.code(),
        message: refusal.message().to_owned(),
    };
    audit
        .refuse(
            "webhook.refused",
            caller.identity(),
            Outcome::Deny,
            error,
            detail,
        )
        .await
}

fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::InvalidBody(rejection.body_text())
        }
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &AuthenticatedBody<'_>) -> Result<T, ApiError> {
    serde_json::from_slice(body.0).map_err(|e| ApiError::InvalidBody(e.to_string()))
}

/// A title `open_incident` accepts: control characters become spaces, and
/// the other characters that could hide or reorder text (bidi, zero-width)
/// their visible markers (an alert is never dropped for its title), at
/// most [`MAX_TITLE_BYTES`], `None` when nothing is left.
fn clean_title(raw: &str) -> Option<String> {
    let spaced: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let spaced = crate::free_text::marked(&spaced);
    let mut title = String::new();
    for c in spaced.trim().chars() {
        if title.len() + c.len_utf8() > MAX_TITLE_BYTES {
            break;
        }
        title.push(c);
    }
    let title = title.trim_end();
    (!title.is_empty()).then(|| title.to_owned())
}

// ---------------------------------------------------------------------------
// Alertmanager

/// Alertmanager's webhook payload (version 4); fields we do not use are
/// ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertmanagerPayload {
    version: String,
    #[serde(default)]
    group_key: String,
    alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: DateTime<Utc>,
    fingerprint: String,
}

/// What one alert asks for, once checked.
#[derive(Debug, PartialEq, Eq)]
enum AlertAction {
    Fire {
        /// `AM-<first 12 hex digits of the fingerprint>`.
        base_id: String,
        title: String,
        severity: u8,
        starts_at: DateTime<Utc>,
        alert_key: String,
    },
    Resolve {
        base_id: String,
        /// The firing it ends: `FINGERPRINT@STARTS_AT`.
        alert_key: String,
    },
}

/// Names one firing of an alert: Alertmanager sends the same `startsAt`
/// with every notification of a firing, firing or resolved, and a new one
/// when the alert fires again.
fn alert_key(fingerprint: &str, starts_at: DateTime<Utc>) -> String {
    format!(
        "{}@{}",
        fingerprint.to_ascii_lowercase(),
        starts_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    )
}

/// Alertmanager's `severity` label as a severity: critical → sev1,
/// high/error → sev2, warning → sev3, anything else or none → sev4.
fn alert_severity(label: Option<&str>) -> u8 {
    match label.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => 1,
        Some("high" | "error") => 2,
        Some("warning") => 3,
        _ => 4,
    }
}

fn alert_action(alert: &Alert) -> Result<AlertAction, ApiError> {
    let fingerprint = alert.fingerprint.trim();
    let base_id = match fingerprint.get(..12) {
        Some(prefix)
            if fingerprint.len() <= 64 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            format!("AM-{}", prefix.to_ascii_lowercase())
        }
        _ => {
            return Err(ApiError::InvalidBody(format!(
                "alert fingerprint {:?} is not 12 to 64 hex digits",
                fingerprint.chars().take(64).collect::<String>()
            )));
        }
    };
    match alert.status.as_str() {
        "firing" => {
            let title = [
                alert.annotations.get("summary"),
                alert.labels.get("alertname"),
            ]
            .into_iter()
            .flatten()
            .find_map(|t| clean_title(t))
            .unwrap_or_else(|| format!("Alertmanager alert {fingerprint}"));
            Ok(AlertAction::Fire {
                base_id,
                title,
                severity: alert_severity(alert.labels.get("severity").map(String::as_str)),
                starts_at: alert.starts_at,
                alert_key: alert_key(fingerprint, alert.starts_at),
            })
        }
        "resolved" => Ok(AlertAction::Resolve {
            base_id,
            alert_key: alert_key(fingerprint, alert.starts_at),
        }),
        other => Err(ApiError::InvalidBody(format!(
            "alert status {:?} is neither firing nor resolved",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

/// The latest incident opened for an alert, and the ID the next one would
/// take: `AM-<fp>`, then `AM-<fp>-2`, ... each time the alert fires again
/// after its incident was resolved.
async fn alert_episodes(
    incidents: &Incidents,
    base_id: &str,
) -> Result<(Option<Incident>, String), ApiError> {
    let mut latest = None;
    for n in 1..=MAX_EPISODES {
        let id = if n == 1 {
            base_id.to_owned()
        } else {
            format!("{base_id}-{n}")
        };
        match incidents.get(&id).await? {
            Some(incident) => latest = Some(incident),
            None => return Ok((latest, id)),
        }
    }
    Err(ApiError::Internal(format!(
        "alert {base_id} has fired {MAX_EPISODES} times; resolve it by hand"
    )))
}

async fn apply_alert(
    incidents: &Incidents,
    caller: &Caller,
    action: AlertAction,
) -> Result<Value, ApiError> {
    match action {
        AlertAction::Fire {
            base_id,
            title,
            severity,
            starts_at,
            alert_key,
        } => {
            let (latest, next_id) = alert_episodes(incidents, &base_id).await?;
            match latest {
                Some(open) if open.status == "open" => {
                    Ok(json!({ "incident": open.id, "outcome": "already-open" }))
                }
                // The same firing (a repeat, or an HA peer's copy) arriving
                // after the incident was resolved does not open it again;
                // the alert starting anew does.
                Some(resolved) if !started_after_resolution(starts_at, &resolved) => {
                    Ok(json!({ "incident": resolved.id, "outcome": "already-resolved" }))
                }
                _ => {
                    let incident = incidents
                        .open(
                            caller,
                            Some(next_id),
                            title,
                            severity,
                            "alertmanager",
                            Some(alert_key),
                        )
                        .await?;
                    Ok(json!({ "incident": incident.id, "outcome": "opened" }))
                }
            }
        }
        AlertAction::Resolve { base_id, alert_key } => {
            // The firing's own incident, and no other: a `resolved` that
            // arrives late must not end a newer firing of the same alert.
            if let Some(incident) = incidents.for_alert(&alert_key).await? {
                return if incident.status == "open" {
                    resolve(incidents, caller, &incident.id).await
                } else {
                    Ok(json!({ "incident": incident.id, "outcome": "not-open" }))
                };
            }
            match alert_episodes(incidents, &base_id).await?.0 {
                // Opened before the CA remembered firings: as it was then.
                Some(open)
                    if open.status == "open"
                        && incidents.alert_key_of(&open.id).await?.is_none() =>
                {
                    resolve(incidents, caller, &open.id).await
                }
                Some(other) if other.status == "open" => {
                    Ok(json!({ "incident": other.id, "outcome": "other-firing" }))
                }
                Some(closed) => Ok(json!({ "incident": closed.id, "outcome": "not-open" })),
                None => Ok(json!({ "incident": null, "outcome": "unknown" })),
            }
        }
    }
}

/// True when an alert that started at `starts_at` is a new episode, not the
/// one `resolved` was opened for. Unreadable times count as the same episode:
/// a webhook opens nothing it is unsure of.
fn started_after_resolution(starts_at: DateTime<Utc>, resolved: &Incident) -> bool {
    resolved
        .resolved_at
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| starts_at > at)
}

async fn resolve(incidents: &Incidents, caller: &Caller, id: &str) -> Result<Value, ApiError> {
    match incidents.resolve(caller, id).await {
        Ok(resolved) => Ok(json!({
            "incident": resolved.incident.id,
            "outcome": "resolved",
            "revoked_serials": resolved.revoked_serials,
        })),
        // Resolved by hand since we looked: nothing left to do.
        Err(incidents::Error::AlreadyResolved(_) | incidents::Error::ResolvedMeanwhile(_)) => {
            Ok(json!({ "incident": id, "outcome": "not-open" }))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /v1/webhooks/alertmanager`: firing alerts open an incident each
/// (one per fingerprint), resolved ones resolve it. Idempotent.
async fn alertmanager(
    State(webhooks): State<Arc<Webhooks>>,
    State(incidents): State<Arc<Incidents>>,
    State(audit): State<Audit>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Some(token) = &webhooks.alertmanager_token else {
        return Err(ApiError::WebhookNotConfigured("alertmanager"));
    };
    let caller = Caller::Webhook {
        source: "alertmanager",
    };
    let body = read_body(body)?;
    let body = match check_token(token, &headers, &body) {
        Ok(authenticated) => authenticated,
        Err(refusal) => return Err(refuse(&audit, &caller, refusal, &body, json!({})).await),
    };
    let payload: AlertmanagerPayload = parse(&body)?;
    if payload.version != "4" {
        return Err(ApiError::InvalidBody(format!(
            "payload version {:?}; this CA reads Alertmanager's version 4",
            payload.version.chars().take(16).collect::<String>()
        )));
    }
    // Every alert is checked before any changes anything.
    let actions = payload
        .alerts
        .iter()
        .map(|alert| Ok((alert.fingerprint.clone(), alert_action(alert)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let _one_at_a_time = webhooks.apply.lock().await;
    let mut results = Vec::with_capacity(actions.len());
    for (fingerprint, action) in actions {
        let mut result = apply_alert(&incidents, &caller, action).await?;
        if let Some(map) = result.as_object_mut() {
            map.insert("fingerprint".into(), json!(fingerprint));
        }
        results.push(result);
    }
    Ok(Json(
        json!({ "group_key": payload.group_key, "alerts": results }),
    ))
}

// ---------------------------------------------------------------------------
// PagerDuty

/// A PagerDuty v3 webhook delivery: `{"event": {...}}`.
#[derive(Debug, Deserialize)]
struct PagerDutyPayload {
    event: PagerDutyEvent,
}

#[derive(Debug, Deserialize)]
struct PagerDutyEvent {
    id: String,
    event_type: String,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    data: Value,
}

/// `event.data` of `incident.*` events.
#[derive(Debug, Deserialize)]
struct PagerDutyIncident {
    id: String,
    number: Option<u64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    priority: Option<PagerDutyPriority>,
}

#[derive(Debug, Deserialize)]
struct PagerDutyPriority {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl PagerDutyIncident {
    /// `PD-<number>`, or `PD-<id>` when the number is missing.
    fn incident_id(&self) -> Result<String, ApiError> {
        let id = match self.number {
            Some(number) => format!("PD-{number}"),
            None => format!("PD-{}", self.id),
        };
        if crate::issue::is_valid_name(&id) {
            Ok(id)
        } else {
            Err(ApiError::InvalidBody(format!(
                "PagerDuty incident id {:?} cannot name an incident",
                self.id.chars().take(64).collect::<String>()
            )))
        }
    }

    /// Priority P1 → sev1, P2 → sev2, P3 → sev3, P4/P5 → sev4; without a
    /// priority, urgency high → sev1, otherwise sev3.
    fn severity(&self) -> u8 {
        let priority = self
            .priority
            .as_ref()
            .and_then(|p| p.summary.as_deref().or(p.name.as_deref()))
            .map(|p| p.trim().to_ascii_uppercase());
        match priority.as_deref() {
            Some("P1") => 1,
            Some("P2") => 2,
            Some("P3") => 3,
            Some("P4" | "P5") => 4,
            _ if self.urgency.as_deref() == Some("high") => 1,
            _ => 3,
        }
    }
}

fn incident_data(event: &PagerDutyEvent) -> Result<PagerDutyIncident, ApiError> {
    PagerDutyIncident::deserialize(&event.data)
        .map_err(|e| ApiError::InvalidBody(format!("event.data: {e}")))
}

async fn apply_pagerduty(
    incidents: &Incidents,
    caller: &Caller,
    event: &PagerDutyEvent,
) -> Result<Value, ApiError> {
    match event.event_type.as_str() {
        "incident.triggered" => {
            let data = incident_data(event)?;
            let id = data.incident_id()?;
            if let Some(known) = incidents.get(&id).await? {
                let outcome = if known.status == "open" {
                    "already-open"
                } else {
                    "already-resolved"
                };
                return Ok(json!({ "incident": id, "outcome": outcome }));
            }
            let title = data
                .title
                .as_deref()
                .and_then(clean_title)
                .unwrap_or_else(|| format!("PagerDuty incident {id}"));
            let incident = incidents
                .open(caller, Some(id), title, data.severity(), "pagerduty", None)
                .await?;
            Ok(json!({ "incident": incident.id, "outcome": "opened" }))
        }
        "incident.resolved" => {
            let id = incident_data(event)?.incident_id()?;
            match incidents.get(&id).await? {
                Some(open) if open.status == "open" => resolve(incidents, caller, &id).await,
                Some(_) => Ok(json!({ "incident": id, "outcome": "not-open" })),
                None => Ok(json!({ "incident": null, "outcome": "unknown" })),
            }
        }
        // Acknowledgements, reassignments, pings...: nothing to do.
        _ => Ok(json!({ "incident": null, "outcome": "ignored" })),
    }
}

/// `POST /v1/webhooks/pagerduty`: signed `incident.triggered` opens
/// `PD-<number>`, `incident.resolved` resolves it.
async fn pagerduty(
    State(webhooks): State<Arc<Webhooks>>,
    State(incidents): State<Arc<Incidents>>,
    State(audit): State<Audit>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Some(secret) = &webhooks.pagerduty_secret else {
        return Err(ApiError::WebhookNotConfigured("pagerduty"));
    };
    let caller = Caller::Webhook {
        source: "pagerduty",
    };
    let body = read_body(body)?;
    let signed = match check_signature(secret, &headers, &body) {
        Ok(signed) => signed,
        Err(refusal) => return Err(refuse(&audit, &caller, refusal, &body, json!({})).await),
    };
    let PagerDutyPayload { event } = parse(&signed)?;
    if event.id.is_empty() || event.id.len() > 128 {
        return Err(ApiError::InvalidBody(
            "event.id must be 1 to 128 characters".into(),
        ));
    }
    let detail = json!({
        "event": event.id,
        "event_type": event.event_type.chars().take(64).collect::<String>(),
        "occurred_at": event.occurred_at.to_rfc3339(),
    });
    let now = Utc::now();
    // Only a late *trigger* is refused as stale: a late resolve still ends
    // access (refusing it would fail open); the signature and the replay set
    // still guard it.
    let closes = event.event_type == "incident.resolved";
    if (!closes && now - event.occurred_at > MAX_EVENT_AGE)
        || event.occurred_at - now > MAX_CLOCK_AHEAD
    {
        return Err(refuse(&audit, &caller, Refusal::StaleEvent, &body, detail).await);
    }
    let admission = webhooks
        .deliveries
        .admit(
            "pagerduty",
            &event.id,
            now.timestamp(),
            REPLAY_WINDOW.num_seconds(),
            MAX_RECENT_EVENTS,
        )
        .await
        .map_err(|e| ApiError::Internal(format!("the replay check could not be made: {e}")))?;
    match admission {
        Admission::New => {}
        Admission::Replayed => {
            return Err(refuse(&audit, &caller, Refusal::ReplayedEvent, &body, detail).await);
        }
        Admission::Full => {
            return Err(ApiError::Internal(format!(
                "more than {MAX_RECENT_EVENTS} PagerDuty events in {REPLAY_WINDOW_MINUTES} minutes; refusing until they age out"
            )));
        }
    }
    let applied = {
        let _one_at_a_time = webhooks.apply.lock().await;
        apply_pagerduty(&incidents, &caller, &event).await
    };
    match applied {
        Ok(mut result) => {
            if let Some(map) = result.as_object_mut() {
                map.insert("event".into(), json!(event.id));
            }
            Ok(Json(result))
        }
        Err(e) => {
            // Nothing changed: let PagerDuty's retry of this event through.
            if let Err(forget) = webhooks.deliveries.forget("pagerduty", &event.id).await {
                tracing::error!(error = %forget, event = %event.id, "cannot forget a failed delivery; PagerDuty's retry will be refused as a replay");
            }
            Err(e)
        }
    }
}

/// The fuzz target's entry point (`crate::fuzzing::webhook`); not an API.
#[doc(hidden)]
pub(crate) mod fuzzing;
#[cfg(test)]
mod tests;
