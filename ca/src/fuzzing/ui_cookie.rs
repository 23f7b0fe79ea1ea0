//! UI cookie targets (`crate::ui`): the signed sign-in cookie
//! (`__Secure-shiftkey-login`, state, nonce and PKCE verifier of a sign-in
//! under way) and the session cookie (`__Secure-shiftkey-ui`, a random
//! token whose SHA-256 names a row in the store).
//!
//! Properties: a sign-in cookie opens only when it is exactly what we
//! sealed (whatever the input, an accepted cookie re-seals to itself: no
//! forgery, no second spelling of ours); one we seal from the input's
//! fields opens back to the same sign-in before it expires, is refused as
//! expired from its expiry on, and is refused once truncated or with any
//! one byte changed. A session cookie value finds a session only when it
//! is the value the CA handed out (replayed against a real SQLite store by
//! [`ui_session_cookies`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Reader;
use crate::identity::Caller;
use crate::store::Access;
use crate::ui::{LoginKey, LoginRefused, PendingLogin};
use crate::web_sessions::WebSessions;

/// A fixed key (nothing trusts it) and a second one, a stranger's.
fn key(byte: u8) -> LoginKey {
    LoginKey::from_bytes([byte; 32])
}

/// The fuzz entry point. First byte even: the rest is a cookie value a
/// browser sent; odd: the rest gives the fields of a sign-in we seal.
pub fn ui_cookie(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        presented(rest);
    } else {
        ours(rest, selector);
    }
}

fn presented(data: &[u8]) {
    let Ok(cookie) = std::str::from_utf8(data) else {
        return;
    };
    let now = 1_800_000_000;
    if let Ok(login) = PendingLogin::open(cookie, &key(7), now) {
        assert_eq!(
            login.seal(&key(7)),
            cookie,
            "a cookie we did not seal opens as {login:?}"
        );
        assert!(login.expires > now);
    }
    assert!(
        PendingLogin::open(cookie, &key(8), now).is_err()
            || PendingLogin::open(cookie, &key(7), now).is_err(),
        "one cookie opens under two keys"
    );
}

fn ours(data: &[u8], selector: u8) {
    let mut r = Reader(data);
    let mut field = || {
        let len = usize::from(r.u8().unwrap_or(0) % 64);
        r.take(len)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let (state, nonce, verifier, next) = (field(), field(), field(), field());
    let expires = i64::from_be_bytes(
        r.take(8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0, 0, 0, 0, 0x6b, 0x49, 0xd2, 0x00]),
    );
    let login = PendingLogin {
        state,
        nonce,
        verifier,
        next,
        expires,
    };
    let sealed = login.seal(&key(7));
    if let Some(before) = expires.checked_sub(1) {
        assert_eq!(
            PendingLogin::open(&sealed, &key(7), before).as_ref(),
            Ok(&login)
        );
    }
    assert_eq!(
        PendingLogin::open(&sealed, &key(7), expires),
        Err(LoginRefused::Expired)
    );
    let early = expires.saturating_sub(1);
    assert!(
        PendingLogin::open(&sealed, &key(8), early).is_err(),
        "a stranger's key opens ours"
    );
    let at = usize::from(selector) * 7 % sealed.len().max(1);
    if let Some(cut) = sealed.get(..at) {
        assert!(
            PendingLogin::open(cut, &key(7), early).is_err(),
            "truncated at {at}"
        );
    }
    let mut changed = sealed.clone().into_bytes();
    if let Some(byte) = changed.get_mut(at) {
        *byte = if *byte == b'A' { b'B' } else { b'A' };
    }
    if let Ok(changed) = String::from_utf8(changed)
        && changed != sealed
    {
        assert!(
            PendingLogin::open(&changed, &key(7), early).is_err(),
            "one byte changed at {at} still opens"
        );
    }
}

/// Session cookies against a real store in `dir`: the value the CA hands
/// out finds its session; each of `presented` (the corpus) finds nothing.
pub fn ui_session_cookies(dir: &Path, presented: &[Vec<u8>]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"));
    runtime.block_on(async {
        let store = crate::store::open_sqlite(&dir.join("shiftkey.db"), Access::ReadWrite)
            .unwrap_or_else(|e| panic!("the store: {e}"));
        let sessions = WebSessions::new(Arc::clone(&store));
        let Some(caller) = Caller::user("alice@example.com", vec!["sre".into()]) else {
            panic!("a caller");
        };
        let value = sessions
            .start(&caller, Duration::from_secs(3600))
            .await
            .unwrap_or_else(|e| panic!("a session: {e}"));
        let found = sessions
            .find(value.expose())
            .await
            .unwrap_or_else(|e| panic!("find: {e}"));
        assert!(found.is_some_and(|s| s.caller == Some(caller.clone())));
        for cookie in presented {
            let text = String::from_utf8_lossy(cookie);
            let found = sessions
                .find(&text)
                .await
                .unwrap_or_else(|e| panic!("find: {e}"));
            assert!(found.is_none(), "the cookie {text:?} finds a session");
            // Truncated or extended, ours finds nothing either.
            for forged in [
                value
                    .expose()
                    .get(..value.expose().len() - 1)
                    .unwrap_or_default()
                    .to_owned(),
                format!("{}{text}", value.expose()),
            ] {
                let found = sessions
                    .find(&forged)
                    .await
                    .unwrap_or_else(|e| panic!("find: {e}"));
                assert!(found.is_none(), "the cookie {forged:?} finds a session");
            }
        }
    });
}

/// Cookies as browsers send them back, ours and forged.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let login = PendingLogin {
        state: "k2v8Qm1x".into(),
        nonce: "n0nce-9f3".into(),
        verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        next: "/ui/requests".into(),
        expires: 1_900_000_000,
    };
    let sealed = login.seal(&key(7));
    let mut out = vec![
        [b"\0".as_slice(), sealed.as_bytes()].concat(),
        [b"\0".as_slice(), login.seal(&key(8)).as_bytes()].concat(),
        [
            b"\0".as_slice(),
            sealed
                .get(..sealed.len() / 2)
                .unwrap_or_default()
                .as_bytes(),
        ]
        .concat(),
        b"\0eyJzdGF0ZSI6IngifQ.AAAA".to_vec(),
        b"\0Zm9v.YmFy".to_vec(),
    ];
    out.push(
        [
            &[1u8, 8][..],
            b"k2v8Qm1x",
            &[5],
            b"nonce",
            &[3],
            b"pkc",
            &[4],
            b"/ui/",
            &[0, 0, 0, 0, 0x6b, 0x49, 0xd2, 0x00],
        ]
        .concat(),
    );
    out.push([&[3u8, 0, 0, 0, 0][..], &[0x80, 0, 0, 0, 0, 0, 0, 0]].concat());
    out
}
