//! The checked policy types: every value in them has passed `check.rs`.
//! Fields are visible to the policy module only; the rest of the CA reads
//! them through getters and cannot build or change them.

use std::time::Duration;

use super::identity::Identity;
use super::targets::{HostPattern, Target, canonical_host};

/// `[settings]`, checked: `0 < default_ttl <= max_ttl <= 24h`,
/// `clock_skew <= 10m`, `0 < max_override <= 31d`,
/// `0 < approval_ttl <= 24h`, `0 < pending_ttl <= 7d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(super) default_ttl: Duration,
    pub(super) max_ttl: Duration,
    pub(super) clock_skew: Duration,
    /// `host:port` of the bastion, when the policy names one.
    pub(super) bastion: Option<String>,
    /// Longest on-call override (default 24h).
    pub(super) max_override: Duration,
    /// An approved request not used within this expires (default 1h).
    pub(super) approval_ttl: Duration,
    /// A request still waiting for approvals after this expires (default 24h).
    pub(super) pending_ttl: Duration,
}

impl Settings {
    pub(super) const DEFAULT: Settings = Settings {
        default_ttl: Duration::from_secs(15 * 60),
        max_ttl: Duration::from_secs(3600),
        clock_skew: Duration::from_secs(60),
        bastion: None,
        max_override: Duration::from_secs(24 * 3600),
        approval_ttl: Duration::from_secs(3600),
        pending_ttl: Duration::from_secs(24 * 3600),
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

    /// Longest on-call override anyone may create or leave in force.
    #[cfg(test)]
    pub(crate) fn max_override(&self) -> Duration {
        self.max_override
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
    /// Checked `hosts`, in the order written.
    pub(super) patterns: Vec<HostPattern>,
    /// Ports on the role's hosts; `[22]` unless the role says.
    pub(super) ports: Vec<u16>,
    /// Certificates carry the bare logins too (for hosts not enrolled).
    pub(super) bare_principals: bool,
    /// Conditions the requester's own actions may satisfy.
    pub(super) self_served: Vec<Fact>,
    pub(super) approval_ttl: Duration,
    pub(super) pending_ttl: Duration,
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
    /// True when `host` (any spelling; see `targets.rs`) matches one of
    /// the role's host patterns.
    pub(crate) fn covers_host(&self, host: &str) -> bool {
        canonical_host(host).is_ok_and(|target| self.covers(&target))
    }
    pub(super) fn covers(&self, target: &Target) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(target))
    }
    /// Ports the role's hosts may be reached on.
    pub(crate) fn ports(&self) -> &[u16] {
        &self.ports
    }
    #[cfg(test)]
    pub(crate) fn bare_principals(&self) -> bool {
        self.bare_principals
    }
    /// How long an approved request for this role may wait to be used.
    pub(crate) fn approval_ttl(&self) -> Duration {
        self.approval_ttl
    }
    /// How long a request for this role may wait for approvals.
    pub(crate) fn pending_ttl(&self) -> Duration {
        self.pending_ttl
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

/// A condition a requester could bring about themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fact {
    /// The incident the request names.
    Incident,
    /// The shift that makes the requester on call.
    OnCall,
}

impl Fact {
    pub(crate) fn parse(text: &str) -> Result<Fact, String> {
        match text {
            "incident" => Ok(Fact::Incident),
            "on_call" => Ok(Fact::OnCall),
            other => Err(format!(
                "self_served: {other:?} is not a condition; use \"incident\" or \"on_call\""
            )),
        }
    }
}
