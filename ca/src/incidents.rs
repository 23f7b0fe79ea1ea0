//! Incidents: opened and resolved by whom the policy's authority allows
//! (people, alert sources as `webhook:SOURCE`), resolved once; resolving
//! revokes every live certificate issued under the incident, in the same
//! commit.
//!
//! Never: open or resolve without the policy's `Authorized`
//! (`authority::authorize`); change an incident without its audit row in
//! the same commit.

use chrono::Utc;
use serde_json::json;

use crate::audit::{self, Event, Explain, Outcome};
use crate::authority::{self, Granted};
use crate::base::Base;
use crate::clock::{now_rfc3339, unix_now};
use crate::identity::Caller;
use crate::policy::{Action, IncidentState};
use crate::store::{self, Change, Conflict};
pub(crate) use crate::store::{CertificateSummary, Incident};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The policy's authority refused (audited), or could not be asked.
    #[error(transparent)]
    Authority(#[from] authority::Error),
    #[error("incident {0} already exists")]
    Exists(String),
    #[error("no incident {0}")]
    NotFound(String),
    #[error("incident {0} is already resolved")]
    AlreadyResolved(String),
    #[error("incident {0} was resolved by someone else a moment ago")]
    ResolvedMeanwhile(String),
    #[error(transparent)]
    UnsafeText(#[from] crate::free_text::Unsafe),
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot read incidents: {0}")]
    Store(#[from] store::Error),
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Authority(e) => e.code(),
            Error::Exists(_) | Error::AlreadyResolved(_) | Error::ResolvedMeanwhile(_) => {
                "conflict"
            }
            Error::NotFound(_) => "not-found",
            Error::UnsafeText(_) => crate::free_text::CODE,
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

    /// The incident opened for the Alertmanager firing `alert_key`.
    pub(crate) async fn for_alert(&self, alert_key: &str) -> Result<Option<Incident>, Error> {
        Ok(self.base.store.alert_incident(alert_key).await?)
    }

    /// The firing an incident was opened for, when Alertmanager opened it
    /// (and the CA kept it: not for incidents from before version 11).
    pub(crate) async fn alert_key_of(&self, id: &str) -> Result<Option<String>, Error> {
        Ok(self.base.store.alert_key_of(id).await?)
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

    /// Opens an incident (`id`, or a new `INC-YYYYMMDD-xxxxxx`) if the
    /// policy lets `caller` open one of this severity; audited either way.
    /// `alert_key` names the Alertmanager firing it is for.
    pub(crate) async fn open(
        &self,
        caller: &Caller,
        id: Option<String>,
        title: String,
        severity: u8,
        source: &str,
        alert_key: Option<String>,
    ) -> Result<Incident, Error> {
        if let Err(unsafe_text) = crate::free_text::check("title", &title) {
            return Err(self
                .base
                .audit
                .refuse(
                    "incident.rejected",
                    caller.identity(),
                    Outcome::Deny,
                    Error::UnsafeText(unsafe_text),
                    json!({ "incident": id, "severity": severity, "source": source }),
                )
                .await);
        }
        let granted = authority::authorize(
            &self.base,
            caller,
            &Action::OpenIncident { severity },
            json!({ "incident": id, "title": title, "severity": severity, "source": source }),
        )
        .await?;
        let actor = granted.actor().to_owned();
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
        let detail = granted.annotate(
            json!({ "incident": id, "title": incident.title, "severity": severity, "source": source }),
        );
        let change = match alert_key {
            Some(alert_key) => Change::OpenAlertIncident {
                incident: incident.clone(),
                alert_key,
            },
            None => Change::OpenIncident(incident.clone()),
        };
        self.base
            .audit
            .record_change(
                Event::new("incident.opened", actor, Outcome::Info, detail),
                change,
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
        let Some(incident) = self.base.store.incident(id).await? else {
            return Err(Error::NotFound(id.to_owned()));
        };
        if incident.status != "open" {
            return Err(Error::AlreadyResolved(id.to_owned()));
        }
        let granted: Granted = authority::authorize(
            &self.base,
            caller,
            &Action::ResolveIncident {
                severity: incident.severity,
                opened_by: &incident.opened_by,
            },
            json!({ "incident": id, "severity": incident.severity, "opened_by": incident.opened_by }),
        )
        .await?;
        let actor = granted.actor().to_owned();
        let at = now_rfc3339();
        // The revocation happens inside the resolution's own commit, so a
        // certificate committed a moment before cannot escape it (and the
        // store refuses any after).
        let detail = granted.annotate(
            json!({ "incident": id, "revokes": "every live certificate issued under it" }),
        );
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
