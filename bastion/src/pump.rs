//! A channel's pump: bytes between the user and the target, recorded before
//! they pass, and the channel's decided requests carried out in the order
//! the client sent them.
//!
//! One pump type serves session channels (shell, exec, sftp) and forwarded
//! ones (`ssh -L`); one function ([`carry`]) moves a chunk either way. The
//! pump never decides: each request the client sends arrives as a
//! `ChannelMsg` from russh, and the handler's [`Command`] for it (from the
//! channel's state machine) is taken from the queue at that point.
//!
//! Invariants: nothing passes before the recorder has it (a shell, exec or
//! forwarded channel's bytes are queued, in order with its notes, for a
//! writer task that encodes and compresses them off the forwarding path;
//! the queue is bounded, so forwarding waits when the recorder falls
//! behind, and its chunks are written even past the size limit, which the
//! queue's bound keeps to a few chunks; a small chunk with nothing queued
//! before it, a keystroke or its echo, is written by the pump itself, so
//! typing wakes no other task); input
//! before the program is held (a little) until the target has accepted the
//! program and the recording exists; output before it ends the channel; a
//! recording that fails or reaches the session's size limit ends the
//! session; an SFTP stream the reader cannot follow ends the channel. Every
//! wait on a peer also ends when the session does, so revocation ends a
//! session whose client has stopped reading.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use russh::client;
use russh::server;
use russh::{Channel, ChannelId, ChannelMsg};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::ca::CaClient;
use crate::cast::Stream;
use crate::channel::{Program, PtyRequest, Refusal, Request, signal_name};
use crate::limits::Admitted;
use crate::metrics::{DirectionLabels, Metrics};
use crate::recorder::{Header, Kind, RecordError, Recorder};
use crate::session::LiveSession;
use crate::sftp::SftpParser;

/// Input a client may send before its program starts.
const MAX_EARLY_INPUT: usize = 64 * 1024;
/// Output a target may send with its answer to the program request.
const MAX_EARLY_OUTPUT: usize = 64 * 1024;
/// How long the target has to answer the program request.
pub(crate) const TARGET_ANSWER: Duration = Duration::from_secs(15);
/// Requests decided but not yet carried out, per channel.
pub(crate) const COMMAND_QUEUE: usize = 64;
/// Chunks and notes queued for a channel's recording writer: forwarding
/// waits while the writer is this far behind.
const RECORD_QUEUE: usize = 4;
/// A chunk this small, with nothing queued before it, is written by the
/// pump itself (a few microseconds) rather than handed to the writer task:
/// a keystroke and its echo wake no other task (two fewer wake-ups per
/// round trip; see docs/benchmarks.md for what that moved).
const INLINE_MAX: usize = 512;

/// What the handler decided for one request, for the pump to carry out.
#[derive(Debug)]
pub(crate) enum Command {
    /// Before the program: passed to the target (pty-req, env).
    Forward(Request),
    /// The program: asked of the target, whose answer goes back on `answer`;
    /// on yes the recording opens and data flows.
    Start {
        program: Program,
        pty: Option<PtyRequest>,
        answer: oneshot::Sender<bool>,
    },
    /// While the program runs: passed on and recorded (window-change, signal).
    Pass(Request),
    /// Refused: recorded.
    Refused {
        request: &'static str,
        refusal: Refusal,
    },
    /// Refused, and the channel closes: the user is told why, the recording
    /// and the CA's audit log say so.
    Close {
        request: &'static str,
        refusal: Refusal,
    },
}

/// Why a pump stopped.
#[derive(Debug)]
enum Stop {
    /// One side closed or went away (which, and how, for the log).
    Closed(&'static str),
    /// The session ended (revoked, expired, idle, recording failed, ...).
    SessionEnded,
    /// This channel is refused: the user is told why on stderr.
    Refused(String),
}

/// Which side of the channel a recording event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    User,
    Target,
}

/// What a channel's recording is.
#[derive(Debug)]
enum Recording {
    /// Not started: notes wait for the recording's header.
    Pending(Vec<Value>),
    /// asciicast, byte-exact, written by its writer task.
    Cast(Arc<Recorder>, Writer),
    /// sftp operations.
    Sftp(Arc<Recorder>, SftpParser),
}

