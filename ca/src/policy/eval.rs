//! The access decision: may this identity have this role now, and if so,
//! what exactly goes into the certificate.
//!
//! [`Allowed`] is the proof of an allow decision. Only this file can build
//! one, so code that signs a certificate from an `Allowed` knows every check
//! below has passed. Nothing here panics; arithmetic that could overflow
//! falls back to an already-expired validity (fail closed).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::Policy;
use super::denied::{Denied, DenyCode};
use super::identity::Identity;
use super::model::{Grant, Role};
#[cfg(test)]
use super::schedule::Shift;
use super::targets::scoped_principal;
use super::values::{HARD_MAX_TTL, format_duration};

/// Minimum length of a reason, in non-whitespace characters.
pub(crate) const MIN_REASON_CHARS: usize = 10;

/// What a requester asks for.
#[derive(Clone, Debug)]
pub(crate) struct AccessQuery<'a> {
    /// `user:EMAIL` or `local:USER`.
    pub(crate) identity: &'a str,
    /// Group names from the identity provider, without the `group:` prefix.
    pub(crate) groups: &'a [String],
    pub(crate) role: &'a str,
    pub(crate) incident: Option<&'a str>,
    /// What the CA's store knows of `incident`; `None` when it was not
    /// looked up, which counts as unknown (fail closed).
    pub(crate) incident_state: Option<IncidentState>,
    /// Identities that approved this request (checked with
    /// [`Policy::authorize`] when they approved); no identity of the
    /// requester's person counts, and each person counts once.
    pub(crate) approved_by: &'a [String],
    /// On-call overrides in force (covers and swaps set through the API).
    pub(crate) overrides: &'a [super::Override],
    pub(crate) reason: Option<&'a str>,
    /// None: the default TTL, capped by the role's maximum.
    pub(crate) ttl: Option<Duration>,
    /// A subset of the role's principals; None or empty: all of them.
    pub(crate) principals: Option<&'a [String]>,
    pub(crate) at: DateTime<Utc>,
}

/// An incident as the policy needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IncidentState {
    /// Open, with its severity: 1 (sev1, the worst) to 4, and who opened
    /// it (`user:`, `local:`, `webhook:`), to tell an independent incident
    /// from one the requester opened themselves.
    Open {
        severity: u8,
        opened_by: String,
    },
    Resolved,
    Unknown,
}

/// What ended the certificate's validity where it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    RequestedTtl,
    DefaultTtl,
    RoleMaxTtl,
    ShiftEnd,
    HardCap,
}

impl Limit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Limit::RequestedTtl => "requested-ttl",
            Limit::DefaultTtl => "default-ttl",
            Limit::RoleMaxTtl => "role-max-ttl",
            Limit::ShiftEnd => "shift-end",
            Limit::HardCap => "hard-cap",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Proof of an allow decision and the certificate it permits. Only
/// `Policy::evaluate` builds one (the `_proof` field is private); fields are
/// read through getters so nobody can widen a decision after the fact.
#[derive(Clone, Debug)]
pub(crate) struct Allowed {
    role: String,
    principals: Vec<String>,
    logins: Vec<String>,
    valid_after: DateTime<Utc>,
    valid_before: DateTime<Utc>,
    extensions: Vec<String>,
    critical_options: Vec<(String, String)>,
    limited_by: Limit,
    /// The role is a break-glass role: the CA flags and announces its use.
    break_glass: bool,
    #[cfg(test)]
    shift: Option<Shift>,
    #[cfg(test)]
    incident: Option<String>,
    #[cfg(test)]
    reason: Option<String>,
    _proof: (),
}

impl Allowed {
    #[cfg(test)]
    pub(crate) fn role(&self) -> &str {
        &self.role
    }
    /// What the certificate carries: `LOGIN@ROLE` for each login, then the
    /// bare logins when the role has `bare_principals`. Never empty (an
    /// OpenSSH certificate without principals is valid for any login).
    pub(crate) fn principals(&self) -> &[String] {
        &self.principals
    }
    /// The login names granted (what users pass to `ssh -l`).
    pub(crate) fn logins(&self) -> &[String] {
        &self.logins
    }
    /// The request time minus `settings.clock_skew`.
    pub(crate) fn valid_after(&self) -> DateTime<Utc> {
        self.valid_after
    }
    pub(crate) fn valid_before(&self) -> DateTime<Utc> {
        self.valid_before
    }
    /// Sorted, ready for the certificate.
    pub(crate) fn extensions(&self) -> &[String] {
        &self.extensions
    }
    /// `force-command` and `source-address` (comma-joined), sorted by name.
    pub(crate) fn critical_options(&self) -> &[(String, String)] {
        &self.critical_options
    }
    pub(crate) fn limited_by(&self) -> Limit {
        self.limited_by
    }
    pub(crate) fn break_glass(&self) -> bool {
        self.break_glass
    }
    /// The shift that made the requester eligible, when the role requires
    /// being on call.
    #[cfg(test)]
    pub(crate) fn shift(&self) -> Option<&Shift> {
        self.shift.as_ref()
    }
    #[cfg(test)]
    pub(crate) fn incident(&self) -> Option<&str> {
        self.incident.as_deref()
    }
    #[cfg(test)]
    pub(crate) fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

/// The steps of one decision, for `policy explain`, and the first denial.
#[derive(Debug, Default)]
pub(super) struct Trace {
    steps: Vec<String>,
    denial: Option<Denied>,
}

impl Trace {
    pub(super) fn pass(&mut self, step: String) {
        self.steps.push(format!("ok    {step}"));
    }

