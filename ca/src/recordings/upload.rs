//! The bastion's side of a recording: chunks while the session runs, then
//! the seal — measure what the CA holds, compare it with the bastion's
//! claims, sign the manifest, index the typed input.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use shiftkey_wire::{
    RecordingChunkAck, RecordingDetail, RecordingFile, RecordingManifest, SealRequest,
};
use ssh_key::HashAlg;
use tokio::io::AsyncReadExt;

use super::index::{self, Indexed};
use super::{
    Error, MAX_FILES, MAX_INDEX_LINES, NAMESPACE, Recordings, channel, clip, file_order,
    is_file_name, is_session_id, is_sftp,
};
use crate::audit::{self, Event, Outcome};
use crate::hosts::{EnrolledHost, HostKind};
use crate::recording_store;
use crate::store::{self, Change, Conflict, IndexLine, Seal, Session, SessionStatus};

/// A manifest as the CA signed it.
pub(super) struct Signed {
    pub(super) text: String,
    pub(super) signature: String,
    pub(super) digest: String,
}

/// What the CA holds of a session at its seal.
#[derive(Debug, Default)]
pub(super) struct Measured {
    /// Name → (bytes, sha256), for every committed file.
    pub(super) stored: BTreeMap<String, (u64, String)>,
    /// Name → what the index found in it.
    pub(super) indexed: BTreeMap<String, Indexed>,
}

impl Recordings {
    /// The session a bastion uploads to or seals: it must be that bastion's.
    pub(super) async fn bastions_session(
        &self,
        host: &EnrolledHost,
        session: &str,
    ) -> Result<Session, Error> {
        if host.kind != HostKind::Bastion {
            return Err(Error::NotABastion);
        }
        let missing = || Error::NoSession(clip(session));
        if !is_session_id(session) {
            return Err(missing());
        }
        let row = self
            .base
            .store
            .session(session)
            .await?
            .ok_or_else(missing)?;
        if row.bastion != host.name {
            return Err(Error::OtherBastion(session.to_owned()));
        }
        Ok(row)
    }

    /// `POST /v1/recordings/{session}/files/{name}?offset=N`. Refusals are
    /// audited as `recording.upload_refused`.
    pub(crate) async fn upload_chunk(
        &self,
        host: &EnrolledHost,
        session: &str,
        name: &str,
        offset: Option<u64>,
        chunk: Vec<u8>,
    ) -> Result<RecordingChunkAck, Error> {
        let size = chunk.len();
        let appended = async {
            let row = self.bastions_session(host, session).await?;
            if !is_file_name(name) {
                return Err(Error::BadFileName(clip(name)));
            }
            let offset = offset.ok_or(Error::OffsetRequired)?;
            if row.status != SessionStatus::Live {
                return Err(Error::NotLive {
                    session: session.to_owned(),
                    status: row.status.as_str().to_owned(),
                });
            }
            let committed = self.committed(session, name).await?;
            if offset > committed {
                return Err(Error::Gap {
                    offset,
                    name: name.to_owned(),
                    held: committed,
                });
            }
            let end = offset + u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            // Bytes already held must be these bytes; new ones land after them.
            match self.bytes.write(session, name, offset, chunk).await {
                Ok(_) => {}
                Err(recording_store::Error::Mismatch { .. }) => {
                    return Err(Error::Mismatch {
                        offset,
                        name: name.to_owned(),
                        held: committed,
                    });
                }
                Err(e) => return Err(e.into()),
            }
            if end <= committed {
                // A retry of bytes the CA has: nothing moves.
                return Ok(RecordingChunkAck {
                    name: name.to_owned(),
                    bytes: committed,
                });
            }
            match self
                .base
                .store
                .commit_upload(session, name, committed, end, self.limits.max_session_size)
                .await
            {
                Ok(()) => Ok(RecordingChunkAck {
                    name: name.to_owned(),
                    bytes: end,
                }),
                Err(store::Error::Conflict(Conflict::SessionTooLarge)) => Err(Error::TooLarge {
                    session: session.to_owned(),
                    limit: self.limits.max_session_size,
                }),
                Err(store::Error::Conflict(Conflict::SessionSealing)) => {
                    Err(Error::Sealing(session.to_owned()))
                }
                Err(store::Error::Conflict(Conflict::SessionNotLive)) => Err(Error::NotLive {
                    session: session.to_owned(),
                    status: "sealed".into(),
                }),
                // Another upload of this file committed first; its bytes matched
                // ours, so what it committed may already cover this chunk.
                Err(store::Error::Conflict(Conflict::UploadMoved)) => {
                    let now = self.committed(session, name).await?;
                    if now >= end {
                        Ok(RecordingChunkAck {
                            name: name.to_owned(),
                            bytes: now,
                        })
                    } else {
                        Err(Error::Gap {
                            offset,
                            name: name.to_owned(),
                            held: now,
                        })
                    }
                }
                Err(e) => Err(e.into()),
            }
        }
        .await;
        match appended {
            Ok(ack) => Ok(ack),
            Err(error) => {
                let detail = json!({
                    "session": clip(session), "file": clip(name),
                    "offset": offset, "bytes": size,
                });
                Err(self
                    .base
                    .audit
                    .refuse(
                        "recording.upload_refused",
                        host.identity(),
                        Outcome::Deny,
                        error,
                        detail,
                    )
                    .await)
            }
        }
    }

