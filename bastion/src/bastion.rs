//! What every connection shares: the bastion's key and its CA client, the
//! trust in user certificates, the configuration's targets, limits and env
//! allow-list, the certificates it presents for target names, and the live
//! sessions (for the event follower and the heartbeat).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::{Certificate, PrivateKey, PublicKey};
use russh::server;
use russh::{MethodKind, MethodSet};

use crate::auth::LoginRefusals;
use crate::ca::{CaClient, CallError, unix_now};
use crate::config::{AcceptEnv, Config};
use crate::limits::Sources;
use crate::metrics::Metrics;
use crate::session::LiveSession;
use crate::target::{TargetName, Targets};
use crate::verify::Trust;

/// Renew a cached presented certificate when less than this is left.
const PRESENT_MARGIN: u64 = 300;

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Bastion {
    pub(crate) key: Arc<PrivateKey>,
    pub(crate) ca: Arc<CaClient>,
    pub(crate) trust: Arc<Trust>,
    pub(crate) host_ca_keys: Mutex<Vec<PublicKey>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) recordings: std::path::PathBuf,
    pub(crate) targets: Targets,
    pub(crate) accept_env: Arc<AcceptEnv>,
    pub(crate) sources: Arc<Sources>,
    pub(crate) refusals: LoginRefusals,
    /// Certificates for the bastion's key under target names.
    presented: Mutex<HashMap<TargetName, Certificate>>,
    /// Live sessions by ID, for the event follower and the heartbeat.
    live: Mutex<HashMap<String, Arc<LiveSession>>>,
}

impl Bastion {
    pub(crate) fn new(
        key: Arc<PrivateKey>,
        ca: Arc<CaClient>,
        trust: Arc<Trust>,
        host_ca_keys: Vec<PublicKey>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        Self {
            key,
            ca,
            trust,
            host_ca_keys: Mutex::new(host_ca_keys),
            metrics,
            recordings: config.recordings_dir.clone(),
            targets: config.targets.clone(),
            accept_env: Arc::new(config.accept_env.clone()),
            sources: Sources::new(config.limits),
            refusals: LoginRefusals::default(),
            presented: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The server config for a hop: our key, publickey only, and the host
    /// certificate to present (our own for the jump hop, the target's name
    /// for the inner hop).
    pub(crate) fn server_config(&self, certificate: Certificate) -> Arc<server::Config> {
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::PublicKey);
        Arc::new(server::Config {
            methods,
            keys: vec![(*self.key).clone()],
            certificates: vec![certificate],
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::from_millis(0)),
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            nodelay: true,
            ..Default::default()
        })
    }

    /// A host certificate for `target`, from the cache or the CA.
    pub(crate) async fn present(&self, target: &TargetName) -> Result<Certificate, CallError> {
        let cached = self
            .presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(target)
            .filter(|c| c.valid_before() > unix_now() + PRESENT_MARGIN)
            .cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let cert = self.ca.present(target.as_str()).await?;
        self.presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(target.clone(), cert.clone());
        Ok(cert)
    }

    pub(crate) fn host_ca_keys(&self) -> Vec<PublicKey> {
        self.host_ca_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A session the CA authorized: known until it is sealed.
    pub(crate) fn add_live(&self, session: &Arc<LiveSession>) {
        self.live()
            .insert(session.id().to_owned(), Arc::clone(session));
        self.metrics.sessions_open.inc();
    }

    pub(crate) fn remove_live(&self, id: &str) {
        if self.live().remove(id).is_some() {
            self.metrics.sessions_open.dec();
        }
    }

    /// The IDs of the sessions running now.
    pub(crate) fn live_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.live().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Ends every live session `matches` picks, with `reason`.
    pub(crate) fn end_sessions(&self, reason: &str, matches: impl Fn(&LiveSession) -> bool) {
        for session in self.live().values().filter(|s| matches(s)) {
            tracing::info!(session = %session.id(), %reason, "ending session");
            session.end(reason);
        }
    }
}