    pub(super) fn fail(&mut self, denied: Denied) {
        self.steps
            .push(format!("FAIL  {}: {}", denied.code, denied.message));
        if self.denial.is_none() {
            self.denial = Some(denied);
        }
    }
}

impl Policy {
    /// Decides a request. Checks run in this order and the first failure
    /// is the answer: role exists, granted, principals, TTL, incident,
    /// reason, on call.
    pub(crate) fn evaluate(&self, q: &AccessQuery<'_>) -> Result<Allowed, Denied> {
        self.decide(q, &mut Trace::default())
    }

    /// Every step of the decision in words, ending with the decision. Unlike
    /// `evaluate`, it goes on past the first failure to show all of them.
    pub(crate) fn explain(&self, q: &AccessQuery<'_>) -> Vec<String> {
        let mut trace = Trace::default();
        let decision = self.decide(q, &mut trace);
        let mut steps = trace.steps;
        steps.push(match decision {
            Ok(allowed) => format!(
                "ALLOW role {:?} as {} from {} until {} (limited by {})",
                allowed.role,
                allowed.principals.join(","),
                allowed.valid_after.to_rfc3339(),
                allowed.valid_before.to_rfc3339(),
                allowed.limited_by
            ),
            Err(denied) => format!("DENY  {}: {}", denied.code, denied.message),
        });
        steps
    }

    fn decide(&self, q: &AccessQuery<'_>, trace: &mut Trace) -> Result<Allowed, Denied> {
        let Some(role) = self.roles.iter().find(|r| r.name == q.role) else {
            // Name only the roles this requester holds: the policy's other
            // roles are none of their business.
            let yours: Vec<&str> = self
                .granted_roles(q.identity, q.groups)
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            let choice = if yours.is_empty() {
                "you hold no roles; ask a policy owner for a grant".to_owned()
            } else {
                format!("your roles: {}", yours.join(", "))
            };
            let denied = Denied::new(
                DenyCode::UnknownRole,
                format!("there is no role {:?}; {choice}", q.role),
            );
            trace.fail(denied.clone());
            return Err(denied);
        };
        trace.pass(format!("role {:?} defined at {}", role.name, role.origin));

        let subject = Identity::parse_subject(q.identity)
            .ok()
            .filter(Identity::is_human);
        self.check_grant(role, q, subject.as_ref(), trace);
        let logins = check_principals(role, q, trace);
        let (ttl, ttl_limit) = self.check_ttl(role, q, trace);
        let incident = self.check_incident(role, q, subject.as_ref(), trace);
        check_reason(role, q, trace);
        let shift = self.check_on_call(role, q, subject.as_ref(), trace);
        self.check_approval(role, q, subject.as_ref(), &shift, &incident, trace);
        let shift = shift.usable;

        if let Some(denied) = trace.denial.take() {
            return Err(denied);
        }

        // INVARIANT: ttl <= role.max_ttl <= settings.max_ttl <= 24h, so the
        // additions below only fail near the end of chrono's range; there
        // the certificate ends at `at`, i.e. is already expired.
        let after = |d: Duration| {
            TimeDelta::from_std(d)
                .ok()
                .and_then(|d| q.at.checked_add_signed(d))
                .unwrap_or(q.at)
        };
        let mut valid_before = after(ttl);
        let mut limited_by = ttl_limit;
        let mut candidates = vec![(after(role.max_ttl), Limit::RoleMaxTtl)];
        if let Some(shift) = &shift {
            candidates.push((shift.end, Limit::ShiftEnd));
        }
        candidates.push((after(HARD_MAX_TTL), Limit::HardCap));
        for (end, limit) in candidates {
            if end < valid_before {
                valid_before = end;
                limited_by = limit;
            }
        }
        let valid_after = TimeDelta::from_std(self.settings.clock_skew)
            .ok()
            .and_then(|skew| q.at.checked_sub_signed(skew))
            .unwrap_or(q.at);

        let mut critical_options = Vec::new();
        if let Some(command) = &role.force_command {
            critical_options.push(("force-command".to_owned(), command.clone()));
        }
        if !role.source_address.is_empty() {
            critical_options.push(("source-address".to_owned(), role.source_address.join(",")));
        }

        let mut principals: Vec<String> = logins
            .iter()
            .map(|login| scoped_principal(login, &role.name))
            .collect();
        if role.bare_principals {
            principals.extend(logins.iter().cloned());
        }
        Ok(Allowed {
            role: role.name.clone(),
            principals,
            logins,
            valid_after,
            valid_before,
            extensions: role.extensions.clone(),
            critical_options,
            limited_by,
            break_glass: role.break_glass,
            #[cfg(test)]
            shift,
            #[cfg(test)]
            incident: given(q.incident),
            #[cfg(test)]
            reason: given(q.reason),
            _proof: (),
        })
    }