    /// The committed length of a file, adopting the bytes held of a file
    /// that has none yet (written before upload state lived in the store).
    async fn committed(&self, session: &str, name: &str) -> Result<u64, Error> {
        if let Some(u) = self
            .base
            .store
            .uploads(session)
            .await?
            .into_iter()
            .find(|u| u.name == name)
        {
            return Ok(u.length);
        }
        let held = self.bytes.held(session, name).await?.unwrap_or(0);
        if held == 0 {
            return Ok(0);
        }
        // Bytes already held are adopted whatever the limit: the limit
        // refuses new bytes, it does not hide old ones.
        match self
            .base
            .store
            .commit_upload(session, name, 0, held, u64::MAX)
            .await
        {
            Ok(()) | Err(store::Error::Conflict(Conflict::UploadMoved)) => {}
            Err(store::Error::Conflict(Conflict::SessionSealing)) => {
                return Err(Error::Sealing(session.to_owned()));
            }
            Err(e) => return Err(e.into()),
        }
        Box::pin(self.committed(session, name)).await
    }

    /// Length, SHA-256 and index of every committed file, streamed.
    pub(super) async fn measure(
        &self,
        session: &str,
        uploads: Vec<store::Upload>,
    ) -> Result<Measured, Error> {
        let mut measured = Measured::default();
        let mut budget = MAX_INDEX_LINES;
        for upload in uploads {
            if !is_file_name(&upload.name) {
                continue;
            }
            let mut reader = self
                .bytes
                .read(session, &upload.name, 0..upload.length)
                .await?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(recording_store::Error::Io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                total += u64::try_from(n).unwrap_or(0);
            }
            let reader = self
                .bytes
                .read(session, &upload.name, 0..upload.length)
                .await?;
            let bridge = tokio_util::io::SyncIoBridge::new(reader);
            let (chan, sftp) = (channel(&upload.name).unwrap_or(0), is_sftp(&upload.name));
            let found =
                tokio::task::spawn_blocking(move || index::index_file(bridge, chan, sftp, budget))
                    .await
                    .map_err(|e| recording_store::Error::Io(std::io::Error::other(e)))?;
            budget = budget.saturating_sub(found.lines.len());
            measured
                .stored
                .insert(upload.name.clone(), (total, hex::encode(hasher.finalize())));
            measured.indexed.insert(upload.name, found);
        }
        Ok(measured)
    }

    /// `POST /v1/recordings/{session}/seal`: measure, compare, sign, index.
    /// Audited as `recording.sealed` or `recording.verification_failed`;
    /// refusals as `recording.seal_refused`.
    pub(crate) async fn seal(
        &self,
        host: &EnrolledHost,
        session: &str,
        request: SealRequest,
    ) -> Result<RecordingDetail, Error> {
        let now = Utc::now().timestamp();
        let checked = match self.bastions_session(host, session).await {
            Ok(row) => check_seal(&request, &row, now)
                .map(|()| row)
                .map_err(Error::BadSeal),
            Err(e) => Err(e),
        };
        let row = match checked {
            Ok(row) => row,
            Err(error) => return Err(self.refuse_seal(host, session, error).await),
        };
        if row.status != SessionStatus::Live {
            return self.seal_again(host, &row, &request).await;
        }
        // From here no upload commits: the files measured are the files signed.
        let uploads = match self.base.store.begin_seal(session, now).await {
            Ok(uploads) => uploads,
            Err(store::Error::Conflict(Conflict::SessionNotLive)) => {
                let row = self.session_row(session).await?;
                return self.seal_again(host, &row, &request).await;
            }
            Err(e) => return Err(e.into()),
        };
        match self
            .sign_and_commit(host, &row, &request, uploads, now)
            .await
        {
            Ok(detail) => Ok(detail),
            Err(e) => {
                // Let uploads go on; the bastion seals again.
                if !matches!(e, Error::SealedMeanwhile(_))
                    && let Err(abort) = self.base.store.abort_seal(session).await
                {
                    tracing::error!(error = %abort, session, "cannot reopen a recording after a failed seal");
                }
                Err(e)
            }
        }
    }

