//! Session recordings at the CA: the bastion ships each channel's file while
//! the session runs, then seals the session (`upload.rs`); it names its live
//! sessions in heartbeats, and a session whose bastion falls silent is
//! sealed by the CA as lost (`liveness.rs`); retention deletes old sealed
//! recordings unless held (`retention.rs`); reviewers list, search, read and
//! export them (here).
//!
//! The bytes live in the recording store, how much of each file is
//! committed in the store. A chunk lands only at the file's committed end
//! (a retried chunk must match the bytes already held). At the seal the CA
//! measures what it holds, compares it with the bastion's claims, and signs
//! a manifest (`shiftkey_wire::RecordingManifest`) with the user CA key as
//! an SSHSIG, so an export can be checked offline.
//!
//! Never: accept a chunk from a bastion other than the session's, or after
//! the seal starts, or past the session's size limit; show or read a
//! recording the policy's authority does not let the reviewer review
//! (`recording.review`, per role and owner), a deleted one included; answer
//! a reviewer's read before its audit row is committed; hold or release a
//! recording without `recording.hold`; delete a recording that is held or
//! under an open incident, or without its audit row.

pub(crate) mod fuzzing;
mod index;
mod liveness;
mod reports;
mod retention;
mod upload;

pub(crate) use retention::{checked_reason, checked_session, hold, release};

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use shiftkey_wire::{RecordingDetail, RecordingFile, RecordingInfo, RecordingMatch};

use crate::audit::{self, Event, Explain, Outcome};
use crate::authority::{self, Granted, Viewer};
use crate::base::Base;
use crate::identity::Caller;
use crate::policy::Action;
pub(crate) use crate::recording_store::Reader;
use crate::recording_store::{self, RecordingStore};
pub(crate) use crate::store::SessionFilter;
use crate::store::{self, Change, RecordingRead, Session, SessionStatus, StoredSeal};

/// Largest upload chunk (the bastion sends at most 512 KiB).
pub(crate) const MAX_CHUNK: usize = 1024 * 1024;
/// Largest seal body: a session with thousands of exec channels.
pub(crate) const MAX_SEAL_BODY: usize = 4 * 1024 * 1024;
/// Most bytes one file read answers with; the client asks again from the
/// new offset (the client refuses answers over 1 MiB).
pub(crate) const MAX_READ: u64 = 512 * 1024;
/// SSHSIG namespace of the seal: `ssh-keygen -Y verify -n` takes it too.
pub(crate) const NAMESPACE: &str = shiftkey_wire::RECORDING_NAMESPACE;
/// Files one seal may list.
const MAX_FILES: usize = 20_000;
/// Lines one session adds to the search index.
const MAX_INDEX_LINES: usize = 200_000;
/// A reviewer's reads of one file (or of one recording's metadata) for one
/// purpose are audited once in this window, not once per poll: `watch`
/// reads every half second.
const READ_AUDIT_WINDOW: Duration = Duration::from_secs(600);
/// Most rows `GET /v1/recordings` answers with.
pub(crate) const MAX_LIST: u32 = 500;
/// Most sessions one heartbeat may name (a bastion's live sessions).
pub(crate) const MAX_HEARTBEAT_SESSIONS: usize = 20_000;
/// Largest heartbeat body: [`MAX_HEARTBEAT_SESSIONS`] IDs of 18 characters,
/// quoted and separated.
pub(crate) const MAX_HEARTBEAT_BODY: usize = 512 * 1024;

/// Default of `[recordings] max_session_size`: the bastion's own default
/// limit, so that the bastion, which can tell the user, reaches its first.
pub(crate) const DEFAULT_MAX_SESSION_SIZE: u64 = 16 * 1024 * 1024 * 1024;
/// Default of `[recordings] lost_after`: three of the bastion's default
/// heartbeats (every 10 s) missed.
pub(crate) const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(30);

/// The CA's limits on recordings (`[recordings]` in `ca.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes all files of one session may hold together; an upload past it
    /// is refused and the bastion ends the session.
    pub(crate) max_session_size: u64,
    /// A live session its bastion has not named for this long is sealed as
    /// lost.
    pub(crate) lost_after: Duration,
    /// Sealed recordings older than this are deleted (unless held or under
    /// an open incident); `None` keeps them.
    pub(crate) retention: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_session_size: DEFAULT_MAX_SESSION_SIZE,
            lost_after: DEFAULT_LOST_AFTER,
            retention: None,
        }
    }
}

