//! Applies a [`Change`] inside the append's transaction, through the
//! concern that owns its tables.

use rusqlite::Connection;

use super::{
    WriteError, ca_keys, certificates, hosts, incidents, lifecycle, locks, overrides, requests,
    sessions,
};
use crate::store::Change;

pub(super) fn apply(conn: &Connection, change: &Change) -> Result<(), WriteError> {
    match change {
        Change::Issue(cert) => certificates::insert(conn, cert),
        Change::IssueForRequest {
            certificate,
            request,
        } => {
            certificates::insert(conn, certificate)?;
            requests::mark_issued(conn, request, certificate.serial)
        }
        Change::CreateRequest(request) => requests::insert(conn, request),
        Change::Approve {
            id,
            expected,
            approvals,
            status,
            expires_at,
        } => requests::approve(conn, id, expected, approvals, *status, *expires_at),
        Change::ExpireRequest { id, status } => requests::expire(conn, id, *status),
        Change::Deny { id, by, reason } => requests::deny(conn, id, by, reason),
        Change::AddOverride(o) => overrides::insert(conn, o),
        Change::ShortenOverride {
            id,
            expected_end,
            end,
        } => overrides::shorten(conn, id, *expected_end, *end),
        Change::DeleteOverride { id, expected_end } => overrides::delete(conn, id, *expected_end),
        Change::Revoke {
            serials,
            by,
            reason,
            at,
        } => certificates::revoke(conn, serials, by, reason, at),
        Change::OpenIncident(incident) => incidents::open(conn, incident, None),
        Change::OpenAlertIncident {
            incident,
            alert_key,
        } => incidents::open(conn, incident, Some(alert_key)),
        Change::ResolveIncident { id, by, at, now } => incidents::resolve(conn, id, by, at, *now),
        Change::Lock {
            identities,
            by,
            at,
            reason,
            now,
        } => identities
            .iter()
            .try_for_each(|identity| locks::lock(conn, identity, by, at, reason, *now)),
        Change::Unlock { identities } => identities
            .iter()
            .try_for_each(|identity| locks::unlock(conn, identity)),
        Change::CreateJoinToken(token) => hosts::insert_token(conn, token),
        Change::Enroll {
            token_hash,
            now,
            host,
            certificate,
        } => hosts::enroll(conn, token_hash, *now, host, certificate),
        Change::RenewHost(certificate) => hosts::renew(conn, certificate),
        Change::RecordHostCertificate(certificate) => hosts::insert_certificate(conn, certificate),
        Change::StartSession {
            certificate,
            session,
        } => {
            certificates::insert(conn, certificate)?;
            sessions::insert(conn, session)
        }
        Change::SealRecording(seal) => sessions::seal(conn, seal),
        Change::NoteRecordingRead(read) => sessions::note_read(conn, read),
        Change::DeleteRecording {
            session,
            cutoff,
            at,
        } => lifecycle::delete_recording(conn, session, *cutoff, *at),
        Change::HoldRecording(hold) => lifecycle::hold(conn, hold),
        Change::ReleaseHold { session } => lifecycle::release(conn, session),
        Change::KeyPhase(phase) => ca_keys::apply(conn, phase),
    }
}
