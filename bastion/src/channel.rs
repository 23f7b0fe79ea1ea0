//! One session channel's requests as a state machine, and the one place
//! where each is decided.
//!
//! A channel is opened, may then get pty and env decisions, then exactly one
//! program — `shell`, `exec` or the `sftp` subsystem — which the target must
//! accept before anything flows, then data, then EOF and close. Requests
//! arrive in any order a client cares to send (OpenSSH never sends most of
//! the orders tested below; other clients do): every one gets a
//! [`Decision`] here, and the pump only carries decisions out. A second
//! program request on a channel is never passed on: the channel closes, the
//! user is told why and the CA audits it.
//!
//! The recorder is not this module's: the pump opens it when the target has
//! accepted the program ([`ChannelState::started`]), never on a request the
//! target has not accepted.

use std::sync::Arc;

use russh::{Pty, Sig};

use crate::config::AcceptEnv;
use crate::recorder::Kind;
use crate::verify::VerifiedUser;

/// Requests a channel may get before its program; more is abuse, and the
/// channel closes.
const MAX_SETUP_REQUESTS: u32 = 64;

/// The terminal a channel asks for.
#[derive(Debug, Clone)]
pub(crate) struct PtyRequest {
    pub(crate) term: String,
    pub(crate) cols: u32,
    pub(crate) rows: u32,
    pub(crate) pix_width: u32,
    pub(crate) pix_height: u32,
    pub(crate) modes: Vec<(Pty, u32)>,
}

/// A channel request as the user's client sent it.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    Pty(PtyRequest),
    Env { name: String, value: String },
    WindowChange(WindowSize),
    Signal(Sig),
    X11,
    Agent,
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

/// A terminal size from `window-change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowSize {
    pub(crate) cols: u32,
    pub(crate) rows: u32,
    pub(crate) pix_width: u32,
    pub(crate) pix_height: u32,
}

impl Request {
    /// The SSH request name (RFC 4254), as the audit log and the recording say it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Request::Pty(_) => "pty-req",
            Request::Env { .. } => "env",
            Request::WindowChange(_) => "window-change",
            Request::Signal(_) => "signal",
            Request::X11 => "x11-req",
            Request::Agent => "auth-agent-req@openssh.com",
            Request::Shell => "shell",
            Request::Exec(_) => "exec",
            Request::Subsystem(_) => "subsystem",
        }
    }
}

/// The one program a channel runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Program {
    Shell,
    Exec(Vec<u8>),
    Sftp,
}

impl Program {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Program::Shell => Kind::Shell,
            Program::Exec(_) => Kind::Exec,
            Program::Sftp => Kind::Sftp,
        }
    }

    /// How the program was asked for: `shell`, `exec`, `subsystem sftp`.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Program::Shell => "shell",
            Program::Exec(_) => "exec",
            Program::Sftp => "subsystem sftp",
        }
    }
}

/// Where a channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Opened: pty and env may be decided.
    Setup,
    /// The program request went to the target; its answer is awaited.
    Starting,
    /// The target accepted the program: data flows, recorded.
    Running,
    /// The target refused the program: nothing runs, nothing more may start.
    Refused,
    /// Refused a second program (or abuse): the channel is closing.
    Closing,
}

/// What the bastion does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Before the program: passed to the target (pty, env), answered yes.
    Forward,
    /// The program: passed to the target, whose answer is the user's.
    Start(Program),
    /// Passed on, nothing to answer but yes if asked: a window-change for
    /// the channel's pty, a signal to the running program.
    Pass,
    /// Answered no and recorded; the channel goes on.
    Refuse(Refusal),
    /// Answered no, the user is told why, the channel closes and the CA's
    /// audit log hears of it.
    Close(Refusal),
}

impl Decision {
    /// The answer to a client that asked for one, when the bastion gives it
    /// itself (None: the target's answer to the program is the user's).
    pub(crate) fn answer(&self) -> Option<bool> {
        match self {
            Decision::Forward | Decision::Pass => Some(true),
            Decision::Refuse(_) | Decision::Close(_) => Some(false),
            Decision::Start(_) => None,
        }
    }
}

