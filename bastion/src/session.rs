//! A live bastion session: what the CA granted, its recordings, and the
//! switch that ends it (revocation, incident resolved, certificate expired,
//! idle, too long, recorder failure, the target lost, the CA refusing the
//! recording). Once ended, and once its channels have stopped, the session
//! is sealed by the CA at once, whether or not the user's connection is
//! still open.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use shiftkey_wire::SessionGrant;
use tokio::sync::watch;

use crate::ca::{CaClient, CallError, unix_now};
use crate::metrics::Metrics;
use crate::recorder::{Budget, Recorder};

/// Upload chunks to the CA at most this big (the CA's limit is 1 MiB).
const CHUNK: usize = 512 * 1024;

#[derive(Debug)]
pub(crate) struct LiveSession {
    pub(crate) grant: SessionGrant,
    pub(crate) principal: String,
    pub(crate) target: String,
    pub(crate) client: String,
    /// Serial of the one-session certificate (revoking it ends the session too).
    pub(crate) session_serial: u64,
    /// Why the session must end, once it must.
    kill: watch::Sender<Option<String>>,
    pub(crate) dir: std::path::PathBuf,
    recorders: Mutex<Vec<Shipped>>,
    last_activity: AtomicU64,
    pub(crate) exit_status: Mutex<Option<u32>>,
    started: u64,
    /// Bytes on disk all of this session's recordings may take.
    pub(crate) budget: Arc<Budget>,
    /// Channels still carrying data (their pumps hold a [`ChannelRunning`]).
    running: watch::Sender<u32>,
    /// Set by the one caller that seals.
    sealing: AtomicBool,
}

/// Held by a channel's pump while it may still write to the recordings.
#[derive(Debug)]
pub(crate) struct ChannelRunning(watch::Sender<u32>);

impl Drop for ChannelRunning {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[derive(Debug)]
struct Shipped {
    recorder: Arc<Recorder>,
    /// Bytes of the file the CA has.
    shipped: u64,
}

impl LiveSession {
    pub(crate) fn new(
        grant: SessionGrant,
        principal: String,
        target: String,
        client: String,
        session_serial: u64,
        dir: std::path::PathBuf,
        budget: Arc<Budget>,
    ) -> Arc<Self> {
        Arc::new(Self {
            grant,
            principal,
            target,
            client,
            session_serial,
            kill: watch::channel(None).0,
            dir,
            recorders: Mutex::new(Vec::new()),
            last_activity: AtomicU64::new(unix_now()),
            exit_status: Mutex::new(None),
            started: unix_now(),
            budget,
            running: watch::channel(0).0,
            sealing: AtomicBool::new(false),
        })
    }

    /// A channel starts carrying data for this session.
    pub(crate) fn channel_running(&self) -> ChannelRunning {
        self.running.send_modify(|n| *n += 1);
        ChannelRunning(self.running.clone())
    }

