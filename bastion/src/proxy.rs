//! The SSH front door. One handler type serves three hops:
//! - the jump hop (`ssh -J bastion target`): the user authenticates with a
//!   certificate of our CA; the only channel allowed is direct-tcpip, whose
//!   stream the bastion terminates itself as the inner hop;
//! - the inner hop: an SSH server on that stream, presenting a host
//!   certificate for the target's name, authenticating the user as the login
//!   they asked for, and proxying its channels to the target;
//! - the single hop (`ssh 'login%target@bastion'`), which is the jump and
//!   inner hop in one.
//!
//! Before the first channel reaches the target the CA authorizes the session
//! and mints the one-session certificate; every channel is recorded; the
//! session ends when the CA's events say its access has ended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::keys::{Certificate, PrivateKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, MethodKind, MethodSet};
use serde_json::json;
use shiftkey_wire::SessionRequest;

use crate::ca::{CaClient, CallError, unix_now};
use crate::metrics::{DirectionLabels, Metrics};
use crate::recorder::{Header, Kind, Recorder};
use crate::session::LiveSession;
use crate::sftp::SftpParser;
use crate::verify::{Trust, VerifiedUser, verify_user_cert};

/// Input a client may send before its shell, exec or sftp request.
const MAX_EARLY_INPUT: usize = 64 * 1024;
/// Renew a cached presented certificate when less than this is left.
const PRESENT_MARGIN: u64 = 300;

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Bastion {
    pub(crate) key: Arc<PrivateKey>,
    pub(crate) ca: Arc<CaClient>,
    pub(crate) trust: Arc<Trust>,
    pub(crate) host_ca_keys: Mutex<Vec<russh::keys::PublicKey>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) recordings: std::path::PathBuf,
    pub(crate) targets: std::collections::BTreeMap<String, String>,
    /// Certificates for the bastion's key under target names.
    presented: Mutex<HashMap<String, Certificate>>,
    /// Live sessions by ID, for the event follower.
    pub(crate) live: Mutex<HashMap<String, Arc<LiveSession>>>,
}

impl Bastion {
    pub(crate) fn new(
        key: Arc<PrivateKey>,
        ca: Arc<CaClient>,
        trust: Arc<Trust>,
        host_ca_keys: Vec<russh::keys::PublicKey>,
        metrics: Arc<Metrics>,
        recordings: std::path::PathBuf,
        targets: std::collections::BTreeMap<String, String>,
    ) -> Self {
        Self {
            key,
            ca,
            trust,
            host_ca_keys: Mutex::new(host_ca_keys),
            metrics,
            recordings,
            targets,
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
    async fn present(&self, target: &str) -> Result<Certificate, CallError> {
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
        let cert = self.ca.present(target).await?;
        self.presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(target.to_owned(), cert.clone());
        Ok(cert)
    }

    /// Ends every live session `matches` picks, with `reason`.
    pub(crate) fn end_sessions(&self, reason: &str, matches: impl Fn(&LiveSession) -> bool) {
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for session in live.values().filter(|s| matches(s)) {
            tracing::info!(session = %session.id(), %reason, "ending session");
            session.end(reason);
        }
    }
}

/// Which hop a connection is.
#[derive(Debug, Clone)]
enum Hop {
    /// `ssh -J`: only direct-tcpip channels.
    Jump,
    /// Channels go to this target as `login`.
    Target {
        host: String,
        port: u16,
        login: Option<String>,
    },
}

/// One SSH connection to the bastion.
pub(crate) struct Conn {
    bastion: Arc<Bastion>,
    client: SocketAddr,
    hop: Hop,
    user: Option<VerifiedUser>,
    /// The session with the target, once the CA authorized it.
    session: Option<Arc<LiveSession>>,
    upstream: Option<Arc<russh::client::Handle<crate::upstream::Upstream>>>,
    /// Why the CA or the target refused, shown on every channel the user opens.
    refused: Option<String>,
    channels: u32,
    /// Set when the connection ends, to seal the recording.
    ended: Arc<Mutex<Option<Arc<LiveSession>>>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("client", &self.client)
            .field("hop", &self.hop)
            .finish_non_exhaustive()
    }
}

impl Conn {
    pub(crate) fn outer(
        bastion: Arc<Bastion>,
        client: SocketAddr,
        ended: Arc<Mutex<Option<Arc<LiveSession>>>>,
    ) -> Self {
        Self {
            bastion,
            client,
            hop: Hop::Jump,
            user: None,
            session: None,
            upstream: None,
            refused: None,
            channels: 0,
            ended,
        }
    }

