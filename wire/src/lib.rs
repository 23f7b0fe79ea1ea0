//! Request and response bodies of the Shiftkey CA's HTTP API (`/v1/...`).
//!
//! This crate owns the JSON wire format shared by the CA, the bastion and the
//! `shiftkey` client, and nothing else: plain serde structs, no behaviour, no
//! dependencies beyond serde (and, behind the `host-auth` feature, the one
//! request-signing scheme enrolled hosts use). Changing a field here is an
//! API change.

use serde::{Deserialize, Serialize};

/// `POST /v1/certificates`: ask for a user certificate for `public_key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    /// The subject's public key as one OpenSSH line (`ssh-ed25519 AAAA... comment`).
    pub public_key: String,
    /// The policy role to act in.
    pub role: String,
    /// The incident that justifies the access, when the role requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Why the access is needed; recorded in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Requested lifetime, e.g. `15m`; the role's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// A subset of the role's principals; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
}

/// Answer to a granted [`CertificateRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateResponse {
    /// The certificate as one OpenSSH line (`ssh-ed25519-cert-v01@openssh.com AAAA...`).
    pub certificate: String,
    pub serial: u64,
    pub key_id: String,
    pub principals: Vec<String>,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
}

/// Every non-2xx answer of the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorResponse {
    /// Stable machine-readable code, e.g. `not-on-call`, `invalid-public-key`.
    pub error: String,
    /// What was wrong, for a person.
    pub message: String,
    /// What to do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// `GET /v1/config`: what a client needs to log in against this CA.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaConfigResponse {
    /// OIDC issuer URL, when OIDC login is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// OIDC client ID (the audience the CA expects in ID tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_client_id: Option<String>,
    /// The user CA public keys, one OpenSSH line each.
    pub user_ca_keys: Vec<String>,
    /// The host CA public keys, one OpenSSH line each.
    pub host_ca_keys: Vec<String>,
}

/// `GET /v1/roles`: the roles the caller's identity or groups are granted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RolesResponse {
    /// `user:EMAIL` or `local:USER`, as the CA sees the caller.
    pub identity: String,
    pub roles: Vec<RoleInfo>,
}

/// One role as a client needs to know it: what to ask for, where it leads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Login names its certificates carry.
    pub principals: Vec<String>,
    /// Host patterns the role is for, in ssh_config `Host` syntax.
    pub hosts: Vec<String>,
    /// Longest certificate lifetime, in seconds.
    pub max_ttl_seconds: u64,
    /// Schedules one of which the requester must be on call for.
    #[serde(default)]
    pub require_on_call: Vec<String>,
    #[serde(default)]
    pub require_incident: bool,
    /// The incident must be this severe or worse (1 = sev1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_severity: Option<u8>,
    #[serde(default)]
    pub require_reason: bool,
    /// Certificate extensions, e.g. `permit-pty`.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// `host:port` of the bastion the role's hosts are reached through
    /// (`ssh-config` writes it as `ProxyJump`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_jump: Option<String>,
}

/// `POST /v1/incidents`: open an incident.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OpenIncidentRequest {
    /// The incident's ID, e.g. `INC-42`; the CA makes one up when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub title: String,
    /// `sev1` (the worst) to `sev4`.
    pub severity: String,
}

/// An incident as the CA knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Incident {
    pub id: String,
    pub title: String,
    /// 1 (sev1, the worst) to 4.
    pub severity: u8,
    /// `open` or `resolved`.
    pub status: String,
    /// `manual`, `alertmanager`, `pagerduty`.
    pub source: String,
    pub opened_by: String,
    /// RFC 3339.
    pub opened_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

/// `POST /v1/incidents/{id}/resolve`: the incident, and the certificates
/// issued under it that were revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResolveIncidentResponse {
    pub incident: Incident,
    pub revoked_serials: Vec<u64>,
}

/// `GET /v1/oncall[?schedule=NAME]`: who is on call now and next.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnCallSchedule {
    pub schedule: String,
    pub now: Vec<OnCallShift>,
    pub next: Vec<OnCallShift>,
}

/// One person's shift.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnCallShift {
    /// `user:EMAIL` or `local:USER`.
    pub member: String,
    /// Unix seconds.
    pub start: i64,
    /// Unix seconds.
    pub end: i64,
    /// The schedule's time zone (IANA name), to show times to people.
    pub timezone: String,
}

