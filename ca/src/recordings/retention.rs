//! Retention: sealed recordings older than `[recordings] retention` are
//! deleted, each deletion audited (`recording.deleted`) before its bytes go.
//! Kept whatever their age: recordings under a legal hold (`shiftkey-ca
//! recordings hold`, a power the policy grants as `recording.hold`) and
//! those of sessions under an incident that is still open.
//!
//! What stays of a deleted recording: the session row, the signed seal and
//! the file list (names, sizes, digests), as the record that it existed;
//! what goes: the bytes and the search index built from them.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::{Error, Recordings, clip, is_session_id};
use crate::audit::{self, Audit, Event, Outcome};
use crate::authority::Granted;
use crate::store::{Change, Conflict, Hold};

/// Recordings one pass deletes at most (the next pass goes on).
const PASS_LIMIT: u32 = 1000;
/// Rows read at once.
const BATCH: u32 = 100;

/// What one retention pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pass {
    /// Recordings deleted (audited) in this pass.
    pub(crate) deleted: usize,
    /// Recordings whose bytes left the recording store in this pass
    /// (including ones deleted by an earlier pass whose bytes stayed).
    pub(crate) purged: usize,
}

impl Recordings {
    /// How often each CA process applies retention: a tenth of the
    /// retention, between one second and an hour.
    pub(crate) fn retention_interval(&self) -> Option<Duration> {
        self.limits
            .retention
            .map(|r| (r / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600)))
    }

    /// Runs until aborted: a pass every [`Self::retention_interval`]
    /// (returns at once without `[recordings] retention`).
    pub(crate) async fn apply_retention_periodically(self: Arc<Self>) {
        let Some(every) = self.retention_interval() else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.apply_retention().await {
                Ok(pass) if pass != Pass::default() => {
                    tracing::info!(
                        deleted = pass.deleted,
                        purged = pass.purged,
                        "retention applied"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot apply retention; will try again"),
            }
        }
    }

    /// One retention pass (nothing without `[recordings] retention`).
    /// Safe with several CA processes: each deletion is a conditional
    /// change, applied once.
    pub(crate) async fn apply_retention(&self) -> Result<Pass, Error> {
        let mut pass = Pass::default();
        if let Some(retention) = self.limits.retention {
            let now = Utc::now().timestamp();
            let age = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
            let cutoff = now.saturating_sub(age);
            while pass.deleted < PASS_LIMIT as usize {
                let expired = self.base.store.expired_recordings(cutoff, BATCH).await?;
                if expired.is_empty() {
                    break;
                }
                let mut progressed = false;
                for row in expired {
                    let event = Event::new(
                        "recording.deleted",
                        "system",
                        Outcome::Info,
                        json!({
                            "session": row.id, "identity": row.identity, "target": row.target,
                            "status": row.status.as_str(), "ended_at": row.ended_at,
                            "retention_seconds": retention.as_secs(), "cutoff": cutoff,
                        }),
                    );
                    let change = Change::DeleteRecording {
                        session: row.id.clone(),
                        cutoff,
                        at: now,
                    };
                    match self.base.audit.record_change(event, change).await {
                        Ok(_) => {
                            self.base.metrics.recordings_deleted.inc();
                            pass.deleted += 1;
                            progressed = true;
                        }
                        // Held, or an incident opened, a moment ago.
                        Err(audit::Error::Conflict(Conflict::RecordingKept)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if !progressed {
                    break;
                }
            }
        }
        pass.purged = self.purge_bytes().await?;
        Ok(pass)
    }

    /// Deletes the bytes of recordings whose deletion was committed; a
    /// failure is retried by the next pass.
    async fn purge_bytes(&self) -> Result<usize, Error> {
        let mut purged = 0;
        for session in self.base.store.recordings_to_purge(PASS_LIMIT).await? {
            match self.bytes.delete(&session).await {
                Ok(()) => {
                    self.base
                        .store
                        .note_bytes_deleted(&session, Utc::now().timestamp())
                        .await?;
                    purged += 1;
                }
                Err(e) => {
                    tracing::error!(session, error = %e, "cannot delete a recording's bytes; will try again");
                }
            }
        }
        Ok(purged)
    }
}

/// Places a legal hold on a session's recording (`shiftkey-ca recordings
/// hold`), audited as `recording.held` with the power that allowed it
/// (`recording.hold` for the session's role and owner); holding again
/// replaces the reason.
pub(crate) async fn hold(
    audit: &Audit,
    session: &str,
    reason: &str,
    granted: &Granted,
) -> Result<(), Error> {
    let session = checked_session(session)?;
    let reason = checked_reason(reason)?;
    let actor = granted.actor().to_owned();
    let hold = Hold {
        session: session.clone(),
        reason: reason.clone(),
        held_by: actor.clone(),
        held_at: Utc::now().timestamp(),
    };
    let event = Event::new(
        "recording.held",
        actor,
        Outcome::Info,
        granted.annotate(json!({ "session": session, "reason": reason })),
    );
    match audit
        .record_change(event, Change::HoldRecording(hold))
        .await
    {
        Ok(_) => Ok(()),
        Err(audit::Error::Conflict(Conflict::NoSuchSession)) => Err(Error::NoRecording(session)),
        Err(audit::Error::Conflict(Conflict::RecordingDeleted)) => Err(Error::HoldTooLate(session)),
        Err(e) => Err(e.into()),
    }
}

/// Releases a legal hold (`shiftkey-ca recordings release`), audited as
/// `recording.released` with the power that allowed it (`recording.hold`,
/// as for placing one); retention then applies again.
pub(crate) async fn release(
    audit: &Audit,
    session: &str,
    reason: &str,
    granted: &Granted,
) -> Result<(), Error> {
    let session = checked_session(session)?;
    let reason = checked_reason(reason)?;
    let event = Event::new(
        "recording.released",
        granted.actor().to_owned(),
        Outcome::Info,
        granted.annotate(json!({ "session": session, "reason": reason })),
    );
    let change = Change::ReleaseHold {
        session: session.clone(),
    };
    match audit.record_change(event, change).await {
        Ok(_) => Ok(()),
        Err(audit::Error::Conflict(Conflict::NotHeld)) => Err(Error::NotHeld(session)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn checked_session(session: &str) -> Result<String, Error> {
    let session = session.trim();
    if is_session_id(session) {
        Ok(session.to_owned())
    } else {
        Err(Error::BadHold(format!(
            "{:?} is not a session ID (s_ and 16 hex digits, as `shiftkey recordings list` shows)",
            clip(session)
        )))
    }
}

pub(crate) fn checked_reason(reason: &str) -> Result<String, Error> {
    let reason = reason.trim();
    if (3..=500).contains(&reason.chars().count()) && !reason.chars().any(char::is_control) {
        Ok(reason.to_owned())
    } else {
        Err(Error::BadHold(
            "--reason must say why in 3 to 500 characters (it is recorded in the audit log)".into(),
        ))
    }
}
