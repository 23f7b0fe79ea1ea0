//! The russh handler: a thin adapter that turns russh's callbacks into
//! decisions made elsewhere. Logins go to [`crate::auth`], channel opens to
//! [`crate::limits`] and [`crate::hop`], and every channel request to its
//! channel's state machine ([`crate::channel`]); the decision is answered
//! here, in the callback (russh keeps one "wants a reply" flag per channel,
//! so the answer must leave before the next request is read), and carried
//! out by the channel's pump ([`crate::pump`]) in the order the client sent
//! it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::Certificate;
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, Pty, Sig};
use tokio::sync::{mpsc, oneshot, watch};

use crate::auth::{Attempt, certificate_login, plain_key_login};
use crate::bastion::Bastion;
use crate::channel::{ChannelState, Decision, PtyRequest, Request, WindowSize};
use crate::hop::{Established, Hop, Session as HopSession, establish};
use crate::limits::{Admitted, ChannelKind, Channels, Slot};
use crate::pump::{COMMAND_QUEUE, Command, Pump, TARGET_ANSWER};
use crate::session::LiveSession;
use crate::target::{TargetName, parse_single_hop};
use crate::verify::VerifiedUser;

/// How long the handler waits for the pump to bring the target's answer to
/// a program request (a little more than the pump waits for the target).
const PROGRAM_ANSWER: Duration = Duration::from_secs(TARGET_ANSWER.as_secs() + 5);

/// The session of a connection, for the code that runs it: set once the
/// CA authorized one, so that the end of the connection ends it.
pub(crate) type SessionSlot = Arc<Mutex<Option<Arc<LiveSession>>>>;

/// One session channel as the handler knows it.
#[derive(Debug)]
struct Requests {
    state: ChannelState,
    commands: mpsc::Sender<Command>,
}

/// One SSH connection to the bastion (a jump, inner or single hop).
pub(crate) struct Conn {
    bastion: Arc<Bastion>,
    client: SocketAddr,
    hop: Hop,
    user: Option<VerifiedUser>,
    /// A place among this address's connections not yet authenticated.
    startup: Option<Slot>,
    authenticated: watch::Sender<bool>,
    channels: Channels,
    session: HopSession,
    slot: SessionSlot,
    requests: HashMap<ChannelId, Requests>,
    /// Session channels the bastion will not proxy, and why: told on the
    /// channel's first request, before its answer.
    refused: HashMap<ChannelId, String>,
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
    /// A connection from `client`, first hop; `startup` is its place
    /// among the address's unauthenticated connections.
    pub(crate) fn outer(
        bastion: Arc<Bastion>,
        client: SocketAddr,
        startup: Option<Slot>,
        authenticated: watch::Sender<bool>,
        slot: SessionSlot,
    ) -> Self {
        Self {
            channels: Channels::new(client.ip()),
            bastion,
            client,
            hop: Hop::Jump,
            user: None,
            startup,
            authenticated,
            session: HopSession::NotYet,
            slot,
            requests: HashMap::new(),
            refused: HashMap::new(),
        }
    }

    fn inner(&self, hop: Hop, authenticated: watch::Sender<bool>, slot: SessionSlot) -> Self {
        Self {
            channels: Channels::new(self.client.ip()),
            bastion: Arc::clone(&self.bastion),
            client: self.client,
            hop,
            user: None,
            startup: None,
            authenticated,
            session: HopSession::NotYet,
            slot,
            requests: HashMap::new(),
            refused: HashMap::new(),
        }
    }

    fn attempt(&self) -> Attempt {
        match &self.hop {
            Hop::Jump => Attempt {
                client: self.client,
                login: None,
                target: None,
            },
            Hop::Target { route, login } => Attempt {
                client: self.client,
                login: login.clone(),
                target: route.as_ref().ok().map(crate::target::Route::label),
            },
        }
    }