/// `s_` and 16 lowercase hex digits, as `sessions.rs` makes them.
pub(crate) fn is_session_id(id: &str) -> bool {
    id.len() == 18
        && id.starts_with("s_")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `N.cast.gz` or `N.sftp.jsonl.gz`, with `N` a channel number written
/// plainly (no leading zero, so one channel has one name) and at most
/// [`shiftkey_wire::MAX_CHANNEL_NUMBER`], which the bastion's lifetime
/// channel cap stays within.
pub(crate) fn is_file_name(name: &str) -> bool {
    channel(name).is_some()
}

/// The channel number of a valid file name.
pub(crate) fn channel(name: &str) -> Option<u32> {
    let (digits, rest) = name.split_once('.')?;
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && matches!(rest, "cast.gz" | "sftp.jsonl.gz");
    if !plain {
        return None;
    }
    digits
        .parse()
        .ok()
        .filter(|n| *n <= shiftkey_wire::MAX_CHANNEL_NUMBER)
}

fn is_sftp(name: &str) -> bool {
    name.ends_with(".sftp.jsonl.gz")
}

/// Files in channel order (`2.cast.gz` before `10.cast.gz`).
pub(crate) fn file_order(a: &str, b: &str) -> std::cmp::Ordering {
    (channel(a), a).cmp(&(channel(b), b))
}

/// Caller-supplied text as it may appear in an audit row.
fn clip(s: &str) -> String {
    s.chars().take(200).filter(|c| !c.is_control()).collect()
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("only enrolled bastions upload recordings")]
    NotABastion,
    #[error("no session {0}")]
    NoSession(String),
    #[error("session {0} was opened through another bastion; only that bastion may record it")]
    OtherBastion(String),
    #[error("{0:?} is not a recording file name (N.cast.gz or N.sftp.jsonl.gz)")]
    BadFileName(String),
    #[error("?offset=N is required: where the chunk starts in the file")]
    OffsetRequired,
    #[error("session {session} is {status}; its recording no longer changes")]
    NotLive { session: String, status: String },
    #[error("session {0} is being sealed; its recording no longer changes")]
    Sealing(String),
    #[error(
        "offset {offset} is past the end of {name}: the CA holds {held} bytes; send from offset {held}"
    )]
    Gap {
        offset: u64,
        name: String,
        held: u64,
    },
    #[error(
        "the bytes at offset {offset} of {name} differ from those the CA holds ({held} bytes); recordings are append-only"
    )]
    Mismatch {
        offset: u64,
        name: String,
        held: u64,
    },
    #[error("{0}")]
    BadSeal(String),
    #[error("session {session} is already {status}; a seal is final")]
    SealFinal { session: String, status: String },
    #[error("session {0} was sealed a moment ago")]
    SealedMeanwhile(String),
    #[error(
        "only reviewers may read session recordings: the policy's `reviewers` list or a \
         recording.review [[authority]] entry names them, and none of your identities is locked"
    )]
    NotAReviewer,
    /// The policy's authority refused this recording (audited).
    #[error(transparent)]
    Authority(#[from] authority::Error),
    #[error("no recording {0}")]
    NoRecording(String),
    #[error("session {session} has no file {name} (yet)")]
    NoFile { session: String, name: String },
    #[error("offset {offset} is past the end of {name} ({length} bytes)")]
    PastEnd {
        offset: u64,
        name: String,
        length: u64,
    },
    #[error("q is the text to look for, 1 to 200 characters")]
    BadQuery,
    #[error("purpose is view, play, watch or export")]
    BadPurpose,
    #[error(
        "session {session}'s recording reached the CA's limit of {limit} bytes ([recordings] max_session_size); the session ends"
    )]
    TooLarge { session: String, limit: u64 },
    #[error(
        "the recording of session {session} was deleted by retention (unix time {at}); its row, seal and file list remain"
    )]
    Deleted { session: String, at: i64 },
    #[error("session {0} has no recording to hold: retention deleted it")]
    HoldTooLate(String),
    #[error("session {0} is not on legal hold")]
    NotHeld(String),
    #[error("{0}")]
    BadHold(String),
    #[error("the heartbeat names {0} sessions; at most {MAX_HEARTBEAT_SESSIONS}")]
    BadHeartbeat(usize),
    #[error("the recording's bytes: {0}")]
    Bytes(#[from] recording_store::Error),
    #[error("signing the manifest failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot read the store: {0}")]
    Store(#[from] store::Error),
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::NotABastion | Error::OtherBastion(_) | Error::NotAReviewer => "forbidden",
            Error::NoSession(_)
            | Error::BadFileName(_)
            | Error::NoRecording(_)
            | Error::NoFile { .. } => "not-found",
            Error::OffsetRequired
            | Error::BadSeal(_)
            | Error::PastEnd { .. }
            | Error::BadQuery
            | Error::BadPurpose => "invalid-json",
            Error::NotLive { .. }
            | Error::Sealing(_)
            | Error::Gap { .. }
            | Error::Mismatch { .. }
            | Error::SealFinal { .. }
            | Error::SealedMeanwhile(_)
            | Error::TooLarge { .. }
            | Error::HoldTooLate(_)
            | Error::NotHeld(_) => "conflict",
            Error::Deleted { .. } => "gone",
            Error::BadHold(_) | Error::BadHeartbeat(_) => "invalid-json",
            Error::Bytes(_) | Error::Signing(_) | Error::Store(_) => "internal-error",
            Error::Audit(_) => "audit-unavailable",
            Error::Authority(e) => e.code(),
        }
    }
}

