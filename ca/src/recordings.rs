//! Session recordings at the CA: the bastion ships each channel's file while
//! the session runs, then seals the session; reviewers list, search, read
//! and export them.
//!
//! Files live under the data directory as `recordings/SESSION/NAME` (0700
//! directories, 0600 files), append-only: a chunk lands only at the file's
//! current end, and a retried chunk must match the bytes already there. At
//! the seal the CA measures what it holds, compares it with the bastion's
//! claims, and signs a manifest (`shiftkey_wire::RecordingManifest`) with
//! the user CA key as an SSHSIG, so an export can be checked offline.
//!
//! Never: accept a chunk from a bastion other than the session's, or after
//! the seal; let anyone but a reviewer read a recording; answer a reviewer's
//! read before its audit row is committed.

mod files;
mod index;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use shiftkey_wire::{
    RecordingChunkAck, RecordingDetail, RecordingFile, RecordingInfo, RecordingManifest,
    RecordingMatch, SealRequest,
};
use ssh_key::HashAlg;

use crate::audit::{Event, Outcome};
use crate::hosts::{EnrolledHost, HostKind};
use crate::http::error::ApiError;
use crate::identity::Caller;
use crate::service::Ca;
use crate::store::Change;
use crate::store::recordings::{self as store, Filter, IndexLine, Seal, SessionRow};
use files::{AppendError, Measured, append, measure_session, read_at, stored_files};

/// Largest upload chunk (the bastion sends at most 512 KiB).
pub(crate) const MAX_CHUNK: usize = 1024 * 1024;
/// Largest seal body: a session with thousands of exec channels.
pub(crate) const MAX_SEAL_BODY: usize = 4 * 1024 * 1024;
/// Most bytes one file read answers with; the client asks again from the
/// new offset (the client refuses answers over 1 MiB).
pub(crate) const MAX_READ: usize = 512 * 1024;
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
/// Created in a session's directory when sealing starts: no chunk is
/// appended after it, so the files measured are the files signed.
const SEALING_MARKER: &str = ".sealing";
/// Most rows `GET /v1/recordings` answers with.
pub(crate) const MAX_LIST: u32 = 500;

/// When each (reviewer, purpose, session, file) read was last audited.
static READS_AUDITED: Mutex<BTreeMap<String, Instant>> = Mutex::new(BTreeMap::new());

