//! On-call overrides: covers and swaps that put someone on call for a
//! schedule instead of its own answer, for a while. The policy reads the
//! ones in force; whom the policy's authority allows creates, shortens and
//! deletes them, each change audited and on the event stream.
//!
//! Never: change an override without the policy's `Authorized`
//! (`authority::authorize`) and its audit row in the same commit.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Event, Explain, Outcome};
use crate::authority;
use crate::base::Base;
use crate::clock::now_rfc3339;
use crate::identity::Caller;
use crate::policy::{Action, Override};
pub(crate) use crate::store::StoredOverride;
use crate::store::{self, Change, Conflict};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The policy's authority refused (audited), or could not be asked.
    #[error(transparent)]
    Authority(#[from] authority::Error),
    #[error("member {0:?} must be user:EMAIL or local:USER")]
    BadMember(String),
    #[error("{0} is not a time the CA can use")]
    BadTime(i64),
    #[error("say why (--reason)")]
    NoReason,
    #[error(transparent)]
    UnsafeText(#[from] crate::free_text::Unsafe),
    #[error("no on-call override {0}; `shiftkey oncall overrides` lists them")]
    NotFound(String),
    #[error("on-call override {0} has ended; it no longer changes")]
    Ended(String),
    #[error("on-call override {0} was changed by someone else a moment ago; look at it again")]
    Changed(String),
    #[error(transparent)]
    Audit(audit::Error),
    #[error("cannot read the overrides: {0}")]
    Store(#[from] store::Error),
}

impl From<audit::Error> for Error {
    fn from(e: audit::Error) -> Self {
        Error::Audit(e)
    }
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Authority(e) => e.code(),
            Error::BadMember(_) | Error::BadTime(_) | Error::NoReason => "invalid-json",
            Error::UnsafeText(_) => crate::free_text::CODE,
            Error::NotFound(_) => "not-found",
            Error::Ended(_) | Error::Changed(_) => "conflict",
            Error::Audit(_) => "audit-unavailable",
            Error::Store(_) => "internal-error",
        }
    }
}

#[derive(Debug)]
pub(crate) struct OnCall {
    base: Base,
}

/// Unix seconds as a time, or the error that says it is not one.
fn time(unix: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp(unix, 0).ok_or(Error::BadTime(unix))
}

/// An override as the policy reads it.
fn for_policy(o: &StoredOverride) -> Option<Override> {
    Some(Override {
        schedule: o.schedule.clone(),
        member: o.member.clone(),
        start: DateTime::from_timestamp(o.start, 0)?,
        end: DateTime::from_timestamp(o.end, 0)?,
        created_by: o.created_by.clone(),
    })
}

/// Why an override's reason is refused: missing, or holding characters
/// that could hide or reorder it.
fn reason_refused(reason: &str) -> Option<Error> {
    if reason.trim().len() < 3 {
        return Some(Error::NoReason);
    }
    crate::free_text::check("reason", reason)
        .err()
        .map(Error::UnsafeText)
}

/// `ov_` and 12 hex digits: names one override in the API and audit rows.
fn new_override_id() -> String {
    use ssh_key::rand_core::Rng;
    let mut bytes = [0u8; 6];
    crate::keys::rng().fill_bytes(&mut bytes);
    format!("ov_{}", hex::encode(bytes))
}

impl OnCall {
    pub(crate) fn new(base: &Base) -> Self {
        Self { base: base.clone() }
    }

    /// Overrides in force now and later, for the policy.
    pub(crate) async fn overrides(&self) -> Result<Vec<Override>, Error> {
        Ok(self.list().await?.iter().filter_map(for_policy).collect())
    }

    /// `GET /v1/oncall/overrides`: overrides in force now and later, by
    /// start. Who is on call is no secret to anyone who may ask the CA.
    pub(crate) async fn list(&self) -> Result<Vec<StoredOverride>, Error> {
        Ok(self
            .base
            .store
            .current_overrides(Utc::now().timestamp())
            .await?)
    }

