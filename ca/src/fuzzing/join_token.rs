//! Join token target (`crate::hosts`): the token text a host presents to
//! `POST /v1/hosts/enroll` before anything is looked up. Properties: the ID
//! the audit row names is either absent or exactly the shape the CA makes
//! (`jt_` and 12 lower-case hex digits), so no text of the caller's choosing
//! reaches the audit log; the stored hash ignores surrounding whitespace
//! only.

use std::time::Duration;

use crate::hosts::{HostKind, new_token, token_hash, token_id};

/// The fuzz entry point: the input as the `token` field of the request.
pub fn join_token(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(id) = token_id(token) {
        let hex = id.strip_prefix("jt_").unwrap_or_default();
        assert!(
            hex.len() == 12
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "token {token:?} names the ID {id:?} in the audit log"
        );
    }
    let hash = token_hash(token);
    assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(hash, token_hash(token.trim()));
}

/// A token the CA makes reads back to its own ID and hash (checked once by
/// the replay test; it draws from the system RNG).
pub fn join_token_made_by_the_ca_reads_back() {
    let made = new_token(
        "db-1",
        vec!["db-1.prod".into()],
        HostKind::Host,
        Duration::from_secs(60),
        "fuzz".into(),
    )
    .unwrap_or_else(|e| panic!("cannot make a join token: {e}"));
    assert_eq!(token_id(&made.token), Some(made.stored.id.as_str()));
    assert_eq!(token_hash(&made.token), made.stored.token_hash);
    join_token(made.token.as_bytes());
}

/// Tokens as `shiftkey-ca hosts token` prints them, and near misses.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    [
        "skjt1.jt_3f9a0c1d2e4b.9c2f4e6a8b0d1f3e5a7c9e1b3d5f7a9c2e4f6a8b0d1f3e5a7c9e1b3d5f7a9c2e4f",
        "  skjt1.jt_000000000000.0000000000000000000000000000000000000000000000000000000000000000\n",
        "skjt1.jt_3f9a0c1d2e4b",
        "skjt0.jt_3f9a0c1d2e4b.00",
    ]
    .into_iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}
