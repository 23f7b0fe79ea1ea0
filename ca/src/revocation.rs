//! Incidents and revocation: the CA's side of "access ends when the fire is
//! out". Resolving an incident revokes every live certificate issued under
//! it; `shiftkey-ca revoke` revokes by serial, key ID or identity; the KRL at
//! `/v1/krl` lists what is revoked and not yet expired.
//!
//! Never: change an incident or revoke without the audit row in the same
//! commit (`AuditLog::record_change`).

use chrono::{SecondsFormat, Utc};
use serde_json::json;

use crate::audit::{Event, Outcome};
use crate::http::error::ApiError;
use crate::identity::Caller;
use crate::policy::IncidentState;
use crate::service::Ca;
use crate::store::{self, Change, Incident, Selector};

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

impl Ca {
    /// What the policy needs to know of incident `id`.
    pub(crate) fn incident_state(&self, id: &str) -> Result<IncidentState, ApiError> {
        Ok(match self.read(|conn| store::incident(conn, id))? {
            Some(i) if i.status == "open" => IncidentState::Open {
                severity: i.severity,
            },
            Some(_) => IncidentState::Resolved,
            None => IncidentState::Unknown,
        })
    }

    pub(crate) fn incidents(&self, open_only: bool) -> Result<Vec<Incident>, ApiError> {
        self.read(|conn| store::incidents(conn, open_only))
    }

    /// Opens an incident. Callers who hold at least one role may open one
    /// (they are the people who get paged); it is audited like any decision.
    pub(crate) async fn open_incident(
        &self,
        caller: &Caller,
        id: Option<String>,
        title: String,
        severity: u8,
        source: &str,
    ) -> Result<Incident, ApiError> {
        let actor = caller.identity();
        if source == "manual"
            && self
                .policy()
                .granted_roles(&actor, caller.groups())
                .is_empty()
        {
            return Err(self
                .refuse(
                    "incident.refused",
                    actor,
                    ApiError::Forbidden("only people who hold a role may open incidents".into()),
                    json!({ "title": title }),
                )
                .await);
        }
        let id = match id {
            Some(id) => id,
            None => {
                use ssh_key::rand_core::Rng;
                let mut suffix = [0u8; 3];
                crate::keys::rng().fill_bytes(&mut suffix);
                format!(
                    "INC-{}-{}",
                    Utc::now().format("%Y%m%d"),
                    hex::encode(suffix)
                )
            }
        };
        if self.read(|conn| store::incident(conn, &id))?.is_some() {
            return Err(ApiError::Conflict(format!("incident {id} already exists")));
        }
        let incident = Incident {
            id: id.clone(),
            title,
            severity,
            status: "open".into(),
            source: source.to_owned(),
            opened_by: actor.clone(),
            opened_at: now_rfc3339(),
            resolved_by: None,
            resolved_at: None,
        };
        let detail = json!({ "incident": id, "title": incident.title, "severity": severity, "source": source });
        self.audit
            .record_change(
                Event {
                    kind: "incident.opened",
                    actor,
                    outcome: Outcome::Info,
                    detail,
                },
                Change::OpenIncident(incident.clone()),
            )
            .await
            .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
        Ok(incident)
    }

