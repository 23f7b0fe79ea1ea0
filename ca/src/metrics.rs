//! Prometheus metrics served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RoleLabels {
    pub(crate) role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DenyLabels {
    pub(crate) role: String,
    pub(crate) reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub(crate) kind: String,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) issued: Family<RoleLabels, Counter>,
    pub(crate) denied: Family<DenyLabels, Counter>,
    pub(crate) auth_failures: Family<KindLabels, Counter>,
    pub(crate) policy_reloads: Family<KindLabels, Counter>,
    /// Notifications that could not be delivered.
    pub(crate) notify_failures: Counter,
    /// Seconds from request received to answer, for `POST /v1/certificates`.
    pub(crate) issue_latency: Histogram,
    /// Bastion sessions authorized, by role.
    pub(crate) sessions: Family<RoleLabels, Counter>,
    /// Sessions sealed as lost (their bastion went silent).
    pub(crate) sessions_lost: Counter,
    /// Recordings retention deleted.
    pub(crate) recordings_deleted: Counter,
    /// Reports a bastion sent that the CA dropped without an audit row
    /// (a refused login whose certificate is not from this CA), by reason.
    pub(crate) reports_dropped: Family<KindLabels, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("shiftkey_ca");
        let issued = Family::<RoleLabels, Counter>::default();
        let denied = Family::<DenyLabels, Counter>::default();
        let auth_failures = Family::<KindLabels, Counter>::default();
        let policy_reloads = Family::<KindLabels, Counter>::default();
        let notify_failures = Counter::default();
        let sessions = Family::<RoleLabels, Counter>::default();
        let sessions_lost = Counter::default();
        let recordings_deleted = Counter::default();
        let reports_dropped = Family::<KindLabels, Counter>::default();
        registry.register(
            "sessions_lost",
            "Bastion sessions sealed as lost: their bastion stopped naming them",
            sessions_lost.clone(),
        );
        registry.register(
            "recordings_deleted",
            "Sealed recordings deleted by retention",
            recordings_deleted.clone(),
        );
        registry.register(
            "bastion_reports_dropped",
            "Bastion reports dropped without an audit row, by reason",
            reports_dropped.clone(),
        );
        registry.register(
            "sessions_authorized",
            "Bastion sessions the CA authorized, by role",
            sessions.clone(),
        );
        // 50 µs .. ~1.6 s
        let issue_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "notifications_failed",
            "Notifications the webhook did not accept after retries",
            notify_failures.clone(),
        );
        registry.register(
            "certificates_issued",
            "User certificates issued, by role",
            issued.clone(),
        );
        registry.register(
            "certificates_denied",
            "Certificate requests denied, by role and reason",
            denied.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests whose caller could not be authenticated, by reason",
            auth_failures.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy reloads, by result (ok, invalid)",
            policy_reloads.clone(),
        );
        registry.register(
            "issue_latency_seconds",
            "Time to answer POST /v1/certificates, including the durable audit commit",
            issue_latency.clone(),
        );
        Self {
            registry,
            notify_failures,
            issued,
            denied,
            auth_failures,
            policy_reloads,
            issue_latency,
            sessions,
            sessions_lost,
            recordings_deleted,
            reports_dropped,
        }
    }

    pub(crate) fn deny(&self, role: &str, reason: &str) {
        self.denied
            .get_or_create(&DenyLabels {
                role: role.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Prometheus text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
