//! Fuzz targets for the bastion's parsers of untrusted input, called by the
//! AFL binaries in `fuzz/` (thin wrappers) and by the corpus and regression
//! replay in `cargo test`. Not an API: everything here exists for those
//! two callers (and the channel property tests), behind `#[doc(hidden)]`.
//!
//! A failed property panics, which AFL records as a crash.
//!
//! - [`channel`]: a session channel's requests in any order a client cares
//!   to send them, with the target's answers to the program in between
//!   (`channel.rs`'s state machine). Properties: at most one program is
//!   ever started; every request gets exactly one answer (the bastion's, or
//!   for the program the target's, given once); nothing is forwarded or
//!   passed after the channel was closed for abuse; a pty, env, signal or
//!   window-change goes on only when the rules say it may (independent
//!   model below); names that reach the audit log are bounded and free of
//!   control characters.
//! - [`sftp`]: an SFTP stream as the bastion reads it passively
//!   (`sftp.rs`), both directions, in chunks the input chooses: never a
//!   panic; what the reader keeps between packets stays bounded; packets we
//!   build (an upload, a download, renames) read back as exactly the
//!   operations they are, however they are split.
//! - [`cast`]: terminal bytes written as asciicast events (`cast.rs`), in
//!   chunks and on both streams as the input chooses, read back by the
//!   reader `shiftkey recordings cat` uses: every line is an asciicast v2
//!   event and each stream's bytes come back exactly.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use russh::Sig;

use crate::cast::{self, Stream};
use crate::channel::{ChannelState, Decision, Program, PtyRequest, Refusal, Request, WindowSize};
use crate::config::AcceptEnv;
use crate::sftp::{SftpError, SftpParser};

/// The bastion's default `accept_env`.
const ACCEPT_ENV: [&str; 3] = ["LANG", "LC_*", "TERM"];

/// Requests a channel may get before its program (`channel.rs`).
const MAX_SETUP_REQUESTS: usize = 64;

/// One thing that happens to a session channel.
#[derive(Debug, Clone)]
pub enum ChannelOp {
    /// The user's client sends a request.
    Request(ChannelRequest),
    /// The target answers the program request (when one is waiting).
    TargetAnswers(bool),
    /// Data from the user.
    Data,
    /// The user's EOF.
    Eof,
    /// The user closes the channel.
    Close,
}

/// A channel request, in a form a property test can generate.
#[derive(Debug, Clone)]
pub enum ChannelRequest {
    Pty,
    Env(String),
    WindowChange(u32, u32),
    Signal(String),
    X11,
    Agent,
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

impl ChannelRequest {
    fn request(&self) -> Request {
        match self {
            ChannelRequest::Pty => Request::Pty(PtyRequest {
                term: "xterm-256color".into(),
                cols: 80,
                rows: 24,
                pix_width: 0,
                pix_height: 0,
                modes: Vec::new(),
            }),
            ChannelRequest::Env(name) => Request::Env {
                name: name.clone(),
                value: "x".into(),
            },
            ChannelRequest::WindowChange(cols, rows) => Request::WindowChange(WindowSize {
                cols: *cols,
                rows: *rows,
                pix_width: 0,
                pix_height: 0,
            }),
            ChannelRequest::Signal(name) => Request::Signal(match name.as_str() {
                "INT" => Sig::INT,
                "TERM" => Sig::TERM,
                other => Sig::Custom(other.to_owned()),
            }),
            ChannelRequest::X11 => Request::X11,
            ChannelRequest::Agent => Request::Agent,
            ChannelRequest::Shell => Request::Shell,
            ChannelRequest::Exec(command) => Request::Exec(command.clone()),
            ChannelRequest::Subsystem(name) => Request::Subsystem(name.clone()),
        }
    }

    fn is_program(&self) -> bool {
        matches!(
            self,
            ChannelRequest::Shell | ChannelRequest::Exec(_) | ChannelRequest::Subsystem(_)
        )
    }
}

/// An independent reading of OpenSSH's AcceptEnv patterns (`*`, `?`).
fn env_accepted(name: &str) -> bool {
    fn matches(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, _) => t.is_empty(),
            (Some(b'*'), _) => {
                matches(p.get(1..).unwrap_or_default(), t)
                    || (!t.is_empty() && matches(p, t.get(1..).unwrap_or_default()))
            }
            (Some(b'?'), Some(_)) => matches(
                p.get(1..).unwrap_or_default(),
                t.get(1..).unwrap_or_default(),
            ),
            (Some(a), Some(b)) if a == b => matches(
                p.get(1..).unwrap_or_default(),
                t.get(1..).unwrap_or_default(),
            ),
            _ => false,
        }
    }
    ACCEPT_ENV
        .iter()
        .any(|p| matches(p.as_bytes(), name.as_bytes()))
}

