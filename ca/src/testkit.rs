//! A CA's domain in a temporary directory for unit tests: the real SQLite
//! store, the real recording directory, fresh CA keys, a policy from text.

use std::sync::Arc;

use crate::audit::Audit;
use crate::current_policy::CurrentPolicy;
use crate::keys::{self, CaKeys, CaKind};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::recording_store::{LocalDirectory, RecordingStore};
use crate::store::{Access, Store};

#[derive(Debug)]
pub(crate) struct World {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bytes: Arc<dyn RecordingStore>,
    pub(crate) audit: Audit,
    pub(crate) keys: Arc<CaKeys>,
    pub(crate) policy: Arc<CurrentPolicy>,
}

impl World {
    /// What the domain services are built on, in this world.
    pub(crate) fn base(&self) -> crate::base::Base {
        crate::base::Base::new(
            self.audit.clone(),
            Arc::clone(&self.policy),
            Arc::clone(&self.keys),
            Arc::new(Metrics::new()),
        )
    }

    /// Needs a tokio runtime (the audit writer).
    pub(crate) fn new(policy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        keys::create(dir.path(), CaKind::User, None).unwrap();
        keys::create(dir.path(), CaKind::Host, None).unwrap();
        let keys =
            Arc::new(keys::open_both(dir.path(), &keys::KeySettings::default(), None).unwrap());
        let store =
            crate::store::open_sqlite(&dir.path().join("shiftkey.db"), Access::ReadWrite).unwrap();
        let bytes: Arc<dyn RecordingStore> =
            Arc::new(LocalDirectory::new(dir.path().join("recordings")));
        let audit = Audit::start(Arc::clone(&store));
        let policy = Arc::new(CurrentPolicy::new(
            Policy::parse(policy, "policy.toml").unwrap(),
            dir.path().join("policy.toml"),
            audit.clone(),
            Arc::new(Metrics::new()),
        ));
        Self {
            dir,
            store,
            bytes,
            audit,
            keys,
            policy,
        }
    }
}
