//! The time as the CA writes it into rows and certificates.

use chrono::{SecondsFormat, Utc};

/// Now, RFC 3339 to the second (`2026-11-25T08:00:00Z`).
pub(crate) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Now, unix seconds.
pub(crate) fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}