/// What a reviewer reads a recording for; named in the audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    View,
    Play,
    Watch,
    Export,
}

impl Purpose {
    pub(crate) fn parse(text: Option<&str>) -> Result<Self, Error> {
        match text {
            None | Some("view") => Ok(Purpose::View),
            Some("play") => Ok(Purpose::Play),
            Some("watch") => Ok(Purpose::Watch),
            Some("export") => Ok(Purpose::Export),
            Some(_) => Err(Error::BadPurpose),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Purpose::View => "view",
            Purpose::Play => "play",
            Purpose::Watch => "watch",
            Purpose::Export => "export",
        }
    }

    fn audit_kind(self) -> &'static str {
        match self {
            Purpose::Export => "recording.exported",
            Purpose::View | Purpose::Play | Purpose::Watch => "recording.viewed",
        }
    }
}

/// Proof that the caller may review some recordings (`local:root` on the
/// CA's socket, an admin, or named by a `recording.review` rule, and not
/// locked); each recording is then decided on its own. Only
/// [`Recordings::reviewer`] builds one.
#[derive(Debug, Clone)]
pub(crate) struct Reviewer {
    caller: Caller,
    viewer: Viewer,
}

impl Reviewer {
    /// Whether the reviewer may see `row` in a list or a search.
    fn may_see(&self, row: &Session) -> bool {
        self.viewer.may(&Action::ReviewRecording {
            role: &row.role,
            owner: &row.identity,
        })
    }
}

/// One file of a recording, opened for reading.
pub(crate) struct Opened {
    /// The bytes asked for.
    pub(crate) reader: Reader,
    /// How many bytes the reader yields.
    pub(crate) bytes: u64,
    /// The file's whole committed length (it grows while the session is live).
    pub(crate) length: u64,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("bytes", &self.bytes)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct Recordings {
    base: Base,
    bytes: Arc<dyn RecordingStore>,
    limits: Limits,
}

impl Recordings {
    pub(crate) fn new(base: &Base, bytes: Arc<dyn RecordingStore>, limits: Limits) -> Self {
        Self {
            base: base.clone(),
            bytes,
            limits,
        }
    }

    /// The checks every reviewer route starts with. A refusal is audited
    /// (`recording.denied`) before it is answered.
    pub(crate) async fn reviewer(&self, caller: &Caller, path: &str) -> Result<Reviewer, Error> {
        let identity = caller.identity();
        let viewer = Viewer::new(&self.base, caller).await?;
        let allowed = match caller {
            Caller::User { .. } | Caller::Local { .. } => viewer.may_review_some(),
            Caller::Webhook { .. } => false,
        };
        if allowed {
            return Ok(Reviewer {
                caller: caller.clone(),
                viewer,
            });
        }
        Err(self
            .base
            .audit
            .refuse(
                "recording.denied",
                identity,
                Outcome::Deny,
                Error::NotAReviewer,
                json!({ "path": clip(path) }),
            )
            .await)
    }

