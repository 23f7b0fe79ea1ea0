//! What every domain service is built on: the store, the audit log's
//! writer, the policy in force, the CA keys and the metrics. Cheap to
//! clone; each service keeps one and adds the services it asks.

use std::sync::Arc;

use crate::audit::Audit;
use crate::current_policy::CurrentPolicy;
use crate::keys::CaKeys;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) audit: Audit,
    pub(crate) policy: Arc<CurrentPolicy>,
    pub(crate) keys: Arc<CaKeys>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Base {
    /// The next certificate serial. Reserving serials writes to the store
    /// the audit log lives in: when it cannot, nothing is signed and the
    /// caller answers as for an audit log that cannot be written.
    pub(crate) async fn next_serial(&self) -> Result<u64, crate::audit::Error> {
        Ok(self.store.next_serial().await?)
    }

    pub(crate) fn new(
        audit: Audit,
        policy: Arc<CurrentPolicy>,
        keys: Arc<CaKeys>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store: Arc::clone(audit.store()),
            audit,
            policy,
            keys,
            metrics,
        }
    }
}