/// What a cast recording's writer task takes, in order.
#[derive(Debug)]
enum Item {
    Bytes(Stream, Bytes),
    Event(Value),
    Resize(u32, u32),
}

/// The queue to a cast recording's writer task, and the task.
#[derive(Debug)]
struct Writer {
    queue: Option<mpsc::Sender<Item>>,
    task: Option<JoinHandle<()>>,
    /// Items sent and not yet written (the pump is the only sender, so at
    /// zero every earlier item is in the file).
    queued: Arc<AtomicUsize>,
}

/// Counts an item as queued until it is sent; a send given up (the session
/// ended while the queue was full) counts it out again.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }

    /// Sent: the writer task counts it out once written.
    fn sent(self) {
        std::mem::forget(self);
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Writer {
    /// Starts the task that writes `recorder`'s items; a write that fails
    /// ends the session (the pump then stops passing anything).
    fn spawn(recorder: Arc<Recorder>, pump: &Pump) -> Self {
        let (queue, mut items) = mpsc::channel::<Item>(RECORD_QUEUE);
        let live = Arc::clone(&pump.live);
        let metrics = Arc::clone(&pump.metrics);
        let channel = pump.admitted.number;
        let queued = Arc::new(AtomicUsize::new(0));
        let done = Arc::clone(&queued);
        let task = tokio::spawn(async move {
            let mut failed = false;
            while let Some(item) = items.recv().await {
                if !failed {
                    let written = match item {
                        Item::Bytes(stream, data) => recorder.admitted(stream, &data),
                        Item::Event(value) => recorder.event(value),
                        Item::Resize(cols, rows) => recorder.resize(cols, rows),
                    };
                    if let Err(error) = written {
                        failed = true;
                        recording_failed(&live, &metrics, channel, &error);
                    }
                }
                done.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Self {
            queue: Some(queue),
            task: Some(task),
            queued,
        }
    }

    /// Writes a chunk: now, by the calling pump, when it is small and
    /// nothing is queued before it (the order in the file stays the order
    /// of the calls); otherwise through the queue.
    async fn bytes(
        &self,
        recorder: &Recorder,
        stream: Stream,
        data: &Bytes,
    ) -> Result<(), RecordError> {
        if data.len() <= INLINE_MAX
            && self.queue.is_some()
            && self.queued.load(Ordering::Acquire) == 0
        {
            return recorder.admitted(stream, data);
        }
        self.send(recorder, Item::Bytes(stream, data.clone())).await
    }

    /// Queues one item; waits while the queue is full.
    async fn send(&self, recorder: &Recorder, item: Item) -> Result<(), RecordError> {
        let Some(queue) = &self.queue else {
            return Err(RecordError::Closed);
        };
        let queued = Queued::new(&self.queued);
        queue
            .send(item)
            .await
            .map_err(|_| recorder.admit().err().unwrap_or(RecordError::Closed))?;
        queued.sent();
        Ok(())
    }

    /// Ends the queue and waits until everything in it is written.
    async fn close(&mut self) {
        self.queue = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Everything one channel's pump owns.
#[derive(Debug)]
pub(crate) struct Pump {
    pub(crate) user: Channel<server::Msg>,
    pub(crate) remote: Channel<client::Msg>,
    /// The handler's decisions; None for forwarded channels, which take no
    /// requests.
    pub(crate) commands: Option<mpsc::Receiver<Command>>,
    pub(crate) live: Arc<LiveSession>,
    pub(crate) admitted: Admitted,
    pub(crate) handle: server::Handle,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ca: Arc<CaClient>,
}

struct State {
    recording: Recording,
    ended: watch::Receiver<Option<String>>,
    held_input: Vec<u8>,
    eof_held: bool,
    /// The program runs on a pty: messages go with the output, not stderr.
    pty: bool,
    /// Names of forwarded requests whose answer from the target is awaited.
    awaiting: VecDeque<&'static str>,
    input: prometheus_client::metrics::counter::Counter,
    output: prometheus_client::metrics::counter::Counter,
}

impl Pump {
    /// Runs a session channel until it closes.
    pub(crate) async fn session(self) {
        self.run(Recording::Pending(Vec::new())).await;
    }

    /// Runs a forwarded TCP connection (`ssh -L` from the inner hop) to
    /// `destination`, recorded both ways like an exec channel.
    pub(crate) async fn forward(self, destination: String) {
        let header = Header {
            kind: Kind::Forward,
            width: 80,
            height: 24,
            term: None,
            command: Some(format!("direct-tcpip {destination}")),
            meta: self.live.meta(),
        };
        match open_recorder(&self.live, self.admitted.number, &header) {
            Ok(recorder) => {
                let _ = recorder.event(json!({ "forward": destination }));
                let writer = Writer::spawn(Arc::clone(&recorder), &self);
                self.run(Recording::Cast(recorder, writer)).await;
            }
            Err(e) => {
                self.metrics.recording_failures.inc();
                self.live.end(&e.to_string());
                let _ = self.user.close().await;
                let _ = self.remote.close().await;
            }
        }
    }

    async fn run(mut self, recording: Recording) {
        let _running = self.live.channel_running();
        // One statement each: a family's read guard must be gone before
        // the next label may need its write lock.
        let input = self
            .metrics
            .bytes
            .get_or_create(&DirectionLabels { direction: "input" })
            .clone();
        let output = self
            .metrics
            .bytes
            .get_or_create(&DirectionLabels {
                direction: "output",
            })
            .clone();
        let mut state = State {
            recording,
            ended: self.live.subscribe(),
            held_input: Vec::new(),
            eof_held: false,
            pty: false,
            awaiting: VecDeque::new(),
            input,
            output,
        };
        let stop = match self.pump(&mut state).await {
            // The session's end closes the target's side too (the upstream
            // connection goes): the user still hears why.
            Stop::Closed(_) if self.live.end_reason().is_some() => Stop::SessionEnded,
            stop => stop,
        };
        self.stop(&mut state, stop).await;
        if let Recording::Cast(_, writer) = &mut state.recording {
            writer.close().await;
        }
        if let Some(r) = state.recorder() {
            let _ = r.flush();
        }
    }

    async fn pump(&mut self, state: &mut State) -> Stop {
        loop {
            let event = tokio::select! {
                biased;
                _ = state.ended.wait_for(Option::is_some) => return Stop::SessionEnded,
                msg = self.user.wait() => (Side::User, msg),
                msg = self.remote.wait() => (Side::Target, msg),
            };
            let step = match event {
                (Side::User, None) => Err(Stop::Closed("the user's channel is gone")),
                (Side::Target, None) => Err(Stop::Closed("the target's channel is gone")),
                (Side::User, Some(msg)) => self.user_message(state, msg).await,
                (Side::Target, Some(msg)) => self.target_message(state, msg).await,
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    async fn user_message(&mut self, state: &mut State, msg: ChannelMsg) -> Result<(), Stop> {
        self.live.touch();
        match msg {
            ChannelMsg::Data { data } => {
                if !state.running() {
                    state.held_input.extend_from_slice(&data);
                    if state.held_input.len() > MAX_EARLY_INPUT {
                        return Err(Stop::Refused(format!(
                            "more than {MAX_EARLY_INPUT} bytes of input before the channel's program started"
                        )));
                    }
                    return Ok(());
                }
                self.record(state, Side::User, &data).await?;
                state.input.inc_by(data.len() as u64);
                carry(&self.remote, data, None, &mut state.ended).await
            }
            // No client needs it, so none passes: noted once per chunk.
            ChannelMsg::ExtendedData { data, ext } => {
                let note = json!({ "dropped": "extended data from the client", "ext": ext, "bytes": data.len() });
                state.note(self, note).await
            }
            ChannelMsg::Eof => {
                if state.running() {
                    let _ = self.remote.eof().await;
                } else {
                    state.eof_held = true;
                }
                Ok(())
            }
            ChannelMsg::Close => Err(Stop::Closed("the user closed the channel")),
            ChannelMsg::RequestPty { .. }
            | ChannelMsg::RequestX11 { .. }
            | ChannelMsg::SetEnv { .. }
            | ChannelMsg::RequestShell { .. }
            | ChannelMsg::Exec { .. }
            | ChannelMsg::RequestSubsystem { .. }
            | ChannelMsg::WindowChange { .. }
            | ChannelMsg::Signal { .. }
            | ChannelMsg::AgentForward { .. } => {
                let Some(commands) = self.commands.as_mut() else {
                    // A forwarded channel takes no requests (the handler
                    // answered no); nothing to carry out.
                    return Ok(());
                };
                let command = tokio::select! {
                    biased;
                    _ = state.ended.wait_for(Option::is_some) => return Err(Stop::SessionEnded),
                    c = commands.recv() => c,
                };
                match command {
                    Some(command) => self.execute(state, command).await,
                    // The handler dropped the channel (too many requests
                    // waiting, or it gave up on the target's answer).
                    None => Err(Stop::Refused(
                        "the channel's requests could not be carried out in order; the channel is closed".into(),
                    )),
                }
            }
            _ => Ok(()),
        }
    }

    async fn target_message(&mut self, state: &mut State, msg: ChannelMsg) -> Result<(), Stop> {
        self.live.touch();
        match msg {
            ChannelMsg::Data { data } => self.output(state, data, None).await,
            ChannelMsg::ExtendedData { data, ext } => self.output(state, data, Some(ext)).await,
            ChannelMsg::ExitStatus { exit_status } => {
                *self
                    .live
                    .exit_status
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(exit_status);
                state
                    .note(self, json!({ "exit_status": exit_status }))
                    .await?;
                let _ = self.user.exit_status(exit_status).await;
                Ok(())
            }
            ChannelMsg::ExitSignal {
                signal_name: signal,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                state
                    .note(self, json!({ "exit_signal": signal_name(&signal) }))
                    .await?;
                let _ = self
                    .handle
                    .exit_signal_request(
                        self.user.id(),
                        signal,
                        core_dumped,
                        error_message,
                        lang_tag,
                    )
                    .await;
                Ok(())
            }
            // Answers to forwarded pty-req and env requests, in order.
            ChannelMsg::Success | ChannelMsg::Failure => {
                let accepted = matches!(msg, ChannelMsg::Success);
                let request = state.awaiting.pop_front().unwrap_or("unasked request");
                state
                    .note(
                        self,
                        json!({ "request": request, "target": answer_word(accepted) }),
                    )
                    .await
            }
            ChannelMsg::Eof => {
                let _ = self.user.eof().await;
                Ok(())
            }
            ChannelMsg::Close => Err(Stop::Closed("the target closed the channel")),
            _ => Ok(()),
        }
    }

    async fn output(
        &mut self,
        state: &mut State,
        data: Bytes,
        ext: Option<u32>,
    ) -> Result<(), Stop> {
        if !state.running() {
            return Err(Stop::Refused(
                "the target sent output before the channel's program started".into(),
            ));
        }
        self.record(state, Side::Target, &data).await?;
        state.output.inc_by(data.len() as u64);
        carry(&self.user, data, ext, &mut state.ended).await
    }

    /// Writes `data` into the recording; a failure ends the session (or,
    /// for an SFTP stream that cannot be read, the channel).
    async fn record(&self, state: &mut State, side: Side, data: &Bytes) -> Result<(), Stop> {
        let result = match &mut state.recording {
            Recording::Cast(r, writer) => {
                r.admit().map_err(|e| self.failed(&e))?;
                let stream = match side {
                    Side::User => Stream::Input,
                    Side::Target => Stream::Output,
                };
                tokio::select! {
                    biased;
                    _ = state.ended.wait_for(Option::is_some) => return Err(Stop::SessionEnded),
                    written = writer.bytes(r, stream, data) => written,
                }
            }
            Recording::Sftp(r, parser) => {
                let events = match side {
                    Side::User => parser.client_bytes(data),
                    Side::Target => parser.server_bytes(data),
                };
                match events {
                    Ok(events) => events.into_iter().try_for_each(|e| r.event(e)),
                    Err(e) => {
                        let _ = r.event(json!({ "op": "unreadable", "why": e.to_string() }));
                        return Err(Stop::Refused(format!(
                            "the sftp stream could not be read ({e}); the channel is closed so that nothing passes unrecorded"
                        )));
                    }
                }
            }
            Recording::Pending(_) => Ok(()),
        };
        result.map_err(|e| self.failed(&e))
    }

    fn failed(&self, error: &RecordError) -> Stop {
        recording_failed(&self.live, &self.metrics, self.admitted.number, error);
        Stop::SessionEnded
    }

    async fn execute(&mut self, state: &mut State, command: Command) -> Result<(), Stop> {
        match command {
            Command::Forward(request) => {
                let sent = match &request {
                    Request::Pty(p) => {
                        self.remote
                            .request_pty(
                                true,
                                &p.term,
                                p.cols,
                                p.rows,
                                p.pix_width,
                                p.pix_height,
                                &p.modes,
                            )
                            .await
                    }
                    Request::Env { name, value } => {
                        self.remote.set_env(true, name.clone(), value.clone()).await
                    }
                    _ => Ok(()),
                };
                sent.map_err(|_| Stop::Closed("the target's channel is gone"))?;
                state.awaiting.push_back(request.name());
                state.note(self, request_note(&request)).await
            }
            Command::Pass(request) => {
                match &request {
                    Request::WindowChange(size) => {
                        match &state.recording {
                            Recording::Cast(r, writer) => writer
                                .send(r, Item::Resize(size.cols, size.rows))
                                .await
                                .map_err(|e| self.failed(&e))?,
                            Recording::Sftp(r, _) => {
                                r.resize(size.cols, size.rows)
                                    .map_err(|e| self.failed(&e))?;
                            }
                            Recording::Pending(_) => {}
                        }
                        let _ = self
                            .remote
                            .window_change(size.cols, size.rows, size.pix_width, size.pix_height)
                            .await;
                    }
                    Request::Signal(signal) => {
                        state
                            .note(self, json!({ "signal": signal_name(signal) }))
                            .await?;
                        let _ = self.remote.signal(signal.clone()).await;
                    }
                    _ => {}
                }
                Ok(())
            }
            Command::Refused { request, refusal } => {
                tracing::info!(session = %self.live.id(), channel = self.admitted.number, request, %refusal, "request refused");
                state.note(self, json!({ "refused": request, "code": refusal.code(), "why": refusal.to_string() })).await
            }
            Command::Close { request, refusal } => {
                tracing::warn!(session = %self.live.id(), channel = self.admitted.number, request, %refusal, "request refused; closing the channel");
                state.note(self, json!({ "refused": request, "code": refusal.code(), "why": refusal.to_string() })).await?;
                self.report(request, &refusal);
                Err(Stop::Refused(refusal.to_string()))
            }
            Command::Start {
                program,
                pty,
                answer,
            } => self.start(state, program, pty, answer).await,
        }
    }

    /// Asks the target for the program; on its yes, opens the recording and
    /// lets the held input through.
    async fn start(
        &mut self,
        state: &mut State,
        program: Program,
        pty: Option<PtyRequest>,
        answer: oneshot::Sender<bool>,
    ) -> Result<(), Stop> {
        let asked = match &program {
            Program::Shell => self.remote.request_shell(true).await,
            Program::Exec(command) => self.remote.exec(true, command.clone()).await,
            Program::Sftp => self.remote.request_subsystem(true, "sftp").await,
        };
        asked.map_err(|_| Stop::Closed("the target's channel is gone"))?;
        let mut early: Vec<(Bytes, Option<u32>)> = Vec::new();
        let mut early_bytes = 0usize;
        let deadline = tokio::time::Instant::now() + TARGET_ANSWER;
        let accepted = loop {
            let msg = tokio::select! {
                biased;
                _ = state.ended.wait_for(Option::is_some) => return Err(Stop::SessionEnded),
                m = tokio::time::timeout_at(deadline, self.remote.wait()) => m,
            };
            match msg {
                Err(_) => {
                    return Err(Stop::Refused(format!(
                        "the target did not answer the {} request within {} s",
                        program.describe(),
                        TARGET_ANSWER.as_secs()
                    )));
                }
                Ok(None | Some(ChannelMsg::Close)) => {
                    return Err(Stop::Closed("the target closed the channel"));
                }
                Ok(Some(ChannelMsg::Success | ChannelMsg::Failure))
                    if !state.awaiting.is_empty() =>
                {
                    // The answer to an earlier pty-req or env.
                    let request = state.awaiting.pop_front().unwrap_or_default();
                    state
                        .note(self, json!({ "request": request, "target": "answered" }))
                        .await?;
                }
                Ok(Some(ChannelMsg::Success)) => break true,
                Ok(Some(ChannelMsg::Failure)) => break false,
                Ok(Some(ChannelMsg::Data { data })) => {
                    early_bytes += data.len();
                    early.push((data, None));
                }
                Ok(Some(ChannelMsg::ExtendedData { data, ext })) => {
                    early_bytes += data.len();
                    early.push((data, Some(ext)));
                }
                Ok(Some(_)) => {}
            }
            if early_bytes > MAX_EARLY_OUTPUT {
                return Err(Stop::Refused(
                    "the target sent output before it answered the program request".into(),
                ));
            }
        };
        // The handler gave up waiting: the user was told no, so nothing runs.
        if answer.send(accepted).is_err() {
            return Err(Stop::Refused(format!(
                "the target's answer to the {} request came too late",
                program.describe()
            )));
        }
        if !accepted {
            return state
                .note(
                    self,
                    json!({ "request": program.describe(), "target": "refused" }),
                )
                .await;
        }
        let command = match &program {
            Program::Exec(c) => Some(String::from_utf8_lossy(c).into_owned()),
            Program::Sftp => Some("sftp".to_owned()),
            Program::Shell => None,
        };
        state.pty = pty.is_some();
        let header = Header {
            kind: program.kind(),
            width: pty.as_ref().map_or(80, |p| p.cols),
            height: pty.as_ref().map_or(24, |p| p.rows),
            term: pty.as_ref().map(|p| p.term.clone()),
            command,
            meta: self.live.meta(),
        };
        let recorder = open_recorder(&self.live, self.admitted.number, &header)
            .map_err(|e| self.failed(&e))?;
        let notes = match std::mem::replace(&mut state.recording, Recording::Pending(Vec::new())) {
            Recording::Pending(notes) => notes,
            _ => Vec::new(),
        };
        for note in notes {
            recorder.event(note).map_err(|e| self.failed(&e))?;
        }
        if let Program::Exec(c) = &program
            && std::str::from_utf8(c).is_err()
        {
            // The header's command is lossy text; the exact bytes are here.
            use base64::Engine;
            let exact = base64::engine::general_purpose::STANDARD.encode(c);
            recorder
                .event(json!({ "exec_bytes": exact }))
                .map_err(|e| self.failed(&e))?;
        }
        state.recording = match program {
            Program::Sftp => Recording::Sftp(recorder, SftpParser::default()),
            _ => {
                let writer = Writer::spawn(Arc::clone(&recorder), self);
                Recording::Cast(recorder, writer)
            }
        };
        for (data, ext) in early {
            self.output(state, data, ext).await?;
        }
        let held = Bytes::from(std::mem::take(&mut state.held_input));
        if !held.is_empty() {
            self.record(state, Side::User, &held).await?;
            state.input.inc_by(held.len() as u64);
            carry(&self.remote, held, None, &mut state.ended).await?;
        }
        if state.eof_held {
            let _ = self.remote.eof().await;
        }
        Ok(())
    }

    /// The CA's audit log hears of a channel closed for a request.
    fn report(&self, request: &'static str, refusal: &Refusal) {
        let event = shiftkey_wire::SessionEvent {
            kind: shiftkey_wire::SessionEventKind::RequestRefused,
            channel: self.admitted.number,
            request: request.to_owned(),
            code: refusal.code().to_owned(),
            message: refusal.to_string(),
        };
        let ca = Arc::clone(&self.ca);
        let session = self.live.id().to_owned();
        tokio::spawn(async move {
            if let Err(e) = ca.session_event(&session, &event).await {
                tracing::error!(%session, error = %e, "the CA did not take the report of a refused request");
            }
        });
    }

    /// Tells the user why the channel ends, where there is a why, and
    /// closes both sides. Never waits long on a client that does not read.
    async fn stop(&mut self, state: &mut State, stop: Stop) {
        let say = |text: String| async {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                self.user.extended_data_bytes(1, text.into_bytes()),
            )
            .await;
        };
        match stop {
            Stop::Closed(why) => {
                tracing::debug!(session = %self.live.id(), channel = self.admitted.number, why, "channel closed");
            }
            Stop::SessionEnded => {
                let reason = self.live.end_reason().unwrap_or_else(|| "ended".into());
                let text = format!("\r\n[shiftkey] session ended: {reason}\r\n").into_bytes();
                // On a terminal with the output; otherwise on stderr, so
                // that a command's output is not mixed with it.
                let ext = (!state.pty).then_some(1);
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    match ext {
                        None => self.user.data_bytes(text).await,
                        Some(ext) => self.user.extended_data_bytes(ext, text).await,
                    }
                })
                .await;
                let _ = self.user.exit_status(255).await;
            }
            Stop::Refused(why) => {
                tracing::info!(session = %self.live.id(), channel = self.admitted.number, %why, "channel closed");
                let closed = json!({ "channel_closed": why });
                match &state.recording {
                    Recording::Cast(r, writer) => {
                        let _ = writer.send(r, Item::Event(closed)).await;
                    }
                    Recording::Sftp(r, _) => {
                        let _ = r.event(closed);
                    }
                    Recording::Pending(_) => {}
                }
                say(format!("shiftkey bastion: {why}\r\n")).await;
                let _ = self.user.exit_status(1).await;
            }
        }
        let _ = self.user.eof().await;
        let _ = self.user.close().await;
        let _ = self.remote.close().await;
    }
}

impl State {
    fn running(&self) -> bool {
        !matches!(self.recording, Recording::Pending(_))
    }

    fn recorder(&self) -> Option<&Arc<Recorder>> {
        match &self.recording {
            Recording::Cast(r, _) | Recording::Sftp(r, _) => Some(r),
            Recording::Pending(_) => None,
        }
    }

    /// A note in the recording (`"m"` marker, or an sftp line); before the
    /// recording exists, kept for its start (a bounded number).
    async fn note(&mut self, pump: &Pump, note: Value) -> Result<(), Stop> {
        match &mut self.recording {
            Recording::Pending(notes) => {
                if notes.len() < 256 {
                    notes.push(note);
                }
                Ok(())
            }
            Recording::Cast(r, writer) => writer
                .send(r, Item::Event(note))
                .await
                .map_err(|e| pump.failed(&e)),
            Recording::Sftp(r, _) => r.event(note).map_err(|e| pump.failed(&e)),
        }
    }
}

/// A recording that fails or reaches the size limit ends the session.
fn recording_failed(live: &LiveSession, metrics: &Metrics, channel: u32, error: &RecordError) {
    tracing::error!(session = %live.id(), channel, %error, "recording failed; ending the session");
    metrics.recording_failures.inc();
    let reason = match error {
        RecordError::SizeCap { .. } => format!("{error}; nothing passes unrecorded"),
        _ => "the session could not be recorded".to_owned(),
    };
    live.end(&reason);
}

fn answer_word(accepted: bool) -> &'static str {
    if accepted { "accepted" } else { "refused" }
}

/// What a forwarded setup request was, for the recording.
fn request_note(request: &Request) -> Value {
    match request {
        Request::Pty(p) => {
            json!({ "request": "pty-req", "term": p.term, "size": format!("{}x{}", p.cols, p.rows) })
        }
        Request::Env { name, value } => json!({ "request": "env", "name": name, "value": value }),
        other => json!({ "request": other.name() }),
    }
}

fn open_recorder(
    live: &Arc<LiveSession>,
    number: u32,
    header: &Header,
) -> Result<Arc<Recorder>, RecordError> {
    let recorder = Arc::new(Recorder::create(
        &live.dir,
        number,
        header,
        Arc::clone(&live.budget),
    )?);
    live.add_recorder(Arc::clone(&recorder));
    Ok(recorder)
}

/// Moves one chunk to `to` (stdout data, or extended data `ext`), giving up
/// when the session ends first: a peer that stops reading cannot hold a
/// session past its end.
async fn carry<S>(
    to: &Channel<S>,
    data: Bytes,
    ext: Option<u32>,
    ended: &mut watch::Receiver<Option<String>>,
) -> Result<(), Stop>
where
    S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    let send = async {
        match ext {
            None => to.data_bytes(data).await,
            Some(ext) => to.extended_data_bytes(ext, data).await,
        }
    };
    tokio::select! {
        biased;
        _ = ended.wait_for(Option::is_some) => Err(Stop::SessionEnded),
        sent = send => sent.map_err(|_| Stop::Closed("a channel is gone mid-write")),
    }
}