    /// Audits a reviewer's read, once per window for the same file and
    /// purpose (the window is kept in the store, so every replica agrees).
    async fn audit_read(
        &self,
        granted: &Granted,
        purpose: Purpose,
        session: &str,
        file: Option<&str>,
    ) -> Result<(), Error> {
        let now = Utc::now().timestamp();
        let read = RecordingRead {
            reviewer: granted.actor().to_owned(),
            purpose: purpose.as_str().to_owned(),
            session: session.to_owned(),
            file: file.unwrap_or_default().to_owned(),
            audited_at: now,
        };
        let window = i64::try_from(READ_AUDIT_WINDOW.as_secs()).unwrap_or(600);
        if let Some(at) = self.base.store.read_audited_at(&read).await?
            && now - at < window
        {
            return Ok(());
        }
        self.base
            .audit
            .record_change(
                Event::new(
                    purpose.audit_kind(),
                    granted.actor().to_owned(),
                    Outcome::Info,
                    granted.annotate(
                        json!({ "session": session, "file": file, "purpose": purpose.as_str() }),
                    ),
                ),
                Change::NoteRecordingRead(read),
            )
            .await?;
        Ok(())
    }

    /// A session's metadata: for a sealed one from the seal, for a live one
    /// from the committed uploads (their SHA-256 is left empty).
    async fn info(&self, row: Session) -> Result<(RecordingInfo, Option<StoredSeal>), Error> {
        let seal = self.base.store.stored_seal(&row.id).await?;
        let files = if seal.is_some() {
            self.base.store.recording_files(&row.id).await?
        } else {
            self.base
                .store
                .uploads(&row.id)
                .await?
                .into_iter()
                .map(|u| RecordingFile {
                    kind: if is_sftp(&u.name) { "sftp" } else { "shell" }.to_owned(),
                    name: u.name,
                    command: None,
                    bytes: u.length,
                    sha256: String::new(),
                })
                .collect()
        };
        let info = RecordingInfo {
            session_id: row.id,
            identity: row.identity,
            user_serial: row.user_serial,
            role: row.role,
            incident: row.incident,
            principal: row.principal,
            target: row.target,
            client_address: row.client_address,
            bastion: row.bastion,
            started_at: row.started_at,
            ended_at: row.ended_at,
            exit_status: row.exit_status,
            end_reason: row.end_reason,
            status: row.status.as_str().to_owned(),
            files,
            digest: seal.as_ref().map(|s| s.digest.clone()),
            signature: seal.as_ref().map(|s| s.signature.clone()),
            held: row.held,
            deleted_at: row.recording_deleted_at,
        };
        Ok((info, seal))
    }

    async fn detail(&self, row: Session) -> Result<RecordingDetail, Error> {
        let (info, seal) = self.info(row).await?;
        Ok(match seal {
            Some(seal) => RecordingDetail {
                info,
                manifest: Some(seal.manifest),
                problems: seal.problems,
            },
            None => RecordingDetail {
                info,
                manifest: None,
                problems: Vec::new(),
            },
        })
    }

    /// `GET /v1/recordings`: sessions the reviewer may review, newest
    /// first. Metadata only: not audited (the reads of content are).
    pub(crate) async fn list(
        &self,
        reviewer: &Reviewer,
        filter: SessionFilter,
    ) -> Result<Vec<RecordingInfo>, Error> {
        let mut infos = Vec::new();
        for row in self.base.store.sessions(filter).await? {
            if reviewer.may_see(&row) {
                infos.push(self.info(row).await?.0);
            }
        }
        Ok(infos)
    }

    /// `GET /v1/recordings/search?q=TEXT`, audited as `recording.searched`.
    pub(crate) async fn search(
        &self,
        reviewer: &Reviewer,
        text: &str,
        limit: u32,
    ) -> Result<Vec<RecordingMatch>, Error> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 200 {
            return Err(Error::BadQuery);
        }
        let mut found = Vec::new();
        // Each session once: whether the reviewer may see its lines.
        let mut seen: Vec<(String, bool)> = Vec::new();
        for hit in self.base.store.search(text, limit).await? {
            let visible = match seen.iter().find(|(id, _)| *id == hit.session_id) {
                Some((_, visible)) => *visible,
                None => {
                    let visible = self
                        .base
                        .store
                        .session(&hit.session_id)
                        .await?
                        .is_some_and(|row| reviewer.may_see(&row));
                    seen.push((hit.session_id.clone(), visible));
                    visible
                }
            };
            if visible {
                found.push(hit);
            }
        }
        self.base
            .audit
            .record(Event::new(
                "recording.searched",
                reviewer.caller.identity(),
                Outcome::Info,
                json!({ "query": clip(text), "matches": found.len() }),
            ))
            .await?;
        Ok(found)
    }