    /// The first grant that gives `role` to `subject` (or one of `groups`),
    /// and the identity it names.
    fn grant_for<'p>(
        &'p self,
        role: &Role,
        subject: &Identity,
        groups: &[String],
    ) -> Option<(&'p Identity, &'p Grant)> {
        self.grants
            .iter()
            .filter(|g| g.roles.contains(&role.name))
            .find_map(|grant| {
                grant
                    .identities
                    .iter()
                    .find(|id| self.people.names(id, subject, groups))
                    .map(|via| (via, grant))
            })
    }

    /// Whether `approver` (with `groups`) may approve a request for `role` by
    /// `requester`: `request.approve` as [`Policy::authorize`] decides it
    /// (the role's approvers, an `[[authority]]` entry or an admin; never
    /// the requester's own person). For callers that have not looked up
    /// locks: the lock is the caller's to check first.
    pub(crate) fn may_approve(
        &self,
        role: &str,
        approver: &str,
        groups: &[String],
        requester: &str,
    ) -> bool {
        let actor = super::authority::Actor {
            identity: approver,
            groups,
            locked: false,
        };
        let action = super::authority::Action::ApproveRequest { role, requester };
        self.authorize(&actor, &action, Utc::now()).is_ok()
    }

    /// Approvals `role` needs (0: none).
    pub(crate) fn approvals_needed(&self, role: &str) -> u8 {
        self.roles
            .iter()
            .find(|r| r.name == role)
            .map_or(0, |r| r.approvals)
    }

    /// The roles some grant gives to `identity` (`user:EMAIL`, `local:USER`)
    /// or its `groups`, in policy order. Whether a request would be allowed
    /// also depends on shifts, incidents and TTLs: see `evaluate`.
    pub(crate) fn granted_roles(&self, identity: &str, groups: &[String]) -> Vec<&Role> {
        let Some(subject) = Identity::parse_subject(identity)
            .ok()
            .filter(Identity::is_human)
        else {
            return Vec::new();
        };
        self.roles
            .iter()
            .filter(|role| self.grant_for(role, &subject, groups).is_some())
            .collect()
    }

    fn check_grant(
        &self,
        role: &Role,
        q: &AccessQuery<'_>,
        subject: Option<&Identity>,
        trace: &mut Trace,
    ) {
        let Some(subject) = subject else {
            trace.fail(Denied::new(
                DenyCode::NotGranted,
                format!(
                    "{:?} is not a requester's identity; log in again so the CA sees \
                     \"user:EMAIL\" or \"local:USER\"",
                    q.identity
                ),
            ));
            return;
        };
        if let Some((via, grant)) = self.grant_for(role, subject, q.groups) {
            trace.pass(format!("granted to {via} by the grant at {}", grant.origin));
            return;
        }
        let groups = if q.groups.is_empty() {
            "no groups".to_owned()
        } else {
            format!("groups {}", q.groups.join(", "))
        };
        trace.fail(Denied::new(
            DenyCode::NotGranted,
            format!(
                "no grant gives role {:?} to {subject} ({groups}); ask a policy owner to add \
                 you or one of your groups to a [[grant]] for it",
                role.name
            ),
        ));
    }

