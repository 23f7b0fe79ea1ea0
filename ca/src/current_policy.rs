//! The policy in force: read by every decision, replaced whole on reload.
//!
//! Never: replace a valid policy with an invalid one; reload without an
//! audit row saying which happened.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::json;

use crate::audit::{self, Audit, Event, Outcome};
use crate::metrics::{KindLabels, Metrics};
use crate::policy::Policy;

/// Why a reload did not put a new policy in force.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    /// The file is invalid; the current policy stays.
    #[error("the new policy is invalid:\n{0}")]
    Invalid(String),
    #[error("the policy loader failed: {0}")]
    Loader(String),
    #[error(transparent)]
    Audit(#[from] audit::Error),
}

#[derive(Debug)]
pub(crate) struct CurrentPolicy {
    policy: RwLock<Arc<Policy>>,
    path: PathBuf,
    audit: Audit,
    metrics: Arc<Metrics>,
}

impl CurrentPolicy {
    pub(crate) fn new(policy: Policy, path: PathBuf, audit: Audit, metrics: Arc<Metrics>) -> Self {
        log_warnings(&policy, &path.display().to_string());
        Self {
            policy: RwLock::new(Arc::new(policy)),
            path,
            audit,
            metrics,
        }
    }

    pub(crate) fn get(&self) -> Arc<Policy> {
        // A panic while holding the lock cannot leave a half-written Arc.
        Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the policy file. A valid one replaces the current one; an
    /// invalid one is refused and the current one stays. Audited either way.
    pub(crate) async fn reload(&self) -> Result<(), ReloadError> {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || Policy::load(&path))
            .await
            .map_err(|e| ReloadError::Loader(e.to_string()))?;
        let shown = self.path.display().to_string();
        match loaded {
            Ok(policy) => {
                log_warnings(&policy, &shown);
                let warnings: Vec<String> =
                    policy.warnings().iter().map(ToString::to_string).collect();
                let detail =
                    json!({ "path": shown, "roles": policy.roles().count(), "warnings": warnings });
                self.audit
                    .record(Event::new(
                        "policy.reloaded",
                        "system",
                        Outcome::Info,
                        detail,
                    ))
                    .await?;
                *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
                self.count("ok");
                tracing::info!(path = %shown, "policy reloaded");
                Ok(())
            }
            Err(errors) => {
                let message = errors.to_string();
                let detail = json!({ "path": shown, "errors": message });
                self.audit
                    .record(Event::new(
                        "policy.reload_refused",
                        "system",
                        Outcome::Error,
                        detail,
                    ))
                    .await?;
                self.count("invalid");
                tracing::warn!(path = %shown, errors = %message, "new policy is invalid; keeping the current one");
                Err(ReloadError::Invalid(message))
            }
        }
    }

    fn count(&self, kind: &str) {
        self.metrics
            .policy_reloads
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }
}

/// What `policy check` would point out (suspicious host patterns, powers
/// nobody but admins hold), in the CA's log: not errors, but worth a look.
fn log_warnings(policy: &Policy, path: &str) {
    for warning in policy.warnings() {
        tracing::warn!(path = %path, warning = %warning, "policy warning");
    }
}