/// What a refusal puts into the audit log and the recording: names from
/// the client are clipped and free of control characters.
fn check_refusal_text(refusal: &Refusal) {
    let names: Vec<&str> = match refusal {
        Refusal::EnvNotAccepted(n) | Refusal::EnvAfterProgram(n) | Refusal::UnknownSubsystem(n) => {
            vec![n]
        }
        _ => Vec::new(),
    };
    for name in names {
        assert!(
            name.chars().count() <= 64 && !name.chars().any(char::is_control),
            "a client's name reaches the audit log unclipped: {name:?}"
        );
    }
    assert!(!refusal.code().is_empty());
}

/// Runs `ops` on a fresh channel and checks every property (see the
/// module's documentation); panics when one fails.
pub fn channel_sequence(permits_pty: bool, ops: &[ChannelOp]) {
    // INVARIANT: the patterns are the bastion's defaults, valid names.
    let Ok(accept_env) = AcceptEnv::new(ACCEPT_ENV.iter().map(|p| (*p).to_owned()).collect())
    else {
        unreachable!("the default accept_env patterns are valid")
    };
    let mut state = ChannelState::new(permits_pty, Arc::new(accept_env));
    // The model: what the channel may do, derived from the rules alone.
    let mut program_asked = false;
    let mut started = 0usize;
    let mut waiting_for_target = false;
    let mut running = false;
    let mut closed_for_abuse = false;
    let mut pty: Option<(u32, u32)> = None;
    let mut setup_requests = 0usize;
    let mut answers = 0usize;
    let mut requests = 0usize;
    let mut user_closed = false;
    for op in ops {
        if user_closed {
            // The channel is gone: nothing more reaches the state machine
            // (russh drops a closed channel's messages).
            break;
        }
        match op {
            ChannelOp::Request(request) => {
                requests += 1;
                let setup = !program_asked && !closed_for_abuse;
                let second_program = request.is_program() && program_asked;
                if setup {
                    setup_requests += 1;
                }
                let decision = state.decide(&request.request());
                // Exactly one answer: the bastion's now, or the target's to
                // the program, which must then be the only one waiting.
                match decision.answer() {
                    Some(_) => answers += 1,
                    None => {
                        assert!(!waiting_for_target, "two program answers awaited: {ops:?}");
                        waiting_for_target = true;
                    }
                }
                if closed_for_abuse {
                    assert!(
                        matches!(decision, Decision::Refuse(_) | Decision::Close(_)),
                        "{decision:?} after the channel was closed for abuse: {ops:?}"
                    );
                }
                match &decision {
                    Decision::Start(program) => {
                        started += 1;
                        assert_eq!(started, 1, "a second program started: {ops:?}");
                        assert!(!program_asked && !closed_for_abuse);
                        match (request, program) {
                            (ChannelRequest::Shell, Program::Shell) => {}
                            (ChannelRequest::Exec(a), Program::Exec(b)) => assert_eq!(a, b),
                            (ChannelRequest::Subsystem(name), Program::Sftp) => {
                                assert_eq!(name, "sftp");
                            }
                            _ => panic!("{request:?} started {program:?}"),
                        }
                    }
                    Decision::Forward => match request {
                        ChannelRequest::Pty => {
                            assert!(setup && permits_pty && pty.is_none(), "{ops:?}");
                            pty = Some((80, 24));
                        }
                        ChannelRequest::Env(name) => {
                            assert!(setup && env_accepted(name), "env {name:?}: {ops:?}");
                        }
                        other => panic!("{other:?} forwarded: {ops:?}"),
                    },
                    Decision::Pass => match request {
                        ChannelRequest::Signal(_) => assert!(running, "{ops:?}"),
                        ChannelRequest::WindowChange(cols, rows) => {
                            assert!(pty.is_some(), "{ops:?}");
                            pty = Some((*cols, *rows));
                        }
                        other => panic!("{other:?} passed: {ops:?}"),
                    },
                    Decision::Refuse(refusal) => check_refusal_text(refusal),
                    Decision::Close(refusal) => {
                        check_refusal_text(refusal);
                        let too_many = setup && setup_requests > MAX_SETUP_REQUESTS;
                        assert!(
                            second_program || too_many || closed_for_abuse,
                            "closed without cause ({refusal}): {ops:?}"
                        );
                        closed_for_abuse = true;
                    }
                }
                // Rules the decision must follow.
                if setup && setup_requests > MAX_SETUP_REQUESTS {
                    assert!(
                        matches!(decision, Decision::Close(Refusal::TooManyRequests)),
                        "request {setup_requests} before a program: {decision:?}"
                    );
                }
                if second_program {
                    assert!(
                        matches!(decision, Decision::Close(Refusal::SecondProgram { .. })),
                        "a second program request: {decision:?}: {ops:?}"
                    );
                }
                // The request the state machine took as the channel's
                // program (started, or refused as an unknown subsystem): not
                // one refused or closing the channel for abuse.
                if request.is_program() && !closed_for_abuse {
                    program_asked = true;
                }
                assert_eq!(
                    state.pty().map(|p| (p.cols, p.rows)),
                    pty,
                    "the channel's pty: {ops:?}"
                );
            }
            ChannelOp::TargetAnswers(accepted) => {
                if waiting_for_target {
                    waiting_for_target = false;
                    answers += 1;
                    running = *accepted;
                }
                state.started(*accepted);
            }
            // Data and EOF are the pump's, not the state machine's: they
            // change nothing here, and sequences hold them so that requests
            // arrive between them as on a real channel. Data flows only
            // once the target accepted the one program.
            ChannelOp::Data | ChannelOp::Eof => {
                assert!(!running || started == 1);
            }
            ChannelOp::Close => user_closed = true,
        }
    }
    assert_eq!(
        answers + usize::from(waiting_for_target),
        requests,
        "every request is answered once: {ops:?}"
    );
    assert!(started <= 1);
}

