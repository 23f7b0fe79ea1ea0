//! Follows the CA's event stream (`GET /v1/events`, server-sent events) and
//! ends live sessions whose access has ended: a certificate revoked (the
//! user's or the session's), an incident resolved. Reconnects with
//! `Last-Event-ID`, so nothing is missed across a CA restart.

use std::sync::Arc;
use std::time::Duration;

use crate::bastion::Bastion;

/// Runs forever.
pub(crate) async fn follow(bastion: Arc<Bastion>) {
    let mut last: u64 = 0;
    loop {
        match stream_once(&bastion, &mut last).await {
            Ok(()) => tracing::debug!("event stream ended; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "event stream from the CA failed; reconnecting"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn stream_once(bastion: &Bastion, last: &mut u64) -> anyhow::Result<()> {
    let path = format!("/v1/events?since={last}");
    let mut response = bastion.ca.get(&path)?.send().await?.error_for_status()?;
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        // Events are separated by a blank line.
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    handle(bastion, data.trim(), last);
                }
            }
        }
    }
    Ok(())
}

fn handle(bastion: &Bastion, data: &str, last: &mut u64) {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(data) else {
        return;
    };
    if let Some(seq) = event["seq"].as_u64() {
        *last = (*last).max(seq);
    }
    let detail = &event["detail"];
    match event["kind"].as_str() {
        Some("certificate.revoked") => {
            let serials: Vec<u64> = detail["serials"]
                .as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                .unwrap_or_default();
            bastion.trust.revoke(serials.iter().copied());
            let reason = detail["reason"].as_str().unwrap_or("revoked");
            bastion.end_sessions(&format!("your certificate was revoked ({reason})"), |s| {
                serials.contains(&s.grant.user_serial) || serials.contains(&s.session_serial)
            });
        }
        Some("identity.locked") => {
            if let Some(identity) = detail["identity"].as_str() {
                let serials: Vec<u64> = detail["serials"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                    .unwrap_or_default();
                bastion.trust.revoke(serials);
                bastion.end_sessions("an operator locked your access", |s| {
                    s.grant.identity == identity
                });
            }
        }
        Some("incident.resolved") => {
            if let Some(id) = detail["incident"].as_str() {
                bastion.end_sessions(&format!("incident {id} was resolved"), |s| {
                    s.grant.incident.as_deref() == Some(id)
                });
            }
        }
        _ => {}
    }
}