    /// The session, established on the first channel; a refusal sticks.
    async fn session(&mut self) -> Result<Established, String> {
        match &self.session {
            HopSession::Live(e) => return Ok(e.clone()),
            HopSession::Refused(why) => return Err(why.clone()),
            HopSession::NotYet => {}
        }
        let result = match (&self.hop, &self.user) {
            (
                Hop::Target {
                    route: Ok(route),
                    login: Some(login),
                },
                Some(user),
            ) => establish(&self.bastion, user, route, login, self.client).await,
            (Hop::Target { route: Err(e), .. }, _) => Err(e.to_string()),
            (_, None) => Err("not authenticated".into()),
            _ => Err(
                "no target: use `ssh -J bastion login@host` or `ssh 'login%host@bastion'`".into(),
            ),
        };
        match result {
            Ok(e) => {
                *self
                    .slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&e.live));
                self.session = HopSession::Live(e.clone());
                Ok(e)
            }
            Err(why) => {
                self.session = HopSession::Refused(why.clone());
                Err(why)
            }
        }
    }

    /// A channel admitted, or the open refused (counted) with `reason`.
    async fn admit(
        &mut self,
        kind: ChannelKind,
        reply: ChannelOpenHandle,
    ) -> Option<(Admitted, ChannelOpenHandle)> {
        match self.channels.admit(&self.bastion.sources, kind) {
            Ok(a) => Some((a, reply)),
            Err(refused) => {
                self.bastion.metrics.channel_refused(refused.code());
                tracing::warn!(client = %self.client, %refused, "channel refused");
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                None
            }
        }
    }

    /// Decides a channel request and answers it: yes, no, or the target's
    /// own answer to the program.
    async fn request(
        &mut self,
        session: &mut Session,
        channel: ChannelId,
        request: Request,
    ) -> bool {
        if let Some(why) = self.refused.remove(&channel) {
            tell(session, channel, &why);
            return false;
        }
        let Some(requests) = self.requests.get_mut(&channel) else {
            return false;
        };
        let decision = requests.state.decide(&request);
        let name = request.name();
        let (command, answer) = match decision.clone() {
            Decision::Forward => (Command::Forward(request), None),
            Decision::Pass => (Command::Pass(request), None),
            Decision::Refuse(refusal) => {
                self.bastion.metrics.request_refused(refusal.code());
                (
                    Command::Refused {
                        request: name,
                        refusal,
                    },
                    None,
                )
            }
            Decision::Close(refusal) => {
                self.bastion.metrics.request_refused(refusal.code());
                (
                    Command::Close {
                        request: name,
                        refusal,
                    },
                    None,
                )
            }
            Decision::Start(program) => {
                let (tx, rx) = oneshot::channel();
                let pty = requests.state.pty().cloned();
                (
                    Command::Start {
                        program,
                        pty,
                        answer: tx,
                    },
                    Some(rx),
                )
            }
        };
        if let Err(e) = requests.commands.try_send(command) {
            // The pump is gone, or the client sends requests faster than
            // they are carried out: the channel ends (its pump closes it
            // when it finds no command for a request).
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                self.bastion.metrics.request_refused("too-many-requests");
                tracing::warn!(client = %self.client, "too many requests waiting on a channel; closing it");
            }
            self.requests.remove(&channel);
            return false;
        }
        let Some(answer) = answer else {
            return decision.answer().unwrap_or(false);
        };
        let accepted = matches!(
            tokio::time::timeout(PROGRAM_ANSWER, answer).await,
            Ok(Ok(true))
        );
        if let Some(requests) = self.requests.get_mut(&channel) {
            requests.state.started(accepted);
        }
        accepted
    }

    /// Answers a request that asked for a reply (russh sends nothing when
    /// none was asked).
    fn answer(session: &mut Session, channel: ChannelId, yes: bool) -> Result<(), russh::Error> {
        if yes {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }
}

