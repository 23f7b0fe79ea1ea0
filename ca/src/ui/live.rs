//! `GET /ui/sessions/{id}/live/{name}`: one live session followed as a
//! server-sent event stream, for its page. Unnamed messages are what the
//! asciinema player's `eventsource` driver reads (a reset with the
//! terminal's size and the output so far, then each new output event);
//! `event: state` messages carry the session's status, stored bytes, event
//! count and duration for the page's facts; `event: input` messages the
//! typed input for the list beside the player. When the session is sealed
//! (or sealed as lost, or failed verification) the stream sends the final
//! state and closes: the page settles. An `ended` session, between its end
//! and its seal, is shown as such and still followed.
//!
//! Everything comes from the store and the recording store, never from
//! this process's memory, so a reviewer on one replica follows a session
//! whose bastion uploads to another. The stream wakes on the audit log's
//! notifier (a session's end is audited; on PostgreSQL it is heard from
//! every replica through LISTEN/NOTIFY) and at most once a `TICK`
//! otherwise, and then reads two small rows (the session and its upload
//! lengths); recording bytes are read only when the file grew, from where
//! the stream left off. The reviewer's right to watch is asked again every
//! `RECHECK`.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use super::{Signed, UiError};
use crate::audit::Audit;
use crate::recordings::{Purpose, Recordings, Reviewer, is_file_name};
use crate::store::{SessionStatus, Store};

/// Longest wait between two looks at a live session's rows.
const TICK: Duration = Duration::from_secs(1);
/// How often the reviewer's right to watch is asked again.
const RECHECK: Duration = Duration::from_secs(30);
/// Compressed bytes read per step.
const STEP: u64 = 256 * 1024;
/// Most decompressed bytes followed (as the player's cast is capped).
const MAX_FOLLOWED: u64 = 64 * 1024 * 1024;
/// Most output kept for the player's first reset (the terminal's state).
const MAX_INIT: usize = 1024 * 1024;
/// How long a browser waits before reconnecting to an ended stream.
const RETRY_ENDED_MS: u64 = 600_000;