    async fn sign_and_commit(
        &self,
        host: &EnrolledHost,
        row: &Session,
        request: &SealRequest,
        uploads: Vec<store::Upload>,
        now: i64,
    ) -> Result<RecordingDetail, Error> {
        let session = row.id.as_str();
        let mut measured = self.measure(session, uploads).await?;
        let (files, problems) = reconcile(&request.files, &measured);
        let lines = index_lines(&files, &mut measured);
        let status = if problems.is_empty() {
            SessionStatus::Sealed
        } else {
            SessionStatus::VerificationFailed
        };
        let end_reason: String = request
            .end_reason
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let manifest = manifest_of(
            row,
            Ending {
                ended_at: request.ended_at,
                exit_status: request.exit_status,
                end_reason: end_reason.clone(),
                status,
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
        let (kind, outcome) = if problems.is_empty() {
            ("recording.sealed", Outcome::Info)
        } else {
            ("recording.verification_failed", Outcome::Error)
        };
        let event = Event::new(
            kind,
            host.identity(),
            outcome,
            json!({
                "session": row.id, "identity": row.identity, "target": row.target,
                "files": files.len(), "bytes": total, "digest": digest,
                "problems": problems, "index_lines": lines.len(),
            }),
        );
        let sealed = recording_store::SealedManifest {
            manifest: text.clone(),
            digest: digest.clone(),
            signature: signature.clone(),
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
            .base
            .audit
            .record_change(event, Change::SealRecording(Box::new(seal)))
            .await
        {
            Ok(_) => {}
            Err(audit::Error::Conflict(Conflict::SessionNotLive)) => {
                return Err(Error::SealedMeanwhile(session.to_owned()));
            }
            Err(e) => return Err(e.into()),
        }
        // Beside the files, so the recording store alone can be checked. If
        // this fails the bastion seals again, and `seal_again` writes it.
        self.bytes.seal(session, &sealed).await?;
        let row = self.session_row(session).await?;
        self.detail(row).await
    }

    /// The manifest as signed: its JSON, the SSHSIG over it by the user CA
    /// key, and its SHA-256.
    pub(super) async fn sign_manifest(
        &self,
        manifest: &RecordingManifest,
    ) -> Result<Signed, Error> {
        let text = serde_json::to_string(manifest)
            .map_err(|e| Error::Signing(format!("encoding the manifest: {e}")))?;
        let signature = self
            .base
            .keys
            .user()
            .sshsig(NAMESPACE, HashAlg::Sha512, text.as_bytes().to_vec())
            .await
            .map_err(|e| Error::Signing(e.to_string()))?
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|e| Error::Signing(e.to_string()))?;
        let digest = sha256_hex(text.as_bytes());
        Ok(Signed {
            text,
            signature,
            digest,
        })
    }

    /// A seal for a session that is no longer live: the same claims again
    /// (the bastion's retry after a lost answer) get the same answer.
    async fn seal_again(
        &self,
        host: &EnrolledHost,
        row: &Session,
        request: &SealRequest,
    ) -> Result<RecordingDetail, Error> {
        let seal = self.base.store.stored_seal(&row.id).await?;
        if let Some(seal) = seal
            && seal.claims == claims_digest(&request.files)
        {
            let sealed = recording_store::SealedManifest {
                manifest: seal.manifest,
                digest: seal.digest,
                signature: seal.signature,
            };
            self.bytes.seal(&row.id, &sealed).await?;
            return self.detail(row.clone()).await;
        }
        let error = Error::SealFinal {
            session: row.id.clone(),
            status: row.status.as_str().to_owned(),
        };
        Err(self.refuse_seal(host, &row.id, error).await)
    }

    /// The session's row as it is now.
    pub(super) async fn session_row(&self, session: &str) -> Result<Session, Error> {
        self.base
            .store
            .session(session)
            .await?
            .ok_or_else(|| Error::NoSession(clip(session)))
    }

    /// Audits a refused seal (`recording.seal_refused`), hands the error back.
    async fn refuse_seal(&self, host: &EnrolledHost, session: &str, error: Error) -> Error {
        self.base
            .audit
            .refuse(
                "recording.seal_refused",
                host.identity(),
                Outcome::Deny,
                error,
                json!({ "session": clip(session) }),
            )
            .await
    }
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks a seal's claims for shape (not yet against the files).
pub(super) fn check_seal(request: &SealRequest, session: &Session, now: i64) -> Result<(), String> {
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
pub(super) fn reconcile(
    claims: &[RecordingFile],
    measured: &Measured,
) -> (Vec<RecordingFile>, Vec<String>) {
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
/// How a session's recording ended, as its manifest says.
pub(super) struct Ending {
    pub(super) ended_at: i64,
    pub(super) exit_status: Option<u32>,
    pub(super) end_reason: String,
    pub(super) status: SessionStatus,
    pub(super) problems: Vec<String>,
    pub(super) sealed_at: i64,
    pub(super) files: Vec<RecordingFile>,
}

/// The manifest the CA signs for `row`'s recording: what the session was
/// (from its row, one mapping for every way a recording is sealed) and how
/// it ended.
pub(super) fn manifest_of(row: &Session, ending: Ending) -> RecordingManifest {
    RecordingManifest {
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
        ended_at: ending.ended_at,
        exit_status: ending.exit_status,
        end_reason: ending.end_reason,
        status: ending.status.as_str().to_owned(),
        problems: ending.problems,
        sealed_at: ending.sealed_at,
        files: ending.files,
    }
}

pub(super) fn index_lines(files: &[RecordingFile], measured: &mut Measured) -> Vec<IndexLine> {
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
pub(super) fn claims_digest(claims: &[RecordingFile]) -> String {
    let mut sorted: Vec<&RecordingFile> = claims.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sha256_hex(
        serde_json::to_string(&sorted)
            .unwrap_or_default()
            .as_bytes(),
    )
}
