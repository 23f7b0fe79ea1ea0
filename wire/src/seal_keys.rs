//! The user CA keys a recording's seal verifies with (`GET
//! /v1/ca/seal-keys`, an export's `ca.pub`): every key the CA has signed
//! with, retired ones too, and where each stands.

use serde::{Deserialize, Serialize};

/// `GET /v1/ca/seal-keys`: every user CA key the CA has signed with, so
/// that a recording sealed under a key since retired still verifies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealKeys {
    /// Active first, then next, previous and retired.
    pub keys: Vec<SealKey>,
}

/// One user CA key and where it is in its rotation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealKey {
    /// OpenSSH public key line, no comment.
    pub key: String,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// `next`, `active`, `previous` or `retired`.
    pub state: String,
    /// Unix seconds, for a retired key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
    /// Retired in an emergency (suspected leaked): a seal it made after
    /// `retired_at` is refused, one made before is shown with a warning.
    pub emergency: bool,
}

/// Prefix of the comment a seal key's line carries in an export's
/// `ca.pub`: `shiftkey-seal:STATE`, or `shiftkey-seal:retired:emergency:UNIX`.
const SEAL_KEY_COMMENT: &str = "shiftkey-seal:";

/// Where a seal key stands, as its `ca.pub` comment says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKeyStanding {
    /// The line says nothing (a key from `/v1/ca/user.pub`): as trusted as
    /// its source.
    Unstated,
    /// Active, next, previous or retired in a planned rotation.
    Good(&'static str),
    /// Retired in an emergency at this unix time.
    Emergency(i64),
}

impl SealKey {
    /// The `ca.pub` line: the key, its standing as the comment.
    pub fn line(&self) -> String {
        if self.emergency {
            // No time recorded: 0, everything it signed refused.
            let at = self.retired_at.unwrap_or(0);
            format!("{} {SEAL_KEY_COMMENT}retired:emergency:{at}", self.key)
        } else {
            format!("{} {SEAL_KEY_COMMENT}{}", self.key, self.state)
        }
    }
}

impl SealKeyStanding {
    /// Reads a key line's comment. An emergency comment that does not parse
    /// is taken as retired in an emergency at time 0 (everything refused):
    /// fail closed.
    pub fn of(comment: &str) -> Self {
        let Some(rest) = comment.trim().strip_prefix(SEAL_KEY_COMMENT) else {
            return Self::Unstated;
        };
        if let Some(at) = rest.strip_prefix("retired:emergency") {
            return Self::Emergency(
                at.strip_prefix(':')
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
            );
        }
        match rest {
            "active" => Self::Good("active"),
            "next" => Self::Good("next"),
            "previous" => Self::Good("previous"),
            "retired" => Self::Good("retired"),
            _ => Self::Unstated,
        }
    }

    /// Words for `recordings verify`.
    pub fn describe(self) -> String {
        match self {
            Self::Unstated => "state not stated".to_owned(),
            Self::Good(state) => state.to_owned(),
            Self::Emergency(at) => format!("RETIRED IN AN EMERGENCY at unix time {at}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SealKey, SealKeyStanding};

    fn key(state: &str, retired_at: Option<i64>, emergency: bool) -> SealKey {
        SealKey {
            key: "ssh-ed25519 AAAA".into(),
            fingerprint: "SHA256:x".into(),
            state: state.into(),
            retired_at,
            emergency,
        }
    }

    fn standing(key: &SealKey) -> SealKeyStanding {
        let line = key.line();
        let comment = line.splitn(3, ' ').nth(2).unwrap_or_default();
        SealKeyStanding::of(comment)
    }

    #[test]
    fn a_line_says_its_keys_standing() {
        assert_eq!(
            standing(&key("active", None, false)),
            SealKeyStanding::Good("active")
        );
        assert_eq!(
            standing(&key("retired", Some(5), false)),
            SealKeyStanding::Good("retired")
        );
        assert_eq!(
            standing(&key("retired", Some(5), true)),
            SealKeyStanding::Emergency(5)
        );
        assert_eq!(SealKeyStanding::of(""), SealKeyStanding::Unstated);
        assert_eq!(
            SealKeyStanding::of("alice@laptop"),
            SealKeyStanding::Unstated
        );
    }

    #[test]
    fn an_emergency_without_a_time_refuses_everything() {
        assert_eq!(
            standing(&key("retired", None, true)),
            SealKeyStanding::Emergency(0)
        );
        assert_eq!(
            SealKeyStanding::of("shiftkey-seal:retired:emergency:soon"),
            SealKeyStanding::Emergency(0)
        );
        assert_eq!(
            SealKeyStanding::of("shiftkey-seal:retired:emergency"),
            SealKeyStanding::Emergency(0)
        );
    }
}
