//! Recording, keystroke by keystroke: one file per SSH channel.
//!
//! Shell, exec and forwarded channels are asciicast v2 (`"o"` output, `"i"`
//! input, `"r"` resize events with their timing, `"m"` markers, and `"b"`
//! for bytes that are not UTF-8: see [`crate::cast`]), byte-exact; sftp
//! channels are JSON lines of operations. Both are written through gzip,
//! sync-flushed at least every second (`flush`), so after a crash the file
//! decompresses up to the last flush. A write that fails makes the recorder
//! fail, and the session that owns it is ended: nothing unrecorded passes.
//! Every file of a session draws on one [`Budget`] of bytes on disk; a
//! write past it fails the same way, with a message that says so.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cast::{self, Stream};
use crate::gzip::GzWriter;

/// What a channel records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Shell,
    Exec,
    Sftp,
    /// A forwarded TCP connection (`ssh -L`): its bytes both ways.
    Forward,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Shell => "shell",
            Kind::Exec => "exec",
            Kind::Sftp => "sftp",
            Kind::Forward => "forward",
        }
    }
}

/// Why a recording cannot take more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("the recording is closed")]
    Closed,
    #[error(
        "the session's recordings reached their size limit ({cap} bytes on disk, [limits] max_recording_size)"
    )]
    SizeCap { cap: u64 },
}

/// Bytes on disk one session's recordings may take, shared by its files.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicU64,
    cap: u64,
}

impl Budget {
    pub(crate) fn new(cap: u64) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicU64::new(0),
            cap,
        })
    }

    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn check(&self) -> Result<(), RecordError> {
        if self.used() >= self.cap {
            Err(RecordError::SizeCap { cap: self.cap })
        } else {
            Ok(())
        }
    }
}

/// The file under the gzip stream, counting what reaches the disk and
/// hashing it on the way (the file is not read back at the end).
struct Counted {
    file: File,
    budget: Arc<Budget>,
    size: u64,
    sha256: Sha256,
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("file", &self.file)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        let written = buf.get(..n).unwrap_or_default();
        self.sha256.update(written);
        self.size += n as u64;
        self.budget.used.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Whether a write checks the session's size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    Check,
    /// Taken before it was passed on: written whatever the limit.
    Admitted,
}

/// The first line of a cast file, and the session metadata beside it.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) term: Option<String>,
    pub(crate) command: Option<String>,
    pub(crate) meta: serde_json::Value,
}

#[derive(Debug)]
struct Inner {
    gz: Option<GzWriter<Counted>>,
    /// The first error; once set, every call fails with it (and
    /// `Recorder::failed` is set).
    failed: Option<RecordError>,
    /// An incomplete UTF-8 sequence at the end of the last chunk, per
    /// stream (output, input).
    carry: [Vec<u8>; 2],
    /// Reused for each line.
    line: Vec<u8>,
    /// Something was written since the last flush (an idle session's file
    /// does not grow by a sync marker every second).
    dirty: bool,
}

