//! Denials: a stable code and a message that says what was wrong and what
//! to do next, for access requests ([`super::Policy::evaluate`]), targets
//! ([`super::Policy::check_target`]) and powers
//! ([`super::Policy::authorize`]) alike.

use std::fmt;

/// Why a request was denied; stable names for logs, tests and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DenyCode {
    UnknownRole,
    NotGranted,
    PrincipalNotInRole,
    InvalidTtl,
    TtlAboveMax,
    IncidentRequired,
    IncidentUnknown,
    IncidentResolved,
    IncidentNotSevere,
    ApprovalRequired,
    ReasonRequired,
    NotOnCall,
    /// A condition counted only because the requester brought it about
    /// (their own incident or override), which the role does not accept.
    SelfServed,
    /// The target host matches none of the role's host patterns.
    HostNotInRole,
    /// The target port is not in the role's `ports`.
    PortNotInRole,
    /// No admin entry and no `[[authority]]` entry allows this power.
    NotAuthorized,
    /// Approving one's own request (from any identity of the same person).
    SelfApproval,
    /// An override longer than `settings.max_override`.
    OverrideTooLong,
    /// An override that ends before it starts, is over, or names no one
    /// who can be on call.
    OverrideInvalid,
    UnknownSchedule,
    /// An operator locked the identity out (`shiftkey-ca lock`): no
    /// certificate and no power. For access, decided by the CA before the
    /// policy is asked; for powers, by [`super::Policy::authorize`].
    IdentityLocked,
}

impl DenyCode {
    /// The codes the policy itself decides (what `[[test]]` may expect).
    pub(crate) const ALL: [DenyCode; 21] = [
        DenyCode::UnknownRole,
        DenyCode::NotGranted,
        DenyCode::PrincipalNotInRole,
        DenyCode::InvalidTtl,
        DenyCode::TtlAboveMax,
        DenyCode::IncidentRequired,
        DenyCode::IncidentUnknown,
        DenyCode::IncidentResolved,
        DenyCode::IncidentNotSevere,
        DenyCode::ApprovalRequired,
        DenyCode::ReasonRequired,
        DenyCode::NotOnCall,
        DenyCode::SelfServed,
        DenyCode::HostNotInRole,
        DenyCode::PortNotInRole,
        DenyCode::NotAuthorized,
        DenyCode::SelfApproval,
        DenyCode::OverrideTooLong,
        DenyCode::OverrideInvalid,
        DenyCode::UnknownSchedule,
        DenyCode::IdentityLocked,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DenyCode::UnknownRole => "unknown-role",
            DenyCode::NotGranted => "not-granted",
            DenyCode::PrincipalNotInRole => "principal-not-in-role",
            DenyCode::InvalidTtl => "invalid-ttl",
            DenyCode::TtlAboveMax => "ttl-above-max",
            DenyCode::IncidentRequired => "incident-required",
            DenyCode::IncidentUnknown => "incident-unknown",
            DenyCode::IncidentResolved => "incident-resolved",
            DenyCode::IncidentNotSevere => "incident-not-severe",
            DenyCode::ApprovalRequired => "approval-required",
            DenyCode::ReasonRequired => "reason-required",
            DenyCode::NotOnCall => "not-on-call",
            DenyCode::SelfServed => "self-served",
            DenyCode::HostNotInRole => "host-not-in-role",
            DenyCode::PortNotInRole => "port-not-in-role",
            DenyCode::NotAuthorized => "not-authorized",
            DenyCode::SelfApproval => "self-approval",
            DenyCode::OverrideTooLong => "override-too-long",
            DenyCode::OverrideInvalid => "override-invalid",
            DenyCode::UnknownSchedule => "unknown-schedule",
            DenyCode::IdentityLocked => "identity-locked",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<DenyCode> {
        DenyCode::ALL.into_iter().find(|code| code.as_str() == text)
    }
}

impl fmt::Display for DenyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A denial: `message` says what was wrong and what to do next.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("denied ({code}): {message}")]
pub(crate) struct Denied {
    pub(crate) code: DenyCode,
    pub(crate) message: String,
}

impl Denied {
    pub(super) fn new(code: DenyCode, message: String) -> Denied {
        Denied { code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::DenyCode;

    #[test]
    fn every_code_parses_back() {
        for code in DenyCode::ALL {
            assert_eq!(DenyCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(DenyCode::parse("nope"), None);
    }
}
