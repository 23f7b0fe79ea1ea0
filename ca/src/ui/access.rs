//! Why a recorded session was allowed: the reason given when its
//! certificate was issued, the access request behind it, and who approved
//! that request and when. Read from the audit log (the `certificate.issued`
//! row names the serial, request and reason; each `request.approved` row
//! the approver and the time) and the stored request, so the session page
//! answers "why was this person here" without a second tool.
//!
//! The reads are bounded: the issuance is looked for among the issuances
//! before the session started (newest first, at most `MAX_SCAN` rows of
//! that kind), the approvals between the request and the session's start.

use serde_json::Value;

use crate::audit::{Audit, AuditFilter};

/// Issuance rows looked through, newest first, for a session's certificate.
const MAX_SCAN: u32 = 2_000;

/// One approval of the request behind a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Approval {
    pub(super) by: String,
    /// RFC 3339, as the audit row has it.
    pub(super) at: String,
}

/// Why a session was allowed, as far as the CA's records say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Access {
    /// The reason given for the certificate.
    pub(super) reason: Option<String>,
    /// The request ID in the certificate's key ID (`req=`).
    pub(super) request: Option<String>,
    /// The certificate's principals.
    pub(super) principals: Vec<String>,
    /// Approvals the role needed (0 when none), and those given.
    pub(super) approvals_needed: u8,
    pub(super) approvals: Vec<Approval>,
    /// The issuance row was found.
    pub(super) found: bool,
}

fn rfc3339(unix: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The access behind the session whose user certificate is `serial` and
/// which started at `started_at` (unix seconds).
pub(super) async fn access_of(
    audit: &Audit,
    serial: u64,
    started_at: i64,
) -> Result<Access, crate::audit::Error> {
    let until = rfc3339(started_at.saturating_add(1));
    let issued = audit
        .rows(AuditFilter {
            kinds: vec!["certificate.issued".to_owned()],
            until_ts: until.clone(),
            newest_first: true,
            limit: MAX_SCAN,
            ..AuditFilter::default()
        })
        .await?
        .into_iter()
        .filter_map(|row| serde_json::from_str::<Value>(&row.detail).ok())
        .find(|d| d["serial"].as_u64() == Some(serial));
    let Some(detail) = issued else {
        return Ok(Access::default());
    };
    let text = |v: &Value| v.as_str().map(str::to_owned).filter(|s| !s.is_empty());
    let mut access = Access {
        reason: text(&detail["reason"]),
        request: text(&detail["req"]),
        principals: detail["principals"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        found: true,
        ..Access::default()
    };
    let Some(request) = access.request.clone() else {
        return Ok(access);
    };
    let Some(stored) = audit
        .store()
        .access_request(&request)
        .await
        .map_err(crate::audit::Error::from)?
    else {
        // Issued at once: no request row, no approvals needed.
        return Ok(access);
    };
    access.approvals_needed = stored.approvals_needed;
    if access.reason.is_none() {
        access.reason = stored.reason.clone();
    }
    let approved = audit
        .rows(AuditFilter {
            kinds: vec!["request.approved".to_owned()],
            from_ts: rfc3339(stored.created_at),
            until_ts: until,
            limit: 1_000,
            ..AuditFilter::default()
        })
        .await?;
    for row in approved {
        let detail: Value = serde_json::from_str(&row.detail).unwrap_or_default();
        if row.outcome != "deny" && detail["request"].as_str() == Some(request.as_str()) {
            access.approvals.push(Approval {
                by: row.actor,
                at: row.ts,
            });
        }
    }
    // Approvals the stored request names but the log window missed still
    // count (their time unknown).
    for by in &stored.approvals {
        if !access.approvals.iter().any(|a| &a.by == by) {
            access.approvals.push(Approval {
                by: by.clone(),
                at: String::new(),
            });
        }
    }
    Ok(access)
}
