//! Bastion sessions and the index of their recordings: the session rows,
//! how much of each recording file is committed (the bytes themselves live
//! in the recording store), the seal the CA signed, the files it covered,
//! the search index, when reviewers' reads were last audited; when each
//! live session's bastion last named it (heartbeats, lost sessions);
//! retention and legal holds.

use async_trait::async_trait;
use shiftkey_wire::{RecordingFile, RecordingMatch};

use super::Error;

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionStatus {
    Live,
    Ended,
    Sealed,
    VerificationFailed,
    /// Its bastion stopped naming it (killed, gone): sealed by the CA with
    /// what reached it, a truncated recording.
    Lost,
}

impl SessionStatus {
    pub(crate) const ALL: [SessionStatus; 5] = [
        SessionStatus::Live,
        SessionStatus::Ended,
        SessionStatus::Sealed,
        SessionStatus::VerificationFailed,
        SessionStatus::Lost,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Live => "live",
            SessionStatus::Ended => "ended",
            SessionStatus::Sealed => "sealed",
            SessionStatus::VerificationFailed => "verification-failed",
            SessionStatus::Lost => "lost",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A bastion session, as authorized and as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) identity: String,
    /// The certificate the user came in with.
    pub(crate) user_serial: u64,
    /// The one-session certificate the bastion used upstream.
    pub(crate) session_serial: u64,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) principal: String,
    /// `host:port`.
    pub(crate) target: String,
    pub(crate) client_address: String,
    pub(crate) bastion: String,
    pub(crate) started_at: i64,
    pub(crate) ended_at: Option<i64>,
    pub(crate) exit_status: Option<u32>,
    pub(crate) end_reason: Option<String>,
    pub(crate) status: SessionStatus,
    /// When its bastion last named it in a heartbeat (unix seconds).
    pub(crate) last_seen: Option<i64>,
    /// When retention deleted its recording (the row and seal stay).
    pub(crate) recording_deleted_at: Option<i64>,
    /// The reason of the legal hold on its recording, if any.
    pub(crate) held: Option<String>,
}

impl Session {
    /// When the session was last known to run: its bastion's last
    /// heartbeat naming it, else its start.
    pub(crate) fn last_heard(&self) -> i64 {
        self.last_seen
            .unwrap_or(self.started_at)
            .max(self.started_at)
    }
}

/// What `GET /v1/recordings` filters on; every field given must match.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionFilter {
    /// Exact identity (`user:alice@example.com`), ASCII case-insensitive.
    pub(crate) identity: Option<String>,
    /// Target host, with or without `:port`.
    pub(crate) host: Option<String>,
    pub(crate) incident: Option<String>,
    pub(crate) role: Option<String>,
    /// Sessions started at or after (unix seconds).
    pub(crate) since: Option<i64>,
    pub(crate) status: Option<SessionStatus>,
    pub(crate) limit: u32,
}

/// How much of one recording file is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub(crate) name: String,
    pub(crate) length: u64,
}

/// What the CA signed about a sealed session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSeal {
    pub(crate) manifest: String,
    pub(crate) digest: String,
    pub(crate) signature: String,
    pub(crate) problems: Vec<String>,
    /// Hex SHA-256 of the claims the seal was made from.
    pub(crate) claims: String,
}

/// One searchable line of a recording.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexLine {
    pub(crate) channel: u32,
    /// Seconds from the channel's start.
    pub(crate) seconds: f64,
    pub(crate) line: String,
    /// `input`, `exec` or `sftp`.
    pub(crate) source: &'static str,
}

/// A session's end, as the seal records it: the session row's new state,
/// the signed manifest, the files it covers and the search index.
#[derive(Debug, Clone)]
pub(crate) struct Seal {
    pub(crate) session: String,
    pub(crate) ended_at: i64,
    pub(crate) exit_status: Option<u32>,
    pub(crate) end_reason: String,
    /// `Sealed`, `VerificationFailed`, or `Lost` (sealed by the CA after
    /// its bastion went silent).
    pub(crate) status: SessionStatus,
    pub(crate) manifest: String,
    pub(crate) digest: String,
    pub(crate) signature: String,
    pub(crate) problems: Vec<String>,
    /// Hex SHA-256 of the claims the seal was made from.
    pub(crate) claims: String,
    pub(crate) sealed_at: i64,
    pub(crate) files: Vec<RecordingFile>,
    pub(crate) lines: Vec<IndexLine>,
}