    /// `GET /v1/recordings/{id}`: metadata, manifest and signature.
    pub(crate) async fn recording(
        &self,
        reviewer: &Reviewer,
        session: &str,
        purpose: Purpose,
    ) -> Result<RecordingDetail, Error> {
        let (row, granted) = self.reviewed_session(reviewer, session, purpose).await?;
        self.audit_read(&granted, purpose, session, None).await?;
        self.detail(row).await
    }

    /// The session, if the policy's authority lets the reviewer review its
    /// recording (a refusal is audited). One the reviewer may not see is
    /// answered as missing would be only when it does not exist: a refusal
    /// says so, without the session's details.
    async fn reviewed_session(
        &self,
        reviewer: &Reviewer,
        session: &str,
        purpose: Purpose,
    ) -> Result<(Session, Granted), Error> {
        let missing = || Error::NoRecording(clip(session));
        if !is_session_id(session) {
            return Err(missing());
        }
        let row = self
            .base
            .store
            .session(session)
            .await?
            .ok_or_else(missing)?;
        let granted = authority::authorize(
            &self.base,
            &reviewer.caller,
            &Action::ReviewRecording {
                role: &row.role,
                owner: &row.identity,
            },
            json!({ "session": session, "purpose": purpose.as_str() }),
        )
        .await?;
        Ok((row, granted))
    }

    /// `GET /v1/recordings/{id}/files/{name}?offset=N`: up to `limit` bytes
    /// from `offset` (all of them with `None`), streamed, and the file's
    /// committed length (which grows while the session is live).
    pub(crate) async fn read_file(
        &self,
        reviewer: &Reviewer,
        session: &str,
        name: &str,
        offset: u64,
        limit: Option<u64>,
        purpose: Purpose,
    ) -> Result<Opened, Error> {
        let (row, granted) = self.reviewed_session(reviewer, session, purpose).await?;
        if !is_file_name(name) {
            return Err(Error::NoFile {
                session: clip(session),
                name: clip(name),
            });
        }
        self.audit_read(&granted, purpose, session, Some(name))
            .await?;
        if let Some(at) = row.recording_deleted_at {
            return Err(Error::Deleted {
                session: session.to_owned(),
                at,
            });
        }
        let length = self
            .committed_length(&row, name)
            .await?
            .ok_or_else(|| Error::NoFile {
                session: session.to_owned(),
                name: name.to_owned(),
            })?;
        if offset > length {
            return Err(Error::PastEnd {
                offset,
                name: name.to_owned(),
                length,
            });
        }
        let end = limit.map_or(length, |l| length.min(offset.saturating_add(l)));
        let reader = self.bytes.read(session, name, offset..end).await?;
        Ok(Opened {
            reader,
            bytes: end - offset,
            length,
        })
    }

    /// How many bytes of `name` are part of the recording: the committed
    /// upload; for a session sealed before upload state lived in the store,
    /// what its seal lists.
    async fn committed_length(&self, row: &Session, name: &str) -> Result<Option<u64>, Error> {
        let uploaded = self.base.store.uploads(&row.id).await?;
        if let Some(u) = uploaded.iter().find(|u| u.name == name) {
            return Ok(Some(u.length));
        }
        if row.status == SessionStatus::Live {
            return Ok(None);
        }
        Ok(self
            .base
            .store
            .recording_files(&row.id)
            .await?
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| f.bytes))
    }

    /// Every user CA key the CA has signed with, one `ca.pub` line each
    /// with its state as the comment (`shiftkey_wire::SealKey::line`): a
    /// seal made before a rotation verifies with the key retired since.
    pub(crate) fn seal_keys(&self) -> String {
        self.base
            .keys
            .snapshot()
            .user_seal_keys
            .iter()
            .map(shiftkey_wire::SealKey::line)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The statuses a session can be in, as filters name them.
pub(crate) fn parse_status(text: &str) -> Option<SessionStatus> {
    SessionStatus::parse(text)
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
