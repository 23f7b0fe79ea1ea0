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
//! Two directions, each waiting only on itself: the pump's own task
//! ([`Input`]) reads the user's side (input and requests, to the target in
//! order) and, until the program runs, the target's answers; then an
//! [`Output`] task reads the target's side (output and the program's exit,
//! to the user). One task for both would stop reading the target while it
//! waits for the target's window, which opens only once the target's output
//! is read: bulk traffic both ways at once would never move again. (The
//! same wait inside russh, which stopped reading the whole connection when
//! one channel's reader fell behind, is mended in vendor/russh.)
//!
//! Invariants: nothing passes before the recorder has it (a shell, exec or
//! forwarded channel's bytes are queued, in order with its notes, for a
//! writer task that encodes and compresses them off the forwarding path;
//! the queue is bounded, so forwarding waits when the recorder falls
//! behind, and its chunks are written even past the size limit, which the
//! queue's bound keeps to a few chunks; a small chunk with nothing queued
//! before it by either direction, a keystroke or its echo, is written by
//! the direction itself, so typing wakes no other task); input
//! before the program is held (a little) until the target has accepted the
//! program and the recording exists; output before it ends the channel; a
//! recording that fails or reaches the session's size limit ends the
//! session; an SFTP stream the reader cannot follow ends the channel; the
//! channel ends when either direction does. Every wait on a peer also ends
//! when the session does, so revocation ends a session whose client has
//! stopped reading.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use russh::client;
use russh::server;
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
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
    /// Started: what each direction writes to.
    Running(Rec),
}

/// A started recording, as each direction of the channel holds it.
#[derive(Debug, Clone)]
enum Rec {
    /// asciicast, byte-exact, written by its writer task.
    Cast(Arc<Recorder>, Queue),
    /// sftp operations; one parser follows both directions.
    Sftp(Arc<Recorder>, Arc<Mutex<SftpParser>>),
}

/// What a cast recording's writer task takes, in order.
#[derive(Debug)]
enum Item {
    Bytes(Stream, Bytes),
    Event(Value),
    Resize(u32, u32),
}

/// The queue to a cast recording's writer task; each direction has a clone.
#[derive(Debug, Clone)]
struct Queue {
    sender: mpsc::Sender<Item>,
    /// Items sent and not yet written, by either direction: at zero every
    /// earlier item is in the file.
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

impl Queue {
    /// Starts the task that writes `recorder`'s items; a write that fails
    /// ends the session (the pump then stops passing anything). The task
    /// ends once every clone of the queue is gone and its items written.
    fn spawn(
        recorder: Arc<Recorder>,
        live: &Arc<LiveSession>,
        metrics: &Arc<Metrics>,
        channel: u32,
    ) -> (Self, JoinHandle<()>) {
        let (sender, mut items) = mpsc::channel::<Item>(RECORD_QUEUE);
        let live = Arc::clone(live);
        let metrics = Arc::clone(metrics);
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
        (Self { sender, queued }, task)
    }

    /// Writes a chunk: now, by the calling direction, when it is small and
    /// nothing is queued before it (the order in the file stays the order
    /// of the calls); otherwise through the queue.
    async fn bytes(
        &self,
        recorder: &Recorder,
        stream: Stream,
        data: &Bytes,
    ) -> Result<(), RecordError> {
        if data.len() <= INLINE_MAX && self.queued.load(Ordering::Acquire) == 0 {
            return recorder.admitted(stream, data);
        }
        self.send(recorder, Item::Bytes(stream, data.clone())).await
    }

    /// Queues one item; waits while the queue is full.
    async fn send(&self, recorder: &Recorder, item: Item) -> Result<(), RecordError> {
        let queued = Queued::new(&self.queued);
        self.sender
            .send(item)
            .await
            .map_err(|_| recorder.admit().err().unwrap_or(RecordError::Closed))?;
        queued.sent();
        Ok(())
    }
}

/// What both directions of a channel share: where each writes, and the
/// session they belong to.
#[derive(Debug)]
struct Ends {
    user: ChannelWriteHalf<server::Msg>,
    remote: ChannelWriteHalf<client::Msg>,
    live: Arc<LiveSession>,
    number: u32,
    handle: server::Handle,
    metrics: Arc<Metrics>,
    ca: Arc<CaClient>,
}

impl Ends {
    fn failed(&self, error: &RecordError) -> Stop {
        recording_failed(&self.live, &self.metrics, self.number, error);
        Stop::SessionEnded
    }

