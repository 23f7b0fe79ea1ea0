//! Every state change the CA makes, as data: each is applied by
//! [`super::AuditStore::append`] in the same transaction as the audit row
//! that records it. Data, not a closure, so every backend applies the same
//! changes and a conflict is a typed answer ([`super::Conflict`]).

use super::ca_keys::KeyPhase;
use super::certificates::IssuedCertificate;
use super::hosts::{HostCertificate, StoredHost, StoredToken};
use super::incidents::Incident;
use super::overrides::StoredOverride;
use super::requests::{RequestStatus, StoredRequest};
use super::sessions::{Hold, RecordingRead, Seal, Session};

#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A user certificate. Refused with `IncidentNotOpen` when it names an
    /// incident that is not open at the commit.
    Issue(IssuedCertificate),
    /// The certificate of an approved access request, and the request
    /// marked issued (`RequestChanged` unless it is still approved).
    IssueForRequest {
        certificate: IssuedCertificate,
        request: String,
    },
    CreateRequest(StoredRequest),
    /// Sets a pending request's approvals, status and expiry, if its
    /// approvals are still `expected` (two approvers at once: the second
    /// gets `RequestChanged` and looks again).
    Approve {
        id: String,
        expected: Vec<String>,
        approvals: Vec<String>,
        status: RequestStatus,
        expires_at: i64,
    },
    /// Marks a request that was `status` (pending or approved) expired
    /// (`RequestChanged` unless it still is).
    ExpireRequest {
        id: String,
        status: RequestStatus,
    },
    /// Denies a pending request (`RequestChanged` unless still pending).
    Deny {
        id: String,
        by: String,
        reason: String,
    },
    AddOverride(StoredOverride),
    /// Moves an override's end earlier (`OverrideChanged` unless it still
    /// ends at `expected_end`).
    ShortenOverride {
        id: String,
        expected_end: i64,
        end: i64,
    },
    /// Removes an override (`OverrideChanged` unless it still ends at
    /// `expected_end`).
    DeleteOverride {
        id: String,
        expected_end: i64,
    },
    /// Revokes these serials (already revoked ones stay as they were).
    Revoke {
        serials: Vec<u64>,
        by: String,
        reason: String,
        at: String,
    },
    /// `IncidentExists` if the ID is taken.
    OpenIncident(Incident),
    /// An incident for one Alertmanager firing, `alert_key` naming it
    /// (`FINGERPRINT@STARTS_AT`); `IncidentExists` as for `OpenIncident`.
    OpenAlertIncident {
        incident: Incident,
        alert_key: String,
    },
    /// Resolves the incident and revokes the certificates issued under it
    /// that are live at `now` (unix seconds). `IncidentNotOpen` if it is not
    /// open at the commit.
    ResolveIncident {
        id: String,
        by: String,
        at: String,
        now: u64,
    },
    /// Locks `identities` (one person's) out and revokes their
    /// certificates live at `now`.
    Lock {
        identities: Vec<String>,
        by: String,
        at: String,
        reason: String,
        now: u64,
    },
    Unlock {
        identities: Vec<String>,
    },
    /// A one-time join token for a host or bastion (only its hash).
    CreateJoinToken(StoredToken),
    /// Spends a join token (`TokenSpent` unless unused and unexpired at
    /// `now`) and records the host and its first certificate.
    Enroll {
        token_hash: String,
        now: i64,
        host: StoredHost,
        certificate: HostCertificate,
    },
    /// A renewed host certificate; the host's key may have changed.
    RenewHost(HostCertificate),
    /// A host certificate that changes no host's identity (what a bastion
    /// presents under a target's name).
    RecordHostCertificate(HostCertificate),
    /// A bastion session starts: its one-session certificate and its row
    /// (`IncidentNotOpen` as for `Issue`).
    StartSession {
        certificate: IssuedCertificate,
        session: Box<Session>,
    },
    /// A bastion session ends: its seal, files and search index
    /// (`SessionNotLive` unless it is still live).
    SealRecording(Box<Seal>),
    /// A reviewer's read was audited at `audited_at` (the row this change
    /// rides with): the next one within the window is not.
    NoteRecordingRead(RecordingRead),
    /// Retention deletes a session's recording (the search index, upload
    /// state and reads; the row, seal and file list stay): only if it is
    /// still sealed at or before `cutoff`, not deleted, not held and not
    /// under an open incident (`RecordingKept` otherwise). The recording
    /// store's bytes go after the commit.
    DeleteRecording {
        session: String,
        cutoff: i64,
        at: i64,
    },
    /// A legal hold on a session's recording (a new reason replaces the
    /// old one): `NoSuchSession`, or `RecordingDeleted` once retention
    /// deleted it.
    HoldRecording(Hold),
    /// Releases a legal hold (`NotHeld` if there is none).
    ReleaseHold {
        session: String,
    },
    /// A phase of a CA key rotation (`KeyStateChanged` if the keys moved
    /// since they were read).
    KeyPhase(KeyPhase),
}