/// The fuzz entry point for the channel state machine: the first byte
/// says whether the certificate permits a pty, then each byte (with the
/// bytes after it for names and sizes) is one operation.
pub fn channel(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut input = Input(rest);
    let mut ops = Vec::new();
    while let Some(op) = input.byte() {
        let op = match op % 13 {
            0 => ChannelOp::Request(ChannelRequest::Pty),
            1 => match input.name() {
                Some(name) => ChannelOp::Request(ChannelRequest::Env(name)),
                None => break,
            },
            2 => match (input.u16(), input.u16()) {
                (Some(cols), Some(rows)) => ChannelOp::Request(ChannelRequest::WindowChange(
                    u32::from(cols),
                    u32::from(rows),
                )),
                _ => break,
            },
            3 => match input.name() {
                Some(name) => ChannelOp::Request(ChannelRequest::Signal(name)),
                None => break,
            },
            4 => ChannelOp::Request(ChannelRequest::X11),
            5 => ChannelOp::Request(ChannelRequest::Agent),
            6 => ChannelOp::Request(ChannelRequest::Shell),
            7 => match input.bytes() {
                Some(command) => ChannelOp::Request(ChannelRequest::Exec(command.to_vec())),
                None => break,
            },
            8 => match input.name() {
                Some(name) => ChannelOp::Request(ChannelRequest::Subsystem(name)),
                None => break,
            },
            9 => ChannelOp::Request(ChannelRequest::Subsystem("sftp".into())),
            10 => match input.byte() {
                Some(answer) => ChannelOp::TargetAnswers(answer & 1 == 1),
                None => break,
            },
            11 => ChannelOp::Data,
            _ if op & 0x80 == 0 => ChannelOp::Eof,
            _ => ChannelOp::Close,
        };
        ops.push(op);
    }
    channel_sequence(flags & 1 == 1, &ops);
}

/// Fields taken from the front of a fuzz input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    /// A length byte, then that many bytes.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.byte()?;
        self.take(usize::from(len))
    }
    fn name(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

// ---------------------------------------------------------------------------
// SFTP

/// The largest SFTP packet the reader takes (`sftp.rs`).
const SFTP_MAX_PACKET: usize = 256 * 1024 + 1024;

/// Bytes the SFTP reader may keep between calls: an incomplete packet per
/// direction, and the paths and handles it follows (`sftp.rs`'s 16 MiB,
/// which the packet that crosses it may pass by a packet's worth).
const SFTP_RETAINED_LIMIT: usize = 16 * 1024 * 1024 + 4 * (4 + SFTP_MAX_PACKET);

/// The fuzz entry point for the SFTP reader. The first byte picks: even,
/// the rest is raw traffic, cut into chunks for either direction by a
/// control byte before each (`bit 7`: direction, the rest: length); odd,
/// the rest shapes a session of packets we build, which must read back as
/// exactly its operations however it is split.
pub fn sftp(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw_sftp(rest);
    } else {
        built_sftp(rest);
    }
}

