//! On-call overrides: covers and swaps that put someone on call for a
//! schedule instead of its own answer, for a while. The policy reads the
//! ones in force; people in the rotation add them, audited.

use chrono::Utc;
use serde_json::json;

use crate::audit::{self, Event, Explain, Outcome};
use crate::base::Base;
use crate::clock::now_rfc3339;
use crate::identity::Caller;
pub(crate) use crate::store::StoredOverride;
use crate::store::{self, Change};

/// The longest override.
const MAX_OVERRIDE_SECS: i64 = 31 * 86_400;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("only people who hold a role may change who is on call")]
    NoRole,
    #[error("no schedule {0:?}")]
    NoSchedule(String),
    #[error("member {0:?} must be user:EMAIL or local:USER")]
    BadMember(String),
    #[error("the override must end after it starts, in the future, within 31 days")]
    BadWindow,
    #[error("say why (--reason)")]
    NoReason,
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot read the overrides: {0}")]
    Store(#[from] store::Error),
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::NoRole => "forbidden",
            Error::NoSchedule(_) => "not-found",
            Error::BadMember(_) | Error::BadWindow | Error::NoReason => "invalid-json",
            Error::Audit(_) => "audit-unavailable",
            Error::Store(_) => "internal-error",
        }
    }
}

#[derive(Debug)]
pub(crate) struct OnCall {
    base: Base,
}

impl OnCall {
    pub(crate) fn new(base: &Base) -> Self {
        Self { base: base.clone() }
    }

    /// Overrides in force now and later, for the policy.
    pub(crate) async fn overrides(&self) -> Result<Vec<crate::policy::Override>, Error> {
        let now = Utc::now().timestamp();
        Ok(self
            .base
            .store
            .current_overrides(now)
            .await?
            .into_iter()
            .filter_map(|o| {
                Some(crate::policy::Override {
                    schedule: o.schedule,
                    member: o.member,
                    start: chrono::DateTime::from_timestamp(o.start, 0)?,
                    end: chrono::DateTime::from_timestamp(o.end, 0)?,
                    created_by: o.created_by,
                })
            })
            .collect())
    }

    /// Puts `member` on call for `schedule` from `start` to `end`. Callers
    /// who hold a role may (the people in the rotation); audited with the
    /// reason, refusals too.
    pub(crate) async fn add_override(
        &self,
        caller: &Caller,
        schedule: &str,
        member: &str,
        start: i64,
        end: i64,
        reason: &str,
    ) -> Result<StoredOverride, Error> {
        let actor = caller.identity();
        let policy = self.base.policy.get();
        let now = Utc::now().timestamp();
        let problem = if policy.granted_roles(&actor, caller.groups()).is_empty() {
            Some(Error::NoRole)
        } else if policy
            .on_call_overview(Some(schedule), Utc::now(), &[])
            .is_empty()
        {
            Some(Error::NoSchedule(schedule.to_owned()))
        } else if !(member.starts_with("user:") || member.starts_with("local:"))
            || !crate::identity::is_safe_token(member)
        {
            Some(Error::BadMember(member.to_owned()))
        } else if end <= start || end - start > MAX_OVERRIDE_SECS || end <= now {
            Some(Error::BadWindow)
        } else if reason.trim().len() < 3 {
            Some(Error::NoReason)
        } else {
            None
        };
        if let Some(error) = problem {
            return Err(self
                .base
                .audit
                .refuse(
                    "oncall.override_refused",
                    actor,
                    Outcome::Deny,
                    error,
                    json!({ "schedule": schedule }),
                )
                .await);
        }
        let stored = StoredOverride {
            schedule: schedule.to_owned(),
            member: member.to_owned(),
            start,
            end,
            reason: reason.trim().chars().take(500).collect(),
            created_by: actor.clone(),
            created_at: now_rfc3339(),
        };
        let detail = json!({ "schedule": schedule, "member": member, "start": start, "end": end, "reason": stored.reason });
        self.base
            .audit
            .record_change(
                Event::new("oncall.override", actor, Outcome::Info, detail),
                Change::AddOverride(stored.clone()),
            )
            .await?;
        Ok(stored)
    }
}