/// An access request waiting for approval: `POST /v1/certificates` answers
/// `202 Accepted` with this when the role needs approvals, and
/// `GET /v1/requests/{id}` returns it (with `certificate` once issued).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessRequest {
    pub id: String,
    /// `pending`, `approved`, `denied`, `expired` or `issued`.
    pub status: String,
    pub requester: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Identities that approved.
    pub approvals: Vec<String>,
    /// Approvals the role needs.
    pub approvals_needed: u8,
    /// Who denied and why, when denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: a pending request expires then, and an approved one
    /// if its certificate was not issued by then.
    pub expires_at: i64,
    /// The certificate, for the requester, once approved and issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateResponse>,
}

/// `POST /v1/requests/{id}/approve` and `/deny`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/oncall/overrides`: put `member` on call for `schedule` from
/// `start` to `end` (unix seconds) in place of the schedule (cover or swap).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    pub schedule: String,
    /// `user:EMAIL` or `local:USER`.
    pub member: String,
    pub start: i64,
    pub end: i64,
    pub reason: String,
}

/// An on-call override in force or to come (`GET /v1/oncall/overrides`,
/// and the answer to creating, shortening or deleting one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnCallOverride {
    /// `ov_` and hex digits.
    pub id: String,
    pub schedule: String,
    /// `user:EMAIL` or `local:USER`.
    pub member: String,
    /// Unix seconds.
    pub start: i64,
    /// Unix seconds.
    pub end: i64,
    pub reason: String,
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `PATCH /v1/oncall/overrides/{id}`: end the override earlier, at `end`
/// (unix seconds, after its start).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShortenOverride {
    pub end: i64,
    pub reason: String,
}

/// `POST /v1/hosts/enroll`: a host (or bastion) trades a one-time join token
/// for a host certificate for its host key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The join token `shiftkey-ca hosts token` printed.
    pub token: String,
    /// The host's public key, OpenSSH format (`ssh-ed25519 AAAA...`).
    pub host_key: String,
}

/// `POST /v1/hosts/renew` (host-authenticated): a fresh host certificate,
/// for the same key or, when `host_key` is set, for a new one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// SHA256 fingerprints of the user CA keys the host trusts after this
    /// refresh (its `TrustedUserCAKeys`): `shiftkey-ca keys status` shows
    /// hosts that lack a published key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_keys: Vec<String>,
}

/// A host certificate and what an enrolled host needs beside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostCertificateResponse {
    /// OpenSSH certificate line, for `HostCertificate`.
    pub certificate: String,
    pub serial: u64,
    /// The enrolled name (`db-1`).
    pub name: String,
    /// `host` or `bastion`.
    pub kind: String,
    /// The names the certificate is valid for.
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    /// For `TrustedUserCAKeys`, one key per entry.
    pub user_ca_keys: Vec<String>,
    /// For clients' `@cert-authority` lines.
    pub host_ca_keys: Vec<String>,
    /// `AuthorizedPrincipalsFile` contents per login on this host: the
    /// principals of the policy's roles whose host patterns match one of the
    /// host's names. Logins not listed accept no certificate.
    pub authorized_principals: std::collections::BTreeMap<String, Vec<String>>,
}

/// `POST /v1/hosts/principals` (host-authenticated, empty body `{}`): what
/// the host's `AuthorizedPrincipalsFile`s say under the policy in force now,
/// so `shiftkey host refresh` follows a policy change without renewing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PrincipalsRequest {
    /// As in [`RenewRequest::ca_keys`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_keys: Vec<String>,
}

/// The answer to `POST /v1/hosts/principals`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostPrincipals {
    /// As in [`HostCertificateResponse::authorized_principals`].
    pub authorized_principals: std::collections::BTreeMap<String, Vec<String>>,
}

/// `POST /v1/sessions` (bastion-authenticated): may this user certificate
/// reach this target as this principal? On yes, a certificate for the
/// bastion's one-session key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The certificate the user authenticated to the bastion with (OpenSSH line).
    pub user_certificate: String,
    /// The login on the target.
    pub principal: String,
    pub target_host: String,
    pub target_port: u16,
    /// The user's address as the bastion saw it.
    pub client_address: String,
    /// The public key the bastion generated for this session alone.
    pub session_key: String,
}