    /// Resolves an open incident and revokes every live certificate issued
    /// under it, in one commit with its audit row.
    pub(crate) async fn resolve_incident(
        &self,
        actor: String,
        id: &str,
    ) -> Result<(Incident, Vec<u64>), ApiError> {
        let Some(incident) = self.read(|conn| store::incident(conn, id))? else {
            return Err(ApiError::Missing(format!("no incident {id}")));
        };
        if incident.status != "open" {
            return Err(ApiError::Conflict(format!(
                "incident {id} is already resolved"
            )));
        }
        let at = now_rfc3339();
        // The revocation happens inside the resolution's own transaction, so
        // a certificate committed a moment before cannot escape it (and the
        // certificates_incident_open trigger refuses any after).
        let detail = json!({ "incident": id, "revokes": "every live certificate issued under it" });
        self.audit
            .record_change(
                Event {
                    kind: "incident.resolved",
                    actor: actor.clone(),
                    outcome: Outcome::Info,
                    detail,
                },
                Change::ResolveIncident {
                    id: id.to_owned(),
                    by: actor.clone(),
                    at: at.clone(),
                    now: unix_now(),
                },
            )
            .await
            .map_err(|e| match e {
                crate::audit::Error::Write(m) if m.contains(store::INCIDENT_NOT_OPEN) => {
                    ApiError::Conflict(format!(
                        "incident {id} was resolved by someone else a moment ago"
                    ))
                }
                other => ApiError::AuditUnavailable(other.to_string()),
            })?;
        // Name what it revoked, for the record and for event subscribers.
        let serials = self.read(|conn| store::revoked_under_incident(conn, id))?;
        if !serials.is_empty() {
            let detail = json!({ "serials": serials, "reason": format!("incident {id} resolved") });
            self.audit
                .record(Event {
                    kind: "certificate.revoked",
                    actor: actor.clone(),
                    outcome: Outcome::Info,
                    detail,
                })
                .await
                .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
        }
        let resolved = Incident {
            status: "resolved".into(),
            resolved_by: Some(actor),
            resolved_at: Some(at),
            ..incident
        };
        Ok((resolved, serials))
    }

    /// The OpenSSH KRL of live revoked certificates of the user CA.
    pub(crate) fn krl(&self) -> Result<Vec<u8>, ApiError> {
        let now = unix_now();
        let (serials, version) = self.read(|conn| {
            Ok((
                store::revoked_live_serials(conn, now)?,
                store::revocation_count(conn)?,
            ))
        })?;
        let krl = crate::krl::Krl {
            version,
            generated_at: now,
            comment: "shiftkey".into(),
            ca_keys: vec![crate::krl::CaRevocations {
                ca_key: self.keys.user.public_key().clone(),
                serials,
                key_ids: Vec::new(),
            }],
        };
        krl.to_bytes()
            .map_err(|e| ApiError::Internal(format!("cannot encode the KRL: {e}")))
    }
}

/// The revocation and its audit row, in one commit.
pub(crate) async fn record_revocation(
    audit: &crate::audit::AuditLog,
    actor: String,
    serials: Vec<u64>,
    reason: String,
) -> Result<u64, crate::audit::Error> {
    let detail = json!({ "serials": serials, "reason": reason });
    audit
        .record_change(
            Event {
                kind: "certificate.revoked",
                actor: actor.clone(),
                outcome: Outcome::Info,
                detail,
            },
            Change::Revoke {
                serials,
                by: actor,
                reason,
                at: now_rfc3339(),
            },
        )
        .await
}

/// `shiftkey-ca lock`: locks `identity` out (no certificate, no bastion
/// session) and revokes its live certificates, in one audited transaction.
/// The bastion ends its sessions on the `identity.locked` event. Returns
/// the serials revoked.
pub(crate) async fn lock_offline(
    data_dir: &std::path::Path,
    identity: &str,
    reason: String,
    actor: String,
) -> anyhow::Result<Vec<u64>> {
    let conn = store::open(&store::db_path(data_dir))?;
    let now = unix_now();
    let serials = store::live_serials(&conn, &Selector::Identity(identity), now)?;
    let audit = crate::audit::AuditLog::start(conn)?;
    let detail = json!({ "identity": identity, "reason": reason, "serials": serials });
    audit
        .record_change(
            Event {
                kind: "identity.locked",
                actor: actor.clone(),
                outcome: Outcome::Info,
                detail,
            },
            Change::Lock {
                identity: identity.to_owned(),
                by: actor,
                at: now_rfc3339(),
                reason,
                now,
            },
        )
        .await?;
    Ok(serials)
}

