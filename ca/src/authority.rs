//! Powers: the one place a caller's use of a power (open or resolve an
//! incident, change who is on call, approve, review a recording, lock,
//! revoke, enroll a host) is decided by the policy and, when refused,
//! audited before the answer.
//!
//! The decision is [`Policy::authorize`]'s; this file adds what only the
//! store knows: whether any identity of the caller's person is locked. A
//! yes is the policy's [`Authorized`] proof, which the domain code takes
//! and names in the audit row of the change it makes ([`Granted::note`]).
//!
//! Never: decide a power anywhere else; answer a refusal before its
//! `authority.denied` row is durable.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};

use crate::audit::{self, Audit, Event, Explain, Outcome};
use crate::base::Base;
use crate::identity::Caller;
use crate::policy::{Action, Actor, Authorized, Denied, Policy};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The policy said no; the message says what it says.
    #[error("{}", .0.message)]
    Denied(Denied),
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot read the identity locks: {0}")]
    Store(#[from] store::Error),
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Denied(d) => d.code.as_str(),
            Error::Audit(_) => "audit-unavailable",
            Error::Store(_) => "internal-error",
        }
    }
}

/// A power granted: the policy's proof, and what the audit row of the
/// change says about it.
#[derive(Debug, Clone)]
pub(crate) struct Granted {
    proof: Authorized,
}

impl Granted {
    /// The canonical identity that was granted the power.
    pub(crate) fn actor(&self) -> &str {
        self.proof.actor()
    }

    /// `{"action": "incident.open", "via": "[[authority]] at policy.toml:40:1"}`,
    /// for the audit row of the change the power makes.
    pub(crate) fn note(&self) -> Value {
        json!({ "action": self.proof.kind().as_str(), "via": self.proof.via() })
    }

    /// Adds [`Granted::note`] to `detail` as `authority`.
    pub(crate) fn annotate(&self, mut detail: Value) -> Value {
        if let Some(map) = detail.as_object_mut() {
            map.insert("authority".into(), self.note());
        }
        detail
    }
}

/// The reason any identity of `identity`'s person (as `policy` declares
/// it) is locked, if one is.
pub(crate) async fn person_lock(
    store: &dyn Store,
    policy: &Policy,
    identity: &str,
) -> Result<Option<String>, store::Error> {
    let mut person = policy.person_of(identity);
    if person.is_empty() {
        person.push(identity.to_owned());
    }
    for one in &person {
        if let Some(reason) = store.lock_of(one).await? {
            return Ok(Some(reason));
        }
    }
    Ok(None)
}

/// Decides whether `caller` may use a power now, with what the store knows
/// of locks. A refusal is audited as `authority.denied` (with `detail`, the
/// action, the denial code and message) before it is returned.
pub(crate) async fn authorize(
    base: &Base,
    caller: &Caller,
    action: &Action<'_>,
    detail: Value,
) -> Result<Granted, Error> {
    let policy = base.policy.get();
    let decided = decide(
        base.store.as_ref(),
        &base.audit,
        &policy,
        caller,
        action,
        detail,
    )
    .await;
    if let Err(Error::Denied(denied)) = &decided {
        base.metrics.deny("(authority)", denied.code.as_str());
    }
    decided
}

/// [`authorize`] with the policy given: for the CA host's commands
/// (`shiftkey-ca lock`, `revoke`, `hosts token`), which read the policy
/// file themselves.
pub(crate) async fn decide(
    store: &dyn Store,
    audit: &Audit,
    policy: &Policy,
    caller: &Caller,
    action: &Action<'_>,
    detail: Value,
) -> Result<Granted, Error> {
    let identity = caller.identity();
    let locked = person_lock(store, policy, &identity).await?.is_some();
    let actor = Actor {
        identity: &identity,
        groups: caller.groups(),
        locked,
    };
    match policy.authorize(&actor, action, Utc::now()) {
        Ok(proof) => Ok(Granted { proof }),
        Err(denied) => {
            let mut detail = detail;
            if let Some(map) = detail.as_object_mut() {
                map.insert("action".into(), json!(action.kind().as_str()));
                map.insert("denied".into(), json!(denied.code.as_str()));
                map.insert("message".into(), json!(denied.message));
            }
            audit
                .record(Event::new(
                    "authority.denied",
                    identity,
                    Outcome::Deny,
                    detail,
                ))
                .await?;
            Err(Error::Denied(denied))
        }
    }
}

/// What `caller` may see in lists (requests to approve, recordings to
/// review), where showing an entry is not a use of the power: decided by
/// the same rules, without an audit row each. A locked caller sees nothing.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    policy: Arc<Policy>,
    identity: String,
    groups: Vec<String>,
    locked: bool,
}

impl Viewer {
    pub(crate) async fn new(base: &Base, caller: &Caller) -> Result<Viewer, store::Error> {
        let policy = base.policy.get();
        let identity = caller.identity();
        let locked = person_lock(base.store.as_ref(), &policy, &identity)
            .await?
            .is_some();
        Ok(Viewer {
            policy,
            identity,
            groups: caller.groups().to_vec(),
            locked,
        })
    }

    /// Whether the caller may review some recordings (each is then
    /// decided on its own): unlocked, and root, an admin or named by a
    /// `recording.review` rule.
    pub(crate) fn may_review_some(&self) -> bool {
        !self.locked && self.policy.may_review_some(&self.identity, &self.groups)
    }

    /// Whether the caller would be allowed `action` now.
    pub(crate) fn may(&self, action: &Action<'_>) -> bool {
        let actor = Actor {
            identity: &self.identity,
            groups: &self.groups,
            locked: self.locked,
        };
        self.policy.authorize(&actor, action, Utc::now()).is_ok()
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
