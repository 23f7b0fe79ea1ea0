//! Running the CA: load keys, policy and store, then serve the API over HTTPS
//! and the local socket until told to stop. SIGHUP reloads the policy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::audit::{Audit, Event, Outcome};
use crate::base::Base;
use crate::config::Config;
use crate::current_policy::CurrentPolicy;
use crate::events::EventFeed;
use crate::hosts::Hosts;
use crate::http::error::ApiError;
use crate::http::{AppState, Authenticator, LocalPeer, Webhooks};
use crate::identity::{Caller, local_user_name};
use crate::incidents::Incidents;
use crate::issuance::Issuance;
use crate::listen::Slots;
use crate::metrics::Metrics;
use crate::oidc::OidcVerifier;
use crate::oncall::OnCall;
use crate::policy::Policy;
use crate::recordings::Recordings;
use crate::requests::Requests;
use crate::revocation::Krl;
use crate::secret::Secret;
use crate::sessions::Sessions;
use crate::ui::{LoginKey, SignIn, UiState};
use crate::web_sessions::WebSessions;

/// How long slow clients get to send their request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    Keys(#[from] crate::signer::Error),
    #[error("the key-opening thread stopped: {0}")]
    Join(String),
    #[error("the policy is invalid:\n{0}\nhint: fix it and check with `shiftkey-ca policy check`")]
    Policy(String),
    #[error(transparent)]
    Store(#[from] crate::store::OpenError),
    #[error("recordings: {0}")]
    Recordings(String),
    #[error(transparent)]
    Audit(#[from] crate::audit::Error),
    #[error(transparent)]
    UiKey(#[from] crate::ui::KeyError),
    #[error("OIDC: {0}\nhint: check [oidc] issuer in ca.toml and that the issuer is reachable")]
    Oidc(String),
    #[error("review UI client secret: {0}\nhint: see docs/ui.md, \"Configure it\"")]
    UiSecret(String),
    #[error("{path}: {message}")]
    Socket { path: PathBuf, message: String },
    #[error(transparent)]
    Tls(#[from] crate::tls::LoadError),
    #[error("notifications: {0}")]
    Notifications(String),
    #[error(transparent)]
    Webhooks(#[from] crate::http::webhooks::LoadError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A CA that is serving. Dropping it does not stop it; call `shutdown`.
#[derive(Debug)]
pub(crate) struct Running {
    policy: Arc<CurrentPolicy>,
    audit: Audit,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) socket: Option<PathBuf>,
    stop_listeners: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The event poller and the notifier: they run until aborted at shutdown.
    background: Vec<tokio::task::JoinHandle<()>>,
    signals: Signals,
    /// Held while the CA runs: one CA per data directory.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Signal handlers, installed before anything else at start-up so that a
/// SIGHUP sent while the CA loads is a reload request, not a kill.
#[derive(Debug)]
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Takes `DIR/ca.lock` so that two CAs never serve one data directory (they
/// would fight over its socket and its recordings).
fn lock_data_dir(data_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, StartError> {
    let path = data_dir.join("ca.lock");
    let err = |message: String| StartError::Socket {
        path: path.clone(),
        message,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(format!("cannot open the lock file: {e}")))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        err("another shiftkey-ca is running with this data directory; stop it first".into())
    })
}

/// Loads everything from `data_dir`/`config_path` and starts serving.
pub(crate) async fn start(
    data_dir: &Path,
    config_path: &Path,
    passphrase: Option<&Secret>,
) -> Result<Running, StartError> {
    let signals = Signals::install().map_err(|e| StartError::Socket {
        path: PathBuf::from("(signals)"),
        message: format!("cannot install signal handlers: {e}"),
    })?;
    let lock = lock_data_dir(data_dir)?;
    let config = Config::load(config_path, data_dir)?;
    let keys = {
        let data_dir = data_dir.to_owned();
        let settings = config.keys.clone();
        let passphrase = passphrase.map(|p| Secret::new(p.expose().to_owned()));
        // Logging into a token blocks: off the async workers.
        tokio::task::spawn_blocking(move || {
            crate::keys::open_both(&data_dir, &settings, passphrase.as_ref())
        })
        .await
        .map_err(|e| StartError::Join(e.to_string()))??
    };
    let policy_path = config.policy_path.clone();
    let policy = {
        let path = policy_path.clone();
        tokio::task::spawn_blocking(move || Policy::load(&path))
            .await
            .map_err(|e| StartError::Policy(e.to_string()))?
            .map_err(|e| StartError::Policy(e.to_string()))?
    };
    let store = crate::store::open(&config.store, crate::store::Access::ReadWrite).await?;
    // The keys in force are what the store's rotation rows say (ca.toml's
    // keys until the first `keys rotate`), followed while serving.
    let keys = Arc::new(crate::keys::CaKeys::follow(
        keys,
        Arc::clone(&store),
        data_dir,
        &config.keys,
        passphrase.map(|p| Secret::new(p.expose().to_owned())),
    ));
    keys.reload()
        .await
        .map_err(|e| StartError::Join(format!("cannot open the CA keys the store names: {e}")))?;
    let audit = Audit::start(Arc::clone(&store));
    let metrics = Arc::new(Metrics::new());
    let policy = Arc::new(CurrentPolicy::new(
        policy,
        policy_path.clone(),
        audit.clone(),
        Arc::clone(&metrics),
    ));
    let oidc = match &config.oidc {
        Some(settings) => {
            let verifier = OidcVerifier::discover(settings.clone())
                .await
                .map_err(|e| StartError::Oidc(e.to_string()))?;
            Some((Arc::new(verifier), settings.audience.clone()))
        }
        None => None,
    };
    let base = Base::new(
        audit.clone(),
        Arc::clone(&policy),
        Arc::clone(&keys),
        Arc::clone(&metrics),
    );
    let state = services(
        &config,
        &base,
        oidc.clone(),
        crate::recording_store::open(&config.recordings).map_err(StartError::Recordings)?,
    )?;
    // The UI's own client, when it is not the CLI's: its ID tokens carry
    // its client ID as audience, so they get a verifier of their own.
    let (ui_verifier, ui_secret) = match (
        config.ui.as_ref().and_then(|u| u.oidc.as_ref()),
        &config.oidc,
        &oidc,
    ) {
        (Some(ui_oidc), Some(settings), Some((verifier, _))) => {
            let secret = crate::ui::load_client_secret(ui_oidc).map_err(StartError::UiSecret)?;
            let verifier = if ui_oidc.client_id == settings.audience {
                Arc::clone(verifier)
            } else {
                let mut own = settings.clone();
                own.audience = ui_oidc.client_id.clone();
                Arc::new(
                    OidcVerifier::discover(own)
                        .await
                        .map_err(|e| StartError::Oidc(e.to_string()))?,
                )
            };
            (Some(verifier), secret)
        }
        _ => (None, None),
    };
    let ui = UiState {
        signin: match config.ui.clone() {
            Some(settings) => Some(Arc::new(SignIn::new(
                settings,
                ui_verifier,
                ui_secret,
                LoginKey::load_or_create(data_dir)?,
                WebSessions::new(Arc::clone(&store)),
                Arc::clone(&policy),
                audit.clone(),
            ))),
            None => None,
        },
        policy: Arc::clone(&policy),
        audit: audit.clone(),
        recordings: Arc::clone(&state.recordings),
        requests: Arc::clone(&state.requests),
        incidents: Arc::clone(&state.incidents),
        oncall: Arc::clone(&state.oncall),
    };
    audit
        .record(Event::new(
            "ca.started",
            "system",
            Outcome::Info,
            json!({
                "user_ca": keys.user().fingerprint(),
                "host_ca": keys.host().fingerprint(),
                "user_ca_location": keys.user().location().to_string(),
                "host_ca_location": keys.host().location().to_string(),
                "policy": policy_path.display().to_string(),
                "listen": config.listen.to_string(),
                "tls": config.tls.is_some(),
                "oidc_issuer": config.oidc.as_ref().map(|o| o.issuer.clone()),
            }),
        ))
        .await?;
    let events = Arc::clone(&state.events);
    let recordings = Arc::clone(&state.recordings);
    let local_audit = audit.clone();
    let app = crate::http::app(state, crate::ui::routes(ui), config.request_timeout);
    let mut tasks = Vec::new();
    let tls = config.tls.is_some();
    let listen_error = |source| StartError::Listen {
        addr: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    // Both listeners bounded (see listen.rs); their idle reapers run until
    // shutdown.
    let listeners = if config.socket.is_some() { 2 } else { 1 };
    let cap = crate::listen::cap_per_listener(listeners);
    let tcp_slots = Slots::new("tcp", cap, crate::listen::IDLE_TIMEOUT);
    let mut background = vec![tokio::spawn(tcp_slots.clone().reap_forever())];
    let rustls = match &config.tls {
        Some(files) => Some(crate::tls::server_config(&files.cert, &files.key)?),
        None => None,
    };
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    http1_only_with_timeouts(&mut builder);
    let (stop_listeners, stopped) = watch::channel(false);
    // The peer's address (`ConnectInfo<SocketAddr>`): one-time sign-in
    // links work from loopback only.
    tasks.push(tokio::spawn(crate::listen::serve_tcp(
        listener,
        tcp_slots,
        builder.clone(),
        app.clone(),
        rustls,
        stopped.clone(),
        SHUTDOWN_GRACE,
    )));
    if let Some(path) = &config.socket {
        let listener = bind_socket(path).await?;
        let local_app = app.layer(middleware::from_fn_with_state(local_audit, local_peer));
        let socket_slots = Slots::new("unix", cap, crate::listen::IDLE_TIMEOUT);
        background.push(tokio::spawn(socket_slots.clone().reap_forever()));
        tasks.push(tokio::spawn(crate::listen::serve_unix(
            listener,
            socket_slots,
            builder,
            local_app,
            stopped.clone(),
            SHUTDOWN_GRACE,
        )));
    }
    tracing::info!(
        addr = %addr,
        scheme = if tls { "https" } else { "http" },
        socket = ?config.socket,
        user_ca = keys.user().fingerprint(),
        "shiftkey-ca serving"
    );
    // Tasks that run until aborted at shutdown (with the reapers above).
    if let Some(settings) = &config.notifications {
        let secret = crate::http::webhooks::read_secret(&settings.secret_file)
            .map_err(|e| StartError::Notifications(e.to_string()))?;
        let notifier = crate::notify::Notifier::new(settings.url.clone(), secret)
            .map_err(|e| StartError::Notifications(e.to_string()))?;
        background.push(tokio::spawn(crate::notify::run(
            Arc::clone(&events),
            Arc::clone(&metrics),
            notifier,
            crate::deliveries::Deliveries::new(Arc::clone(&store)),
        )));
    }
    background.push(tokio::spawn(crate::keys::follow_rotation(
        Arc::clone(&keys),
        events.subscribe(),
    )));
    background.push(tokio::spawn(events.follow()));
    // Every replica runs these; the store makes each seal and deletion once.
    background.push(tokio::spawn(Arc::clone(&recordings).watch_for_lost()));
    background.push(tokio::spawn(recordings.apply_retention_periodically()));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    Ok(Running {
        background,
        policy,
        audit,
        addr,
        tls,
        socket: config.socket.clone(),
        stop_listeners,
        tasks,
        signals,
        _lock: lock,
    })
}

impl Running {
    pub(crate) fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// Serves until SIGTERM or SIGINT, reloading the policy on SIGHUP.
    pub(crate) async fn run_until_signalled(mut self) -> std::io::Result<()> {
        loop {
            tokio::select! {
                _ = self.signals.hup.recv() => {
                    // The outcome is audited and logged inside.
                    let _ = self.policy.reload().await;
                }
                _ = self.signals.term.recv() => break,
                _ = self.signals.int.recv() => break,
            }
        }
        self.shutdown().await;
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish (and be audited),
    /// then records the stop as the log's last row.
    pub(crate) async fn shutdown(self) {
        tracing::info!("shutting down");
        for task in &self.background {
            task.abort();
        }
        let _ = self.stop_listeners.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), task).await;
        }
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
        let stopped = Event::new("ca.stopped", "system", Outcome::Info, json!({}));
        if let Err(e) = self.audit.record(stopped).await {
            tracing::error!(error = %e, "could not record the stop in the audit log");
        }
    }
}

/// The domain services and the API's state, wired together.
fn services(
    config: &Config,
    base: &Base,
    oidc: Option<(Arc<OidcVerifier>, String)>,
    recording_store: Arc<dyn crate::recording_store::RecordingStore>,
) -> Result<AppState, StartError> {
    let incidents = Arc::new(Incidents::new(base));
    let oncall = Arc::new(OnCall::new(base));
    let issuance = Arc::new(Issuance::new(
        base,
        Arc::clone(&incidents),
        Arc::clone(&oncall),
    ));
    Ok(AppState {
        keys: Arc::clone(&base.keys),
        policy: Arc::clone(&base.policy),
        metrics: Arc::clone(&base.metrics),
        audit: base.audit.clone(),
        auth: Arc::new(Authenticator::new(
            oidc,
            base.audit.clone(),
            Arc::clone(&base.metrics),
        )),
        requests: Arc::new(Requests::new(base, Arc::clone(&issuance))),
        issuance,
        krl: Arc::new(Krl::new(Arc::clone(&base.store), Arc::clone(&base.keys))),
        hosts: Arc::new(Hosts::new(base)),
        sessions: Arc::new(Sessions::new(base, Arc::clone(&incidents))),
        recordings: Arc::new(Recordings::new(
            base,
            recording_store,
            config.recording_limits,
        )),
        events: Arc::new(EventFeed::new(Arc::clone(&base.store))),
        webhooks: Arc::new(Webhooks::load(
            &config.webhooks,
            crate::deliveries::Deliveries::new(Arc::clone(&base.store)),
        )?),
        incidents,
        oncall,
    })
}

/// HTTP/1.1 only, and clients must send their request headers within
/// `HEADER_READ_TIMEOUT` (slowloris), on both listeners.
fn http1_only_with_timeouts(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
) {
    *builder = builder.clone().http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
}

/// Binds the local socket, replacing a stale one but never a live CA's.
async fn bind_socket(path: &Path) -> Result<UnixListener, StartError> {
    let err = |message: String| StartError::Socket {
        path: path.to_owned(),
        message,
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(err(
                "another shiftkey-ca is already serving on this socket; stop it first".into(),
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| err(format!("cannot bind: {e}")))?;
    // Anyone who can reach the socket may ask; the kernel tells us who they
    // are and the policy decides. Restrict reach with the directory's mode.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .map_err(|e| err(format!("cannot set permissions: {e}")))?;
    Ok(listener)
}

/// The peer of a local-socket connection, from `SO_PEERCRED`.
#[derive(Debug, Clone)]
pub(crate) struct UnixPeer {
    pub(crate) uid: Option<u32>,
}

async fn local_peer(
    State(audit): State<Audit>,
    ConnectInfo(peer): ConnectInfo<UnixPeer>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = peer
        .uid
        .and_then(|uid| local_user_name(uid).map(|user| Caller::Local { user, uid }));
    match caller {
        Some(caller) if crate::identity::is_safe_token(&caller.identity()) => {
            request.extensions_mut().insert(LocalPeer(caller));
            next.run(request).await
        }
        _ => {
            let error = ApiError::Unauthenticated {
                code: "unknown-local-user",
                message: "the local socket could not identify your user (no passwd entry, or an unusable name)".into(),
            };
            let actor = peer.uid.map_or_else(
                || "local-uid:unknown".to_owned(),
                |uid| format!("local-uid:{uid}"),
            );
            let detail = json!({ "path": request.uri().path() });
            audit
                .refuse("auth.failed", actor, Outcome::Deny, error, detail)
                .await
                .into_response()
        }
    }
}