fn raw_sftp(mut data: &[u8]) {
    let mut parser = SftpParser::default();
    while let Some((&control, rest)) = data.split_first() {
        let len = usize::from(control & 0x7f).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        data = tail;
        let result = if control & 0x80 == 0 {
            parser.client_bytes(chunk)
        } else {
            parser.server_bytes(chunk)
        };
        match result {
            Ok(events) => {
                for event in events {
                    assert!(event["op"].is_string(), "an event without its op: {event}");
                }
            }
            // The pump ends the channel: nothing more is read.
            Err(SftpError::PacketLength(_) | SftpError::Outstanding | SftpError::Held) => return,
        }
        assert!(
            parser.retained_bytes() <= SFTP_RETAINED_LIMIT,
            "the SFTP reader keeps {} bytes",
            parser.retained_bytes()
        );
    }
}

/// A client that sends OPEN after OPEN with the longest paths a packet
/// holds, and never waits for a reply: the reader must give up (the pump
/// then ends the channel) before it holds more than its limit.
pub fn sftp_flood() {
    let mut parser = SftpParser::default();
    let path = vec![b'a'; SFTP_MAX_PACKET - 64];
    for id in 0..200u32 {
        let mut open = id.to_be_bytes().to_vec();
        sftp_string(&mut open, &path);
        open.extend_from_slice(&1u32.to_be_bytes());
        open.extend_from_slice(&0u32.to_be_bytes());
        let result = parser.client_bytes(&sftp_packet(3, &open));
        assert!(
            parser.retained_bytes() <= SFTP_RETAINED_LIMIT,
            "after {id} OPENs the SFTP reader holds {} bytes",
            parser.retained_bytes()
        );
        if result.is_err() {
            return;
        }
    }
    panic!("the SFTP reader followed 200 OPENs of 256 KiB paths without a reply");
}