    fn inner(&self, host: String, port: u16, ended: Arc<Mutex<Option<Arc<LiveSession>>>>) -> Self {
        Self {
            bastion: Arc::clone(&self.bastion),
            client: self.client,
            hop: Hop::Target {
                host,
                port,
                login: None,
            },
            user: None,
            session: None,
            upstream: None,
            refused: None,
            channels: 0,
            ended,
        }
    }

    /// Asks the CA, then connects to the target with the one-session
    /// certificate. Once per connection; a refusal sticks.
    async fn establish(&mut self) -> Result<(), String> {
        if self.session.is_some() {
            return Ok(());
        }
        if let Some(why) = &self.refused {
            return Err(why.clone());
        }
        let result = self.try_establish().await;
        if let Err(why) = &result {
            self.refused = Some(why.clone());
        }
        result
    }

    async fn try_establish(&mut self) -> Result<(), String> {
        let Hop::Target {
            host,
            port,
            login: Some(login),
        } = self.hop.clone()
        else {
            return Err(
                "no target: use `ssh -J bastion login@host` or `ssh 'login%host@bastion'`".into(),
            );
        };
        let Some(user) = self.user.clone() else {
            return Err("not authenticated".into());
        };
        let session_key = Arc::new(
            PrivateKey::random(
                &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
                ssh_key::Algorithm::Ed25519,
            )
            .map_err(|e| format!("cannot make a session key: {e}"))?,
        );
        let request = SessionRequest {
            user_certificate: user.certificate().to_openssh().map_err(|e| e.to_string())?,
            principal: login.clone(),
            target_host: host.clone(),
            target_port: port,
            client_address: self.client.ip().to_string(),
            session_key: session_key
                .public_key()
                .to_openssh()
                .map_err(|e| e.to_string())?,
        };
        let started = Instant::now();
        let grant = self.bastion.ca.open_session(&request).await;
        self.bastion
            .metrics
            .authorization_latency
            .observe(started.elapsed().as_secs_f64());
        let grant = match grant {
            Ok(g) => g,
            Err(CallError::Refused(r)) => {
                self.bastion.metrics.refused(&r.code);
                return Err(format!(
                    "access refused by the CA ({}): {}",
                    r.code, r.message
                ));
            }
            Err(CallError::Other(e)) => {
                self.bastion.metrics.refused("ca-unavailable");
                return Err(format!(
                    "the CA cannot be asked right now, so no session starts: {e}"
                ));
            }
        };
        // Fail closed: our own check of the login stands whatever the CA said.
        if let Err(refusal) = verify_user_cert(
            &self.bastion.trust,
            user.certificate(),
            Some(&login),
            self.client.ip(),
            unix_now(),
        ) {
            return Err(format!("access refused: {refusal}"));
        }
        let certificate =
            Certificate::from_openssh(&grant.certificate).map_err(|e| e.to_string())?;
        let address = self.bastion.targets.get(&host).cloned().unwrap_or_default();
        let host_ca_keys = self
            .bastion
            .host_ca_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let upstream = crate::upstream::connect(
            &address,
            &host,
            port,
            host_ca_keys,
            &login,
            session_key,
            certificate.clone(),
        )
        .await
        .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
        let dir = self.bastion.recordings.join(&grant.session_id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            self.bastion.metrics.recording_failures.inc();
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the recording directory");
            "the session cannot be recorded, so it does not start".to_owned()
        })?;
        let live = LiveSession::new(
            grant,
            login,
            format!("{host}:{port}"),
            self.client.to_string(),
            certificate.serial(),
            dir,
        );
        tracing::info!(session = %live.id(), identity = %live.grant.identity, target = %live.target,
                       principal = %live.principal, "session authorized");
        self.bastion
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(live.id().to_owned(), Arc::clone(&live));
        self.bastion.metrics.sessions_open.inc();
        tokio::spawn(Arc::clone(&live).watchdog(user.valid_before()));
        tokio::spawn(Arc::clone(&live).recorder_loop(
            Arc::clone(&self.bastion.ca),
            Arc::clone(&self.bastion.metrics),
        ));
        *self
            .ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&live));
        self.session = Some(live);
        self.upstream = Some(Arc::new(upstream));
        Ok(())
    }

    fn refuse_on_channel(channel: Channel<Msg>, why: String) {
        tokio::spawn(async move {
            let _ = channel
                .extended_data_bytes(1, format!("shiftkey bastion: {why}\r\n").into_bytes())
                .await;
            let _ = channel.exit_status(1).await;
            let _ = channel.eof().await;
            let _ = channel.close().await;
        });
    }
}