    /// The CA's audit log hears of a channel closed for a request.
    fn report(&self, request: &'static str, refusal: &Refusal) {
        let event = shiftkey_wire::SessionEvent {
            kind: shiftkey_wire::SessionEventKind::RequestRefused,
            channel: self.number,
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
}

impl Rec {
    fn recorder(&self) -> &Arc<Recorder> {
        match self {
            Rec::Cast(r, _) | Rec::Sftp(r, _) => r,
        }
    }

    /// Writes `data` from `side` into the recording; a failure ends the
    /// session (or, for an SFTP stream that cannot be read, the channel).
    async fn bytes(
        &self,
        ends: &Ends,
        side: Side,
        data: &Bytes,
        ended: &mut watch::Receiver<Option<String>>,
    ) -> Result<(), Stop> {
        match self {
            Rec::Cast(r, queue) => {
                r.admit().map_err(|e| ends.failed(&e))?;
                let stream = match side {
                    Side::User => Stream::Input,
                    Side::Target => Stream::Output,
                };
                let written = tokio::select! {
                    biased;
                    _ = ended.wait_for(Option::is_some) => return Err(Stop::SessionEnded),
                    written = queue.bytes(r, stream, data) => written,
                };
                written.map_err(|e| ends.failed(&e))
            }
            Rec::Sftp(r, parser) => {
                let events = {
                    let mut parser = parser.lock().unwrap_or_else(PoisonError::into_inner);
                    match side {
                        Side::User => parser.client_bytes(data),
                        Side::Target => parser.server_bytes(data),
                    }
                };
                match events {
                    Ok(events) => events
                        .into_iter()
                        .try_for_each(|e| r.event(e))
                        .map_err(|e| ends.failed(&e)),
                    Err(e) => {
                        let _ = r.event(json!({ "op": "unreadable", "why": e.to_string() }));
                        Err(Stop::Refused(format!(
                            "the sftp stream could not be read ({e}); the channel is closed so that nothing passes unrecorded"
                        )))
                    }
                }
            }
        }
    }

    /// A note in the recording (`"m"` marker, or an sftp line).
    async fn note(&self, ends: &Ends, note: Value) -> Result<(), Stop> {
        match self {
            Rec::Cast(r, queue) => queue
                .send(r, Item::Event(note))
                .await
                .map_err(|e| ends.failed(&e)),
            Rec::Sftp(r, _) => r.event(note).map_err(|e| ends.failed(&e)),
        }
    }
}

impl Recording {
    fn running(&self) -> Option<&Rec> {
        match self {
            Recording::Running(rec) => Some(rec),
            Recording::Pending(_) => None,
        }
    }

    /// A note; before the recording exists, kept for its start (a bounded
    /// number).
    async fn note(&mut self, ends: &Ends, note: Value) -> Result<(), Stop> {
        match self {
            Recording::Pending(notes) => {
                if notes.len() < 256 {
                    notes.push(note);
                }
                Ok(())
            }
            Recording::Running(rec) => rec.note(ends, note).await,
        }
    }
}

type Counter = prometheus_client::metrics::counter::Counter;

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

impl Pump {
    /// Runs a session channel until it closes.
    pub(crate) async fn session(self) {
        self.run(Recording::Pending(Vec::new()), None).await;
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
                let (queue, writer) = Queue::spawn(
                    Arc::clone(&recorder),
                    &self.live,
                    &self.metrics,
                    self.admitted.number,
                );
                self.run(Recording::Running(Rec::Cast(recorder, queue)), Some(writer))
                    .await;
            }
            Err(e) => {
                self.metrics.recording_failures.inc();
                self.live.end(&e.to_string());
                let _ = self.user.close().await;
                let _ = self.remote.close().await;
            }
        }
    }

