//! Remembering tokens that verified, so a client that sends the same ID
//! token again does not cost another signature check.
//!
//! Safe because a JWT is immutable: the same bytes verify the same way
//! against the same keys until the token expires. An entry is only used while
//! the key set it was verified against is still the current one (a JWKS
//! refetch, e.g. after a key was withdrawn, empties the cache in effect) and
//! only before the token's `exp`. Refusals are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{KeySet, VerifiedToken};

/// Upper bound on remembered tokens (one active user holds one).
const MAX_ENTRIES: usize = 16 * 1024;

#[derive(Debug, Default)]
pub(super) struct VerifiedCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

#[derive(Debug)]
struct Entry {
    token: VerifiedToken,
    keys: Arc<KeySet>,
}

fn digest(raw: &str) -> [u8; 32] {
    Sha256::digest(raw.as_bytes()).into()
}

impl VerifiedCache {
    /// The remembered result for `raw`, if it was verified against `keys`
    /// (the current key set) and has not expired at `now`.
    pub(super) fn get(
        &self,
        raw: &str,
        keys: &Arc<KeySet>,
        now: DateTime<Utc>,
    ) -> Option<VerifiedToken> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(&digest(raw))?;
        (Arc::ptr_eq(&entry.keys, keys) && now < entry.token.expires_at)
            .then(|| entry.token.clone())
    }

    /// Remembers a token that verified against `keys`.
    pub(super) fn put(
        &self,
        raw: &str,
        keys: Arc<KeySet>,
        token: VerifiedToken,
        now: DateTime<Utc>,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now < e.token.expires_at && Arc::ptr_eq(&e.keys, &keys));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(digest(raw), Entry { token, keys });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openidconnect::core::CoreJsonWebKeySet;
    use std::time::Instant;

    fn keys() -> Arc<KeySet> {
        Arc::new(KeySet {
            keys: CoreJsonWebKeySet::new(vec![]),
            fetched_at: Instant::now(),
        })
    }

    fn token(expires_at: DateTime<Utc>) -> VerifiedToken {
        VerifiedToken {
            subject: "s".into(),
            email: "a@example.com".into(),
            groups: vec![],
            expires_at,
        }
    }

    #[test]
    fn hits_only_for_the_same_bytes_keys_and_before_expiry() {
        let cache = VerifiedCache::default();
        let now = Utc::now();
        let exp = now + chrono::Duration::minutes(5);
        let current = keys();
        cache.put("header.claims.sig", Arc::clone(&current), token(exp), now);
        assert_eq!(
            cache.get("header.claims.sig", &current, now),
            Some(token(exp))
        );
        assert_eq!(
            cache.get("header.claims.sig2", &current, now),
            None,
            "other bytes"
        );
        assert_eq!(
            cache.get("header.claims.sig", &keys(), now),
            None,
            "after a JWKS refetch"
        );
        assert_eq!(
            cache.get("header.claims.sig", &current, exp),
            None,
            "at expiry"
        );
    }
}
