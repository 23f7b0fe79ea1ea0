//! Prometheus metrics at `/metrics` on `metrics_listen`.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct DirectionLabels {
    pub(crate) direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: String,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) sessions_open: Gauge,
    pub(crate) sessions_refused: Family<ReasonLabels, Counter>,
    logins_refused: Family<ReasonLabels, Counter>,
    connections_refused: Family<ReasonLabels, Counter>,
    channels_refused: Family<ReasonLabels, Counter>,
    requests_refused: Family<ReasonLabels, Counter>,
    pub(crate) bytes: Family<DirectionLabels, Counter>,
    /// Seconds the CA took to answer `POST /v1/sessions`.
    pub(crate) authorization_latency: Histogram,
    pub(crate) recording_failures: Counter,
    /// Unix time of the last completed flush round, for the lag gauge.
    last_flush: AtomicU64,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("shiftkey_bastion");
        let sessions_open = Gauge::default();
        let sessions_refused = Family::<ReasonLabels, Counter>::default();
        let logins_refused = Family::<ReasonLabels, Counter>::default();
        let connections_refused = Family::<ReasonLabels, Counter>::default();
        let channels_refused = Family::<ReasonLabels, Counter>::default();
        let requests_refused = Family::<ReasonLabels, Counter>::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        let authorization_latency = Histogram::new(exponential_buckets(0.000_5, 2.0, 14));
        let recording_failures = Counter::default();
        registry.register("sessions_open", "Sessions open now", sessions_open.clone());
        registry.register(
            "sessions_refused",
            "Sessions refused, by reason",
            sessions_refused.clone(),
        );
        registry.register(
            "logins_refused",
            "Logins refused, by reason (another CA's certificate, a plain key, revoked, ...)",
            logins_refused.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections dropped, by reason (unauthenticated connections per address, login grace time)",
            connections_refused.clone(),
        );
        registry.register(
            "channels_refused",
            "Channel opens refused, by the limit that stopped them",
            channels_refused.clone(),
        );
        registry.register(
            "requests_refused",
            "Channel requests refused, by reason (second program, env not accepted, pty not permitted, ...)",
            requests_refused.clone(),
        );
        registry.register(
            "session_bytes",
            "Bytes proxied, by direction (input: from users; output: from targets)",
            bytes.clone(),
        );
        registry.register(
            "authorization_seconds",
            "Time for the CA to authorize a session",
            authorization_latency.clone(),
        );
        registry.register(
            "recording_failures",
            "Recordings that could not be written (their sessions were ended)",
            recording_failures.clone(),
        );
        Self {
            registry,
            sessions_open,
            sessions_refused,
            logins_refused,
            connections_refused,
            channels_refused,
            requests_refused,
            bytes,
            authorization_latency,
            recording_failures,
            last_flush: AtomicU64::new(crate::ca::unix_now()),
        }
    }

    pub(crate) fn refused(&self, reason: &str) {
        self.sessions_refused
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn login_refused(&self, reason: &str) {
        Self::count(&self.logins_refused, reason);
    }

    pub(crate) fn connection_refused(&self, reason: &str) {
        Self::count(&self.connections_refused, reason);
    }

    pub(crate) fn channel_refused(&self, reason: &str) {
        Self::count(&self.channels_refused, reason);
    }

    pub(crate) fn request_refused(&self, reason: &str) {
        Self::count(&self.requests_refused, reason);
    }

    fn count(family: &Family<ReasonLabels, Counter>, reason: &str) {
        family
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn recording_flushed(&self) {
        self.last_flush
            .store(crate::ca::unix_now(), Ordering::Relaxed);
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        let lag = crate::ca::unix_now().saturating_sub(self.last_flush.load(Ordering::Relaxed));
        // Only meaningful while sessions are open; 0 otherwise.
        let lag = if self.sessions_open.get() > 0 { lag } else { 0 };
        let body = out.trim_end_matches("# EOF\n");
        format!(
            "{body}# HELP shiftkey_bastion_recording_lag_seconds Seconds since recordings were last flushed to disk.\n# TYPE shiftkey_bastion_recording_lag_seconds gauge\nshiftkey_bastion_recording_lag_seconds {lag}\n# EOF\n"
        )
    }
}