/// Why a request was refused: shown to the user when the channel closes,
/// written into the recording, and (for closes) the CA's audit row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("a pty: the certificate does not permit one (no permit-pty)")]
    PtyNotPermitted,
    #[error("a second pty-req on the channel")]
    PtyTwice,
    #[error("a pty-req after the channel's program started")]
    PtyAfterProgram,
    #[error("env {0}: not in the bastion's accept_env list")]
    EnvNotAccepted(String),
    #[error("env {0}: sent after the channel's program started")]
    EnvAfterProgram(String),
    #[error("a window-change on a channel without a pty")]
    WindowChangeWithoutPty,
    #[error("a signal before the channel's program started")]
    SignalBeforeProgram,
    #[error("X11 forwarding: not proxied by the bastion")]
    X11,
    #[error("agent forwarding: not proxied by the bastion")]
    Agent,
    #[error("subsystem {0:?}: only sftp is proxied")]
    UnknownSubsystem(String),
    #[error(
        "one program per channel: this channel already asked for {first}; the {second} request is refused and the channel closed"
    )]
    SecondProgram {
        first: &'static str,
        second: &'static str,
    },
    #[error("more than {MAX_SETUP_REQUESTS} requests before a program")]
    TooManyRequests,
    #[error("port forwarding: the certificate does not permit it (no permit-port-forwarding)")]
    PortForwardingNotPermitted,
}

impl Refusal {
    /// Stable code for metrics, the recording and the audit log.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refusal::PtyNotPermitted => "pty-not-permitted",
            Refusal::PtyTwice => "pty-twice",
            Refusal::PtyAfterProgram => "pty-after-program",
            Refusal::EnvNotAccepted(_) => "env-not-accepted",
            Refusal::EnvAfterProgram(_) => "env-after-program",
            Refusal::WindowChangeWithoutPty => "window-change-without-pty",
            Refusal::SignalBeforeProgram => "signal-before-program",
            Refusal::X11 => "x11-forwarding",
            Refusal::Agent => "agent-forwarding",
            Refusal::UnknownSubsystem(_) => "unknown-subsystem",
            Refusal::SecondProgram { .. } => "second-program",
            Refusal::TooManyRequests => "too-many-requests",
            Refusal::PortForwardingNotPermitted => "port-forwarding-not-permitted",
        }
    }
}

/// One session channel's state.
#[derive(Debug)]
pub(crate) struct ChannelState {
    phase: Phase,
    permits_pty: bool,
    accept_env: Arc<AcceptEnv>,
    pty: Option<PtyRequest>,
    program: Option<&'static str>,
    setup_requests: u32,
}

