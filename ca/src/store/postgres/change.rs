//! Every [`Change`] as the statements that apply it, run inside the
//! append's transaction (`audit.rs` pipelines them). A statement that meets
//! a state the change forbids raises that conflict (`shiftkey_expect_one`,
//! or the `certificates_incident_open` trigger), which voids the batch's
//! try; it never just changes nothing.

use tokio_postgres::types::ToSql;

use super::{
    ca_keys, certificates, hosts, incidents, lifecycle, locks, overrides, requests, sessions,
};
use crate::store::Change;

/// A parameter, owned, so statements can be made before they are sent.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// One statement and its parameters.
pub(super) struct Stmt {
    pub(super) sql: &'static str,
    pub(super) params: Vec<Param>,
}

impl Stmt {
    pub(super) fn new(sql: &'static str, params: Vec<Param>) -> Self {
        Self { sql, params }
    }
}

/// The statements that apply `change`, in order.
pub(super) fn statements(change: &Change) -> Vec<Stmt> {
    match change {
        Change::Issue(cert) => vec![certificates::insert(cert)],
        Change::IssueForRequest {
            certificate,
            request,
        } => vec![
            certificates::insert(certificate),
            requests::mark_issued(request, certificate.serial),
        ],
        Change::CreateRequest(request) => vec![requests::insert(request)],
        Change::Approve {
            id,
            expected,
            approvals,
            status,
            expires_at,
        } => vec![requests::approve(
            id,
            expected,
            approvals,
            *status,
            *expires_at,
        )],
        Change::ExpireRequest { id, status } => vec![requests::expire(id, *status)],
        Change::Deny { id, by, reason } => vec![requests::deny(id, by, reason)],
        Change::AddOverride(o) => vec![overrides::insert(o)],
        Change::ShortenOverride {
            id,
            expected_end,
            end,
        } => vec![overrides::shorten(id, *expected_end, *end)],
        Change::DeleteOverride { id, expected_end } => {
            vec![overrides::delete(id, *expected_end)]
        }
        Change::Revoke {
            serials,
            by,
            reason,
            at,
        } => vec![certificates::revoke(serials, by, reason, at)],
        Change::OpenIncident(incident) => vec![incidents::open(incident, None)],
        Change::OpenAlertIncident {
            incident,
            alert_key,
        } => vec![incidents::open(incident, Some(alert_key))],
        Change::ResolveIncident { id, by, at, now } => incidents::resolve(id, by, at, *now),
        Change::Lock {
            identities,
            by,
            at,
            reason,
            now,
        } => locks::lock(identities, by, at, reason, *now),
        Change::Unlock { identities } => vec![locks::unlock(identities)],
        Change::CreateJoinToken(token) => vec![hosts::insert_token(token)],
        Change::Enroll {
            token_hash,
            now,
            host,
            certificate,
        } => hosts::enroll(token_hash, *now, host, certificate),
        Change::RenewHost(certificate) => hosts::renew(certificate),
        Change::RecordHostCertificate(certificate) => vec![hosts::insert_certificate(certificate)],
        Change::StartSession {
            certificate,
            session,
        } => vec![certificates::insert(certificate), sessions::insert(session)],
        Change::SealRecording(seal) => sessions::seal(seal),
        Change::NoteRecordingRead(read) => vec![sessions::note_read(read)],
        Change::DeleteRecording {
            session,
            cutoff,
            at,
        } => lifecycle::delete_recording(session, *cutoff, *at),
        Change::HoldRecording(hold) => lifecycle::hold(hold),
        Change::ReleaseHold { session } => vec![lifecycle::release(session)],
        Change::KeyPhase(phase) => ca_keys::apply(phase),
    }
}
