//! Outgoing notifications: the CA POSTs incidents opened and resolved,
//! revocations and break-glass use to one webhook URL (a chat relay, an
//! incident tool), as JSON signed with HMAC-SHA256 so the receiver can tell
//! they came from the CA.
//!
//! Fed by the event stream (`crate::events`), so what is announced is what
//! the audit log holds. With several replicas each follows the log; the
//! one that claims an event in the store sends it (`crate::deliveries`),
//! so the receiver gets it once. Delivery is best effort: three tries with
//! backoff, failures logged and counted, never blocking a decision (an
//! event whose claim cannot be made is sent anyway: a duplicate, which the
//! receiver can spot by `X-Shiftkey-Delivery`, rather than a loss).
//!
//! Wire format: `POST URL` with body `{"seq", "kind", "ts", "detail"}`,
//! headers `X-Shiftkey-Event: KIND`, `X-Shiftkey-Delivery: SEQ` and
//! `X-Shiftkey-Signature: sha256=HEX` (HMAC-SHA256 of the raw body with the
//! shared secret).

use std::sync::Arc;
use std::time::Duration;

use hmac::Mac;
use tokio::sync::broadcast::error::RecvError;

use crate::deliveries::Deliveries;
use crate::events::{CaEvent, EventFeed};
use crate::metrics::Metrics;
use crate::secret::Secret;

const TRIES: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Notifier {
    url: String,
    secret: Secret,
    http: reqwest::Client,
}

impl Notifier {
    pub(crate) fn new(url: String, secret: Secret) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()?;
        Ok(Self { url, secret, http })
    }

    /// `sha256=HEX` of `body`.
    pub(crate) fn signature(&self, body: &[u8]) -> String {
        sign(self.secret.expose().as_bytes(), body)
    }

    async fn deliver(&self, event: &CaEvent) -> Result<(), String> {
        let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        let signature = self.signature(&body);
        let mut last_error = String::new();
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
            let sent = self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-shiftkey-event", &event.kind)
                .header("x-shiftkey-delivery", event.seq.to_string())
                .header("x-shiftkey-signature", &signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last_error = format!("HTTP {}", response.status()),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(last_error)
    }
}

fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

// INVARIANT: `Hmac::new_from_slice` only fails for fixed-size-key MACs; HMAC
// takes any key length. A function rather than `expect` keeps the lint on.
#[allow(clippy::panic)]
fn unreachable_hmac() -> hmac::Hmac<sha2::Sha256> {
    panic!("HMAC-SHA256 accepts keys of any length")
}

/// Sends every event to the webhook until the CA stops.
pub(crate) async fn run(
    feed: Arc<EventFeed>,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    deliveries: Deliveries,
) {
    let mut events = feed.subscribe();
    loop {
        match events.recv().await {
            Ok(event) => {
                match deliveries.claim_notification(event.seq).await {
                    Ok(true) => {}
                    // Another replica sends this one.
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(seq = event.seq, error = %e, "cannot claim the notification; sending it anyway");
                    }
                }
                if let Err(e) = notifier.deliver(&event).await {
                    tracing::warn!(kind = %event.kind, seq = event.seq, error = %e, "notification not delivered");
                    metrics.notify_failures.inc();
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "notifications fell behind; some were not sent (they are in the audit log)"
                );
                metrics.notify_failures.inc_by(missed);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