/// The CA's yes to a `SessionRequest`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionGrant {
    /// `s_` and 16 hex digits: names the session in the key ID, the audit
    /// log and the recording.
    pub session_id: String,
    /// User certificate for the session key: the principal only, valid a
    /// minute or two, key ID naming the session and the user's serial.
    pub certificate: String,
    pub valid_before: u64,
    /// `user:alice@example.com`.
    pub identity: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Serial of the user's certificate.
    pub user_serial: u64,
    /// The session ends after this long, whatever happens.
    pub max_session_seconds: u64,
    /// The session ends after this long without input or output.
    pub idle_timeout_seconds: u64,
}

/// `GET /v1/recordings` entry, and the metadata of one recorded session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordingInfo {
    pub session_id: String,
    pub identity: String,
    pub user_serial: u64,
    pub role: String,
    #[serde(default)]
    pub incident: Option<String>,
    pub principal: String,
    pub target: String,
    pub client_address: String,
    pub bastion: String,
    /// Unix seconds.
    pub started_at: i64,
    #[serde(default)]
    pub ended_at: Option<i64>,
    #[serde(default)]
    pub exit_status: Option<u32>,
    /// Why the session ended (`client closed`, `certificate revoked`, ...).
    #[serde(default)]
    pub end_reason: Option<String>,
    /// `live`, `ended`, `sealed`, `verification-failed`, or `lost` (its
    /// bastion went silent; the CA sealed what reached it, truncated).
    pub status: String,
    /// The recorded channels (`0.cast.gz`, `1.sftp.jsonl.gz`, ...).
    pub files: Vec<RecordingFile>,
    /// Hex SHA-256 over the seal manifest, once sealed.
    #[serde(default)]
    pub digest: Option<String>,
    /// The CA's SSHSIG over the manifest (namespace `shiftkey-recording@shiftkey`), armored.
    #[serde(default)]
    pub signature: Option<String>,
    /// The reason of a legal hold: retention keeps the recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// When retention deleted the recording's bytes (unix seconds); the
    /// metadata, manifest and signature remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
}

/// One recorded channel's file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordingFile {
    pub name: String,
    /// `shell`, `exec`, `sftp`, ...
    pub kind: String,
    #[serde(default)]
    pub command: Option<String>,
    pub bytes: u64,
    /// Hex SHA-256 of the (compressed) file as stored.
    pub sha256: String,
}

/// Fuzz targets (`fuzz/`) and their corpus replay; not an API.
#[cfg(feature = "host-auth")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "host-auth")]
pub mod host_auth;
mod seal_keys;

pub use seal_keys::{SealKey, SealKeyStanding, SealKeys};

/// `POST /v1/hosts/present` (bastions only): a host certificate for the
/// bastion's key under `target`, the name the user's ssh asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PresentRequest {
    pub target: String,
}

/// `POST /v1/recordings/{session}/seal` (the session's bastion only): the
/// session is over; what the bastion believes it sent. The CA compares each
/// file with what it stored, then signs the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealRequest {
    /// Unix seconds.
    pub ended_at: i64,
    #[serde(default)]
    pub exit_status: Option<u32>,
    /// Why the session ended (`client closed`, `certificate revoked`, ...).
    pub end_reason: String,
    /// Every channel file of the session, with its final size and SHA-256.
    pub files: Vec<RecordingFile>,
}

/// The answer to an upload chunk: how long the CA's copy of the file now is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordingChunkAck {
    pub name: String,
    pub bytes: u64,
}

/// What the CA signs when it seals a recording. Serialized with serde_json
/// in field order, no whitespace: those exact bytes are the manifest (their
/// SHA-256 is the digest, the SSHSIG covers them). Verifiers parse the bytes
/// they were given; they never re-serialize.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordingManifest {
    /// 1.
    pub version: u32,
    pub session_id: String,
    pub identity: String,
    pub user_serial: u64,
    pub role: String,
    pub incident: Option<String>,
    pub principal: String,
    pub target: String,
    pub client_address: String,
    pub bastion: String,
    pub started_at: i64,
    pub ended_at: i64,
    pub exit_status: Option<u32>,
    pub end_reason: String,
    /// `sealed`, or `verification-failed` when the bastion's claims did not
    /// match what the CA received (then `problems` says how).
    pub status: String,
    pub problems: Vec<String>,
    /// Unix seconds.
    pub sealed_at: i64,
    /// The files as the CA stored them (size and SHA-256 of the gzip bytes).
    pub files: Vec<RecordingFile>,
}