impl server::Handler for Conn {
    type Error = anyhow::Error;

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        // `login%host[:port]` on the first hop is the single-hop form.
        if let Hop::Jump = self.hop
            && let Some((login, target)) = user.split_once('%')
        {
            let (host, port) = match target.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().unwrap_or(0)),
                None => (target, 22),
            };
            if login.is_empty() || host.is_empty() || port == 0 {
                return Ok(Auth::reject());
            }
            self.hop = Hop::Target {
                host: host.to_owned(),
                port,
                login: None,
            };
        }
        let login = match &mut self.hop {
            Hop::Jump => None,
            Hop::Target { login, .. } => {
                let name = user.split_once('%').map_or(user, |(l, _)| l).to_owned();
                *login = Some(name.clone());
                Some(name)
            }
        };
        // The login is checked when the session starts, by us and by the CA,
        // so that a wrong login gets a message and an audit row rather than
        // a bare "Permission denied".
        match verify_user_cert(
            &self.bastion.trust,
            certificate,
            None,
            self.client.ip(),
            unix_now(),
        ) {
            Ok(verified) => {
                tracing::info!(client = %self.client, key_id = %verified.key_id(), serial = verified.serial(),
                               login = ?login, "certificate accepted");
                self.user = Some(verified);
                Ok(Auth::Accept)
            }
            Err(refusal) => {
                tracing::warn!(client = %self.client, key_id = %certificate.key_id(), serial = certificate.serial(),
                               login = ?login, %refusal, "certificate refused");
                self.bastion.metrics.refused(refusal.code());
                let target = match &self.hop {
                    Hop::Target { host, port, .. } => Some(format!("{host}:{port}")),
                    Hop::Jump => None,
                };
                let report = shiftkey_wire::SessionRefusal {
                    user_certificate: certificate.to_openssh().unwrap_or_default(),
                    principal: login,
                    target,
                    client_address: self.client.ip().to_string(),
                    code: refusal.code().to_owned(),
                    message: refusal.to_string(),
                };
                let ca = Arc::clone(&self.bastion.ca);
                tokio::spawn(async move {
                    let sent: Result<serde_json::Value, _> = ca
                        .post_bytes(
                            "/v1/sessions/refused",
                            serde_json::to_vec(&report).unwrap_or_default(),
                            "application/json",
                        )
                        .await;
                    if let Err(e) = sent {
                        tracing::warn!(error = %e, "could not report a refusal to the CA");
                    }
                });
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Ok(port) = u16::try_from(port) else {
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        match self.hop {
            Hop::Jump => {
                // `ssh -J`: the user's ssh speaks SSH to "the target" through
                // this channel; we are that target.
                let certificate = match self.bastion.present(host).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(host, error = %e, "no certificate to present for the target");
                        self.bastion.metrics.refused("host-not-covered");
                        reply
                            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                            .await;
                        return Ok(());
                    }
                };
                reply.accept().await;
                let config = self.bastion.server_config(certificate);
                let ended = Arc::new(Mutex::new(None));
                let inner = self.inner(host.to_owned(), port, Arc::clone(&ended));
                let bastion = Arc::clone(&self.bastion);
                tokio::spawn(async move {
                    match server::run_stream(config, channel.into_stream(), inner).await {
                        Ok(running) => {
                            let _ = running.await;
                        }
                        Err(e) => tracing::debug!(error = %e, "inner SSH ended during setup"),
                    }
                    finish(&bastion, &ended).await;
                });
            }
            Hop::Target { .. } => {
                // Local port forwarding (`ssh -L`) from the target side.
                let permitted = self
                    .user
                    .as_ref()
                    .is_some_and(|u| u.permits("permit-port-forwarding"));
                if !permitted {
                    tracing::warn!(client = %self.client, host, port, "port forwarding refused: the certificate does not permit it");
                    self.bastion
                        .metrics
                        .refused("port-forwarding-not-permitted");
                    reply
                        .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                        .await;
                    return Ok(());
                }
                if let Err(why) = self.establish().await {
                    tracing::warn!(%why, "port forwarding refused");
                    reply
                        .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                        .await;
                    return Ok(());
                }
                let (Some(upstream), Some(live)) = (self.upstream.clone(), self.session.clone())
                else {
                    reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                    return Ok(());
                };
                let remote = upstream
                    .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
                    .await;
                match remote {
                    Ok(remote) => {
                        reply.accept().await;
                        self.channels += 1;
                        let recorder = match open_recorder(
                            &live,
                            self.channels,
                            Kind::Exec,
                            Some(format!("direct-tcpip {host}:{port}")),
                            None,
                        ) {
                            Ok(r) => r,
                            Err(why) => {
                                live.end(&why);
                                return Ok(());
                            }
                        };
                        let _ = recorder
                            .event(json!({ "op": "forward", "to": format!("{host}:{port}") }));
                        tokio::spawn(forward_pump(
                            channel,
                            remote,
                            live,
                            Arc::clone(&self.bastion.metrics),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the target refused the forwarded connection");
                        reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                    }
                }
            }
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        if let Hop::Jump = self.hop {
            Self::refuse_on_channel(
                channel,
                "this is the Shiftkey bastion: use `ssh -J bastion login@host`, or `ssh 'login%host@bastion'`".into(),
            );
            return Ok(());
        }
        if let Err(why) = self.establish().await {
            tracing::warn!(client = %self.client, %why, "session refused");
            Self::refuse_on_channel(channel, why);
            return Ok(());
        }
        let (Some(upstream), Some(live)) = (self.upstream.clone(), self.session.clone()) else {
            Self::refuse_on_channel(channel, "the session is gone".into());
            return Ok(());
        };
        let remote = match upstream.channel_open_session().await {
            Ok(r) => r,
            Err(e) => {
                Self::refuse_on_channel(channel, format!("the target refused the channel: {e}"));
                return Ok(());
            }
        };
        self.channels += 1;
        let user = self.user.clone();
        tokio::spawn(session_pump(
            channel,
            remote,
            live,
            self.channels,
            user,
            Arc::clone(&self.bastion.metrics),
            session.handle(),
        ));
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let permitted = self.user.as_ref().is_some_and(|u| u.permits("permit-pty"));
        if permitted {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Passed on; the target's AcceptEnv decides. OpenSSH asks no reply.
        let _ = (channel, session);
        Ok(())
    }

    // shell, exec and sftp are answered by the pump with the target's own
    // reply, so a target that refuses them is not reported as success.

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != "sftp" {
            tracing::warn!(name, "subsystem refused");
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // Agent forwarding through the bastion would hand the target the
        // user's agent; refused (and said so) even where the certificate
        // permits it, until it can be proxied and recorded.
        tracing::warn!(client = %self.client, "agent forwarding refused");
        self.bastion.metrics.refused("agent-forwarding");
        if let Some(live) = &self.session {
            note(live, "agent forwarding refused");
        }
        Ok(false)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _proto: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::warn!(client = %self.client, "X11 forwarding refused");
        self.bastion.metrics.refused("x11-forwarding");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        tracing::warn!(client = %self.client, address, port = *port, "remote port forwarding refused");
        self.bastion.metrics.refused("remote-forwarding");
        Ok(false)
    }
}

/// A line in the session's log of notable refusals (as its first recording's events).
fn note(live: &LiveSession, what: &str) {
    tracing::info!(session = %live.id(), what, "session note");
}

fn open_recorder(
    live: &Arc<LiveSession>,
    number: u32,
    kind: Kind,
    command: Option<String>,
    pty: Option<&(String, u32, u32)>,
) -> Result<Arc<Recorder>, String> {
    let header = Header {
        kind,
        width: pty.map_or(80, |p| p.1),
        height: pty.map_or(24, |p| p.2),
        term: pty.map(|p| p.0.clone()),
        command,
        meta: live.meta(),
    };
    match Recorder::create(&live.dir, number, &header) {
        Ok(r) => {
            let r = Arc::new(r);
            live.add_recorder(Arc::clone(&r));
            Ok(r)
        }
        Err(e) => {
            tracing::error!(session = %live.id(), error = %e, "cannot create a recording; ending the session");
            Err("the session could not be recorded".into())
        }
    }
}

/// Proxies one session channel between the user and the target, recording
/// as it goes. Requests are passed on in order with the data.
async fn session_pump(
    mut user: Channel<Msg>,
    mut remote: Channel<russh::client::Msg>,
    live: Arc<LiveSession>,
    number: u32,
    verified: Option<VerifiedUser>,
    metrics: Arc<Metrics>,
    handle: server::Handle,
) {
    let mut ended = live.subscribe();
    let mut recorder: Option<Arc<Recorder>> = None;
    let mut sftp: Option<SftpParser> = None;
    let mut pty: Option<(String, u32, u32)> = None;
    let mut early_input: Vec<u8> = Vec::new();
    let permits_pty = verified.as_ref().is_some_and(|u| u.permits("permit-pty"));
    let input = metrics
        .bytes
        .get_or_create(&DirectionLabels { direction: "input" })
        .clone();
    let output = metrics
        .bytes
        .get_or_create(&DirectionLabels {
            direction: "output",
        })
        .clone();
    // Records first: if the recorder fails, nothing passes.
    macro_rules! record {
        ($call:expr) => {
            if let Some(r) = &recorder {
                if let Err(e) = $call(r) {
                    tracing::error!(session = %live.id(), error = %e, "recording failed; ending the session");
                    metrics.recording_failures.inc();
                    live.end("the session could not be recorded");
                    continue;
                }
            }
        };
    }
    // User input: recorded (as keystrokes or sftp operations), then passed on.
    macro_rules! input {
        ($data:expr) => {{
            let data = $data;
            if let Some(p) = &mut sftp {
                let events = p.client_bytes(&data);
                for e in events {
                    record!(|r: &Arc<Recorder>| r.event(e.clone()));
                }
            } else {
                record!(|r: &Arc<Recorder>| r.input(&data));
            }
            input.inc_by(data.len() as u64);
            if remote.data_bytes(data).await.is_err() {
                break;
            }
        }};
    }
    loop {
        tokio::select! {
            _ = ended.changed() => {
                let reason = live.end_reason().unwrap_or_else(|| "ended".into());
                if let Some(r) = &recorder {
                    let _ = r.event(json!({ "session_ended": reason.clone() }));
                    let _ = r.flush();
                }
                let _ = user.data_bytes(format!("\r\n[shiftkey] session ended: {reason}\r\n").into_bytes()).await;
                let _ = user.exit_status(255).await;
                let _ = user.eof().await;
                let _ = user.close().await;
                let _ = remote.close().await;
                break;
            }
            msg = user.wait() => {
                let Some(msg) = msg else { let _ = remote.close().await; break; };
                live.touch();
                match msg {
                    // Before shell, exec or sftp there is no recording yet:
                    // hold the bytes until there is (a little only).
                    ChannelMsg::Data { data } if recorder.is_none() => {
                        early_input.extend_from_slice(&data);
                        if early_input.len() > MAX_EARLY_INPUT {
                            live.end("too much input before the session started");
                        }
                    }
                    ChannelMsg::Data { data } => input!(data),
                    ChannelMsg::ExtendedData { data, ext } => {
                        let sent = remote.extended_data_bytes(ext, data).await;
                        if sent.is_err() { break; }
                    }
                    ChannelMsg::Eof => { let _ = remote.eof().await; }
                    ChannelMsg::Close => { let _ = remote.close().await; break; }
                    ChannelMsg::RequestPty { term, col_width, row_height, pix_width, pix_height, terminal_modes, .. } if permits_pty => {
                        pty = Some((term.clone(), col_width, row_height));
                        let _ = remote.request_pty(false, &term, col_width, row_height, pix_width, pix_height, &terminal_modes).await;
                    }
                    ChannelMsg::SetEnv { variable_name, variable_value, .. } => {
                        let _ = remote.set_env(false, variable_name, variable_value).await;
                    }
                    ChannelMsg::RequestShell { .. } => {
                        match open_recorder(&live, number, Kind::Shell, None, pty.as_ref()) {
                            Ok(r) => recorder = Some(r),
                            Err(why) => { live.end(&why); continue; }
                        }
                        let _ = remote.request_shell(true).await;
                        if !early_input.is_empty() {
                            let data = axum::body::Bytes::from(std::mem::take(&mut early_input));
                            input!(data);
                        }
                    }
                    ChannelMsg::Exec { command, .. } => {
                        let text = String::from_utf8_lossy(&command).into_owned();
                        match open_recorder(&live, number, Kind::Exec, Some(text), pty.as_ref()) {
                            Ok(r) => recorder = Some(r),
                            Err(why) => { live.end(&why); continue; }
                        }
                        let _ = remote.exec(true, command).await;
                        if !early_input.is_empty() {
                            let data = axum::body::Bytes::from(std::mem::take(&mut early_input));
                            input!(data);
                        }
                    }
                    ChannelMsg::RequestSubsystem { name, .. } if name == "sftp" => {
                        match open_recorder(&live, number, Kind::Sftp, Some("sftp".into()), None) {
                            Ok(r) => recorder = Some(r),
                            Err(why) => { live.end(&why); continue; }
                        }
                        sftp = Some(SftpParser::default());
                        let _ = remote.request_subsystem(true, "sftp").await;
                        if !early_input.is_empty() {
                            let data = axum::body::Bytes::from(std::mem::take(&mut early_input));
                            input!(data);
                        }
                    }
                    ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                        record!(|r: &Arc<Recorder>| r.resize(col_width, row_height));
                        let _ = remote.window_change(col_width, row_height, pix_width, pix_height).await;
                    }
                    ChannelMsg::Signal { signal } => {
                        let name = format!("{signal:?}");
                        record!(|r: &Arc<Recorder>| r.event(json!({ "signal": name.clone() })));
                        let _ = remote.signal(signal).await;
                    }
                    _ => {}
                }
            }
            msg = remote.wait() => {
                let Some(msg) = msg else { let _ = user.close().await; break; };
                live.touch();
                match msg {
                    // Output before any request: nothing may pass unrecorded.
                    ChannelMsg::Data { .. } | ChannelMsg::ExtendedData { .. } if recorder.is_none() => {
                        live.end("the target sent output before the session was recorded");
                    }
                    ChannelMsg::Data { data } => {
                        if let Some(p) = &mut sftp {
                            let events = p.server_bytes(&data);
                            for e in events { record!(|r: &Arc<Recorder>| r.event(e.clone())); }
                        } else {
                            record!(|r: &Arc<Recorder>| r.output(&data));
                        }
                        output.inc_by(data.len() as u64);
                        if user.data_bytes(data).await.is_err() { break; }
                    }
                    ChannelMsg::ExtendedData { data, ext } => {
                        record!(|r: &Arc<Recorder>| r.output(&data));
                        output.inc_by(data.len() as u64);
                        if user.extended_data_bytes(ext, data).await.is_err() { break; }
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        *live.exit_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(exit_status);
                        record!(|r: &Arc<Recorder>| r.event(json!({ "exit_status": exit_status })));
                        let _ = user.exit_status(exit_status).await;
                    }
                    ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => {
                        let name = format!("{signal_name:?}");
                        record!(|r: &Arc<Recorder>| r.event(json!({ "exit_signal": name.clone() })));
                        let _ = handle.exit_signal_request(user.id(), signal_name, core_dumped, error_message, lang_tag).await;
                    }
                    // The target's answer to shell, exec or subsystem.
                    ChannelMsg::Success => { let _ = handle.channel_success(user.id()).await; }
                    ChannelMsg::Failure => { let _ = handle.channel_failure(user.id()).await; }
                    ChannelMsg::Eof => { let _ = user.eof().await; }
                    ChannelMsg::Close => { let _ = user.close().await; break; }
                    _ => {}
                }
            }
        }
    }
    if let Some(r) = &recorder {
        let _ = r.flush();
    }
}

/// Proxies a forwarded TCP connection (`ssh -L`), counting its bytes.
async fn forward_pump(
    mut user: Channel<Msg>,
    mut remote: Channel<russh::client::Msg>,
    live: Arc<LiveSession>,
    metrics: Arc<Metrics>,
) {
    let mut ended = live.subscribe();
    loop {
        tokio::select! {
            _ = ended.changed() => { let _ = user.close().await; let _ = remote.close().await; break; }
            msg = user.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    live.touch();
                    metrics.bytes.get_or_create(&DirectionLabels { direction: "input" }).inc_by(data.len() as u64);
                    if remote.data_bytes(data).await.is_err() { break; }
                }
                Some(ChannelMsg::Eof) => { let _ = remote.eof().await; }
                Some(ChannelMsg::Close) | None => { let _ = remote.close().await; break; }
                Some(_) => {}
            },
            msg = remote.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    live.touch();
                    metrics.bytes.get_or_create(&DirectionLabels { direction: "output" }).inc_by(data.len() as u64);
                    if user.data_bytes(data).await.is_err() { break; }
                }
                Some(ChannelMsg::Eof) => { let _ = user.eof().await; }
                Some(ChannelMsg::Close) | None => { let _ = user.close().await; break; }
                Some(_) => {}
            },
        }
    }
}

/// After a connection: the session (if one started) is sealed and forgotten.
pub(crate) async fn finish(bastion: &Bastion, ended: &Mutex<Option<Arc<LiveSession>>>) {
    let live = ended
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some(live) = live else { return };
    live.end(&live.end_reason().unwrap_or_else(|| "client closed".into()));
    bastion
        .live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(live.id());
    bastion.metrics.sessions_open.dec();
    live.seal(&bastion.ca).await;
}
