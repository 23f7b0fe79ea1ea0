//! Recording, keystroke by keystroke: one file per SSH channel.
//!
//! Shell and exec channels are asciicast v2 (`"o"` output, `"i"` input,
//! `"r"` resize events with their timing); sftp channels are JSON lines of
//! operations. Both are written through gzip: large output does not bloat
//! storage, and nothing is base64-encoded. The stream is sync-flushed at
//! least every second (`flush`), so after a crash the file decompresses up to
//! the last flush. A write that fails makes the recorder fail, and the
//! session that owns it is ended: nothing unrecorded passes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// What a channel records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Shell,
    Exec,
    Sftp,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Shell => "shell",
            Kind::Exec => "exec",
            Kind::Sftp => "sftp",
        }
    }
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
    gz: Option<GzEncoder<File>>,
    /// The first write error; once set, every call fails.
    failed: Option<String>,
    /// Bytes of an incomplete UTF-8 sequence at the end of the last chunk,
    /// per direction (output, input).
    carry: [Vec<u8>; 2],
    events: u64,
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
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Creates `DIR/N.cast.gz` (or `N.sftp.jsonl.gz`) and writes the header.
    pub(crate) fn create(dir: &Path, channel: u32, header: &Header) -> io::Result<Self> {
        let name = match header.kind {
            Kind::Sftp => format!("{channel}.sftp.jsonl.gz"),
            _ => format!("{channel}.cast.gz"),
        };
        let path = dir.join(&name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        // Fast compression: the recorder sits in the data path.
        let gz = GzEncoder::new(file, Compression::fast());
        let recorder = Self {
            path,
            name,
            kind: header.kind,
            command: header.command.clone(),
            started: Instant::now(),
            inner: Mutex::new(Inner {
                gz: Some(gz),
                failed: None,
                carry: [Vec::new(), Vec::new()],
                events: 0,
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

    /// Output from the target (`"o"`).
    pub(crate) fn output(&self, data: &[u8]) -> io::Result<()> {
        self.text_event(0, "o", data)
    }

    /// Input from the user (`"i"`): keystrokes, also those not echoed.
    pub(crate) fn input(&self, data: &[u8]) -> io::Result<()> {
        self.text_event(1, "i", data)
    }

    /// The terminal's new size (`"r"`, `COLSxROWS`).
    pub(crate) fn resize(&self, cols: u32, rows: u32) -> io::Result<()> {
        let line = json!([self.elapsed(), "r", format!("{cols}x{rows}")]).to_string();
        self.write_line(&line)
    }

    /// A structured event: an sftp operation (a JSON object line in the
    /// sftp file), or a note in a cast file (exit status, signal), written
    /// as an asciicast marker (`"m"`) so players skip it.
    pub(crate) fn event(&self, mut value: serde_json::Value) -> io::Result<()> {
        if self.kind == Kind::Sftp {
            value["t"] = json!(self.elapsed());
            self.write_line(&value.to_string())
        } else {
            self.write_line(&json!([self.elapsed(), "m", value.to_string()]).to_string())
        }
    }

    /// The hot path: the line is escaped straight into one buffer (no
    /// JSON value, no intermediate strings) and written into the gzip stream.
    fn text_event(&self, direction: usize, code: &str, data: &[u8]) -> io::Result<()> {
        let elapsed = self.elapsed();
        let mut inner = self.lock();
        if let Some(e) = &inner.failed {
            return Err(io::Error::other(e.clone()));
        }
        let mut bytes = inner
            .carry
            .get_mut(direction)
            .map(std::mem::take)
            .unwrap_or_default();
        bytes.extend_from_slice(data);
        let mut line = Vec::with_capacity(bytes.len() + 32);
        line.extend_from_slice(format!("[{elapsed},\"{code}\",\"").as_bytes());
        let rest = escape_utf8_into(&bytes, &mut line);
        if let Some(slot) = inner.carry.get_mut(direction) {
            *slot = rest;
        }
        if line.ends_with(b",\"") {
            return Ok(()); // nothing complete yet
        }
        line.extend_from_slice(b"\"]\n");
        let result = match inner.gz.as_mut() {
            Some(gz) => gz.write_all(&line),
            None => Err(io::Error::other("the recording is closed")),
        };
        inner.events += 1;
        inner.dirty = true;
        if let Err(e) = &result {
            inner.failed = Some(format!("{}: {e}", self.path.display()));
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_line(&self, line: &str) -> io::Result<()> {
        let mut inner = self.lock();
        if let Some(e) = &inner.failed {
            return Err(io::Error::other(e.clone()));
        }
        let result = match inner.gz.as_mut() {
            Some(gz) => gz
                .write_all(line.as_bytes())
                .and_then(|()| gz.write_all(b"\n")),
            None => Err(io::Error::other("the recording is closed")),
        };
        inner.events += 1;
        inner.dirty = true;
        if let Err(e) = &result {
            inner.failed = Some(format!("{}: {e}", self.path.display()));
        }
        result
    }

    /// Sync-flushes the gzip stream to the file: everything recorded so far
    /// can be read back even if the bastion dies now.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let mut inner = self.lock();
        if let Some(e) = &inner.failed {
            return Err(io::Error::other(e.clone()));
        }
        if !inner.dirty {
            return Ok(());
        }
        inner.dirty = false;
        let result = match inner.gz.as_mut() {
            Some(gz) => gz.flush(),
            None => Ok(()),
        };
        if let Err(e) = &result {
            inner.failed = Some(format!("{}: {e}", self.path.display()));
        }
        result
    }

    /// Ends the gzip stream; returns the file's size and SHA-256 (hex).
    pub(crate) fn finish(&self) -> io::Result<(u64, String)> {
        {
            let mut inner = self.lock();
            if let Some(gz) = inner.gz.take() {
                let file = gz.finish()?;
                file.sync_all()?;
            }
        }
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

/// Appends `bytes` as the inside of a JSON string, decoding UTF-8 in one pass
/// (invalid bytes become U+FFFD: the asciicast format holds text) and
/// escaping what JSON requires. Returns an incomplete UTF-8 sequence at the
/// end, to be prefixed to the next chunk. Hand-written: serde_json can only
/// escape a `&str` it is given whole, through a `String` we want to avoid.
fn escape_utf8_into(bytes: &[u8], out: &mut Vec<u8>) -> Vec<u8> {
    let mut chunks = bytes.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        escape_str_into(chunk.valid(), out);
        let invalid = chunk.invalid();
        if invalid.is_empty() {
            continue;
        }
        // An incomplete sequence at the very end may complete next time.
        if chunks.peek().is_none()
            && invalid.len() < 4
            && std::str::from_utf8(invalid)
                .err()
                .is_some_and(|e| e.error_len().is_none())
        {
            return invalid.to_vec();
        }
        out.extend_from_slice("\u{FFFD}".as_bytes());
    }
    Vec::new()
}

fn escape_str_into(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut plain = 0; // start of the run not yet copied
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        // Runs of ordinary text are copied whole.
        out.extend_from_slice(bytes.get(plain..i).unwrap_or_default());
        plain = i + 1;
        if escaped.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escaped);
        }
    }
    out.extend_from_slice(bytes.get(plain..).unwrap_or_default());
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

    fn read_lines(path: &Path) -> Vec<String> {
        let mut text = String::new();
        // A stream cut after a sync flush decodes up to the cut, then errors.
        let _ = MultiGzDecoder::new(File::open(path).unwrap()).read_to_string(&mut text);
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn events_are_asciicast_v2_lines_readable_after_each_flush() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), 0, &header(Kind::Shell)).unwrap();
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
    }

    #[test]
    fn utf8_split_across_chunks_is_kept_whole_and_garbage_is_replaced() {
        let escape = |bytes: &[u8]| {
            let mut out = Vec::new();
            let rest = escape_utf8_into(bytes, &mut out);
            (String::from_utf8(out).unwrap(), rest)
        };
        let (a, rest) = escape(&"é".as_bytes()[..1]);
        assert_eq!(a, "");
        let mut next = rest;
        next.extend_from_slice(&"é".as_bytes()[1..]);
        assert_eq!(escape(&next).0, "é");
        assert_eq!(escape(b"a\xffb").0, "a\u{FFFD}b");
        // What JSON requires escaped, and the result parses back.
        let (text, _) = escape(b"q\"b\\n\n\r\t\x00\x1b[0m\x7f");
        let parsed: String = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(parsed, "q\"b\\n\n\r\t\u{0}\u{1b}[0m\u{7f}");
    }

    #[test]
    fn large_output_is_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(dir.path(), 1, &header(Kind::Exec)).unwrap();
        let chunk = vec![b'x'; 32 * 1024];
        for _ in 0..64 {
            r.output(&chunk).unwrap();
        }
        let (size, _) = r.finish().unwrap();
        assert!(size < 64 * 1024, "2 MiB of output took {size} bytes");
    }

    #[test]
    fn an_unwritable_directory_fails_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(Recorder::create(&missing, 0, &header(Kind::Shell)).is_err());
    }
}
