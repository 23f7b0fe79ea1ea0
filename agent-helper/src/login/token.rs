//! The ID token the client holds between `shiftkey login` and the CA.

use std::fmt;

use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::Error;

/// A token this close to its expiry counts as expired: it would likely die
/// on the way to the CA.
const EXPIRY_MARGIN: TimeDelta = TimeDelta::seconds(30);
/// Larger JWTs are refused before decoding (real ID tokens are a few KiB).
pub(super) const MAX_TOKEN_LEN: usize = 64 * 1024;

/// An OIDC ID token and the two claims the client itself needs.
///
/// The client never relies on it for authorization: the CA verifies every
/// token it is sent. Tokens from a login are verified here too (signature,
/// issuer, audience, nonce); tokens read back from the cache or handed in
/// by CI are only parsed.
#[derive(Clone)]
pub(crate) struct IdToken {
    /// The compact JWT, zeroized on drop.
    pub(crate) raw: Zeroizing<String>,
    pub(crate) email: Option<String>,
    pub(crate) expires_at: DateTime<Utc>,
}

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdToken")
            .field("raw", &"<redacted>")
            .field("email", &self.email)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Deserialize)]
struct UnverifiedClaims {
    exp: i64,
    #[serde(default)]
    email: Option<String>,
}

impl IdToken {
    /// Reads `exp` and `email` from a JWT's payload **without verifying
    /// it** (for the cache, `--id-token-file` and `--id-token-env`: the CA
    /// verifies). Leading and trailing whitespace is ignored.
    pub(crate) fn parse_unverified(raw: &str) -> Result<Self, Error> {
        let raw = raw.trim();
        if raw.len() > MAX_TOKEN_LEN {
            return Err(Error::MalformedToken {
                reason: "longer than 64 KiB",
            });
        }
        let mut parts = raw.split('.');
        let (Some(_header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::MalformedToken {
                reason: "not three dot-separated parts",
            });
        };
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| Error::MalformedToken {
                reason: "payload is not base64url",
            })?;
        let payload = Zeroizing::new(payload);
        let claims: UnverifiedClaims =
            serde_json::from_slice(&payload).map_err(|_| Error::MalformedToken {
                reason: "payload is not a JSON object with a numeric `exp`",
            })?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or(Error::MalformedToken {
            reason: "`exp` is out of range",
        })?;
        Ok(Self {
            raw: Zeroizing::new(raw.to_owned()),
            email: claims.email,
            expires_at,
        })
    }

    /// The compact JWT, to send to the CA.
    pub(crate) fn secret(&self) -> &str {
        &self.raw
    }

    /// Whether the token is expired at `now`, or about to be (30 s margin).
    pub(crate) fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now + EXPIRY_MARGIN >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(payload))
    }

    #[test]
    fn parses_exp_and_email_without_verifying() -> Result<(), Error> {
        let token = IdToken::parse_unverified(&format!(
            " {}\n",
            jwt(r#"{"exp":2000000000,"email":"a@example.com","sub":"a"}"#)
        ))?;
        assert_eq!(token.email.as_deref(), Some("a@example.com"));
        assert_eq!(token.expires_at.timestamp(), 2_000_000_000);
        assert!(!token.secret().ends_with('\n'));
        Ok(())
    }

    #[test]
    fn refuses_malformed_tokens() {
        for bad in [
            String::new(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            "a.!!!.c".to_owned(),
            jwt(r#"{"email":"no-exp@example.com"}"#),
            jwt(r#"{"exp":"soon"}"#),
            jwt(r#"{"exp":99999999999999999}"#),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(
                matches!(
                    IdToken::parse_unverified(&bad),
                    Err(Error::MalformedToken { .. })
                ),
                "{bad:.40}"
            );
        }
    }

    #[test]
    fn debug_redacts_the_jwt() -> Result<(), Error> {
        let raw = jwt(r#"{"exp":2000000000}"#);
        let token = IdToken::parse_unverified(&raw)?;
        let shown = format!("{token:?}");
        assert!(!shown.contains(&raw), "{shown}");
        assert!(shown.contains("<redacted>"));
        Ok(())
    }

    #[test]
    fn expiry_has_a_margin() -> Result<(), Error> {
        let token = IdToken::parse_unverified(&jwt(r#"{"exp":1000}"#))?;
        let at = |secs| DateTime::from_timestamp(secs, 0).unwrap_or_default();
        assert!(!token.is_expired_at(at(900)));
        assert!(token.is_expired_at(at(975)));
        assert!(token.is_expired_at(at(1000)));
        Ok(())
    }
}
