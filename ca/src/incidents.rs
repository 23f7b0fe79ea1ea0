//! Incidents: opened by people who hold a role (or by an alert source),
//! resolved once; resolving revokes every live certificate issued under
//! the incident, in the same commit.
//!
//! Never: change an incident without its audit row in the same commit.

use chrono::Utc;
use serde_json::json;

use crate::audit::{self, Event, Explain, Outcome};
use crate::base::Base;
use crate::clock::{now_rfc3339, unix_now};
use crate::identity::Caller;
use crate::policy::IncidentState;
use crate::store::{self, Change, Conflict};
pub(crate) use crate::store::{CertificateSummary, Incident};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Only people who hold a role open and resolve incidents by hand.
    #[error("only people who hold a role may {0} incidents")]
    NoRole(&'static str),
    #[error("incident {0} already exists")]
    Exists(String),
    #[error("no incident {0}")]
    NotFound(String),
    #[error("incident {0} is already resolved")]
    AlreadyResolved(String),
    #[error("incident {0} was resolved by someone else a moment ago")]
    ResolvedMeanwhile(String),
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot read incidents: {0}")]
    Store(#[from] store::Error),
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::NoRole(_) => "forbidden",
            Error::Exists(_) | Error::AlreadyResolved(_) | Error::ResolvedMeanwhile(_) => {
                "conflict"
            }
            Error::NotFound(_) => "not-found",
            Error::Audit(_) => "audit-unavailable",
            Error::Store(_) => "internal-error",
        }
    }
}

/// A resolution, and what it revoked.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) incident: Incident,
    pub(crate) revoked_serials: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct Incidents {
    base: Base,
}

impl Incidents {
    pub(crate) fn new(base: &Base) -> Self {
        Self { base: base.clone() }
    }

    /// What the policy needs to know of incident `id`.
    pub(crate) async fn state(&self, id: &str) -> Result<IncidentState, store::Error> {
        Ok(match self.base.store.incident(id).await? {
            Some(i) if i.status == "open" => IncidentState::Open {
                severity: i.severity,
                opened_by: i.opened_by,
            },
            Some(_) => IncidentState::Resolved,
            None => IncidentState::Unknown,
        })
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<Incident>, Error> {
        Ok(self.base.store.incident(id).await?)
    }

    /// Certificates issued under incident `id`, by serial (at most 1000).
    pub(crate) async fn certificates(&self, id: &str) -> Result<Vec<CertificateSummary>, Error> {
        Ok(self
            .base
            .store
            .certificates_under_incident(id, 1000)
            .await?)
    }

    pub(crate) async fn list(&self, open_only: bool) -> Result<Vec<Incident>, Error> {
        Ok(self.base.store.incidents(open_only).await?)
    }

    /// Whether `caller` may act on incidents: alert sources may, people if
    /// they hold at least one role (they are the people who get paged).
    fn may_act(&self, caller: &Caller) -> bool {
        matches!(caller, Caller::Webhook { .. })
            || !self
                .base
                .policy
                .get()
                .granted_roles(&caller.identity(), caller.groups())
                .is_empty()
    }

    /// Opens an incident (`id`, or a new `INC-YYYYMMDD-xxxxxx`), audited
    /// like any decision; a caller without a role is refused and audited.
    pub(crate) async fn open(
        &self,
        caller: &Caller,
        id: Option<String>,
        title: String,
        severity: u8,
        source: &str,
    ) -> Result<Incident, Error> {
        let actor = caller.identity();
        if !self.may_act(caller) {
            return Err(self
                .base
                .audit
                .refuse(
                    "incident.refused",
                    actor,
                    Outcome::Deny,
                    Error::NoRole("open"),
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
        if self.base.store.incident(&id).await?.is_some() {
            return Err(Error::Exists(id));
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
        self.base
            .audit
            .record_change(
                Event::new("incident.opened", actor, Outcome::Info, detail),
                Change::OpenIncident(incident.clone()),
            )
            .await
            .map_err(|e| match e {
                audit::Error::Conflict(Conflict::IncidentExists) => Error::Exists(id.clone()),
                other => Error::Audit(other),
            })?;
        Ok(incident)
    }

    /// Resolves an open incident and revokes every live certificate issued
    /// under it, in one commit with its audit row.
    pub(crate) async fn resolve(&self, caller: &Caller, id: &str) -> Result<Resolved, Error> {
        if !self.may_act(caller) {
            return Err(Error::NoRole("resolve"));
        }
        let actor = caller.identity();
        let Some(incident) = self.base.store.incident(id).await? else {
            return Err(Error::NotFound(id.to_owned()));
        };
        if incident.status != "open" {
            return Err(Error::AlreadyResolved(id.to_owned()));
        }
        let at = now_rfc3339();
        // The revocation happens inside the resolution's own commit, so a
        // certificate committed a moment before cannot escape it (and the
        // store refuses any after).
        let detail = json!({ "incident": id, "revokes": "every live certificate issued under it" });
        self.base
            .audit
            .record_change(
                Event::new("incident.resolved", actor.clone(), Outcome::Info, detail),
                Change::ResolveIncident {
                    id: id.to_owned(),
                    by: actor.clone(),
                    at: at.clone(),
                    now: unix_now(),
                },
            )
            .await
            .map_err(|e| match e {
                audit::Error::Conflict(Conflict::IncidentNotOpen) => {
                    Error::ResolvedMeanwhile(id.to_owned())
                }
                other => Error::Audit(other),
            })?;
        // Name what it revoked, for the record and for event subscribers.
        let serials = self.base.store.revoked_under_incident(id).await?;
        if !serials.is_empty() {
            let detail = json!({ "serials": serials, "reason": format!("incident {id} resolved") });
            self.base
                .audit
                .record(Event::new(
                    "certificate.revoked",
                    actor.clone(),
                    Outcome::Info,
                    detail,
                ))
                .await?;
        }
        Ok(Resolved {
            incident: Incident {
                status: "resolved".into(),
                resolved_by: Some(actor),
                resolved_at: Some(at),
                ..incident
            },
            revoked_serials: serials,
        })
    }
}