/// `GET /ui/sessions/{id}/live/{name}`.
pub(super) async fn live(
    State(recordings): State<Arc<Recordings>>,
    State(audit): State<Audit>,
    signed: Signed,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let reviewer = recordings
        .reviewer(&signed.caller, "/ui/sessions/{id}/live/{name}")
        .await?;
    if !is_file_name(&name) || !name.ends_with(".cast.gz") {
        return Err(UiError::NotFound);
    }
    // Asks the policy and audits the watch (once a window), as the API's.
    let detail = recordings.recording(&reviewer, &id, Purpose::Watch).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(32);
    let follow = Follow {
        recordings,
        store: Arc::clone(audit.store()),
        reviewer,
        session: detail.info.session_id,
        name,
        started_at: detail.info.started_at,
        lines: Lines::default(),
        consumed: 0,
        header: None,
        events: 0,
        reset_sent: false,
        init: String::new(),
        last_t: 0.0,
        tx,
    };
    tokio::spawn(follow.run());
    let mut rx = rx;
    let body = Body::from_stream(stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// One stream's place in one recording file.
struct Follow {
    recordings: Arc<Recordings>,
    store: Arc<dyn Store>,
    reviewer: Reviewer,
    session: String,
    name: String,
    started_at: i64,
    /// The file's lines, decompressed as its bytes arrive.
    lines: Lines,
    /// Compressed bytes fed to `lines`.
    consumed: u64,
    /// The cast's header line, once seen.
    header: Option<Value>,
    /// Events seen in the file.
    events: u64,
    /// The player got its reset (size and output so far).
    reset_sent: bool,
    /// Output before the reset.
    init: String,
    last_t: f64,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
}

/// A recording file's lines, decompressed as its bytes arrive in pieces
/// cut anywhere (gzip members one after another, as the bastion flushes
/// them; a piece may end inside a member or a line).
struct Lines {
    decoder: flate2::write::MultiGzDecoder<Vec<u8>>,
    /// Decompressed bytes seen.
    decoded: u64,
    /// Decompressed bytes after the last newline.
    partial: Vec<u8>,
}

impl Default for Lines {
    fn default() -> Self {
        Self {
            decoder: flate2::write::MultiGzDecoder::new(Vec::new()),
            decoded: 0,
            partial: Vec::new(),
        }
    }
}

impl Lines {
    /// Takes the next compressed bytes; returns the lines they completed.
    fn push(&mut self, compressed: &[u8]) -> Result<Vec<String>, String> {
        self.decoder
            .write_all(compressed)
            .and_then(|()| self.decoder.flush())
            .map_err(|e| format!("the recording does not decompress: {e}"))?;
        let fresh = std::mem::take(self.decoder.get_mut());
        self.decoded += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
        Ok(lines)
    }
}

/// What the page shows of the session, sent when it changes.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    status: String,
    bytes: u64,
    events: u64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    exit_status: Option<u32>,
    /// The manifest's digest, once sealed.
    digest: Option<String>,
}

impl Follow {
    async fn send(&self, text: String) -> bool {
        self.tx.send(Ok(Bytes::from(text))).await.is_ok()
    }

    async fn message(&self, data: &Value) -> bool {
        self.send(format!("data: {data}\n\n")).await
    }

    async fn named(&self, event: &str, data: &Value) -> bool {
        self.send(format!("event: {event}\ndata: {data}\n\n")).await
    }

    async fn run(mut self) {
        let mut tip = self.store.audit_tip();
        let mut checked = Instant::now();
        let mut shown: Option<Shown> = None;
        loop {
            if self.tx.is_closed() {
                return;
            }
            if checked.elapsed() >= RECHECK {
                checked = Instant::now();
                if let Err(e) = self.recheck().await {
                    let _ = self.named("failed", &json!({ "message": e })).await;
                    return;
                }
            }
            let row = match self.store.session(&self.session).await {
                Ok(Some(row)) => row,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, session = %self.session, "live follow: cannot read the session");
                    tokio::time::sleep(TICK).await;
                    continue;
                }
            };
            let uploads = self.store.uploads(&self.session).await.unwrap_or_default();
            // `ended` is on its way to its seal: keep following until the
            // seal (or the lost seal) settles it.
            let ended = !matches!(row.status, SessionStatus::Live | SessionStatus::Ended);
            let mut length = uploads
                .iter()
                .find(|u| u.name == self.name)
                .map_or(0, |u| u.length);
            let mut bytes: u64 = uploads.iter().map(|u| u.length).sum();
            let mut digest = None;
            if ended
                && let Ok(detail) = self
                    .recordings
                    .recording(&self.reviewer, &self.session, Purpose::Watch)
                    .await
            {
                // Once sealed, the seal's files are the recording.
                bytes = detail
                    .info
                    .files
                    .iter()
                    .map(|f| f.bytes)
                    .sum::<u64>()
                    .max(bytes);
                if let Some(f) = detail.info.files.iter().find(|f| f.name == self.name) {
                    length = length.max(f.bytes);
                }
                digest = detail.info.digest;
            }
            if length > self.consumed && self.lines.decoded < MAX_FOLLOWED {
                match self.read_more(length).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = self.named("failed", &json!({ "message": e })).await;
                        return;
                    }
                }
                // More may be waiting: look again at once.
                if self.consumed < length && self.lines.decoded < MAX_FOLLOWED {
                    continue;
                }
            }
            if !self.reset_sent && !self.send_reset().await {
                return;
            }
            let now = Shown {
                status: row.status.as_str().to_owned(),
                bytes,
                events: self.events,
                ended_at: row.ended_at,
                end_reason: row.end_reason.clone(),
                exit_status: row.exit_status,
                digest,
            };
            if shown.as_ref() != Some(&now) {
                let until = now
                    .ended_at
                    .unwrap_or_else(|| chrono::Utc::now().timestamp());
                let state = json!({
                    "status": now.status,
                    "bytes": now.bytes,
                    "events": now.events,
                    "started_at": self.started_at,
                    "ended_at": now.ended_at,
                    "end_reason": now.end_reason,
                    "duration": until.saturating_sub(self.started_at).max(0),
                    "exit_status": now.exit_status,
                    "digest": now.digest,
                    "final": ended,
                });
                if !self.named("state", &state).await {
                    return;
                }
                shown = Some(now);
            }
            if ended {
                let _ = self.send(format!("retry: {RETRY_ENDED_MS}\n\n")).await;
                return;
            }
            tokio::select! {
                changed = tip.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(TICK).await;
                    }
                }
                () = tokio::time::sleep(TICK) => {}
                () = self.tx.closed() => return,
            }
        }
    }

    /// Asks the policy again whether this reviewer may watch.
    async fn recheck(&self) -> Result<(), String> {
        self.recordings
            .recording(&self.reviewer, &self.session, Purpose::Watch)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Reads, decompresses and sends what was committed after `consumed`,
    /// up to `length` (one step). False when the browser went away.
    async fn read_more(&mut self, length: u64) -> Result<bool, String> {
        let want = (length - self.consumed).min(STEP);
        let opened = self
            .recordings
            .read_file(
                &self.reviewer,
                &self.session,
                &self.name,
                self.consumed,
                Some(want),
                Purpose::Watch,
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut compressed = Vec::new();
        opened
            .reader
            .take(want)
            .read_to_end(&mut compressed)
            .await
            .map_err(|e| format!("reading the recording failed: {e}"))?;
        if compressed.is_empty() {
            return Ok(true);
        }
        self.consumed += compressed.len() as u64;
        let lines = self.lines.push(&compressed)?;
        for line in lines {
            if !self.line(&line).await {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One line of the cast: the header, or an event.
    async fn line(&mut self, line: &str) -> bool {
        if self.header.is_none() {
            self.header = Some(serde_json::from_str(line).unwrap_or_else(|_| json!({})));
            return true;
        }
        let Ok(Value::Array(event)) = serde_json::from_str::<Value>(line) else {
            return true;
        };
        self.events += 1;
        let t = event.first().and_then(Value::as_f64).unwrap_or(self.last_t);
        self.last_t = self.last_t.max(t);
        let code = event.get(1).and_then(Value::as_str).unwrap_or_default();
        let data = event.get(2).and_then(Value::as_str).unwrap_or_default();
        match code {
            "i" => self.named("input", &json!({ "t": t, "data": data })).await,
            "o" if !self.reset_sent => {
                self.init.push_str(data);
                if self.init.len() > 2 * MAX_INIT {
                    let cut = self.init.len() - MAX_INIT;
                    let cut = (cut..self.init.len())
                        .find(|i| self.init.is_char_boundary(*i))
                        .unwrap_or(self.init.len());
                    self.init.drain(..cut);
                }
                true
            }
            "o" | "r" => self.message(&Value::Array(event)).await,
            _ => true,
        }
    }

    /// The player's reset: the terminal's size, the time so far, and the
    /// output so far to draw at once.
    async fn send_reset(&mut self) -> bool {
        let header = self.header.clone().unwrap_or_else(|| json!({}));
        let size = |key: &str, fallback: u64| {
            header[key]
                .as_u64()
                .filter(|n| (2..=1000).contains(n))
                .unwrap_or(fallback)
        };
        let reset = json!({
            "cols": size("width", 80),
            "rows": size("height", 24),
            "time": self.last_t,
            "init": std::mem::take(&mut self.init),
        });
        self.reset_sent = true;
        self.message(&reset).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(text: &str) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = gz.write_all(text.as_bytes());
        gz.finish().unwrap_or_default()
    }

    /// The bastion flushes a gzip member per batch and the CA commits
    /// pieces cut anywhere: the lines come out whole, in order, once each.
    #[test]
    fn pieces_cut_anywhere_give_whole_lines_once() {
        let mut file = member("{\"version\":2}\n[0.1,\"o\",\"a\"]\n[0.2,");
        file.extend(member("\"o\",\"b\"]\n"));
        file.extend(member("[0.3,\"i\",\"c\"]\n"));
        for cut in [1, 7, 13, 64] {
            let mut lines = Lines::default();
            let mut seen = Vec::new();
            for piece in file.chunks(cut) {
                seen.extend(lines.push(piece).unwrap_or_default());
            }
            assert_eq!(
                seen,
                [
                    "{\"version\":2}",
                    "[0.1,\"o\",\"a\"]",
                    "[0.2,\"o\",\"b\"]",
                    "[0.3,\"i\",\"c\"]"
                ],
                "pieces of {cut}"
            );
        }
    }

    #[test]
    fn bytes_that_are_not_gzip_are_an_error() {
        let mut lines = Lines::default();
        assert!(lines.push(b"not gzip at all, not even close").is_err());
    }
}
