//! Revocation: `shiftkey-ca revoke` (by serial, key ID, identity, incident
//! or request), locking identities out, and the OpenSSH KRL served at
//! `/v1/krl` listing what is revoked and not yet expired.
//!
//! Never: revoke, lock or unlock without the policy's yes (a `Granted`,
//! `authority`) and the audit row in the same commit.

use std::sync::Arc;

use serde_json::json;

use crate::audit::{self, Audit, Event, Outcome};
use crate::authority::Granted;
use crate::clock::{now_rfc3339, unix_now};
use crate::keys::CaKeys;
use crate::store::{self, Change, Selector, Store};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot encode the KRL: {0}")]
    Krl(String),
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot read the revocations: {0}")]
    Store(#[from] store::Error),
}

/// The KRL, built from the store on every request.
#[derive(Debug)]
pub(crate) struct Krl {
    store: Arc<dyn Store>,
    keys: Arc<CaKeys>,
}

impl Krl {
    pub(crate) fn new(store: Arc<dyn Store>, keys: Arc<CaKeys>) -> Self {
        Self { store, keys }
    }

    /// The OpenSSH KRL of live revoked certificates of the user CA: a
    /// revocation is served the moment it is committed.
    pub(crate) async fn bytes(&self) -> Result<Vec<u8>, Error> {
        let now = unix_now();
        let revocations = self.store.revocations(now).await?;
        // A rotation phase changes what the KRL says too (the serials sit
        // under every published key; a key retired in an emergency is
        // named itself): both numbers only grow.
        let generation = self.store.ca_key_generation().await?;
        let keys = self.keys.snapshot();
        // Serials are unique across keys: list them under every published
        // user CA key, so a revocation holds whichever key signed it.
        let ca_keys = keys
            .user_published
            .iter()
            .filter_map(|line| ssh_key::PublicKey::from_openssh(line).ok())
            .map(|ca_key| crate::krl::CaRevocations {
                ca_key,
                serials: revocations.live_serials.clone(),
                key_ids: Vec::new(),
            })
            .collect();
        let krl = crate::krl::Krl {
            version: revocations.version.saturating_add(generation),
            generated_at: now,
            comment: "shiftkey".into(),
            ca_keys,
            revoked_keys: keys.user_revoked.clone(),
        };
        krl.to_bytes().map_err(|e| Error::Krl(e.to_string()))
    }
}

/// Revokes the live certificates `selectors` name (for an identity, one
/// selector per identity of its person), with its audit row in the same
/// commit; `granted` is the policy's yes for the caller. Returns the
/// serials revoked (none: nothing recorded).
pub(crate) async fn revoke(
    audit: &Audit,
    serials: Vec<u64>,
    reason: String,
    granted: &Granted,
) -> Result<Vec<u64>, Error> {
    if serials.is_empty() {
        return Ok(serials);
    }
    let actor = granted.actor().to_owned();
    let detail = granted.annotate(json!({ "serials": serials, "reason": reason }));
    audit
        .record_change(
            Event::new("certificate.revoked", actor.clone(), Outcome::Info, detail),
            Change::Revoke {
                serials: serials.clone(),
                by: actor,
                reason,
                at: now_rfc3339(),
            },
        )
        .await?;
    Ok(serials)
}

/// The live serials `selectors` name, each once, in order.
pub(crate) async fn live_serials(
    store: &dyn Store,
    selectors: Vec<Selector>,
) -> Result<Vec<u64>, Error> {
    let now = unix_now();
    let mut serials: Vec<u64> = Vec::new();
    for selector in selectors {
        for serial in store.live_serials(selector, now).await? {
            if !serials.contains(&serial) {
                serials.push(serial);
            }
        }
    }
    serials.sort_unstable();
    Ok(serials)
}

/// Locks `identities` (every identity of one person, the one named first)
/// out — no certificate, no bastion session — and revokes their live
/// certificates, in one audited commit. Each further identity gets its own
/// `identity.locked` row after it, which is what the bastion ends sessions
/// by. Returns the serials revoked.
pub(crate) async fn lock(
    audit: &Audit,
    identities: Vec<String>,
    reason: String,
    granted: &Granted,
) -> Result<Vec<u64>, Error> {
    let now = unix_now();
    let store = audit.store();
    let mut each = Vec::with_capacity(identities.len());
    for identity in &identities {
        let serials =
            live_serials(store.as_ref(), vec![Selector::Identity(identity.clone())]).await?;
        each.push((identity.clone(), serials));
    }
    let mut all: Vec<u64> = each.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    let actor = granted.actor().to_owned();
    let Some((first, _)) = each.first() else {
        return Ok(all);
    };
    let detail = granted.annotate(json!({
        "identity": first, "person": identities, "reason": reason, "serials": all,
    }));
    audit
        .record_change(
            Event::new("identity.locked", actor.clone(), Outcome::Info, detail),
            Change::Lock {
                identities: identities.clone(),
                by: actor.clone(),
                at: now_rfc3339(),
                reason: reason.clone(),
                now,
            },
        )
        .await?;
    for (identity, serials) in each.iter().skip(1) {
        let detail = granted.annotate(json!({
            "identity": identity, "person": identities, "reason": reason, "serials": serials,
        }));
        audit
            .record(Event::new(
                "identity.locked",
                actor.clone(),
                Outcome::Info,
                detail,
            ))
            .await?;
    }
    Ok(all)
}

/// Lets `identities` (one person's) ask for certificates again (what was
/// revoked stays revoked).
pub(crate) async fn unlock(
    audit: &Audit,
    identities: Vec<String>,
    reason: String,
    granted: &Granted,
) -> Result<(), Error> {
    let detail = granted.annotate(json!({
        "identity": identities.first(), "person": identities, "reason": reason,
    }));
    audit
        .record_change(
            Event::new(
                "identity.unlocked",
                granted.actor().to_owned(),
                Outcome::Info,
                detail,
            ),
            Change::Unlock { identities },
        )
        .await?;
    Ok(())
}