/// `shiftkey-ca unlock`: lets `identity` ask for certificates again (what
/// was revoked stays revoked).
pub(crate) async fn unlock_offline(
    data_dir: &std::path::Path,
    identity: &str,
    reason: String,
    actor: String,
) -> anyhow::Result<()> {
    let conn = store::open(&store::db_path(data_dir))?;
    let audit = crate::audit::AuditLog::start(conn)?;
    audit
        .record_change(
            Event {
                kind: "identity.unlocked",
                actor,
                outcome: Outcome::Info,
                detail: json!({ "identity": identity, "reason": reason }),
            },
            Change::Unlock {
                identity: identity.to_owned(),
            },
        )
        .await?;
    Ok(())
}

/// `shiftkey-ca revoke`: revokes, from the CA host, the live certificates
/// `selector` names, writing to the store directly (the running CA builds
/// its KRL from the store on every request, so it serves them at once).
/// Returns the serials revoked.
pub(crate) async fn revoke_offline(
    data_dir: &std::path::Path,
    selector: Selector<'_>,
    reason: String,
    actor: String,
) -> anyhow::Result<Vec<u64>> {
    let conn = store::open(&store::db_path(data_dir))?;
    let serials = store::live_serials(&conn, &selector, unix_now())?;
    if !serials.is_empty() {
        let audit = crate::audit::AuditLog::start(conn)?;
        record_revocation(&audit, actor, serials.clone(), reason).await?;
    }
    Ok(serials)
}

impl Ca {
    /// On-call overrides in force now and later, for the policy.
    pub(crate) fn overrides(&self) -> Result<Vec<crate::policy::Override>, ApiError> {
        let now = Utc::now().timestamp();
        Ok(self
            .read(|conn| store::current_overrides(conn, now))?
            .into_iter()
            .filter_map(|o| {
                Some(crate::policy::Override {
                    schedule: o.schedule,
                    member: o.member,
                    start: chrono::DateTime::from_timestamp(o.start, 0)?,
                    end: chrono::DateTime::from_timestamp(o.end, 0)?,
                })
            })
            .collect())
    }

    /// Puts `member` on call for `schedule` from `start` to `end` instead of
    /// the schedule's own answer. Callers who hold a role may (the people in
    /// the rotation); audited with the reason.
    pub(crate) async fn add_override(
        &self,
        caller: &Caller,
        schedule: &str,
        member: &str,
        start: i64,
        end: i64,
        reason: &str,
    ) -> Result<store::StoredOverride, ApiError> {
        let actor = caller.identity();
        let policy = self.policy();
        let problem = if policy.granted_roles(&actor, caller.groups()).is_empty() {
            Some(ApiError::Forbidden(
                "only people who hold a role may change who is on call".into(),
            ))
        } else if policy
            .on_call_overview(Some(schedule), Utc::now(), &[])
            .is_empty()
        {
            Some(ApiError::Missing(format!("no schedule {schedule:?}")))
        } else if !(member.starts_with("user:") || member.starts_with("local:"))
            || !crate::identity::is_safe_token(member)
        {
            Some(ApiError::InvalidBody(format!(
                "member {member:?} must be user:EMAIL or local:USER"
            )))
        } else if end <= start || end - start > 31 * 86_400 || end <= Utc::now().timestamp() {
            Some(ApiError::InvalidBody(
                "the override must end after it starts, in the future, within 31 days".into(),
            ))
        } else if reason.trim().len() < 3 {
            Some(ApiError::InvalidBody("say why (--reason)".into()))
        } else {
            None
        };
        if let Some(error) = problem {
            return Err(self
                .refuse(
                    "oncall.override_refused",
                    actor,
                    error,
                    json!({ "schedule": schedule }),
                )
                .await);
        }
        let stored = store::StoredOverride {
            schedule: schedule.to_owned(),
            member: member.to_owned(),
            start,
            end,
            reason: reason.trim().chars().take(500).collect(),
            created_by: actor.clone(),
            created_at: now_rfc3339(),
        };
        let detail = json!({ "schedule": schedule, "member": member, "start": start, "end": end, "reason": stored.reason });
        self.audit
            .record_change(
                Event {
                    kind: "oncall.override",
                    actor,
                    outcome: Outcome::Info,
                    detail,
                },
                Change::AddOverride(stored.clone()),
            )
            .await
            .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
        Ok(stored)
    }
}