/// A legal hold on a session's recording: retention keeps it until the
/// hold is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hold {
    pub(crate) session: String,
    pub(crate) reason: String,
    pub(crate) held_by: String,
    pub(crate) held_at: i64,
}

/// A reviewer's read of a recording, as the audit window keys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordingRead {
    pub(crate) reviewer: String,
    pub(crate) purpose: String,
    pub(crate) session: String,
    /// Empty for the recording's metadata.
    pub(crate) file: String,
    pub(crate) audited_at: i64,
}

#[async_trait]
pub(crate) trait SessionStore {
    async fn session(&self, id: &str) -> Result<Option<Session>, Error>;

    /// Sessions matching `filter`, newest first.
    async fn sessions(&self, filter: SessionFilter) -> Result<Vec<Session>, Error>;

    /// The files of a sealed session, in channel order.
    async fn recording_files(&self, session: &str) -> Result<Vec<RecordingFile>, Error>;

    async fn stored_seal(&self, session: &str) -> Result<Option<StoredSeal>, Error>;

    /// Index lines containing `text` (ASCII case-insensitive), newest
    /// sessions first, at most `limit`.
    async fn search(&self, text: &str, limit: u32) -> Result<Vec<RecordingMatch>, Error>;

    /// The committed length of each file of a session, in channel order.
    async fn uploads(&self, session: &str) -> Result<Vec<Upload>, Error>;

    /// Moves a file's committed length from `from` (0: nothing committed
    /// yet) to `to`, only if it is still `from`, the session is live, its
    /// seal has not started and all its files together stay within `limit`
    /// bytes: `UploadMoved`, `SessionNotLive`, `SessionSealing` or
    /// `SessionTooLarge` otherwise.
    async fn commit_upload(
        &self,
        session: &str,
        name: &str,
        from: u64,
        to: u64,
        limit: u64,
    ) -> Result<(), Error>;

    /// Starts the session's seal at `now` (again, if one started and did
    /// not finish): no upload commits after it. `SessionNotLive` once
    /// sealed. Returns the committed files.
    async fn begin_seal(&self, session: &str, now: i64) -> Result<Vec<Upload>, Error>;

    /// Lets uploads go on after a seal that failed before its commit.
    async fn abort_seal(&self, session: &str) -> Result<(), Error>;

    /// When this read (reviewer, purpose, session, file) was last audited.
    async fn read_audited_at(&self, read: &RecordingRead) -> Result<Option<i64>, Error>;

    /// A heartbeat: `bastion` names the sessions it runs at `now`. The live
    /// ones that are this bastion's are marked heard (`last_seen`); the
    /// answer is the named ones that are not (ended, lost, unknown, or
    /// another bastion's), which the bastion must end.
    async fn heard_from(
        &self,
        bastion: &str,
        sessions: &[String],
        now: i64,
    ) -> Result<Vec<String>, Error>;

    /// Live sessions last heard of (heartbeat, else start) at or before
    /// `cutoff`, and whose seal, if one started, started at or before it
    /// too: the ones to seal as lost. Oldest first, at most `limit`.
    async fn silent_sessions(&self, cutoff: i64, limit: u32) -> Result<Vec<Session>, Error>;

    /// Starts the seal of a silent session as lost, at `now`: only if it is
    /// still live, still unheard since `cutoff`, and no seal started after
    /// `cutoff` (`SessionHeard` otherwise, e.g. another CA process claimed
    /// it a moment ago). Returns the committed files, as `begin_seal`.
    async fn claim_lost(&self, session: &str, cutoff: i64, now: i64) -> Result<Vec<Upload>, Error>;

    /// Recordings retention deletes: sealed (sealed, verification-failed
    /// or lost) at or before `cutoff`, not deleted yet, under no legal hold
    /// and not under an incident that is open. Oldest seal first, at most
    /// `limit`.
    async fn expired_recordings(&self, cutoff: i64, limit: u32) -> Result<Vec<Session>, Error>;

    /// Sessions whose recording was deleted (`Change::DeleteRecording`)
    /// while the recording store may still hold their bytes.
    async fn recordings_to_purge(&self, limit: u32) -> Result<Vec<String>, Error>;

    /// The recording store no longer holds the session's bytes.
    async fn note_bytes_deleted(&self, session: &str, now: i64) -> Result<(), Error>;
}
