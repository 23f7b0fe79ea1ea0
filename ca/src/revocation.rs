//! Revocation: `shiftkey-ca revoke` (by serial, key ID, identity, incident
//! or request), locking identities out, and the OpenSSH KRL served at
//! `/v1/krl` listing what is revoked and not yet expired.
//!
//! Never: revoke or lock without the audit row in the same commit.

use std::sync::Arc;

use serde_json::json;

use crate::audit::{self, Audit, Event, Outcome};
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
        let krl = crate::krl::Krl {
            version: revocations.version,
            generated_at: now,
            comment: "shiftkey".into(),
            ca_keys: vec![crate::krl::CaRevocations {
                ca_key: self.keys.user.public_key().clone(),
                serials: revocations.live_serials,
                key_ids: Vec::new(),
            }],
        };
        krl.to_bytes().map_err(|e| Error::Krl(e.to_string()))
    }
}

/// Revokes the live certificates `selector` names, with its audit row in
/// the same commit. Returns the serials revoked (none: nothing recorded).
pub(crate) async fn revoke(
    audit: &Audit,
    selector: Selector,
    reason: String,
    actor: String,
) -> Result<Vec<u64>, Error> {
    let serials = audit.store().live_serials(selector, unix_now()).await?;
    if serials.is_empty() {
        return Ok(serials);
    }
    let detail = json!({ "serials": serials, "reason": reason });
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

/// Locks `identity` out (no certificate, no bastion session) and revokes
/// its live certificates, in one audited commit. The bastion ends its
/// sessions on the `identity.locked` event. Returns the serials revoked.
pub(crate) async fn lock(
    audit: &Audit,
    identity: &str,
    reason: String,
    actor: String,
) -> Result<Vec<u64>, Error> {
    let now = unix_now();
    let serials = audit
        .store()
        .live_serials(Selector::Identity(identity.to_owned()), now)
        .await?;
    let detail = json!({ "identity": identity, "reason": reason, "serials": serials });
    audit
        .record_change(
            Event::new("identity.locked", actor.clone(), Outcome::Info, detail),
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

/// Lets `identity` ask for certificates again (what was revoked stays
/// revoked).
pub(crate) async fn unlock(
    audit: &Audit,
    identity: &str,
    reason: String,
    actor: String,
) -> Result<(), Error> {
    audit
        .record_change(
            Event::new(
                "identity.unlocked",
                actor,
                Outcome::Info,
                json!({ "identity": identity, "reason": reason }),
            ),
            Change::Unlock {
                identity: identity.to_owned(),
            },
        )
        .await?;
    Ok(())
}
