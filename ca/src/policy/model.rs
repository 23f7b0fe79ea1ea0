//! The checked policy types: every value in them has passed `check.rs`.
//! Fields are visible to the policy module only; the rest of the CA reads
//! them through getters and cannot build or change them.

use std::time::Duration;

use super::values::Identity;

/// `[settings]`, checked: `0 < default_ttl <= max_ttl <= 24h`,
/// `clock_skew <= 10m`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(super) default_ttl: Duration,
    pub(super) max_ttl: Duration,
    pub(super) clock_skew: Duration,
    /// `host:port` of the bastion, when the policy names one.
    pub(super) bastion: Option<String>,
}

impl Settings {
    pub(super) const DEFAULT: Settings = Settings {
        default_ttl: Duration::from_secs(15 * 60),
        max_ttl: Duration::from_secs(3600),
        clock_skew: Duration::from_secs(60),
        bastion: None,
    };

    /// TTL of a certificate whose request names none (capped by the role).
    #[cfg(test)]
    pub(crate) fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// Longest TTL any role may grant.
    #[cfg(test)]
    pub(crate) fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// The bastion's `host:port`, for roles with `via_bastion`.
    pub(crate) fn bastion(&self) -> Option<&str> {
        self.bastion.as_deref()
    }

    /// How far certificates are backdated.
    #[cfg(test)]
    pub(crate) fn clock_skew(&self) -> Duration {
        self.clock_skew
    }
}

/// A `[[role]]`, checked. Principals are valid login names, `max_ttl` is at
/// most `settings.max_ttl`, every schedule in `require_on_call` exists,
/// extensions are known and sorted (OpenSSH wants them in lexical order).
#[derive(Clone, Debug)]
pub(crate) struct Role {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) principals: Vec<String>,
    /// Host patterns (`db-*.prod.example.com`) the role is meant for.
    pub(super) hosts: Vec<String>,
    pub(super) max_ttl: Duration,
    /// Longest bastion session.
    pub(super) max_session: Duration,
    /// A bastion session idle this long ends.
    pub(super) idle_timeout: Duration,
    /// Reached through the bastion (`ssh-config` writes `ProxyJump`).
    pub(super) via_bastion: bool,
    pub(super) require_on_call: Vec<String>,
    pub(super) require_incident: bool,
    /// The least severe incident level accepted (1 = sev1 only); any when None.
    pub(super) incident_severity: Option<u8>,
    pub(super) require_reason: bool,
    /// Emergency access: always needs a reason, and every use is flagged in
    /// the audit log and sent to the notification webhook.
    pub(super) break_glass: bool,
    /// Approvals a request needs from `approvers` (never the requester).
    pub(super) approvals: u8,
    pub(super) approvers: Vec<Identity>,
    pub(super) auto_approve: Option<AutoApprove>,
    pub(super) extensions: Vec<String>,
    pub(super) force_command: Option<String>,
    pub(super) source_address: Vec<String>,
    /// `file:line:col` of the role's header.
    pub(super) origin: String,
}

impl Role {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    pub(crate) fn description(&self) -> &str {
        &self.description
    }
    pub(crate) fn principals(&self) -> &[String] {
        &self.principals
    }
    pub(crate) fn hosts(&self) -> &[String] {
        &self.hosts
    }
    pub(crate) fn max_ttl(&self) -> Duration {
        self.max_ttl
    }
    pub(crate) fn max_session(&self) -> Duration {
        self.max_session
    }
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
    pub(crate) fn via_bastion(&self) -> bool {
        self.via_bastion
    }
    /// True when `host` matches one of the role's host patterns.
    pub(crate) fn covers_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|pattern| host_matches(pattern, host))
    }
    pub(crate) fn require_on_call(&self) -> &[String] {
        &self.require_on_call
    }
    pub(crate) fn require_incident(&self) -> bool {
        self.require_incident
    }
    pub(crate) fn incident_severity(&self) -> Option<u8> {
        self.incident_severity
    }
    pub(crate) fn require_reason(&self) -> bool {
        self.require_reason
    }
    pub(crate) fn extensions(&self) -> &[String] {
        &self.extensions
    }
    #[cfg(test)]
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }
}

/// A `[[grant]]`: these identities may request these roles.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(super) identities: Vec<Identity>,
    pub(super) roles: Vec<String>,
    pub(super) origin: String,
}

#[cfg(test)]
impl Grant {
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }
}

/// When a request that needs approvals is approved at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AutoApprove {
    /// The requester is on call for one of the role's `require_on_call`.
    pub(crate) on_call: bool,
    /// The named incident is open and at least this severe.
    pub(crate) incident_severity: Option<u8>,
}

/// OpenSSH-style host pattern: `*` matches any run of characters, `?` one;
/// case-insensitive, as host names are. Hand-written: it is the 20 lines
/// sshd's `match_pattern` is, and crates for globs match paths, not names.
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let host: Vec<char> = host.to_ascii_lowercase().chars().collect();
    let (mut p, mut h) = (0, 0);
    // Where the last `*` was, and how much of the host it has eaten.
    let mut star: Option<(usize, usize)> = None;
    while h < host.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, h));
                p += 1;
            }
            Some(&c) if c == '?' || Some(&c) == host.get(h) => {
                p += 1;
                h += 1;
            }
            _ => match star {
                Some((sp, sh)) => {
                    p = sp + 1;
                    h = sh + 1;
                    star = Some((sp, sh + 1));
                }
                None => return false,
            },
        }
    }
    pattern.iter().skip(p).all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::host_matches;

    #[test]
    fn host_patterns_match_like_openssh() {
        assert!(host_matches(
            "db-*.prod.example.com",
            "db-1.prod.example.com"
        ));
        assert!(host_matches(
            "db-*.prod.example.com",
            "DB-12.Prod.Example.com"
        ));
        assert!(!host_matches(
            "db-*.prod.example.com",
            "db-1.staging.example.com"
        ));
        assert!(!host_matches(
            "db-*.prod.example.com",
            "web-1.prod.example.com"
        ));
        assert!(!host_matches(
            "db-*.prod.example.com",
            "db-1.prod.example.com.evil"
        ));
        assert!(host_matches("*", "anything"));
        assert!(host_matches("db-?", "db-1"));
        assert!(!host_matches("db-?", "db-12"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("localhost", "localhost"));
    }
}