fn sftp_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn sftp_packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len() + 1)
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// A session as a client and server speak it: an upload, a download of a
/// directory entry, a rename, a refused open, each file named from the
/// input; `expected` lists the operations the reader must report.
fn built_sftp(data: &[u8]) {
    let mut client = Vec::new();
    let mut server = Vec::new();
    let mut expected = Vec::new();
    let names: Vec<String> = data
        .split(|b| *b == 0)
        .take(8)
        .map(|n| String::from_utf8_lossy(n.get(..4096).unwrap_or(n)).into_owned())
        .collect();
    let name = |i: usize| {
        names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("/srv/file-{i}"))
    };
    client.extend(sftp_packet(1, &3u32.to_be_bytes()));
    expected.push(serde_json::json!({ "op": "init", "version": 3 }));
    server.extend(sftp_packet(2, &3u32.to_be_bytes()));
    let mut id = 1u32;
    let written = (data.len() as u64 * 3).min(200_000);
    for (i, write) in [(0usize, true), (1, false)] {
        let path = name(i);
        let handle = format!("h{i}");
        let mut open = id.to_be_bytes().to_vec();
        sftp_string(&mut open, path.as_bytes());
        open.extend_from_slice(&(if write { 0x1au32 } else { 0x01 }).to_be_bytes());
        open.extend_from_slice(&0u32.to_be_bytes());
        client.extend(sftp_packet(3, &open));
        let mode = if write { "write" } else { "read" };
        expected.push(serde_json::json!({ "op": "open", "path": path, "mode": mode }));
        let mut reply = id.to_be_bytes().to_vec();
        sftp_string(&mut reply, handle.as_bytes());
        // Replies interleave with requests; the test below feeds the
        // server's bytes after the client's, so a HANDLE must be known
        // before the WRITE: send this reply now.
        server.extend(sftp_packet(102, &reply));
        id += 1;
        let mut moved = 0u64;
        if write {
            let mut body = id.to_be_bytes().to_vec();
            sftp_string(&mut body, handle.as_bytes());
            body.extend_from_slice(&0u64.to_be_bytes());
            sftp_string(
                &mut body,
                &vec![0x5a; usize::try_from(written).unwrap_or(0)],
            );
            client.extend(sftp_packet(6, &body));
            moved = written;
            id += 1;
        }
        let mut close = id.to_be_bytes().to_vec();
        sftp_string(&mut close, handle.as_bytes());
        client.extend(sftp_packet(4, &close));
        expected.push(serde_json::json!({
            "op": "close", "path": path, "bytes_written": moved, "bytes_read": 0
        }));
        id += 1;
    }
    let (from, to) = (name(2), name(3));
    let mut rename = id.to_be_bytes().to_vec();
    sftp_string(&mut rename, from.as_bytes());
    sftp_string(&mut rename, to.as_bytes());
    client.extend(sftp_packet(18, &rename));
    expected.push(serde_json::json!({ "op": "rename", "path": from, "to": to }));
    id += 1;
    let refused = name(4);
    let mut open = id.to_be_bytes().to_vec();
    sftp_string(&mut open, refused.as_bytes());
    open.extend_from_slice(&1u32.to_be_bytes());
    open.extend_from_slice(&0u32.to_be_bytes());
    client.extend(sftp_packet(3, &open));
    expected.push(serde_json::json!({ "op": "open", "path": refused, "mode": "read" }));
    let mut status = id.to_be_bytes().to_vec();
    status.extend_from_slice(&2u32.to_be_bytes());
    sftp_string(&mut status, b"No such file");
    sftp_string(&mut status, b"");
    server.extend(sftp_packet(101, &status));
    expected.push(serde_json::json!({ "op": "open-failed", "path": refused, "status": 2 }));

    // Feed in an order the protocol allows: each HANDLE reply right after
    // its OPEN, split at points the input picks.
    let cut = |bytes: &[u8], seed: u8| -> Vec<Vec<u8>> {
        let step = usize::from(seed % 17) + 1;
        bytes.chunks(step).map(<[u8]>::to_vec).collect()
    };
    let seed = data.first().copied().unwrap_or(7);
    let mut parser = SftpParser::default();
    let mut events = Vec::new();
    // Client and server interleaved packet by packet, as a real session.
    let client_packets = split_packets(&client);
    let server_packets = split_packets(&server);
    let mut s = server_packets.iter();
    for packet in &client_packets {
        for chunk in cut(packet, seed) {
            events.extend(
                parser
                    .client_bytes(&chunk)
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        // VERSION after INIT, HANDLE after OPEN, STATUS after the last OPEN.
        if matches!(packet.get(4), Some(1 | 3))
            && let Some(reply) = s.next()
        {
            for chunk in cut(reply, seed.wrapping_add(5)) {
                events.extend(
                    parser
                        .server_bytes(&chunk)
                        .unwrap_or_else(|e| panic!("{e}")),
                );
            }
        }
    }
    assert_eq!(
        events, expected,
        "the reader's events for a session we built"
    );
}

/// The packets of a stream we built, each with its length prefix.
fn split_packets(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(len) = bytes.get(..4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (packet, rest) = bytes.split_at((4 + len).min(bytes.len()));
        out.push(packet.to_vec());
        bytes = rest;
    }
    out
}

// ---------------------------------------------------------------------------
// asciicast

/// The header line a cast file starts with (the reader skips it).
const CAST_HEADER: &[u8] = b"{\"version\":2,\"width\":80,\"height\":24}\n";

/// The fuzz entry point for asciicast events: control bytes cut the input
/// into chunks for output or input (`bit 7`: stream, the rest: length);
/// `read` is the reader `shiftkey recordings cat` uses (cast bytes, `o` or
/// `i`) → the stream's bytes.
pub fn cast(data: &[u8], read: fn(&[u8], &str) -> Result<Vec<u8>, String>) {
    let mut file = CAST_HEADER.to_vec();
    let mut carry = [Vec::new(), Vec::new()];
    let mut sent: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut rest = data;
    let mut elapsed = 0.0f64;
    while let Some((&control, tail)) = rest.split_first() {
        let len = usize::from(control & 0x7f).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        let stream = if control & 0x80 == 0 {
            Stream::Output
        } else {
            Stream::Input
        };
        elapsed += 0.125;
        let [out_carry, in_carry] = &mut carry;
        let carry = if stream == Stream::Output {
            out_carry
        } else {
            in_carry
        };
        cast::encode(elapsed, stream, carry, chunk, &mut file);
        if let Some(bytes) = sent.get_mut(stream.index()) {
            bytes.extend_from_slice(chunk);
        }
    }
    for stream in [Stream::Output, Stream::Input] {
        if let Some(c) = carry.get_mut(stream.index()) {
            cast::encode_rest(elapsed, stream, c, &mut file);
        }
    }
    // Every line after the header is an asciicast v2 event.
    let mut decoded: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for line in file.split(|b| *b == b'\n').skip(1) {
        if line.is_empty() {
            continue;
        }
        let event: serde_json::Value = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(line)));
        let Some([t, code, payload]) = event.as_array().map(Vec::as_slice) else {
            panic!("not a 3-element event: {event}");
        };
        assert!(t.as_f64().is_some_and(|t| t >= 0.0), "{event}");
        let (Some(code), Some(payload)) = (code.as_str(), payload.as_str()) else {
            panic!("not an event: {event}");
        };
        match code {
            "o" | "i" => decoded
                .entry(if code == "o" { "o" } else { "i" })
                .or_default()
                .extend_from_slice(payload.as_bytes()),
            cast::BYTES_CODE => {
                let (stream, b64) = payload
                    .split_once(':')
                    .unwrap_or_else(|| panic!("a byte event without its stream: {event}"));
                let bytes = STANDARD
                    .decode(b64)
                    .unwrap_or_else(|e| panic!("bad base64 ({e}): {event}"));
                assert!(!bytes.is_empty(), "an empty byte event: {event}");
                decoded
                    .entry(if stream == "o" { "o" } else { "i" })
                    .or_default()
                    .extend(bytes);
                assert!(stream == "o" || stream == "i", "{event}");
            }
            other => panic!("event code {other:?}"),
        }
    }
    for stream in [Stream::Output, Stream::Input] {
        let want = sent.get(stream.index()).cloned().unwrap_or_default();
        let got = decoded.remove(stream.code()).unwrap_or_default();
        assert_eq!(got, want, "{} stream, decoded here", stream.code());
        let read_back = read(&file, stream.code())
            .unwrap_or_else(|e| panic!("the reader refuses our file: {e}"));
        assert_eq!(read_back, want, "{} stream, by the reader", stream.code());
    }
}