    /// An override that has not ended, by ID.
    async fn current(&self, id: &str) -> Result<StoredOverride, Error> {
        let found = self
            .base
            .store
            .on_call_override(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        if found.end <= Utc::now().timestamp() {
            return Err(Error::Ended(id.to_owned()));
        }
        Ok(found)
    }

    /// Refuses a request that is malformed before the policy sees it, with
    /// an audit row (`oncall.override_refused`).
    async fn reject(&self, caller: &Caller, error: Error, detail: serde_json::Value) -> Error {
        self.base
            .audit
            .refuse(
                "oncall.override_refused",
                caller.identity(),
                Outcome::Deny,
                error,
                detail,
            )
            .await
    }

    /// Puts `member` on call for `schedule` from `start` to `end`, if the
    /// policy's authority lets `caller` (for that schedule, for that
    /// member, within `max_override`, taking nobody else's shift unless
    /// allowed); audited with the reason, refusals too.
    pub(crate) async fn add_override(
        &self,
        caller: &Caller,
        schedule: &str,
        member: &str,
        start: i64,
        end: i64,
        reason: &str,
    ) -> Result<StoredOverride, Error> {
        let detail = json!({ "schedule": schedule, "member": member, "start": start, "end": end });
        let member = match crate::policy::canonical_identity(member) {
            Ok(m) if m.starts_with("user:") || m.starts_with("local:") => m,
            _ => {
                let error = Error::BadMember(member.to_owned());
                return Err(self.reject(caller, error, detail).await);
            }
        };
        if let Some(error) = reason_refused(reason) {
            return Err(self.reject(caller, error, detail).await);
        }
        let (from, until) = match (time(start), time(end)) {
            (Ok(from), Ok(until)) => (from, until),
            (Err(e), _) | (_, Err(e)) => return Err(self.reject(caller, e, detail).await),
        };
        let existing = self.overrides().await?;
        let granted = authority::authorize(
            &self.base,
            caller,
            &Action::CreateOverride {
                schedule,
                member: &member,
                start: from,
                end: until,
                existing: &existing,
            },
            detail,
        )
        .await?;
        let stored = StoredOverride {
            id: new_override_id(),
            schedule: schedule.to_owned(),
            member,
            start,
            end,
            reason: reason.trim().chars().take(500).collect(),
            created_by: granted.actor().to_owned(),
            created_at: now_rfc3339(),
        };
        let detail = granted.annotate(json!({
            "override": stored.id, "schedule": schedule, "member": stored.member,
            "start": start, "end": end, "reason": stored.reason,
        }));
        self.base
            .audit
            .record_change(
                Event::new(
                    "oncall.override",
                    stored.created_by.clone(),
                    Outcome::Info,
                    detail,
                ),
                Change::AddOverride(stored.clone()),
            )
            .await?;
        Ok(stored)
    }

    /// Ends override `id` earlier, at `end` (which must be after its start
    /// and before its current end), if the policy's authority lets
    /// `caller`; audited, and on the event stream.
    pub(crate) async fn shorten(
        &self,
        caller: &Caller,
        id: &str,
        end: i64,
        reason: &str,
    ) -> Result<StoredOverride, Error> {
        if let Some(error) = reason_refused(reason) {
            let detail = json!({ "override": id, "end": end });
            return Err(self.reject(caller, error, detail).await);
        }
        let found = self.current(id).await?;
        let new_end = match time(end) {
            Ok(t) => t,
            Err(e) => return Err(self.reject(caller, e, json!({ "override": id })).await),
        };
        let existing = for_policy(&found).ok_or(Error::BadTime(found.start))?;
        let detail = json!({
            "override": id, "schedule": found.schedule, "member": found.member,
            "end": found.end, "new_end": end,
        });
        let granted = authority::authorize(
            &self.base,
            caller,
            &Action::ShortenOverride {
                existing: &existing,
                new_end,
            },
            detail.clone(),
        )
        .await?;
        let reason: String = reason.trim().chars().take(500).collect();
        let mut detail = granted.annotate(detail);
        detail["reason"] = json!(reason);
        self.base
            .audit
            .record_change(
                Event::new(
                    "oncall.override_shortened",
                    granted.actor().to_owned(),
                    Outcome::Info,
                    detail,
                ),
                Change::ShortenOverride {
                    id: id.to_owned(),
                    expected_end: found.end,
                    end,
                },
            )
            .await
            .map_err(|e| changed(e, id))?;
        Ok(StoredOverride { end, ..found })
    }

    /// Removes override `id`, if the policy's authority lets `caller`;
    /// audited, and on the event stream.
    pub(crate) async fn delete(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<StoredOverride, Error> {
        if let Some(error) = reason_refused(reason) {
            return Err(self.reject(caller, error, json!({ "override": id })).await);
        }
        let found = self.current(id).await?;
        let existing = for_policy(&found).ok_or(Error::BadTime(found.start))?;
        let detail = json!({
            "override": id, "schedule": found.schedule, "member": found.member,
            "start": found.start, "end": found.end,
        });
        let granted = authority::authorize(
            &self.base,
            caller,
            &Action::DeleteOverride {
                existing: &existing,
            },
            detail.clone(),
        )
        .await?;
        let mut detail = granted.annotate(detail);
        detail["reason"] = json!(reason.trim().chars().take(500).collect::<String>());
        self.base
            .audit
            .record_change(
                Event::new(
                    "oncall.override_deleted",
                    granted.actor().to_owned(),
                    Outcome::Info,
                    detail,
                ),
                Change::DeleteOverride {
                    id: id.to_owned(),
                    expected_end: found.end,
                },
            )
            .await
            .map_err(|e| changed(e, id))?;
        Ok(found)
    }
}

fn changed(e: audit::Error, id: &str) -> Error {
    match e {
        audit::Error::Conflict(Conflict::OverrideChanged) => Error::Changed(id.to_owned()),
        other => Error::Audit(other),
    }
}