impl ChannelState {
    /// A channel just opened, for a user whose certificate does or does not
    /// permit a pty.
    pub(crate) fn new(permits_pty: bool, accept_env: Arc<AcceptEnv>) -> Self {
        Self {
            phase: Phase::Setup,
            permits_pty,
            accept_env,
            pty: None,
            program: None,
            setup_requests: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The pty the bastion accepted, if any.
    pub(crate) fn pty(&self) -> Option<&PtyRequest> {
        self.pty.as_ref()
    }

    /// Decides `request` and moves on.
    pub(crate) fn decide(&mut self, request: &Request) -> Decision {
        let asks_program = matches!(
            request,
            Request::Shell | Request::Exec(_) | Request::Subsystem(_)
        );
        // One program request per channel, whatever state the channel is
        // in and whatever the target answered the first.
        if asks_program && let Some(first) = self.program {
            self.phase = Phase::Closing;
            return Decision::Close(Refusal::SecondProgram {
                first,
                second: second_name(request),
            });
        }
        match self.phase {
            Phase::Closing => return Decision::Refuse(Refusal::TooManyRequests),
            Phase::Setup => {
                self.setup_requests += 1;
                if self.setup_requests > MAX_SETUP_REQUESTS {
                    self.phase = Phase::Closing;
                    return Decision::Close(Refusal::TooManyRequests);
                }
            }
            Phase::Starting | Phase::Running | Phase::Refused => {}
        }
        let setup = self.phase == Phase::Setup;
        match request {
            Request::Pty(pty) => {
                if !setup {
                    Decision::Refuse(Refusal::PtyAfterProgram)
                } else if !self.permits_pty {
                    Decision::Refuse(Refusal::PtyNotPermitted)
                } else if self.pty.is_some() {
                    Decision::Refuse(Refusal::PtyTwice)
                } else {
                    self.pty = Some(pty.clone());
                    Decision::Forward
                }
            }
            Request::Env { name, .. } => {
                if !setup {
                    Decision::Refuse(Refusal::EnvAfterProgram(clip(name)))
                } else if self.accept_env.accepts(name) {
                    Decision::Forward
                } else {
                    Decision::Refuse(Refusal::EnvNotAccepted(clip(name)))
                }
            }
            // A size for the pty there is (before the program it also
            // sizes the recording's header).
            Request::WindowChange(size) => match self.pty.as_mut() {
                Some(pty) => {
                    pty.cols = size.cols;
                    pty.rows = size.rows;
                    Decision::Pass
                }
                None => Decision::Refuse(Refusal::WindowChangeWithoutPty),
            },
            Request::Signal(_) if self.phase == Phase::Running => Decision::Pass,
            Request::Signal(_) => Decision::Refuse(Refusal::SignalBeforeProgram),
            Request::X11 => Decision::Refuse(Refusal::X11),
            Request::Agent => Decision::Refuse(Refusal::Agent),
            // Not a program the bastion proxies; it still is the channel's
            // one program request.
            Request::Subsystem(name) if name != "sftp" => {
                self.program = Some("subsystem");
                self.phase = Phase::Refused;
                Decision::Refuse(Refusal::UnknownSubsystem(clip(name)))
            }
            Request::Shell | Request::Exec(_) | Request::Subsystem(_) => {
                let program = match request {
                    Request::Exec(command) => Program::Exec(command.clone()),
                    Request::Subsystem(_) => Program::Sftp,
                    _ => Program::Shell,
                };
                self.program = Some(program.describe());
                self.phase = Phase::Starting;
                Decision::Start(program)
            }
        }
    }

    /// The target's answer to the program request.
    pub(crate) fn started(&mut self, accepted: bool) {
        if self.phase == Phase::Starting {
            self.phase = if accepted {
                Phase::Running
            } else {
                Phase::Refused
            };
        }
    }
}

/// Whether `user`'s certificate lets them forward a TCP connection (`ssh
/// -L`) through the inner hop.
pub(crate) fn may_forward(user: Option<&VerifiedUser>) -> Result<(), Refusal> {
    if user.is_some_and(|u| u.permits("permit-port-forwarding")) {
        Ok(())
    } else {
        Err(Refusal::PortForwardingNotPermitted)
    }
}

fn second_name(request: &Request) -> &'static str {
    match request {
        Request::Shell => "shell",
        Request::Exec(_) => "exec",
        _ => "subsystem",
    }
}

/// A name from the client, bounded for logs and audit rows.
fn clip(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A signal's name as SSH sends it (`INT`, `TERM`, or a custom name).
pub(crate) fn signal_name(signal: &Sig) -> String {
    match signal {
        Sig::ABRT => "ABRT".into(),
        Sig::ALRM => "ALRM".into(),
        Sig::FPE => "FPE".into(),
        Sig::HUP => "HUP".into(),
        Sig::ILL => "ILL".into(),
        Sig::INT => "INT".into(),
        Sig::KILL => "KILL".into(),
        Sig::PIPE => "PIPE".into(),
        Sig::QUIT => "QUIT".into(),
        Sig::SEGV => "SEGV".into(),
        Sig::TERM => "TERM".into(),
        Sig::USR1 => "USR1".into(),
        Sig::Custom(name) => clip(name),
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