/// `s_` and 16 lowercase hex digits, as `sessions.rs` makes them.
pub(crate) fn is_session_id(id: &str) -> bool {
    id.len() == 18
        && id.starts_with("s_")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `^[0-9]{1,4}\.(cast|sftp\.jsonl)\.gz$`
pub(crate) fn is_file_name(name: &str) -> bool {
    channel(name).is_some()
}

/// The channel number of a valid file name.
pub(crate) fn channel(name: &str) -> Option<u32> {
    let (digits, rest) = name.split_once('.')?;
    let valid = (1..=4).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(rest, "cast.gz" | "sftp.jsonl.gz");
    if valid { digits.parse().ok() } else { None }
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

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks a seal's claims for shape (not yet against the files).
fn check_seal(request: &SealRequest, session: &SessionRow, now: i64) -> Result<(), String> {
    if request.files.len() > MAX_FILES {
        return Err(format!("at most {MAX_FILES} files"));
    }
    let mut names = std::collections::BTreeSet::new();
    for file in &request.files {
        if !is_file_name(&file.name) {
            return Err(format!(
                "file name {:?}: N.cast.gz or N.sftp.jsonl.gz, N of 1 to 4 digits",
                clip(&file.name)
            ));
        }
        if !names.insert(file.name.as_str()) {
            return Err(format!("file {} is listed twice", file.name));
        }
        let kind_ok = (1..=32).contains(&file.kind.len())
            && file
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !kind_ok {
            return Err(format!(
                "{}: kind is a word such as shell, exec or sftp",
                file.name
            ));
        }
        if file.command.as_ref().is_some_and(|c| c.len() > 16 * 1024) {
            return Err(format!("{}: command longer than 16 KiB", file.name));
        }
        let sha_ok = file.sha256.len() == 64
            && file
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !sha_ok {
            return Err(format!("{}: sha256 is 64 lowercase hex digits", file.name));
        }
    }
    let skew = i64::try_from(shiftkey_wire::host_auth::MAX_CLOCK_DIFFERENCE).unwrap_or(300);
    if request.ended_at < session.started_at - skew || request.ended_at > now + skew {
        return Err(format!(
            "ended_at {} is not between the session's start and now",
            request.ended_at
        ));
    }
    if request.end_reason.len() > 1024 {
        return Err("end_reason longer than 1 KiB".into());
    }
    Ok(())
}

/// Compares the bastion's claims with what the CA holds; returns the files
/// as stored (what the manifest lists) and every difference.
fn reconcile(claims: &[RecordingFile], measured: &Measured) -> (Vec<RecordingFile>, Vec<String>) {
    let empty = sha256_hex(b"");
    let mut problems = Vec::new();
    let mut names: Vec<&str> = claims.iter().map(|f| f.name.as_str()).collect();
    names.extend(measured.stored.keys().map(String::as_str));
    names.sort_by(|a, b| file_order(a, b));
    names.dedup();
    let mut files = Vec::new();
    for name in names {
        let claim = claims.iter().find(|f| f.name == name);
        let stored = measured.stored.get(name);
        let header = measured.indexed.get(name);
        let (bytes, sha256) = stored.cloned().unwrap_or((0, empty.clone()));
        match (claim, stored) {
            (None, _) => problems.push(format!("{name}: stored by the CA but not in the seal")),
            (Some(c), None) if c.bytes > 0 => problems.push(format!(
                "{name}: the bastion claims {} bytes, the CA received none",
                c.bytes
            )),
            (Some(c), _) if c.bytes != bytes => problems.push(format!(
                "{name}: the bastion claims {} bytes, the CA holds {bytes}",
                c.bytes
            )),
            (Some(c), _) if c.sha256 != sha256 => problems.push(format!(
                "{name}: the SHA-256 the bastion claims differs from the CA's copy"
            )),
            _ => {}
        }
        if let Some(why) = header.and_then(|h| h.unreadable.as_ref()) {
            problems.push(format!("{name}: not a readable gzip stream ({why})"));
        }
        let kind = claim
            .map(|c| c.kind.clone())
            .or_else(|| header.and_then(|h| h.kind.clone()))
            .unwrap_or_else(|| if is_sftp(name) { "sftp" } else { "shell" }.to_owned());
        let command = claim
            .and_then(|c| c.command.clone())
            .or_else(|| header.and_then(|h| h.command.clone()));
        files.push(RecordingFile {
            name: name.to_owned(),
            kind,
            command,
            bytes,
            sha256,
        });
    }
    (files, problems)
}

/// The search index of a sealed session: input lines, sftp operations, and
/// each exec channel's command.
fn index_lines(files: &[RecordingFile], measured: &mut Measured) -> Vec<IndexLine> {
    let mut lines = Vec::new();
    for file in files {
        if let Some(command) = &file.command
            && lines.len() < MAX_INDEX_LINES
        {
            lines.push(IndexLine {
                channel: channel(&file.name).unwrap_or(0),
                seconds: 0.0,
                line: command.chars().take(2000).collect(),
                source: "exec",
            });
        }
        if let Some(indexed) = measured.indexed.get_mut(&file.name) {
            lines.append(&mut indexed.lines);
        }
    }
    lines.truncate(MAX_INDEX_LINES);
    lines
}

/// Hex SHA-256 over a seal's claims, in name order: the same claims sent
/// again (a retry) have the same digest.
fn claims_digest(claims: &[RecordingFile]) -> String {
    let mut sorted: Vec<&RecordingFile> = claims.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sha256_hex(
        serde_json::to_string(&sorted)
            .unwrap_or_default()
            .as_bytes(),
    )
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
    pub(crate) fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        match text {
            None | Some("view") => Ok(Purpose::View),
            Some("play") => Ok(Purpose::Play),
            Some("watch") => Ok(Purpose::Watch),
            Some("export") => Ok(Purpose::Export),
            Some(_) => Err(ApiError::InvalidBody(
                "purpose is view, play, watch or export".into(),
            )),
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

/// Proof that the caller may read recordings: `local:root` on the CA's
/// socket, or an identity the policy's `reviewers` names. Only
/// [`Ca::reviewer`] builds one.
#[derive(Debug)]
pub(crate) struct Reviewer {
    identity: String,
}

impl Ca {
    /// Where recordings live: beside the database, in the data directory.
    fn recordings_root(&self) -> Result<PathBuf, ApiError> {
        let db = self.read(|conn| Ok(conn.path().map(PathBuf::from)))?;
        db.as_deref()
            .and_then(Path::parent)
            .map(|dir| dir.join("recordings"))
            .ok_or_else(|| ApiError::Internal("the store has no data directory".into()))
    }

    fn session_dir(&self, session: &str) -> Result<PathBuf, ApiError> {
        // INVARIANT: callers checked `is_session_id`, so the ID is one path
        // component of [s_0-9a-f].
        Ok(self.recordings_root()?.join(session))
    }

    /// The session a bastion uploads to or seals: it must be that bastion's.
    fn bastions_session(&self, host: &EnrolledHost, session: &str) -> Result<SessionRow, ApiError> {
        if host.kind != HostKind::Bastion {
            return Err(ApiError::Forbidden(
                "only enrolled bastions upload recordings".into(),
            ));
        }
        let missing = || ApiError::Missing(format!("no session {}", clip(session)));
        if !is_session_id(session) {
            return Err(missing());
        }
        let row = self
            .read(|conn| store::session(conn, session))?
            .ok_or_else(missing)?;
        if row.bastion != host.name {
            return Err(ApiError::Forbidden(format!(
                "session {session} was opened through another bastion; only that bastion may record it"
            )));
        }
        Ok(row)
    }

    /// `POST /v1/recordings/{session}/files/{name}?offset=N`.
    pub(crate) async fn upload_chunk(
        &self,
        host: &EnrolledHost,
        session: &str,
        name: &str,
        offset: Option<u64>,
        chunk: &[u8],
    ) -> Result<RecordingChunkAck, ApiError> {
        match self.append_chunk(host, session, name, offset, chunk).await {
            Ok(ack) => Ok(ack),
            Err(error) => {
                let detail = json!({
                    "session": clip(session), "file": clip(name),
                    "offset": offset, "bytes": chunk.len(),
                });
                Err(self
                    .refuse("recording.upload_refused", host.identity(), error, detail)
                    .await)
            }
        }
    }

    async fn append_chunk(
        &self,
        host: &EnrolledHost,
        session: &str,
        name: &str,
        offset: Option<u64>,
        chunk: &[u8],
    ) -> Result<RecordingChunkAck, ApiError> {
        let row = self.bastions_session(host, session)?;
        if !is_file_name(name) {
            return Err(ApiError::Missing(format!(
                "{:?} is not a recording file name (N.cast.gz or N.sftp.jsonl.gz)",
                clip(name)
            )));
        }
        let offset = offset.ok_or_else(|| {
            ApiError::InvalidBody(
                "?offset=N is required: where the chunk starts in the file".into(),
            )
        })?;
        if row.status != "live" {
            return Err(ApiError::Conflict(format!(
                "session {session} is {}; its recording no longer changes",
                row.status
            )));
        }
        let dir = self.session_dir(session)?;
        let (file, bytes) = (name.to_owned(), chunk.to_vec());
        let appended = tokio::task::spawn_blocking(move || append(&dir, &file, offset, &bytes))
            .await
            .map_err(|e| ApiError::Internal(format!("recording writer failed: {e}")))?;
        match appended {
            Ok(length) => Ok(RecordingChunkAck {
                name: name.to_owned(),
                bytes: length,
            }),
            Err(AppendError::Sealing) => Err(ApiError::Conflict(format!(
                "session {session} is being sealed; its recording no longer changes"
            ))),
            Err(AppendError::Gap { stored }) => Err(ApiError::Conflict(format!(
                "offset {offset} is past the end of {name}: the CA holds {stored} bytes; send from offset {stored}"
            ))),
            Err(AppendError::Mismatch { stored }) => Err(ApiError::Conflict(format!(
                "the bytes at offset {offset} of {name} differ from those the CA holds ({stored} bytes); recordings are append-only"
            ))),
            Err(AppendError::Io(e)) => Err(ApiError::Internal(format!(
                "cannot write {session}/{name}: {e}"
            ))),
        }
    }

    /// `POST /v1/recordings/{session}/seal`: measure, compare, sign, index.
    /// Audited as `recording.sealed` or `recording.verification_failed`;
    /// refusals as `recording.seal_refused`.
    pub(crate) async fn seal_recording(
        &self,
        host: &EnrolledHost,
        session: &str,
        request: SealRequest,
    ) -> Result<RecordingDetail, ApiError> {
        let now = Utc::now().timestamp();
        let checked = self.bastions_session(host, session).and_then(|row| {
            check_seal(&request, &row, now).map_err(ApiError::InvalidBody)?;
            Ok(row)
        });
        let row = match checked {
            Ok(row) => row,
            Err(error) => {
                return Err(self
                    .refuse(
                        "recording.seal_refused",
                        host.identity(),
                        error,
                        json!({ "session": clip(session) }),
                    )
                    .await);
            }
        };
        if row.status != "live" {
            return self.seal_again(host, &row, &request).await;
        }
        let dir = self.session_dir(session)?;
        let measure_dir = dir.clone();
        let measured = tokio::task::spawn_blocking(move || measure_session(&measure_dir))
            .await
            .map_err(|e| ApiError::Internal(format!("measuring the recording failed: {e}")))?;
        let mut measured = match measured {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(dir.join(SEALING_MARKER));
                return Err(ApiError::Internal(format!(
                    "cannot read the recording of {session}: {e}"
                )));
            }
        };
        let (files, problems) = reconcile(&request.files, &measured);
        let lines = index_lines(&files, &mut measured);
        let status = if problems.is_empty() {
            "sealed"
        } else {
            "verification-failed"
        };
        let end_reason: String = request
            .end_reason
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let manifest = RecordingManifest {
            version: 1,
            session_id: row.id.clone(),
            identity: row.identity.clone(),
            user_serial: row.user_serial,
            role: row.role.clone(),
            incident: row.incident.clone(),
            principal: row.principal.clone(),
            target: row.target.clone(),
            client_address: row.client_address.clone(),
            bastion: row.bastion.clone(),
            started_at: row.started_at,
            ended_at: request.ended_at,
            exit_status: request.exit_status,
            end_reason: end_reason.clone(),
            status: status.to_owned(),
            problems: problems.clone(),
            sealed_at: now,
            files: files.clone(),
        };
        let signed = serde_json::to_string(&manifest)
            .map_err(|e| ApiError::Internal(format!("encoding the manifest failed: {e}")))
            .and_then(|text| {
                let signature = self
                    .keys
                    .user
                    .signing_key()
                    .sign(NAMESPACE, HashAlg::Sha512, text.as_bytes())
                    .and_then(|s| s.to_pem(ssh_key::LineEnding::LF))
                    .map_err(|e| ApiError::Internal(format!("signing the manifest failed: {e}")))?;
                Ok((text, signature))
            });
        let (text, signature) = match signed {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(dir.join(SEALING_MARKER));
                return Err(e);
            }
        };
        let digest = sha256_hex(text.as_bytes());
        let total: u64 = files.iter().map(|f| f.bytes).sum();
        let (kind, outcome) = if problems.is_empty() {
            ("recording.sealed", Outcome::Info)
        } else {
            ("recording.verification_failed", Outcome::Error)
        };
        let event = Event {
            kind,
            actor: host.identity(),
            outcome,
            detail: json!({
                "session": row.id, "identity": row.identity, "target": row.target,
                "files": files.len(), "bytes": total, "digest": digest,
                "problems": problems, "index_lines": lines.len(),
            }),
        };
        let seal = Seal {
            session: row.id.clone(),
            ended_at: request.ended_at,
            exit_status: request.exit_status,
            end_reason,
            status,
            manifest: text,
            digest,
            signature,
            problems,
            claims: claims_digest(&request.files),
            sealed_at: now,
            files,
            lines,
        };
        match self
            .audit
            .record_change(event, Change::SealRecording(Box::new(seal)))
            .await
        {
            Ok(_) => {}
            Err(crate::audit::Error::Write(m)) if m.contains(store::NOT_LIVE) => {
                return Err(ApiError::Conflict(format!(
                    "session {session} was sealed a moment ago"
                )));
            }
            Err(e) => {
                let _ = std::fs::remove_file(dir.join(SEALING_MARKER));
                return Err(ApiError::AuditUnavailable(e.to_string()));
            }
        }
        let row = self
            .read(|conn| store::session(conn, session))?
            .ok_or_else(|| ApiError::Internal("the sealed session vanished".into()))?;
        self.detail(row)
    }

    /// A seal for a session that is no longer live: the same claims again
    /// (the bastion's retry after a lost answer) get the same answer.
    async fn seal_again(
        &self,
        host: &EnrolledHost,
        row: &SessionRow,
        request: &SealRequest,
    ) -> Result<RecordingDetail, ApiError> {
        let seal = self.read(|conn| store::stored_seal(conn, &row.id))?;
        if seal.is_some_and(|s| s.claims == claims_digest(&request.files)) {
            return self.detail(row.clone());
        }
        Err(self
            .refuse(
                "recording.seal_refused",
                host.identity(),
                ApiError::Conflict(format!(
                    "session {} is already {}; a seal is final",
                    row.id, row.status
                )),
                json!({ "session": row.id }),
            )
            .await)
    }

    /// The checks every reviewer route starts with. A refusal is audited
    /// (`recording.denied`) before the 403.
    pub(crate) async fn reviewer(&self, caller: &Caller, path: &str) -> Result<Reviewer, ApiError> {
        let identity = caller.identity();
        let allowed = match caller {
            Caller::Local { user, .. } if user == "root" => true,
            Caller::User { .. } | Caller::Local { .. } => {
                self.policy().is_reviewer(&identity, caller.groups())
            }
            Caller::Webhook { .. } => false,
        };
        if allowed {
            return Ok(Reviewer { identity });
        }
        Err(self
            .refuse(
                "recording.denied",
                identity,
                ApiError::Forbidden(
                    "only reviewers may read session recordings: the policy's `reviewers` list names them".into(),
                ),
                json!({ "path": clip(path) }),
            )
            .await)
    }

    /// Audits a reviewer's read, once per window for the same file and purpose.
    async fn audit_read(
        &self,
        reviewer: &Reviewer,
        purpose: Purpose,
        session: &str,
        file: Option<&str>,
    ) -> Result<(), ApiError> {
        let key = format!(
            "{}\n{}\n{session}\n{}",
            reviewer.identity,
            purpose.as_str(),
            file.unwrap_or("")
        );
        let now = Instant::now();
        let fresh = {
            let seen = READS_AUDITED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.get(&key)
                .is_some_and(|at| now.duration_since(*at) < READ_AUDIT_WINDOW)
        };
        if fresh {
            return Ok(());
        }
        self.audit
            .record(Event {
                kind: purpose.audit_kind(),
                actor: reviewer.identity.clone(),
                outcome: Outcome::Info,
                detail: json!({
                    "session": session, "file": file, "purpose": purpose.as_str(),
                }),
            })
            .await
            .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
        let mut seen = READS_AUDITED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > 10_000 {
            seen.retain(|_, at| now.duration_since(*at) < READ_AUDIT_WINDOW);
        }
        seen.insert(key, now);
        Ok(())
    }

    /// A session's metadata: for a sealed one from the seal, for a live one
    /// from the files as they grow (their SHA-256 is left empty).
    fn info(
        &self,
        row: SessionRow,
    ) -> Result<(RecordingInfo, Option<store::StoredSeal>), ApiError> {
        let seal = self.read(|conn| store::stored_seal(conn, &row.id))?;
        let files = if seal.is_some() {
            self.read(|conn| store::files(conn, &row.id))?
        } else {
            let dir = self.session_dir(&row.id)?;
            stored_files(&dir)
                .map_err(|e| ApiError::Internal(format!("cannot list {}: {e}", row.id)))?
                .into_iter()
                .map(|(name, bytes)| RecordingFile {
                    kind: if is_sftp(&name) { "sftp" } else { "shell" }.to_owned(),
                    name,
                    command: None,
                    bytes,
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
            status: row.status,
            files,
            digest: seal.as_ref().map(|s| s.digest.clone()),
            signature: seal.as_ref().map(|s| s.signature.clone()),
        };
        Ok((info, seal))
    }

    fn detail(&self, row: SessionRow) -> Result<RecordingDetail, ApiError> {
        let (info, seal) = self.info(row)?;
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

    /// `GET /v1/recordings`: sessions, newest first. Metadata only: not
    /// audited (the reads of content are).
    pub(crate) fn list_recordings(
        &self,
        _reviewer: &Reviewer,
        filter: &Filter,
    ) -> Result<Vec<RecordingInfo>, ApiError> {
        let rows = self.read(|conn| store::sessions(conn, filter))?;
        rows.into_iter()
            .map(|row| self.info(row).map(|(info, _)| info))
            .collect()
    }

    /// `GET /v1/recordings/search?q=TEXT`, audited as `recording.searched`.
    pub(crate) async fn search_recordings(
        &self,
        reviewer: &Reviewer,
        text: &str,
        limit: u32,
    ) -> Result<Vec<RecordingMatch>, ApiError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 200 {
            return Err(ApiError::InvalidBody(
                "q is the text to look for, 1 to 200 characters".into(),
            ));
        }
        let found = self.read(|conn| store::search(conn, text, limit))?;
        self.audit
            .record(Event {
                kind: "recording.searched",
                actor: reviewer.identity.clone(),
                outcome: Outcome::Info,
                detail: json!({ "query": clip(text), "matches": found.len() }),
            })
            .await
            .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
        Ok(found)
    }

    /// `GET /v1/recordings/{id}`: metadata, manifest and signature.
    pub(crate) async fn recording(
        &self,
        reviewer: &Reviewer,
        session: &str,
        purpose: Purpose,
    ) -> Result<RecordingDetail, ApiError> {
        let row = self.reviewed_session(session)?;
        self.audit_read(reviewer, purpose, session, None).await?;
        self.detail(row)
    }

    fn reviewed_session(&self, session: &str) -> Result<SessionRow, ApiError> {
        let missing = || ApiError::Missing(format!("no recording {}", clip(session)));
        if !is_session_id(session) {
            return Err(missing());
        }
        self.read(|conn| store::session(conn, session))?
            .ok_or_else(missing)
    }

    /// `GET /v1/recordings/{id}/files/{name}?offset=N`: up to `MAX_READ`
    /// bytes from `offset` and the file's length (which grows while the
    /// session is live).
    pub(crate) async fn read_recording_file(
        &self,
        reviewer: &Reviewer,
        session: &str,
        name: &str,
        offset: u64,
        purpose: Purpose,
    ) -> Result<(Vec<u8>, u64), ApiError> {
        self.reviewed_session(session)?;
        if !is_file_name(name) {
            return Err(ApiError::Missing(format!(
                "{:?} is not a recording file name",
                clip(name)
            )));
        }
        self.audit_read(reviewer, purpose, session, Some(name))
            .await?;
        let path = self.session_dir(session)?.join(name);
        let read = tokio::task::spawn_blocking(move || read_at(&path, offset))
            .await
            .map_err(|e| ApiError::Internal(format!("recording reader failed: {e}")))?
            .map_err(|e| ApiError::Internal(format!("cannot read {session}/{name}: {e}")))?;
        match read {
            None => Err(ApiError::Missing(format!(
                "session {session} has no file {name} (yet)"
            ))),
            Some((_, length)) if offset > length => Err(ApiError::InvalidBody(format!(
                "offset {offset} is past the end of {name} ({length} bytes)"
            ))),
            Some(found) => Ok(found),
        }
    }
}

#[cfg(test)]
mod tests;
