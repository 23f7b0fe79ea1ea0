//! Review UI sessions: a random value in the browser's cookie, the rest in
//! the store under the value's SHA-256, so any replica serves a signed-in
//! reviewer and a copy of the store signs nobody in.
//!
//! Never: keep a session's value in the clear; let a session outlive its
//! time or an hour without use.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::identity::Caller;
use crate::secret::Secret;
use crate::store::{self, Store, UiSession};

/// A session nobody used for this long ends, whatever its own time says.
pub(crate) const IDLE_TTL: Duration = Duration::from_secs(60 * 60);
/// `last_seen` is written at most this often (a write per page view would
/// cost a commit each).
const TOUCH_EVERY_SECS: i64 = 60;

/// The sessions could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot keep review UI sessions: {0}")]
pub(crate) struct Error(#[from] store::Error);

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebSession {
    /// Who signed in: an OIDC user (with the groups of the ID token), or a
    /// user of the CA's host by a one-time link. `None` when the stored
    /// email no longer makes an identity.
    pub(crate) caller: Option<Caller>,
    /// The form token of this session.
    pub(crate) csrf: String,
}

/// 32 random bytes, base64url.
pub(crate) fn random_token() -> String {
    use ssh_key::rand_core::Rng;
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    crate::keys::rng().fill_bytes(bytes.as_mut());
    URL_SAFE_NO_PAD.encode(bytes.as_ref())
}

/// Hex SHA-256 of a token: what the store keeps instead of it.
pub(crate) fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

#[derive(Debug)]
pub(crate) struct WebSessions {
    store: Arc<dyn Store>,
}

impl WebSessions {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Starts a session for `ttl`; returns the cookie's value (shown once).
    /// Only users and local users sign in; a webhook never does.
    pub(crate) async fn start(&self, caller: &Caller, ttl: Duration) -> Result<Secret, Error> {
        let (email, local_uid, groups) = match caller {
            Caller::User { email, groups } => (email.clone(), None, groups.clone()),
            Caller::Local { user, uid } => (user.clone(), Some(*uid), Vec::new()),
            Caller::Webhook { .. } => {
                return Err(Error(store::Error::Failed(
                    "a webhook cannot sign in to the review UI".into(),
                )));
            }
        };
        let value = random_token();
        let now = Utc::now().timestamp();
        self.store
            .create_ui_session(UiSession {
                id_hash: digest(&value),
                email,
                local_uid,
                groups,
                csrf: random_token(),
                created_at: now,
                expires_at: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
                last_seen: now,
            })
            .await?;
        Ok(Secret::new(value))
    }

    /// The live session the cookie's `value` names; an expired or idle one
    /// ends here.
    pub(crate) async fn find(&self, value: &str) -> Result<Option<WebSession>, Error> {
        let key = digest(value);
        let Some(found) = self.store.ui_session(&key).await? else {
            return Ok(None);
        };
        let now = Utc::now().timestamp();
        let idle = i64::try_from(IDLE_TTL.as_secs()).unwrap_or(3600);
        if now >= found.expires_at || now - found.last_seen >= idle {
            self.store.delete_ui_session(&key).await?;
            return Ok(None);
        }
        if now - found.last_seen >= TOUCH_EVERY_SECS {
            self.store.touch_ui_session(&key, now).await?;
        }
        let caller = match found.local_uid {
            Some(uid) => Some(Caller::Local {
                user: found.email,
                uid,
            }),
            None => Caller::user(&found.email, found.groups),
        };
        Ok(Some(WebSession {
            caller,
            csrf: found.csrf,
        }))
    }

    /// Uses the one-time sign-in link whose token has this SHA-256.
    pub(crate) async fn redeem_link(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<store::Redeemed, Error> {
        Ok(self.store.redeem_ui_link(token_hash, now).await?)
    }

    pub(crate) async fn end(&self, value: &str) -> Result<(), Error> {
        Ok(self.store.delete_ui_session(&digest(value)).await?)
    }
}