    async fn run(self, recording: Recording, writer: Option<JoinHandle<()>>) {
        let Pump {
            user,
            remote,
            commands,
            live,
            admitted,
            handle,
            metrics,
            ca,
        } = self;
        let _running = live.channel_running();
        // One statement each: a family's read guard must be gone before
        // the next label may need its write lock.
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
        let (user_rx, user_tx) = user.split();
        let (remote_rx, remote_tx) = remote.split();
        let ended = live.subscribe();
        let ends = Arc::new(Ends {
            user: user_tx,
            remote: remote_tx,
            live,
            number: admitted.number,
            handle,
            metrics,
            ca,
        });
        let mut pump = Input {
            ends: Arc::clone(&ends),
            user: user_rx,
            remote: Some(remote_rx),
            commands,
            recording,
            writer,
            ended,
            held_input: Vec::new(),
            eof_held: false,
            pty: false,
            awaiting: VecDeque::new(),
            input,
            output,
        };
        let stop = match pump.pump().await {
            // The session's end closes the target's side too (the upstream
            // connection goes): the user still hears why.
            Stop::Closed(_) if ends.live.end_reason().is_some() => Stop::SessionEnded,
            stop => stop,
        };
        stop_channel(&ends, &pump.recording, pump.pty, stop).await;
        let recorder = pump.recording.running().map(|r| Arc::clone(r.recorder()));
        // The last queue clone goes: the writer writes what is left, ends.
        pump.recording = Recording::Pending(Vec::new());
        if let Some(writer) = pump.writer.take() {
            let _ = writer.await;
        }
        if let Some(r) = recorder {
            let _ = r.flush();
        }
        drop(admitted);
    }
}

/// The user's side of a channel, in the pump's own task: the input and the
/// requests, carried to the target in the order the client sent them; and,
/// until the program runs, the target's answers. Once it runs, the target's
/// side is read by an [`Output`] task of its own, so that neither direction
/// ever waits on the other (a channel that waits for the target's window
/// while the target waits for its output to be read would never move).
struct Input {
    ends: Arc<Ends>,
    user: ChannelReadHalf,
    /// The target's side, until the program runs and [`Output`] takes it.
    remote: Option<ChannelReadHalf>,
    commands: Option<mpsc::Receiver<Command>>,
    recording: Recording,
    writer: Option<JoinHandle<()>>,
    ended: watch::Receiver<Option<String>>,
    held_input: Vec<u8>,
    eof_held: bool,
    /// The program runs on a pty: messages go with the output, not stderr.
    pty: bool,
    /// Names of forwarded requests whose answer from the target is awaited.
    awaiting: VecDeque<&'static str>,
    input: Counter,
    output: Counter,
}

/// Why the next step of the input direction happens.
enum Event {
    User(Option<ChannelMsg>),
    Target(Option<ChannelMsg>),
}

/// Waits for the output direction's end (never, while there is none).
async fn finished(task: &mut Option<JoinHandle<Stop>>) -> Stop {
    match task {
        Some(task) => task
            .await
            .unwrap_or(Stop::Closed("the channel's output stopped")),
        None => std::future::pending().await,
    }
}

impl Input {
    async fn pump(&mut self) -> Stop {
        let mut output: Option<JoinHandle<Stop>> = None;
        let stop = loop {
            if output.is_none()
                && let Some(rec) = self.recording.running()
                && let Some(remote) = self.remote.take()
            {
                let direction = Output {
                    ends: Arc::clone(&self.ends),
                    remote,
                    recording: Recording::Running(rec.clone()),
                    ended: self.ended.clone(),
                    awaiting: std::mem::take(&mut self.awaiting),
                    output: self.output.clone(),
                };
                output = Some(tokio::spawn(direction.run()));
            }
            let event = tokio::select! {
                biased;
                _ = self.ended.wait_for(Option::is_some) => break Stop::SessionEnded,
                stop = finished(&mut output) => {
                    output = None;
                    break stop;
                }
                msg = self.user.wait() => Event::User(msg),
                msg = async {
                    match self.remote.as_mut() {
                        Some(remote) => remote.wait().await,
                        None => std::future::pending().await,
                    }
                }, if self.remote.is_some() => Event::Target(msg),
            };
            // Whatever this step waits on, the output direction's end
            // (the target closed) ends it too.
            let step = tokio::select! {
                biased;
                stop = finished(&mut output) => {
                    output = None;
                    Err(stop)
                }
                step = self.step(event) => step,
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        if let Some(task) = output {
            task.abort();
            let _ = task.await;
        }
        stop
    }

    async fn step(&mut self, event: Event) -> Result<(), Stop> {
        match event {
            Event::User(None) => Err(Stop::Closed("the user's channel is gone")),
            Event::Target(None) => Err(Stop::Closed("the target's channel is gone")),
            Event::User(Some(msg)) => self.user_message(msg).await,
            Event::Target(Some(msg)) => {
                target_message(
                    &self.ends,
                    &mut self.recording,
                    &mut self.awaiting,
                    &self.output,
                    &mut self.ended,
                    msg,
                )
                .await
            }
        }
    }

    async fn user_message(&mut self, msg: ChannelMsg) -> Result<(), Stop> {
        self.ends.live.touch();
        match msg {
            ChannelMsg::Data { data } => {
                let Some(rec) = self.recording.running() else {
                    self.held_input.extend_from_slice(&data);
                    if self.held_input.len() > MAX_EARLY_INPUT {
                        return Err(Stop::Refused(format!(
                            "more than {MAX_EARLY_INPUT} bytes of input before the channel's program started"
                        )));
                    }
                    return Ok(());
                };
                rec.bytes(&self.ends, Side::User, &data, &mut self.ended)
                    .await?;
                self.input.inc_by(data.len() as u64);
                carry(&self.ends.remote, data, None, &mut self.ended).await
            }
            // No client needs it, so none passes: noted once per chunk.
            ChannelMsg::ExtendedData { data, ext } => {
                let note = json!({ "dropped": "extended data from the client", "ext": ext, "bytes": data.len() });
                self.recording.note(&self.ends, note).await
            }
            ChannelMsg::Eof => {
                if self.recording.running().is_some() {
                    let _ = self.ends.remote.eof().await;
                } else {
                    self.eof_held = true;
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
                    _ = self.ended.wait_for(Option::is_some) => return Err(Stop::SessionEnded),
                    c = commands.recv() => c,
                };
                match command {
                    Some(command) => self.execute(command).await,
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

    async fn execute(&mut self, command: Command) -> Result<(), Stop> {
        let ends = Arc::clone(&self.ends);
        match command {
            Command::Forward(request) => {
                let sent = match &request {
                    Request::Pty(p) => {
                        ends.remote
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
                        ends.remote.set_env(true, name.clone(), value.clone()).await
                    }
                    _ => Ok(()),
                };
                sent.map_err(|_| Stop::Closed("the target's channel is gone"))?;
                self.awaiting.push_back(request.name());
                self.recording.note(&ends, request_note(&request)).await
            }
            Command::Pass(request) => {
                match &request {
                    Request::WindowChange(size) => {
                        match self.recording.running() {
                            Some(Rec::Cast(r, queue)) => queue
                                .send(r, Item::Resize(size.cols, size.rows))
                                .await
                                .map_err(|e| ends.failed(&e))?,
                            Some(Rec::Sftp(r, _)) => {
                                r.resize(size.cols, size.rows)
                                    .map_err(|e| ends.failed(&e))?;
                            }
                            None => {}
                        }
                        let _ = ends
                            .remote
                            .window_change(size.cols, size.rows, size.pix_width, size.pix_height)
                            .await;
                    }
                    Request::Signal(signal) => {
                        self.recording
                            .note(&ends, json!({ "signal": signal_name(signal) }))
                            .await?;
                        let _ = ends.remote.signal(signal.clone()).await;
                    }
                    _ => {}
                }
                Ok(())
            }
            Command::Refused { request, refusal } => {
                tracing::info!(session = %ends.live.id(), channel = ends.number, request, %refusal, "request refused");
                self.recording.note(&ends, json!({ "refused": request, "code": refusal.code(), "why": refusal.to_string() })).await
            }
            Command::Close { request, refusal } => {
                tracing::warn!(session = %ends.live.id(), channel = ends.number, request, %refusal, "request refused; closing the channel");
                self.recording.note(&ends, json!({ "refused": request, "code": refusal.code(), "why": refusal.to_string() })).await?;
                ends.report(request, &refusal);
                Err(Stop::Refused(refusal.to_string()))
            }
            Command::Start {
                program,
                pty,
                answer,
            } => self.start(program, pty, answer).await,
        }
    }

    /// Asks the target for the program; on its yes, opens the recording and
    /// lets the held input through.
    async fn start(
        &mut self,
        program: Program,
        pty: Option<PtyRequest>,
        answer: oneshot::Sender<bool>,
    ) -> Result<(), Stop> {
        let ends = Arc::clone(&self.ends);
        let Some(remote) = self.remote.as_mut() else {
            // Only one program per channel: the handler refuses a second.
            return Err(Stop::Refused(format!(
                "the channel's program is already running; {} refused",
                program.describe()
            )));
        };
        let asked = match &program {
            Program::Shell => ends.remote.request_shell(true).await,
            Program::Exec(command) => ends.remote.exec(true, command.clone()).await,
            Program::Sftp => ends.remote.request_subsystem(true, "sftp").await,
        };
        asked.map_err(|_| Stop::Closed("the target's channel is gone"))?;
        let mut early: Vec<(Bytes, Option<u32>)> = Vec::new();
        let mut early_bytes = 0usize;
        let deadline = tokio::time::Instant::now() + TARGET_ANSWER;
        let accepted = loop {
            let msg = tokio::select! {
                biased;
                _ = self.ended.wait_for(Option::is_some) => return Err(Stop::SessionEnded),
                m = tokio::time::timeout_at(deadline, remote.wait()) => m,
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
                    if !self.awaiting.is_empty() =>
                {
                    // The answer to an earlier pty-req or env.
                    let request = self.awaiting.pop_front().unwrap_or_default();
                    self.recording
                        .note(&ends, json!({ "request": request, "target": "answered" }))
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
            return self
                .recording
                .note(
                    &ends,
                    json!({ "request": program.describe(), "target": "refused" }),
                )
                .await;
        }
        let command = match &program {
            Program::Exec(c) => Some(String::from_utf8_lossy(c).into_owned()),
            Program::Sftp => Some("sftp".to_owned()),
            Program::Shell => None,
        };
        self.pty = pty.is_some();
        let header = Header {
            kind: program.kind(),
            width: pty.as_ref().map_or(80, |p| p.cols),
            height: pty.as_ref().map_or(24, |p| p.rows),
            term: pty.as_ref().map(|p| p.term.clone()),
            command,
            meta: ends.live.meta(),
        };
        let recorder =
            open_recorder(&ends.live, ends.number, &header).map_err(|e| ends.failed(&e))?;
        if let Recording::Pending(notes) = &mut self.recording {
            for note in std::mem::take(notes) {
                recorder.event(note).map_err(|e| ends.failed(&e))?;
            }
        }
        if let Program::Exec(c) = &program
            && std::str::from_utf8(c).is_err()
        {
            // The header's command is lossy text; the exact bytes are here.
            use base64::Engine;
            let exact = base64::engine::general_purpose::STANDARD.encode(c);
            recorder
                .event(json!({ "exec_bytes": exact }))
                .map_err(|e| ends.failed(&e))?;
        }
        self.recording = Recording::Running(match program {
            Program::Sftp => Rec::Sftp(recorder, Arc::new(Mutex::new(SftpParser::default()))),
            _ => {
                let (queue, writer) = Queue::spawn(
                    Arc::clone(&recorder),
                    &ends.live,
                    &ends.metrics,
                    ends.number,
                );
                self.writer = Some(writer);
                Rec::Cast(recorder, queue)
            }
        });
        for (data, ext) in early {
            output(
                &ends,
                &self.recording,
                &self.output,
                &mut self.ended,
                data,
                ext,
            )
            .await?;
        }
        let held = Bytes::from(std::mem::take(&mut self.held_input));
        if let Some(rec) = self.recording.running()
            && !held.is_empty()
        {
            rec.bytes(&ends, Side::User, &held, &mut self.ended).await?;
            self.input.inc_by(held.len() as u64);
            carry(&ends.remote, held, None, &mut self.ended).await?;
        }
        if self.eof_held {
            let _ = ends.remote.eof().await;
        }
        Ok(())
    }
}

/// The target's side of a running channel, in a task of its own: output to
/// the user, recorded before it passes, with the program's exit after it.
struct Output {
    ends: Arc<Ends>,
    remote: ChannelReadHalf,
    recording: Recording,
    ended: watch::Receiver<Option<String>>,
    awaiting: VecDeque<&'static str>,
    output: Counter,
}

impl Output {
    async fn run(mut self) -> Stop {
        loop {
            let msg = tokio::select! {
                biased;
                _ = self.ended.wait_for(Option::is_some) => return Stop::SessionEnded,
                msg = self.remote.wait() => msg,
            };
            let Some(msg) = msg else {
                return Stop::Closed("the target's channel is gone");
            };
            let step = target_message(
                &self.ends,
                &mut self.recording,
                &mut self.awaiting,
                &self.output,
                &mut self.ended,
                msg,
            )
            .await;
            if let Err(stop) = step {
                return stop;
            }
        }
    }
}

/// One message from the target: output and the program's exit pass to the
/// user, recorded; answers to forwarded requests are noted.
async fn target_message(
    ends: &Ends,
    recording: &mut Recording,
    awaiting: &mut VecDeque<&'static str>,
    counter: &Counter,
    ended: &mut watch::Receiver<Option<String>>,
    msg: ChannelMsg,
) -> Result<(), Stop> {
    ends.live.touch();
    match msg {
        ChannelMsg::Data { data } => output(ends, recording, counter, ended, data, None).await,
        ChannelMsg::ExtendedData { data, ext } => {
            output(ends, recording, counter, ended, data, Some(ext)).await
        }
        ChannelMsg::ExitStatus { exit_status } => {
            *ends
                .live
                .exit_status
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(exit_status);
            recording
                .note(ends, json!({ "exit_status": exit_status }))
                .await?;
            let _ = ends.user.exit_status(exit_status).await;
            Ok(())
        }
        ChannelMsg::ExitSignal {
            signal_name: signal,
            core_dumped,
            error_message,
            lang_tag,
        } => {
            recording
                .note(ends, json!({ "exit_signal": signal_name(&signal) }))
                .await?;
            let _ = ends
                .handle
                .exit_signal_request(ends.user.id(), signal, core_dumped, error_message, lang_tag)
                .await;
            Ok(())
        }
        // Answers to forwarded pty-req and env requests, in order.
        ChannelMsg::Success | ChannelMsg::Failure => {
            let accepted = matches!(msg, ChannelMsg::Success);
            let request = awaiting.pop_front().unwrap_or("unasked request");
            recording
                .note(
                    ends,
                    json!({ "request": request, "target": answer_word(accepted) }),
                )
                .await
        }
        ChannelMsg::Eof => {
            let _ = ends.user.eof().await;
            Ok(())
        }
        ChannelMsg::Close => Err(Stop::Closed("the target closed the channel")),
        _ => Ok(()),
    }
}

/// Output from the target: recorded, then passed to the user.
async fn output(
    ends: &Ends,
    recording: &Recording,
    counter: &Counter,
    ended: &mut watch::Receiver<Option<String>>,
    data: Bytes,
    ext: Option<u32>,
) -> Result<(), Stop> {
    let Some(rec) = recording.running() else {
        return Err(Stop::Refused(
            "the target sent output before the channel's program started".into(),
        ));
    };
    rec.bytes(ends, Side::Target, &data, ended).await?;
    counter.inc_by(data.len() as u64);
    carry(&ends.user, data, ext, ended).await
}

/// Tells the user why the channel ends, where there is a why, and closes
/// both sides. Never waits long on a client that does not read.
async fn stop_channel(ends: &Ends, recording: &Recording, pty: bool, stop: Stop) {
    let say = |text: String| async {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            ends.user.extended_data_bytes(1, text.into_bytes()),
        )
        .await;
    };
    match stop {
        Stop::Closed(why) => {
            tracing::debug!(session = %ends.live.id(), channel = ends.number, why, "channel closed");
        }
        Stop::SessionEnded => {
            let reason = ends.live.end_reason().unwrap_or_else(|| "ended".into());
            let text = format!("\r\n[shiftkey] session ended: {reason}\r\n").into_bytes();
            // On a terminal with the output; otherwise on stderr, so
            // that a command's output is not mixed with it.
            let ext = (!pty).then_some(1);
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                match ext {
                    None => ends.user.data_bytes(text).await,
                    Some(ext) => ends.user.extended_data_bytes(ext, text).await,
                }
            })
            .await;
            let _ = ends.user.exit_status(255).await;
        }
        Stop::Refused(why) => {
            tracing::info!(session = %ends.live.id(), channel = ends.number, %why, "channel closed");
            let closed = json!({ "channel_closed": why });
            match recording.running() {
                Some(Rec::Cast(r, queue)) => {
                    let _ = queue.send(r, Item::Event(closed)).await;
                }
                Some(Rec::Sftp(r, _)) => {
                    let _ = r.event(closed);
                }
                None => {}
            }
            say(format!("shiftkey bastion: {why}\r\n")).await;
            let _ = ends.user.exit_status(1).await;
        }
    }
    let _ = ends.user.eof().await;
    let _ = ends.user.close().await;
    let _ = ends.remote.close().await;
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
    to: &ChannelWriteHalf<S>,
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
