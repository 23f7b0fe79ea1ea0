//! The hops of a connection, and the session behind them.
//!
//! - The jump hop (`ssh -J bastion target`): the user authenticates with a
//!   certificate of the CA; the only channel allowed is direct-tcpip, whose
//!   stream the bastion terminates itself as the inner hop.
//! - The inner hop: an SSH server on that stream, presenting a host
//!   certificate for the target's name, authenticating the user as the login
//!   they asked for, and proxying its channels to the target.
//! - The single hop (`ssh 'login%target@bastion'`): the jump and inner hop in
//!   one.
//!
//! On the first channel of an inner or single hop the session is
//! established, once: the CA decides and mints the one-session certificate;
//! from then on the session is live, recorded, watched and, when it ends for
//! any reason (the upstream connection failing at once included), sealed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client;
use russh::keys::{Certificate, PrivateKey};
use shiftkey_wire::SessionRequest;

use crate::bastion::Bastion;
use crate::ca::{CallError, unix_now};
use crate::session::LiveSession;
use crate::target::{Route, TargetError};
use crate::upstream::Upstream;
use crate::verify::{VerifiedUser, verify_user_cert};

/// How long a session's channels have to stop writing before it is sealed.
const CHANNELS_STOP: Duration = Duration::from_secs(10);
/// How often the upstream connection is looked at.
const UPSTREAM_CHECK: Duration = Duration::from_millis(500);

/// Which hop a connection is.
#[derive(Debug, Clone)]
pub(crate) enum Hop {
    /// `ssh -J`: only direct-tcpip channels.
    Jump,
    /// Channels go to this target as `login`; a route that cannot be taken
    /// is told to the user on their first channel.
    Target {
        route: Result<Route, TargetError>,
        login: Option<String>,
    },
}

/// A session the CA authorized, with its connection to the target.
#[derive(Clone)]
pub(crate) struct Established {
    pub(crate) live: Arc<LiveSession>,
    pub(crate) upstream: Arc<client::Handle<Upstream>>,
}

impl std::fmt::Debug for Established {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("session", &self.live.id())
            .finish_non_exhaustive()
    }
}

/// A connection's session: not asked for yet, running, or refused (a
/// refusal sticks for the connection).
#[derive(Debug, Default)]
pub(crate) enum Session {
    #[default]
    NotYet,
    Live(Established),
    Refused(String),
}

/// Asks the CA, then connects to the target with the one-session
/// certificate; the error is what the user is told.
pub(crate) async fn establish(
    bastion: &Arc<Bastion>,
    user: &VerifiedUser,
    route: &Route,
    login: &str,
    client: SocketAddr,
) -> Result<Established, String> {
    let session_key = Arc::new(
        PrivateKey::random(
            &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
            ssh_key::Algorithm::Ed25519,
        )
        .map_err(|e| format!("cannot make a session key: {e}"))?,
    );
    let request = SessionRequest {
        user_certificate: user.certificate().to_openssh().map_err(|e| e.to_string())?,
        principal: login.to_owned(),
        target_host: route.name.to_string(),
        target_port: route.port,
        client_address: client.ip().to_string(),
        session_key: session_key
            .public_key()
            .to_openssh()
            .map_err(|e| e.to_string())?,
    };
    let started = Instant::now();
    let grant = bastion.ca.open_session(&request).await;
    bastion
        .metrics
        .authorization_latency
        .observe(started.elapsed().as_secs_f64());
    let grant = match grant {
        Ok(g) => g,
        Err(CallError::Refused(r)) => {
            bastion.metrics.refused(&r.code);
            return Err(format!(
                "access refused by the CA ({}): {}",
                r.code, r.message
            ));
        }
        Err(CallError::Other(e)) => {
            bastion.metrics.refused("ca-unavailable");
            return Err(format!(
                "the CA cannot be asked right now, so no session starts: {e}"
            ));
        }
    };
    let certificate = Certificate::from_openssh(&grant.certificate)
        .map_err(|e| format!("the CA's session certificate cannot be read: {e}"))?;
    let dir = bastion.recordings.join(&grant.session_id);
    let live = LiveSession::new(
        grant,
        login.to_owned(),
        route.label(),
        client.to_string(),
        certificate.serial(),
        dir.clone(),
        crate::recorder::Budget::new(bastion.sources.limits().max_recording_size),
    );
    tracing::info!(session = %live.id(), identity = %live.grant.identity, target = %live.target,
                   principal = %live.principal, "session authorized");
    // From here the CA holds a live session: whatever happens, it is sealed.
    bastion.add_live(&live);
    tokio::spawn(Arc::clone(&live).watchdog(user.valid_before()));
    tokio::spawn(
        Arc::clone(&live).recorder_loop(Arc::clone(&bastion.ca), Arc::clone(&bastion.metrics)),
    );
    tokio::spawn(close_when_ended(Arc::clone(bastion), Arc::clone(&live)));
    // Fail closed: our own check of the login stands whatever the CA said.
    if let Err(refusal) = verify_user_cert(
        &bastion.trust,
        user.certificate(),
        Some(login),
        client.ip(),
        unix_now(),
    ) {
        let why = format!("access refused: {refusal}");
        live.end(&why);
        return Err(why);
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        bastion.metrics.recording_failures.inc();
        tracing::error!(dir = %dir.display(), error = %e, "cannot create the recording directory");
        let why = "the session cannot be recorded, so it does not start".to_owned();
        live.end(&why);
        return Err(why);
    }
    let upstream = crate::upstream::connect(
        route,
        bastion.host_ca_keys(),
        login,
        session_key,
        certificate,
    )
    .await;
    let upstream = match upstream {
        Ok(u) => Arc::new(u),
        Err(e) => {
            let why = format!("cannot reach {}: {e}", route.label());
            tracing::warn!(session = %live.id(), %why, "upstream connection failed; ending the session");
            live.end(&why);
            return Err(why);
        }
    };
    tokio::spawn(watch_upstream(Arc::clone(&live), Arc::clone(&upstream)));
    Ok(Established { live, upstream })
}

/// Seals the session once it has ended and its channels have stopped.
async fn close_when_ended(bastion: Arc<Bastion>, live: Arc<LiveSession>) {
    live.close(&bastion.ca, CHANNELS_STOP).await;
    bastion.remove_live(live.id());
}

/// Ends the session when the target's connection is lost; disconnects it
/// when the session ends. Holding the handle keeps the connection up until
/// then, so a closed connection here is always the target's doing.
async fn watch_upstream(live: Arc<LiveSession>, upstream: Arc<client::Handle<Upstream>>) {
    loop {
        tokio::select! {
            () = live.ended() => break,
            () = tokio::time::sleep(UPSTREAM_CHECK) => {
                if upstream.is_closed() {
                    live.end(&format!("the connection to {} was lost", live.target));
                    break;
                }
            }
        }
    }
    let _ = upstream
        .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
        .await;
}