/// Seed inputs for the bastion's targets, by name.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "bastion_channel" => vec![
            // pty, env LANG, shell, target accepts, data, window-change, EOF, close.
            [
                &[1u8, 0, 1, 4][..],
                b"LANG",
                &[6, 10, 1, 11, 2, 0, 120, 0, 40, 12, 0x81],
            ]
            .concat(),
            // exec then a second program: closed.
            [&[0u8, 7, 2][..], b"id", &[10, 1, 6, 9]].concat(),
            // sftp refused by the target, then signals.
            vec![1, 9, 10, 0, 3, 3, b'I', b'N', b'T', 11],
            // env not accepted, x11, agent, unknown subsystem.
            [&[1u8, 1, 4][..], b"PATH", &[4, 5, 8, 3], b"xyz"].concat(),
            // more than 64 setup requests.
            [vec![1u8], vec![4u8; 70]].concat(),
        ],
        "sftp" => vec![
            [&[1u8][..], b"/srv/upload.bin\0/etc/hosts\0a\0b\0/nope"].concat(),
            [&[3u8][..], "/home/é\0\0x".as_bytes()].concat(),
            {
                let mut raw = vec![0u8];
                let init = sftp_packet(1, &3u32.to_be_bytes());
                raw.push(u8::try_from(init.len()).unwrap_or(0));
                raw.extend(&init);
                let version = sftp_packet(2, &3u32.to_be_bytes());
                raw.push(0x80 | u8::try_from(version.len()).unwrap_or(0));
                raw.extend(&version);
                raw
            },
            vec![0, 4, b'e', b'c', b'h', b'o'],
        ],
        "cast" => vec![
            [&[20u8][..], b"ls -la\r\n\x1b[0mtotal "].concat(),
            [
                &[0x83u8][..],
                b"id\r",
                &[5],
                b"caf\xc3",
                &[3],
                b"\xa9\xff\x00",
            ]
            .concat(),
            [&[40u8][..], &[0xffu8; 40]].concat(),
        ],
        _ => Vec::new(),
    }
}