    /// Resolves once the session has been told to end.
    pub(crate) async fn ended(&self) {
        let mut rx = self.kill.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Waits (at most `limit`) until no channel of the session runs.
    async fn channels_stopped(&self, limit: Duration) {
        let mut rx = self.running.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
    }

    /// The client's connection is gone. What it sent before it went is
    /// still forwarded: each channel drains what the bastion had already
    /// taken (and recorded), then stops; the session ends once they all
    /// have, or after `limit` (a target that stopped reading).
    pub(crate) async fn client_gone(&self, limit: Duration) {
        self.channels_stopped(limit).await;
        self.end("client closed");
    }

    /// After the end: waits (at most `limit`) for the channels to stop
    /// writing, then seals, once.
    pub(crate) async fn close(&self, ca: &CaClient, limit: Duration) {
        self.ended().await;
        self.channels_stopped(limit).await;
        if self.sealing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.seal(ca).await;
    }

    pub(crate) fn id(&self) -> &str {
        &self.grant.session_id
    }

    /// Metadata written into every recording's header.
    pub(crate) fn meta(&self) -> serde_json::Value {
        json!({
            "session": self.grant.session_id,
            "identity": self.grant.identity,
            "user_serial": self.grant.user_serial,
            "role": self.grant.role,
            "incident": self.grant.incident,
            "principal": self.principal,
            "target": self.target,
            "client_address": self.client,
            "started_at": self.started,
        })
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.kill.subscribe()
    }

    /// Ends the session: every channel shows `reason` to the user and closes.
    pub(crate) fn end(&self, reason: &str) {
        self.kill.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason.to_owned());
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn end_reason(&self) -> Option<String> {
        self.kill.borrow().clone()
    }

    pub(crate) fn touch(&self) {
        self.last_activity.store(unix_now(), Ordering::Relaxed);
    }

    pub(crate) fn add_recorder(&self, recorder: Arc<Recorder>) {
        self.lock().push(Shipped {
            recorder,
            shipped: 0,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Shipped>> {
        self.recorders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the session when one of its limits is reached: the user's
    /// certificate expired (its validity ends with the shift), the role's
    /// maximum length, idleness. Runs until the session ends.
    pub(crate) async fn watchdog(self: Arc<Self>, cert_valid_before: u64) {
        let deadline = self.started + self.grant.max_session_seconds;
        let mut ended = self.subscribe();
        loop {
            tokio::select! {
                _ = ended.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let now = unix_now();
            let reason = if now >= cert_valid_before {
                Some(
                    "your certificate expired (the end of your shift or its TTL); run `shiftkey access` again",
                )
            } else if now >= deadline {
                Some("the role's maximum session length was reached")
            } else if now.saturating_sub(self.last_activity.load(Ordering::Relaxed))
                >= self.grant.idle_timeout_seconds
            {
                Some("idle for too long")
            } else {
                None
            };
            if let Some(reason) = reason {
                self.end(reason);
                return;
            }
        }
    }

    /// Flushes every recording at least once a second and ships what is new
    /// to the CA. A recording that cannot be flushed ends the session.
    pub(crate) async fn recorder_loop(self: Arc<Self>, ca: Arc<CaClient>, metrics: Arc<Metrics>) {
        let mut ended = self.subscribe();
        loop {
            tokio::select! {
                _ = ended.changed() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let recorders: Vec<Arc<Recorder>> = self
                .lock()
                .iter()
                .map(|s| Arc::clone(&s.recorder))
                .collect();
            for r in &recorders {
                if let Err(e) = r.flush() {
                    tracing::error!(session = %self.id(), error = %e, "recording failed; ending the session");
                    metrics.recording_failures.inc();
                    self.end("the session could not be recorded");
                    return;
                }
            }
            metrics.recording_flushed();
            self.ship(&ca).await;
        }
    }

    /// Sends the CA the bytes of each file it does not have yet. Failures are
    /// retried on the next round; the local file is complete either way.
    async fn ship(&self, ca: &CaClient) {
        let pending: Vec<(usize, Arc<Recorder>, u64)> = self
            .lock()
            .iter()
            .enumerate()
            .map(|(i, s)| (i, Arc::clone(&s.recorder), s.shipped))
            .collect();
        for (index, recorder, mut offset) in pending {
            loop {
                let chunk = match read_from(recorder.path(), offset) {
                    Ok(c) if c.is_empty() => break,
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read a recording to ship it");
                        break;
                    }
                };
                let len = chunk.len() as u64;
                let path = format!(
                    "/v1/recordings/{}/files/{}?offset={offset}",
                    self.id(),
                    recorder.name()
                );
                let sent: Result<serde_json::Value, _> = ca
                    .post_bytes(&path, chunk, "application/octet-stream")
                    .await;
                match sent {
                    Ok(_) => {
                        offset += len;
                        if let Some(s) = self.lock().get_mut(index) {
                            s.shipped = offset;
                        }
                    }
                    // The CA will not take this file (a name it refuses, a
                    // session it no longer holds live): the recording has no
                    // home, so the session stops.
                    Err(CallError::Refused(r))
                        if (400..500).contains(&r.status) && r.status != 429 =>
                    {
                        tracing::error!(session = %self.id(), file = %recorder.name(), error = %r, "the CA refused a recording; ending the session");
                        self.end(&format!(
                            "the CA refused the recording ({}): {}",
                            r.code, r.message
                        ));
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(session = %self.id(), error = %e, "shipping a recording to the CA failed; will retry");
                        break;
                    }
                }
            }
        }
    }

    /// At the end: closes every recording, ships the rest and asks the CA to
    /// seal the session (digest of the files, signed by the CA).
    async fn seal(&self, ca: &CaClient) {
        let recorders: Vec<Arc<Recorder>> = self
            .lock()
            .iter()
            .map(|s| Arc::clone(&s.recorder))
            .collect();
        let reason = self.end_reason().unwrap_or_else(|| "client closed".into());
        let mut files = Vec::new();
        for r in &recorders {
            r.ended(&reason);
            match r.finish() {
                Ok((bytes, sha256)) => files.push(json!({
                    "name": r.name(), "kind": r.kind().as_str(), "command": r.command(),
                    "bytes": bytes, "sha256": sha256,
                })),
                Err(e) => {
                    tracing::error!(session = %self.id(), error = %e, "closing a recording failed")
                }
            }
        }
        self.ship(ca).await;
        let body = json!({
            "ended_at": unix_now(),
            "exit_status": *self.exit_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            "end_reason": reason,
            "files": files,
        });
        let path = format!("/v1/recordings/{}/seal", self.id());
        for attempt in 0..5u64 {
            let sealed: Result<serde_json::Value, _> = ca
                .post_bytes(&path, body.to_string().into_bytes(), "application/json")
                .await;
            match sealed {
                Ok(_) => {
                    tracing::info!(session = %self.id(), "recording sealed by the CA");
                    return;
                }
                Err(e) => {
                    tracing::warn!(session = %self.id(), error = %e, attempt, "sealing failed");
                    tokio::time::sleep(Duration::from_secs(1 + attempt)).await;
                }
            }
        }
        tracing::error!(session = %self.id(), dir = %self.dir.display(), "the CA did not seal the recording; the files stay on the bastion");
    }
}

fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(CHUNK);
    file.take(CHUNK as u64).read_to_end(&mut buf)?;
    Ok(buf)
}
