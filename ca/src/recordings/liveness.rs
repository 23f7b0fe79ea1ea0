//! Sessions whose bastion died: each bastion names its live sessions in a
//! heartbeat; a live session nobody named for `[recordings] lost_after` is
//! sealed by the CA as `lost`, with what reached it (a truncated
//! recording), and audited.
//!
//! Safe with several CA processes: a session is claimed for its lost seal
//! by a conditional update in the store (one process wins), and the seal
//! itself commits only while the session is still live.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::json;
use shiftkey_wire::{RecordingFile, SessionHeartbeat, SessionHeartbeatAck};

use super::upload::{Ending, Measured, Signed, claims_digest, index_lines, manifest_of};
use super::{Error, MAX_HEARTBEAT_SESSIONS, Recordings, clip, file_order, is_session_id, is_sftp};
use crate::audit::{self, Event, Outcome};
use crate::hosts::{EnrolledHost, HostKind};
use crate::store::{self, Change, Conflict, Seal, Session, SessionStatus};

/// Silent sessions one pass of the sweep seals at most.
const SWEEP_BATCH: u32 = 100;

impl Recordings {
    /// `POST /v1/sessions/heartbeat`: the bastion names the sessions it
    /// runs. Answers which of them the CA no longer holds live, for the
    /// bastion to end. Not audited (a liveness signal every few seconds,
    /// not a decision); a refused heartbeat is, as
    /// `session.heartbeat_refused`.
    pub(crate) async fn heartbeat(
        &self,
        host: &EnrolledHost,
        beat: SessionHeartbeat,
    ) -> Result<SessionHeartbeatAck, Error> {
        let checked = if host.kind != HostKind::Bastion {
            Err(Error::NotABastion)
        } else if beat.sessions.len() > MAX_HEARTBEAT_SESSIONS {
            Err(Error::BadHeartbeat(beat.sessions.len()))
        } else {
            Ok(())
        };
        if let Err(error) = checked {
            return Err(self
                .base
                .audit
                .refuse(
                    "session.heartbeat_refused",
                    host.identity(),
                    Outcome::Deny,
                    error,
                    json!({ "sessions": beat.sessions.len() }),
                )
                .await);
        }
        let (ours, mut not_live): (Vec<String>, Vec<String>) =
            beat.sessions.into_iter().partition(|s| is_session_id(s));
        not_live.iter_mut().for_each(|s| *s = clip(s));
        let now = Utc::now().timestamp();
        not_live.extend(self.base.store.heard_from(&host.name, &ours, now).await?);
        Ok(SessionHeartbeatAck {
            not_live,
            lost_after_seconds: self.limits.lost_after.as_secs(),
        })
    }

    /// How often each CA process looks for silent sessions: a third of the
    /// silence, between one and ten seconds.
    pub(crate) fn lost_sweep_interval(&self) -> Duration {
        (self.limits.lost_after / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
    }

    /// Runs until aborted: a pass every [`Self::lost_sweep_interval`].
    pub(crate) async fn watch_for_lost(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.lost_sweep_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.seal_lost_sessions().await {
                tracing::error!(error = %e, "cannot look for lost sessions; will try again");
            }
        }
    }

    /// One pass: seals every live session unheard for `lost_after` as
    /// lost. Returns how many this process sealed (another process may
    /// have sealed some of the same ones: each is sealed once).
    pub(crate) async fn seal_lost_sessions(&self) -> Result<usize, Error> {
        let now = Utc::now().timestamp();
        let silence = i64::try_from(self.limits.lost_after.as_secs()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(silence);
        let mut sealed = 0;
        for row in self.base.store.silent_sessions(cutoff, SWEEP_BATCH).await? {
            match self.seal_lost(&row, cutoff, now).await {
                Ok(true) => sealed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(session = %row.id, error = %e, "cannot seal a lost session; will try again");
                }
            }
        }
        Ok(sealed)
    }