    fn check_ttl(&self, role: &Role, q: &AccessQuery<'_>, trace: &mut Trace) -> (Duration, Limit) {
        match q.ttl {
            Some(ttl) if ttl.is_zero() => {
                trace.fail(Denied::new(
                    DenyCode::InvalidTtl,
                    format!(
                        "a TTL of zero is not allowed; ask for up to {} or leave the TTL out",
                        format_duration(role.max_ttl)
                    ),
                ));
                (role.max_ttl, Limit::RoleMaxTtl)
            }
            Some(ttl) if ttl > role.max_ttl => {
                trace.fail(Denied::new(
                    DenyCode::TtlAboveMax,
                    format!(
                        "requested TTL {} is above role {:?}'s maximum of {}; ask for {} or less",
                        format_duration(ttl),
                        role.name,
                        format_duration(role.max_ttl),
                        format_duration(role.max_ttl)
                    ),
                ));
                (role.max_ttl, Limit::RoleMaxTtl)
            }
            Some(ttl) => {
                trace.pass(format!(
                    "requested TTL {} is within the role's maximum of {}",
                    format_duration(ttl),
                    format_duration(role.max_ttl)
                ));
                (ttl, Limit::RequestedTtl)
            }
            None if self.settings.default_ttl > role.max_ttl => {
                trace.pass(format!(
                    "no TTL requested: default {} capped to the role's maximum of {}",
                    format_duration(self.settings.default_ttl),
                    format_duration(role.max_ttl)
                ));
                (role.max_ttl, Limit::RoleMaxTtl)
            }
            None => {
                trace.pass(format!(
                    "no TTL requested: default {}",
                    format_duration(self.settings.default_ttl)
                ));
                (self.settings.default_ttl, Limit::DefaultTtl)
            }
        }
    }
}

fn check_principals(role: &Role, q: &AccessQuery<'_>, trace: &mut Trace) -> Vec<String> {
    let requested = match q.principals {
        Some(list) if !list.is_empty() => list,
        _ => {
            trace.pass(format!(
                "principals: all of the role's ({})",
                role.principals.join(", ")
            ));
            return role.principals.clone();
        }
    };
    let outside: Vec<&str> = requested
        .iter()
        .filter(|p| !role.principals.contains(p))
        .map(String::as_str)
        .collect();
    if !outside.is_empty() {
        trace.fail(Denied::new(
            DenyCode::PrincipalNotInRole,
            format!(
                "role {:?} does not include principal(s) {}; choose from {} or another role",
                role.name,
                outside.join(", "),
                role.principals.join(", ")
            ),
        ));
        return role.principals.clone();
    }
    let mut chosen: Vec<String> = Vec::new();
    for principal in requested {
        if !chosen.contains(principal) {
            chosen.push(principal.clone());
        }
    }
    trace.pass(format!("principals: {}", chosen.join(", ")));
    chosen
}

/// A free-text answer (incident, reason), trimmed; None when blank.
pub(super) fn given(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Words people type to get past a reason prompt. A reason is for the
/// reviewer who reads it later: it must say what and why.
const FILLER: &[&str] = &[
    "test",
    "testing",
    "n/a",
    "na",
    "none",
    "asdf",
    "debug",
    "debugging",
    "fix",
    "fixing",
    "because",
    "need access",
    "access needed",
    "just checking",
    "checking",
    "todo",
    "tbd",
    "no reason",
];

/// A reason that says nothing: one word, a handful of distinct letters, or
/// a known filler phrase (repeated).
fn is_filler(reason: &str) -> bool {
    let lower = reason.trim().to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let distinct: std::collections::HashSet<char> =
        lower.chars().filter(|c| c.is_alphanumeric()).collect();
    let all_filler = words
        .iter()
        .all(|w| FILLER.contains(&w.trim_matches(|c: char| !c.is_alphanumeric() && c != '/')));
    words.len() < 2 || distinct.len() < 5 || all_filler || FILLER.contains(&lower.as_str())
}

fn check_reason(role: &Role, q: &AccessQuery<'_>, trace: &mut Trace) {
    let reason = given(q.reason);
    let length = reason
        .as_deref()
        .map_or(0, |r| r.chars().filter(|c| !c.is_whitespace()).count());
    // A break-glass role always demands a reason: it is what reviewers read.
    if !role.require_reason && !role.break_glass {
        trace.pass("no reason required".to_owned());
    } else if length >= MIN_REASON_CHARS && !reason.as_deref().is_some_and(is_filler) {
        trace.pass("reason given".to_owned());
    } else {
        trace.fail(Denied::new(
            DenyCode::ReasonRequired,
            format!(
                "role {:?} requires a reason a reviewer can use: at least {MIN_REASON_CHARS} characters \
                 (not counting spaces), more than one word, not filler like \"test\"; ask again with \
                 --reason \"what you will do and why\"",
                role.name
            ),
        ));
    }
}

#[cfg(test)]
pub(super) fn is_filler_for_tests(reason: &str) -> bool {
    is_filler(reason)
}