/// One channel's recording file.
#[derive(Debug)]
pub(crate) struct Recorder {
    path: PathBuf,
    name: String,
    kind: Kind,
    command: Option<String>,
    started: Instant,
    budget: Arc<Budget>,
    /// `inner.failed` is set: read without the lock by [`Recorder::admit`].
    failed: AtomicBool,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Creates `DIR/N.cast.gz` (or `N.sftp.jsonl.gz`) and writes the header.
    pub(crate) fn create(
        dir: &Path,
        channel: u32,
        header: &Header,
        budget: Arc<Budget>,
    ) -> Result<Self, RecordError> {
        let name = match header.kind {
            Kind::Sftp => format!("{channel}.sftp.jsonl.gz"),
            _ => format!("{channel}.cast.gz"),
        };
        let path = dir.join(&name);
        let io_error = |e: io::Error| RecordError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        budget.check()?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error)?;
        // LZ77 where the output repeats itself, Huffman codes alone
        // where it does not (see `gzip`): random output's base64 comes back
        // to about its raw size either way.
        let gz = GzWriter::new(Counted {
            file,
            budget: Arc::clone(&budget),
            size: 0,
            sha256: Sha256::new(),
        });
        let recorder = Self {
            path: path.clone(),
            name,
            kind: header.kind,
            command: header.command.clone(),
            started: Instant::now(),
            budget,
            failed: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                gz: Some(gz),
                failed: None,
                carry: [Vec::new(), Vec::new()],
                line: Vec::new(),
                dirty: false,
            }),
        };
        let mut meta = header.meta.clone();
        meta["kind"] = json!(header.kind.as_str());
        meta["channel"] = json!(channel);
        if let Some(c) = &header.command {
            meta["command"] = json!(c);
        }
        let line = match header.kind {
            Kind::Sftp => json!({ "shiftkey": meta }),
            _ => {
                let mut h = json!({
                    "version": 2,
                    // A pty of 0x0 (ssh -tt from a pipe) means "unknown".
                    "width": if header.width == 0 { 80 } else { header.width },
                    "height": if header.height == 0 { 24 } else { header.height },
                    "timestamp": crate::ca::unix_now(),
                    "shiftkey": meta,
                });
                if let Some(term) = &header.term {
                    h["env"] = json!({ "TERM": term });
                }
                if let Some(c) = &header.command {
                    h["title"] = json!(c);
                }
                h
            }
        };
        recorder.write_line(&line.to_string())?;
        recorder.flush()?;
        Ok(recorder)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }
    pub(crate) fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    fn elapsed(&self) -> f64 {
        // Microseconds are plenty; rounding keeps the file small.
        (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e6
    }

    /// Output from the target (`"o"`, `"b"` with `o:`), size limit checked
    /// (the pump goes through [`Recorder::admit`] and the writer's queue).
    #[cfg(test)]
    pub(crate) fn output(&self, data: &[u8]) -> Result<(), RecordError> {
        self.bytes(Stream::Output, data, Cap::Check)
    }

    /// Input from the user (`"i"`, `"b"` with `i:`): keystrokes, also those
    /// not echoed.
    #[cfg(test)]
    pub(crate) fn input(&self, data: &[u8]) -> Result<(), RecordError> {
        self.bytes(Stream::Input, data, Cap::Check)
    }

    /// Whether a chunk may still be taken (no failure, the session's size
    /// limit not reached), without waiting for a write in progress: the
    /// check before a chunk is queued for [`Recorder::admitted`] and passed.
    pub(crate) fn admit(&self) -> Result<(), RecordError> {
        if self.failed.load(Ordering::Acquire) {
            let inner = self.lock();
            if let Some(e) = &inner.failed {
                return Err(e.clone());
            }
        }
        self.budget.check()
    }

    /// Writes a chunk [`Recorder::admit`] took (and that has been passed
    /// on, or is about to be): past the size limit too, which the queue's
    /// bound keeps small; only a write error stops it.
    pub(crate) fn admitted(&self, stream: Stream, data: &[u8]) -> Result<(), RecordError> {
        self.bytes(stream, data, Cap::Admitted)
    }

    /// The terminal's new size (`"r"`, `COLSxROWS`).
    pub(crate) fn resize(&self, cols: u32, rows: u32) -> Result<(), RecordError> {
        let line = json!([self.elapsed(), "r", format!("{cols}x{rows}")]).to_string();
        self.write_line(&line)
    }

    /// A structured event: an sftp operation (a JSON object line in the
    /// sftp file), or a note in a cast file (a request and its answer, exit
    /// status, signal), written as an asciicast marker (`"m"`) players skip.
    pub(crate) fn event(&self, mut value: serde_json::Value) -> Result<(), RecordError> {
        if self.kind == Kind::Sftp {
            value["t"] = json!(self.elapsed());
            self.write_line(&value.to_string())
        } else {
            self.write_line(&json!([self.elapsed(), "m", value.to_string()]).to_string())
        }
    }

    /// Why the session ended: written even past the size limit (one line),
    /// so a recording cut by the limit says so.
    pub(crate) fn ended(&self, reason: &str) {
        let value = json!({ "session_ended": reason });
        let line = if self.kind == Kind::Sftp {
            let mut v = value;
            v["t"] = json!(self.elapsed());
            v.to_string()
        } else {
            json!([self.elapsed(), "m", value.to_string()]).to_string()
        };
        let mut inner = self.lock();
        if matches!(inner.failed, Some(RecordError::Io { .. })) {
            return;
        }
        if let Some(gz) = inner.gz.as_mut() {
            let mut bytes = line.into_bytes();
            bytes.push(b'\n');
            let _ = gz.write_all(&bytes);
            inner.dirty = true;
        }
    }

    fn bytes(&self, stream: Stream, data: &[u8], cap: Cap) -> Result<(), RecordError> {
        let elapsed = self.elapsed();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut line = std::mem::take(&mut inner.line);
        line.clear();
        // The tail carried from the chunk before was forwarded with it: if
        // this chunk cannot be written (the size limit), it is not
        // forwarded either, and that tail must still reach the file at
        // `finish` — not this chunk's.
        let mut kept = Vec::new();
        if let Some(carry) = inner.carry.get_mut(stream.index()) {
            kept.extend_from_slice(carry);
            cast::encode(elapsed, stream, carry, data, &mut line);
        }
        let result = self.write_locked(inner, &line, cap);
        if result.is_err()
            && let Some(carry) = inner.carry.get_mut(stream.index())
        {
            *carry = kept;
        }
        inner.line = line;
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_line(&self, line: &str) -> Result<(), RecordError> {
        let mut inner = self.lock();
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.write_locked(&mut inner, &bytes, Cap::Check)
    }

    /// The first failure sticks, and is seen by [`Recorder::admit`].
    fn fail(&self, inner: &mut Inner, error: RecordError) {
        inner.failed = Some(error);
        self.failed.store(true, Ordering::Release);
    }

    /// Writes complete lines; the first failure sticks.
    fn write_locked(&self, inner: &mut Inner, lines: &[u8], cap: Cap) -> Result<(), RecordError> {
        if let Some(e) = &inner.failed {
            return Err(e.clone());
        }
        if lines.is_empty() {
            return Ok(());
        }
        if cap == Cap::Check
            && let Err(e) = self.budget.check()
        {
            self.fail(inner, e.clone());
            return Err(e);
        }
        let result = match inner.gz.as_mut() {
            Some(gz) => gz.write_all(lines).map_err(|e| RecordError::Io {
                path: self.path.display().to_string(),
                message: e.to_string(),
            }),
            None => Err(RecordError::Closed),
        };
        inner.dirty = true;
        if let Err(e) = &result {
            self.fail(inner, e.clone());
        }
        result
    }

    /// Sync-flushes the gzip stream to the file: everything recorded so far
    /// can be read back even if the bastion dies now.
    pub(crate) fn flush(&self) -> Result<(), RecordError> {
        let mut inner = self.lock();
        if let Some(e @ (RecordError::Io { .. } | RecordError::Closed)) = &inner.failed {
            return Err(e.clone());
        }
        if !inner.dirty {
            return Ok(());
        }
        inner.dirty = false;
        let result = match inner.gz.as_mut() {
            Some(gz) => gz.sync_flush().map_err(|e| RecordError::Io {
                path: self.path.display().to_string(),
                message: e.to_string(),
            }),
            None => Ok(()),
        };
        if let Err(e) = &result {
            self.fail(&mut inner, e.clone());
        }
        result
    }

    /// Writes what is carried, ends the gzip stream; returns the file's
    /// size and SHA-256 (hex), hashed as it was written. Later writes fail.
    pub(crate) fn finish(&self) -> io::Result<(u64, String)> {
        let elapsed = self.elapsed();
        let mut inner = self.lock();
        let mut rest = Vec::new();
        for stream in [Stream::Output, Stream::Input] {
            if let Some(carry) = inner.carry.get_mut(stream.index()) {
                cast::encode_rest(elapsed, stream, carry, &mut rest);
            }
        }
        let finished = match inner.gz.take() {
            Some(mut gz) => {
                gz.write_all(&rest)?;
                let counted = gz.finish()?;
                counted.file.sync_all()?;
                Some((counted.size, hex::encode(counted.sha256.finalize())))
            }
            None => None,
        };
        if inner.failed.is_none() {
            self.fail(&mut inner, RecordError::Closed);
        }
        drop(inner);
        if let Some(done) = finished {
            return Ok(done);
        }
        // Finished before: the file as it is.
        let mut file = File::open(&self.path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(buf.get(..n).unwrap_or_default());
        }
        Ok((size, hex::encode(hasher.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;

    fn header(kind: Kind) -> Header {
        Header {
            kind,
            width: 80,
            height: 24,
            term: Some("xterm".into()),
            command: None,
            meta: json!({ "session": "s_1" }),
        }
    }

    fn budget() -> Arc<Budget> {
        Budget::new(u64::MAX)
    }

    fn read_lines(path: &Path) -> Vec<String> {
        let mut text = String::new();
        // A stream cut after a sync flush decodes up to the cut, then errors.
        let _ = MultiGzDecoder::new(File::open(path).unwrap()).read_to_string(&mut text);
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn events_are_asciicast_v2_lines_readable_after_each_flush() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), 0, &header(Kind::Shell), budget()).unwrap();
        r.input(b"echo hi\x7f\x7fhello\r").unwrap();
        r.output("héllo\r\n".as_bytes()).unwrap();
        r.resize(100, 30).unwrap();
        r.flush().unwrap();
        // Not finished: as after a crash.
        let lines = read_lines(r.path());
        assert_eq!(lines.len(), 4, "{lines:?}");
        let h: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(h["version"], 2);
        assert_eq!(h["shiftkey"]["session"], "s_1");
        let i: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(i[1], "i");
        assert_eq!(i[2], "echo hi\u{7f}\u{7f}hello\r");
        let o: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(o[2], "héllo\r\n");
        let rz: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(rz[2], "100x30");
        let (size, sha) = r.finish().unwrap();
        assert_eq!(size, std::fs::metadata(r.path()).unwrap().len());
        assert_eq!(sha.len(), 64);
        assert_eq!(r.output(b"late"), Err(RecordError::Closed));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_recorded_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), 2, &header(Kind::Exec), budget()).unwrap();
        r.output(b"ok \xff\xfe").unwrap();
        r.output(&[0xe2, 0x82]).unwrap();
        r.finish().unwrap();
        let lines = read_lines(r.path());
        let text = lines.join("\n");
        assert!(!text.contains('\u{FFFD}'), "{text}");
        assert!(text.contains("\"b\",\"o:b2sg//4=\""), "{text}");
        assert!(
            text.contains("\"b\",\"o:4oI=\""),
            "the carried tail at the end: {text}"
        );
    }

    #[test]
    fn large_output_is_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), 1, &header(Kind::Exec), budget()).unwrap();
        let chunk = vec![b'x'; 32 * 1024];
        for _ in 0..64 {
            r.output(&chunk).unwrap();
        }
        let (size, _) = r.finish().unwrap();
        assert!(size < 64 * 1024, "2 MiB of output took {size} bytes");
    }

    /// Random output is byte events (base64); the deflate level must use
    /// dynamic codes to bring that back near the raw size (fixed codes, as
    /// zlib-rs's level 1 uses, leave it at 1.33x).
    #[test]
    fn random_output_is_recorded_in_at_most_1_1_times_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), 1, &header(Kind::Exec), budget()).unwrap();
        let mut total = 0usize;
        for seed in 1..=64 {
            let chunk = crate::pseudo_random(32 * 1024, seed);
            total += chunk.len();
            r.admitted(Stream::Output, &chunk).unwrap();
        }
        let (size, _) = r.finish().unwrap();
        assert!(
            size * 10 <= total as u64 * 11,
            "{total} random bytes took {size} bytes"
        );
    }

    #[test]
    fn the_session_budget_stops_every_file_and_the_end_is_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(64 * 1024);
        let a = Recorder::create(dir.path(), 1, &header(Kind::Exec), Arc::clone(&budget)).unwrap();
        let b = Recorder::create(dir.path(), 2, &header(Kind::Exec), Arc::clone(&budget)).unwrap();
        let mut state = 7u32;
        let mut noise = || {
            (0..16 * 1024)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect::<Vec<u8>>()
        };
        let mut failed = None;
        for _ in 0..100 {
            if let Err(e) = a.output(&noise()) {
                failed = Some(e);
                break;
            }
            a.flush().unwrap_or(());
        }
        assert_eq!(failed, Some(RecordError::SizeCap { cap: 64 * 1024 }));
        assert!(b.output(b"more").is_err(), "the budget is the session's");
        a.ended("the size limit");
        a.finish().unwrap();
        let lines = read_lines(a.path());
        assert!(lines.last().unwrap().contains("session_ended"), "{lines:?}");
        assert!(budget.used() < 64 * 1024 + 40 * 1024, "{}", budget.used());
    }

    /// What was forwarded is what is recorded, up to the byte, when the
    /// size limit stops a channel: a chunk's incomplete UTF-8 tail, carried
    /// to join the next chunk, is written even when that next chunk is
    /// refused (and so never forwarded); the refused chunk's own tail is not.
    #[test]
    fn a_carried_tail_survives_the_size_limit_and_the_refused_chunk_leaves_none() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(4 * 1024);
        let r = Recorder::create(dir.path(), 1, &header(Kind::Exec), Arc::clone(&budget)).unwrap();
        let mut forwarded = Vec::new();
        let mut state = 11u32;
        let mut refused = 0;
        for i in 0..64u8 {
            // Noise that does not compress, ending with the first byte of a
            // three-byte character (a different one each time).
            let mut chunk: Vec<u8> = (0..1024)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect();
            *chunk.last_mut().unwrap() = 0xe0 + i % 16;
            match r.output(&chunk) {
                Ok(()) => forwarded.extend_from_slice(&chunk),
                Err(_) => refused += 1,
            }
            r.flush().unwrap_or(());
        }
        assert!(refused > 0, "the limit was reached");
        r.ended("the size limit");
        r.finish().unwrap();
        let mut recorded = Vec::new();
        for line in read_lines(r.path()).iter().skip(1) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            match v[1].as_str() {
                Some("o") => recorded.extend_from_slice(v[2].as_str().unwrap().as_bytes()),
                Some("b") => {
                    use base64::Engine;
                    let text = v[2].as_str().unwrap();
                    let bytes = text.strip_prefix("o:").unwrap();
                    recorded.extend(
                        base64::engine::general_purpose::STANDARD
                            .decode(bytes)
                            .unwrap(),
                    );
                }
                _ => {}
            }
        }
        assert_eq!(recorded.len(), forwarded.len());
        assert!(
            recorded == forwarded,
            "the recording is not what was forwarded"
        );
    }

    #[test]
    fn an_unwritable_directory_fails_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(Recorder::create(&missing, 0, &header(Kind::Shell), budget()).is_err());
    }

    #[test]
    fn the_hash_taken_while_writing_is_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), 3, &header(Kind::Exec), budget()).unwrap();
        for i in 0..200u32 {
            r.output(format!("line {i}\r\n").as_bytes()).unwrap();
            if i % 50 == 0 {
                r.flush().unwrap();
            }
        }
        r.ended("done");
        let (size, sha) = r.finish().unwrap();
        let bytes = std::fs::read(r.path()).unwrap();
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&bytes)));
    }

    /// A chunk admitted before the size limit was reached has been passed
    /// on: it is written even if the limit is reached before its turn, and
    /// the next one is refused.
    #[test]
    fn admitted_chunks_are_written_past_the_limit_and_the_next_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(1024);
        let r = Recorder::create(dir.path(), 1, &header(Kind::Exec), Arc::clone(&budget)).unwrap();
        let mut state = 5u32;
        let noise: Vec<u8> = (0..8 * 1024)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            })
            .collect();
        r.admit().unwrap();
        r.admit().unwrap();
        r.admitted(Stream::Output, &noise).unwrap();
        r.flush().unwrap();
        assert!(budget.used() > 1024);
        r.admitted(Stream::Output, &noise).unwrap();
        assert_eq!(r.admit(), Err(RecordError::SizeCap { cap: 1024 }));
        r.finish().unwrap();
        let mut recorded = 0;
        for line in read_lines(r.path()).iter().skip(1) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v[1] == "b" {
                use base64::Engine;
                let text = v[2].as_str().unwrap().strip_prefix("o:").unwrap();
                recorded += base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap()
                    .len();
            }
        }
        assert_eq!(recorded, 2 * noise.len());
    }
}