    /// Claims one silent session and seals it as lost; `false` if it was
    /// heard from or claimed by another process meanwhile.
    async fn seal_lost(&self, row: &Session, cutoff: i64, now: i64) -> Result<bool, Error> {
        let uploads = match self.base.store.claim_lost(&row.id, cutoff, now).await {
            Ok(uploads) => uploads,
            Err(store::Error::Conflict(Conflict::SessionHeard | Conflict::SessionNotLive)) => {
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let measured = self.measure(&row.id, uploads).await;
        let committed = match measured {
            Ok(measured) => self.commit_lost(row, measured, now).await,
            Err(e) => Err(e),
        };
        match committed {
            Ok(()) => Ok(true),
            Err(Error::SealedMeanwhile(_)) => Ok(false),
            Err(e) => {
                // Released, so that the next pass (of any process) tries again.
                if let Err(abort) = self.base.store.abort_seal(&row.id).await {
                    tracing::error!(error = %abort, session = %row.id, "cannot release a lost session after a failed seal");
                }
                Err(e)
            }
        }
    }

    async fn commit_lost(
        &self,
        row: &Session,
        mut measured: Measured,
        now: i64,
    ) -> Result<(), Error> {
        let heard = row.last_heard();
        let (files, unreadable) = stored_files(&measured);
        let lines = index_lines(&files, &mut measured);
        let mut problems = vec![format!(
            "lost: the bastion {} stopped naming this session after {}; the recording is truncated: it holds what reached the CA until then",
            row.bastion,
            rfc3339(heard)
        )];
        problems.extend(unreadable);
        let end_reason = "lost: its bastion stopped reporting the session".to_owned();
        let manifest = manifest_of(
            row,
            Ending {
                ended_at: heard,
                exit_status: None,
                end_reason: end_reason.clone(),
                status: SessionStatus::Lost,
                problems: problems.clone(),
                sealed_at: now,
                files: files.clone(),
            },
        );
        let Signed {
            text,
            signature,
            digest,
        } = self.sign_manifest(&manifest).await?;
        let total: u64 = files.iter().map(|f| f.bytes).sum();
        let event = Event::new(
            "recording.lost",
            "system",
            Outcome::Error,
            json!({
                "session": row.id, "identity": row.identity, "target": row.target,
                "bastion": row.bastion, "last_seen": heard,
                "silence_seconds": self.limits.lost_after.as_secs(),
                "files": files.len(), "bytes": total, "digest": digest,
                "problems": problems, "index_lines": lines.len(),
            }),
        );
        let seal = Seal {
            session: row.id.clone(),
            ended_at: heard,
            exit_status: None,
            end_reason,
            status: SessionStatus::Lost,
            manifest: text,
            digest,
            signature,
            problems,
            // No claims: a late seal from the bastion is refused as final.
            claims: claims_digest(&[]),
            sealed_at: now,
            files,
            lines,
        };
        match self
            .base
            .audit
            .record_change(event, Change::SealRecording(Box::new(seal)))
            .await
        {
            Ok(_) => {
                self.base.metrics.sessions_lost.inc();
                tracing::warn!(session = %row.id, bastion = %row.bastion, "session lost: its bastion stopped naming it; sealed what reached the CA");
                Ok(())
            }
            Err(audit::Error::Conflict(Conflict::SessionNotLive)) => {
                Err(Error::SealedMeanwhile(row.id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The files the CA holds, as a lost seal lists them (no claims to compare
/// with), and the ones whose gzip stream is damaged. A stream that merely
/// ends early is what a lost session leaves, not damage.
fn stored_files(measured: &Measured) -> (Vec<RecordingFile>, Vec<String>) {
    let mut stored: Vec<(&String, &(u64, String))> = measured.stored.iter().collect();
    stored.sort_by(|a, b| file_order(a.0, b.0));
    let mut problems = Vec::new();
    let files = stored
        .into_iter()
        .map(|(name, (bytes, sha256))| {
            let header = measured.indexed.get(name);
            if let Some(why) = header.and_then(|h| h.unreadable.as_ref()) {
                problems.push(format!("{name}: not a readable gzip stream ({why})"));
            }
            RecordingFile {
                name: name.clone(),
                kind: header
                    .and_then(|h| h.kind.clone())
                    .unwrap_or_else(|| if is_sftp(name) { "sftp" } else { "shell" }.to_owned()),
                command: header.and_then(|h| h.command.clone()),
                bytes: *bytes,
                sha256: sha256.clone(),
            }
        })
        .collect();
    (files, problems)
}

fn rfc3339(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0).single().map_or_else(
        || unix.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}