/// Tells the user why the bastion will not proxy a channel, and closes it;
/// written straight into the session, so it arrives before the answer to
/// the request that asked.
fn tell(session: &mut Session, channel: ChannelId, why: &str) {
    let _ = session.extended_data(
        channel,
        1,
        format!("shiftkey bastion: {why}\r\n").into_bytes(),
    );
    let _ = session.exit_status_request(channel, 1);
    let _ = session.eof(channel);
    let _ = session.close(channel);
}

impl server::Handler for Conn {
    type Error = anyhow::Error;

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        match &mut self.hop {
            // `login%host[:port]` on the first hop is the single-hop form.
            Hop::Jump if user.contains('%') => match parse_single_hop(user) {
                Ok((login, name, port)) => {
                    self.hop = Hop::Target {
                        route: self.bastion.targets.route(name, port),
                        login: Some(login),
                    };
                }
                Err(e) => {
                    self.bastion.metrics.login_refused("bad-user-name");
                    tracing::debug!(client = %self.client, error = %e, "single-hop user name refused");
                    return Ok(Auth::reject());
                }
            },
            Hop::Jump => {}
            Hop::Target { login, .. } => {
                *login = Some(user.split_once('%').map_or(user, |(l, _)| l).to_owned());
            }
        }
        // The login is checked when the session starts, by us and by the
        // CA, so that a wrong login gets a message and an audit row rather
        // than a bare "Permission denied".
        match certificate_login(&self.bastion, certificate, &self.attempt()) {
            Some(verified) => {
                self.user = Some(verified);
                self.startup = None;
                let _ = self.authenticated.send(true);
                Ok(Auth::Accept)
            }
            None => Ok(Auth::reject()),
        }
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        plain_key_login(&self.bastion, &self.attempt());
        Ok(Auth::reject())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Ok(port), Ok(name)) = (u16::try_from(port), TargetName::parse(host)) else {
            self.bastion.metrics.channel_refused("bad-destination");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        if let Hop::Jump = self.hop {
            // `ssh -J`: the user's ssh speaks SSH to "the target" through
            // this channel; we are that target.
            let Some((admitted, reply)) = self.admit(ChannelKind::Forward, reply).await else {
                return Ok(());
            };
            let certificate = match self.bastion.present(&name).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(host = %name, error = %e, "no certificate to present for the target");
                    self.bastion.metrics.refused("host-not-covered");
                    reply
                        .reject(ChannelOpenFailure::AdministrativelyProhibited)
                        .await;
                    return Ok(());
                }
            };
            reply.accept().await;
            let hop = Hop::Target {
                route: self.bastion.targets.route(name, Some(port)),
                login: None,
            };
            let (authenticated, watched) = watch::channel(false);
            let slot = SessionSlot::default();
            let inner = self.inner(hop, authenticated, Arc::clone(&slot));
            let config = self.bastion.server_config(certificate);
            let bastion = Arc::clone(&self.bastion);
            tokio::spawn(async move {
                let _admitted = admitted;
                crate::server::serve(bastion, config, channel.into_stream(), inner, watched, slot)
                    .await;
            });
            return Ok(());
        }
        // Local port forwarding (`ssh -L`) from the target side.
        if let Err(refusal) = crate::channel::may_forward(self.user.as_ref()) {
            tracing::warn!(client = %self.client, %name, port, %refusal, "port forwarding refused");
            self.bastion.metrics.request_refused(refusal.code());
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let Some((admitted, reply)) = self.admit(ChannelKind::Forward, reply).await else {
            return Ok(());
        };
        let established = match self.session().await {
            Ok(e) => e,
            Err(why) => {
                tracing::warn!(%why, "port forwarding refused");
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
                return Ok(());
            }
        };
        // The CA decides where a session may forward to (the role's hosts
        // and ports) and audits it; nothing opens upstream without its yes.
        let asked = shiftkey_wire::ForwardRequest {
            channel: admitted.number,
            host: name.as_str().to_owned(),
            port,
        };
        let destination = match self
            .bastion
            .ca
            .authorize_forward(established.live.id(), &asked)
            .await
        {
            Ok(grant) => grant.destination,
            Err(e) => {
                tracing::warn!(
                    client = %self.client,
                    session = established.live.id(),
                    %name,
                    port,
                    error = %e,
                    "port forwarding refused by the CA"
                );
                self.bastion.metrics.request_refused("forward-destination");
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
                return Ok(());
            }
        };
        let remote = established
            .upstream
            .channel_open_direct_tcpip(name.as_str(), u32::from(port), "127.0.0.1", 0)
            .await;
        match remote {
            Ok(remote) => {
                reply.accept().await;
                let pump = Pump {
                    handle: session.handle(),
                    user: channel,
                    remote,
                    commands: None,
                    live: established.live,
                    admitted,
                    metrics: Arc::clone(&self.bastion.metrics),
                    ca: Arc::clone(&self.bastion.ca),
                };
                tokio::spawn(pump.forward(destination));
            }
            Err(e) => {
                tracing::warn!(error = %e, "the target refused the forwarded connection");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
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
        if let Hop::Jump = self.hop {
            reply.accept().await;
            self.refused.insert(
                channel.id(),
                "this is the Shiftkey bastion: use `ssh -J bastion login@host`, or `ssh 'login%host@bastion'`".into(),
            );
            return Ok(());
        }
        let Some((admitted, reply)) = self.admit(ChannelKind::Session, reply).await else {
            return Ok(());
        };
        reply.accept().await;
        let established = match self.session().await {
            Ok(e) => e,
            Err(why) => {
                tracing::warn!(client = %self.client, %why, "session refused");
                self.refused.insert(channel.id(), why);
                return Ok(());
            }
        };
        let remote = match established.upstream.channel_open_session().await {
            Ok(r) => r,
            Err(e) => {
                self.refused
                    .insert(channel.id(), format!("the target refused the channel: {e}"));
                return Ok(());
            }
        };
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let permits_pty = self.user.as_ref().is_some_and(|u| u.permits("permit-pty"));
        self.requests.insert(
            channel.id(),
            Requests {
                state: ChannelState::new(permits_pty, Arc::clone(&self.bastion.accept_env)),
                commands,
            },
        );
        let pump = Pump {
            handle: session.handle(),
            user: channel,
            remote,
            commands: Some(queue),
            live: established.live,
            admitted,
            metrics: Arc::clone(&self.bastion.metrics),
            ca: Arc::clone(&self.bastion.ca),
        };
        tokio::spawn(pump.session());
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.requests.remove(&channel);
        self.refused.remove(&channel);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::Pty(PtyRequest {
            term: term.to_owned(),
            cols,
            rows,
            pix_width,
            pix_height,
            modes: modes.to_vec(),
        });
        let yes = self.request(session, channel, request).await;
        Ok(Self::answer(session, channel, yes)?)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::Env {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let yes = self.request(session, channel, request).await;
        Ok(Self::answer(session, channel, yes)?)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let yes = self.request(session, channel, Request::Shell).await;
        Ok(Self::answer(session, channel, yes)?)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let yes = self
            .request(session, channel, Request::Exec(data.to_vec()))
            .await;
        Ok(Self::answer(session, channel, yes)?)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let yes = self
            .request(session, channel, Request::Subsystem(name.to_owned()))
            .await;
        Ok(Self::answer(session, channel, yes)?)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let size = WindowSize {
            cols,
            rows,
            pix_width,
            pix_height,
        };
        let yes = self
            .request(session, channel, Request::WindowChange(size))
            .await;
        Ok(Self::answer(session, channel, yes)?)
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let yes = self
            .request(session, channel, Request::Signal(signal))
            .await;
        Ok(Self::answer(session, channel, yes)?)
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
        let yes = self.request(session, channel, Request::X11).await;
        Ok(Self::answer(session, channel, yes)?)
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // russh answers with what this returns.
        Ok(self.request(session, channel, Request::Agent).await)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        tracing::warn!(client = %self.client, address, port = *port, "remote port forwarding refused");
        self.bastion.metrics.request_refused("remote-forwarding");
        Ok(false)
    }
}