/// `GET /v1/recordings/{id}`: the recording's metadata, and once sealed the
/// signed manifest. `shiftkey recordings export` writes this as
/// `metadata.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordingDetail {
    #[serde(flatten)]
    pub info: RecordingInfo,
    /// The manifest bytes as signed (a `RecordingManifest` in JSON).
    #[serde(default)]
    pub manifest: Option<String>,
    /// Where the bastion's claims and the CA's copy differed.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// `GET /v1/recordings/search?q=TEXT`: one input line (or exec command, or
/// sftp operation) that contains the text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordingMatch {
    pub session_id: String,
    pub channel: u32,
    /// Seconds from the channel's start to the line's first keystroke.
    pub offset_seconds: f64,
    pub line: String,
    /// `input` (typed), `exec` (an exec channel's command) or `sftp`.
    pub source: String,
    pub identity: String,
    pub target: String,
    pub started_at: i64,
}

/// `POST /v1/sessions/refused` (bastions only): the bastion refused a user
/// on its own (certificate from another CA, revoked, source address, login
/// not in the certificate); the CA records it in the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionRefusal {
    /// The certificate presented (OpenSSH line); it need not be ours.
    pub user_certificate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub client_address: String,
    /// `unknown-ca`, `revoked`, `principal-not-in-certificate`, ...
    pub code: String,
    pub message: String,
}

/// `POST /v1/sessions/{id}/events` (the session's own bastion only):
/// something the bastion refused inside a live session, for the CA's audit
/// log (`session.request_refused`). Today: a second program request on a
/// channel, which the bastion refuses and answers by closing the channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionEvent {
    pub kind: SessionEventKind,
    /// The channel's number in the session (its recording file's `N`).
    pub channel: u32,
    /// The SSH request refused: `shell`, `exec`, `subsystem`.
    pub request: String,
    /// `second-program`, ...
    pub code: String,
    /// What the user was told.
    pub message: String,
}

/// What a [`SessionEvent`] reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionEventKind {
    /// A channel request the bastion refused and closed the channel for.
    RequestRefused,
}

/// `POST /v1/sessions/{session}/forwards` (the session's bastion only):
/// may this live session forward a TCP connection (`ssh -L`) to
/// `host:port`? The CA checks the session's role as the policy says now
/// (`permit-port-forwarding`, its hosts and `ports`; `localhost` and
/// loopback addresses mean the session's own target) and audits the
/// decision before it answers: 200 with a [`ForwardGrant`], or 403.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    /// The forwarded channel's number in the session (its recording's `N`).
    pub channel: u32,
    pub host: String,
    pub port: u16,
}

/// The CA's yes to a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardGrant {
    /// The destination as the CA checked it (`host:port`, canonical).
    pub destination: String,
}

/// `POST /v1/sessions/heartbeat` (bastions only): the sessions this bastion
/// runs now, sent every `interval_seconds`. A live session of this bastion
/// that stops being named (the bastion died or lost it) is the CA's to mark
/// `lost` after a silence; the bastion's own clock is in `sent_at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionHeartbeat {
    pub sessions: Vec<String>,
    pub interval_seconds: u64,
    pub sent_at: u64,
}

/// The CA's answer to a [`SessionHeartbeat`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionHeartbeatAck {
    /// Sessions the heartbeat named that are not this bastion's live
    /// sessions at the CA (sealed as lost after a silence, ended, unknown):
    /// the bastion ends them, since the CA no longer takes their recording.
    pub not_live: Vec<String>,
    /// After this long without a heartbeat naming it, the CA seals a live
    /// session as lost (`[recordings] lost_after`): a bastion whose interval
    /// comes near it says so.
    pub lost_after_seconds: u64,
}

/// The highest channel number a recording file may carry (`9999.cast.gz`):
/// the CA refuses other names, and the bastion's channel cap over a
/// connection's life stays within it.
pub const MAX_CHANNEL_NUMBER: u32 = 9999;

/// The extension the CA puts on a host certificate it mints for a bastion
/// to present under a target's name (`POST /v1/hosts/present`). Such a
/// certificate names the bastion, never the target: an SSH client of the
/// bastion (its hop to the target) or of an enrolled host refuses it as a
/// target's identity.
pub const PRESENTED_BY_BASTION_EXTENSION: &str = "presented-by-bastion@shiftkey";

/// SSHSIG namespace of the CA's signature over a recording's manifest
/// (`ssh-keygen -Y verify -n shiftkey-recording@shiftkey` checks it too).
pub const RECORDING_NAMESPACE: &str = "shiftkey-recording@shiftkey";
