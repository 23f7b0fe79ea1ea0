//! The CA host's commands that use a power: `shiftkey-ca revoke`, `lock`,
//! `unlock`, `hosts token` and `recordings hold|release`. They run as the local user (`local:USER`)
//! on the store `ca.toml` names, and ask the policy file it names exactly
//! as the API would (`authority::decide`): refusals are audited, and a yes
//! is named in the audit row of the change.
//!
//! Command code: anyhow is the error type here, as in `cli.rs`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::json;

use crate::audit::Audit;
use crate::authority::{self, Granted};
use crate::identity::Caller;
use crate::policy::{Action, Policy, canonical_identity};
use crate::store::{Access, Selector, Store};

/// Which certificates `shiftkey-ca revoke` names.
#[derive(Debug)]
pub(crate) enum Revoke {
    Serial(u64),
    KeyId(String),
    /// Every identity of its person.
    Identity(String),
    Incident(String),
    Request(String),
}

/// The store, its audit writer, the policy in the file and who runs the
/// command.
#[derive(Debug)]
pub(crate) struct Operator {
    store: Arc<dyn Store>,
    audit: Audit,
    policy: Policy,
    caller: Caller,
}

impl Operator {
    /// Opens the data directory's store and reads its policy file. Needs a
    /// tokio runtime (the audit writer).
    pub(crate) async fn open(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<Self> {
        let store = crate::config::open_store(data_dir, config, Access::ReadWrite).await?;
        let path = crate::config::policy_path(data_dir, config)?;
        let policy = Policy::load(&path).map_err(|errors| {
            anyhow::anyhow!(
                "the policy {} has errors, so no power can be decided:\n{}\nhint: `shiftkey-ca policy check {}`",
                path.display(),
                errors,
                path.display()
            )
        })?;
        let uid = nix::unistd::Uid::current().as_raw();
        let user = crate::identity::local_user_name(uid).unwrap_or_else(|| uid.to_string());
        Ok(Self {
            audit: Audit::start(Arc::clone(&store)),
            store,
            policy,
            caller: Caller::Local { user, uid },
        })
    }

    /// The policy's decision on `action` for whoever runs the command; a
    /// refusal (audited) becomes the command's error.
    async fn grant(
        &self,
        action: &Action<'_>,
        detail: serde_json::Value,
    ) -> anyhow::Result<Granted> {
        match authority::decide(
            self.store.as_ref(),
            &self.audit,
            &self.policy,
            &self.caller,
            action,
            detail,
        )
        .await
        {
            Ok(granted) => Ok(granted),
            Err(authority::Error::Denied(denied)) => bail!(
                "refused ({}): {}\nhint: docs/runbook.md says what to do when you lack a power",
                denied.code,
                denied.message
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// Every identity of `identity`'s person, canonical, it first.
    fn person(&self, identity: &str) -> anyhow::Result<Vec<String>> {
        let canonical =
            canonical_identity(identity.trim()).map_err(|e| anyhow::anyhow!("--identity: {e}"))?;
        if !(canonical.starts_with("user:") || canonical.starts_with("local:")) {
            bail!("--identity must be user:EMAIL or local:USER, e.g. user:alice@example.com");
        }
        let mut person = self.policy.person_of(&canonical);
        if person.is_empty() {
            person.push(canonical);
        }
        Ok(person)
    }

    /// Revokes the live certificates `which` names, if the policy lets the
    /// caller revoke each owner's (for an identity: its person's, all roles).
    pub(crate) async fn revoke(&self, which: Revoke, reason: &str) -> anyhow::Result<Vec<u64>> {
        let (selectors, whole_person) = match which {
            Revoke::Serial(serial) => (vec![Selector::Serial(serial)], None),
            Revoke::KeyId(key_id) => (vec![Selector::KeyId(key_id)], None),
            Revoke::Incident(id) => (vec![Selector::Incident(id)], None),
            Revoke::Request(id) => (vec![Selector::Request(id)], None),
            Revoke::Identity(identity) => {
                let person = self.person(&identity)?;
                let selectors = person.iter().cloned().map(Selector::Identity).collect();
                (selectors, Some(person))
            }
        };
        let serials = crate::revocation::live_serials(self.store.as_ref(), selectors).await?;
        // Whose certificates, of which roles: each pair is a decision.
        let mut owners: Vec<(String, Option<String>)> = Vec::new();
        if let Some(person) = &whole_person {
            owners.extend(person.first().map(|id| (id.clone(), None)));
        }
        for serial in &serials {
            if whole_person.is_some() {
                break;
            }
            let known = self
                .store
                .user_certificate(*serial)
                .await?
                .with_context(|| format!("serial {serial} has no certificate row"))?;
            let owner = (known.identity, Some(known.role));
            if !owners.contains(&owner) {
                owners.push(owner);
            }
        }
        let mut granted = None;
        for (target, role) in &owners {
            let action = Action::RevokeCertificates {
                target,
                role: role.as_deref(),
            };
            let detail = json!({ "target": target, "role": role, "serials": serials });
            granted = Some(self.grant(&action, detail).await?);
        }
        let Some(granted) = granted else {
            return Ok(Vec::new());
        };
        Ok(crate::revocation::revoke(&self.audit, serials, reason.to_owned(), &granted).await?)
    }

    /// Locks every identity of `identity`'s person out, if the policy lets
    /// the caller; returns the canonical identities and the serials revoked.
    pub(crate) async fn lock(
        &self,
        identity: &str,
        reason: &str,
    ) -> anyhow::Result<(Vec<String>, Vec<u64>)> {
        let person = self.person(identity)?;
        let target = person.first().cloned().unwrap_or_default();
        let granted = self
            .grant(
                &Action::LockIdentity { target: &target },
                json!({ "target": target, "person": person }),
            )
            .await?;
        let serials =
            crate::revocation::lock(&self.audit, person.clone(), reason.to_owned(), &granted)
                .await?;
        Ok((person, serials))
    }

    /// Unlocks every identity of `identity`'s person, if the policy lets
    /// the caller; returns the canonical identities.
    pub(crate) async fn unlock(&self, identity: &str, reason: &str) -> anyhow::Result<Vec<String>> {
        let person = self.person(identity)?;
        let target = person.first().cloned().unwrap_or_default();
        let granted = self
            .grant(
                &Action::UnlockIdentity { target: &target },
                json!({ "target": target, "person": person }),
            )
            .await?;
        crate::revocation::unlock(&self.audit, person.clone(), reason.to_owned(), &granted).await?;
        Ok(person)
    }

    /// Records a join token, if the policy lets the caller enroll a host
    /// with its names.
    pub(crate) async fn record_token(&self, token: &crate::hosts::NewToken) -> anyhow::Result<()> {
        let stored = &token.stored;
        let mut names = stored.principals.clone();
        if !names.contains(&stored.name) {
            names.push(stored.name.clone());
        }
        let granted = self
            .grant(
                &Action::EnrollHost { names: &names },
                json!({ "token": stored.id, "name": stored.name, "kind": stored.kind, "principals": stored.principals }),
            )
            .await?;
        crate::hosts::record_token(&self.audit, token, &granted).await?;
        Ok(())
    }

    /// Places (`hold`) or releases a legal hold on a session's recording,
    /// if the policy lets the caller (`recording.hold`, for the session's
    /// role and owner).
    pub(crate) async fn hold_recording(
        &self,
        session: &str,
        reason: &str,
        hold: bool,
    ) -> anyhow::Result<()> {
        let session = crate::recordings::checked_session(session)?;
        let reason = crate::recordings::checked_reason(reason)?;
        let row = self.store.session(&session).await?.with_context(|| {
            format!("there is no session {session}\nhint: `shiftkey recordings list` shows them")
        })?;
        let granted = self
            .grant(
                &Action::HoldRecording {
                    role: &row.role,
                    owner: &row.identity,
                },
                json!({ "session": session, "hold": hold }),
            )
            .await?;
        if hold {
            crate::recordings::hold(&self.audit, &session, &reason, &granted).await?;
        } else {
            crate::recordings::release(&self.audit, &session, &reason, &granted).await?;
        }
        Ok(())
    }

    /// Who runs the command, as audit rows name them.
    pub(crate) fn actor(&self) -> String {
        self.caller.identity()
    }
}
