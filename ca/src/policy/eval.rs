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
use super::model::{Grant, Role};
use super::schedule::Shift;
use super::values::{HARD_MAX_TTL, Identity, format_duration};

/// Minimum length of a reason, in non-whitespace characters.
pub(crate) const MIN_REASON_CHARS: usize = 10;

/// What a requester asks for.
#[derive(Clone, Copy, Debug)]
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
    /// Identities that approved this request (checked as approvers when they
    /// approved); the requester never counts.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IncidentState {
    /// Open, with its severity: 1 (sev1, the worst) to 4.
    Open {
        severity: u8,
    },
    Resolved,
    Unknown,
}

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
    /// An operator locked the identity out (`shiftkey-ca lock`); decided by
    /// the CA before the policy is asked.
    IdentityLocked,
}

impl DenyCode {
    /// The codes the policy itself decides (what `[[test]]` may expect).
    pub(crate) const ALL: [DenyCode; 12] = [
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
    fn new(code: DenyCode, message: String) -> Denied {
        Denied { code, message }
    }
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
    /// Never empty (an OpenSSH certificate without principals is valid for
    /// any login).
    pub(crate) fn principals(&self) -> &[String] {
        &self.principals
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
struct Trace {
    steps: Vec<String>,
    denial: Option<Denied>,
}

impl Trace {
    fn pass(&mut self, step: String) {
        self.steps.push(format!("ok    {step}"));
    }

    fn fail(&mut self, denied: Denied) {
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

        let subject = Identity::parse_subject(q.identity);
        self.check_grant(role, q, subject.as_ref().ok(), trace);
        let principals = check_principals(role, q, trace);
        let (ttl, ttl_limit) = self.check_ttl(role, q, trace);
        check_incident(role, q, trace);
        check_reason(role, q, trace);
        let shift = self.check_on_call(role, q, subject.as_ref().ok(), trace);
        check_approval(role, q, shift.is_some(), trace);

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

        Ok(Allowed {
            role: role.name.clone(),
            principals,
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
                    .find(|id| match id {
                        Identity::Group(group) => groups.iter().any(|g| g == group),
                        person => *person == subject,
                    })
                    .map(|via| (via, grant))
            })
    }

    /// Whether `approver` (with `groups`) may approve a request for `role` by
    /// `requester`: named in the role's approvers, and not the requester.
    pub(crate) fn may_approve(
        &self,
        role: &str,
        approver: &str,
        groups: &[String],
        requester: &str,
    ) -> bool {
        let Some(role) = self.roles.iter().find(|r| r.name == role) else {
            return false;
        };
        let Ok(subject) = Identity::parse_subject(approver) else {
            return false;
        };
        if approver.eq_ignore_ascii_case(requester) {
            return false;
        }
        role.approvers.iter().any(|id| match id {
            Identity::Group(group) => groups.iter().any(|g| g == group),
            person => *person == subject,
        })
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
        let Ok(subject) = Identity::parse_subject(identity) else {
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
                    "{:?} is not a valid requester identity; log in again so the CA sees \
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

    fn check_on_call(
        &self,
        role: &Role,
        q: &AccessQuery<'_>,
        subject: Option<&Identity>,
        trace: &mut Trace,
    ) -> Option<Shift> {
        if role.require_on_call.is_empty() {
            trace.pass("no on-call requirement".to_owned());
            return None;
        }
        let mut mine: Option<Shift> = None;
        let mut others = Vec::new();
        for name in &role.require_on_call {
            let shifts = self.on_call_all(name, q.at, q.overrides);
            if shifts.is_empty() {
                let why = self.schedule(name).map_or("", |s| s.when_nobody());
                others.push(format!("{name}: nobody ({why})"));
            }
            for shift in shifts {
                if Some(&shift.member) == subject {
                    if mine.as_ref().is_none_or(|m| shift.end > m.end) {
                        mine = Some(shift);
                    }
                } else {
                    others.push(format!("{name}: {}", shift.describe()));
                }
            }
        }
        if let Some(shift) = mine {
            trace.pass(format!(
                "on call for {:?}: {}",
                shift.schedule,
                shift.describe()
            ));
            return Some(shift);
        }
        trace.fail(Denied::new(
            DenyCode::NotOnCall,
            format!(
                "{} is not on call for {} right now (on call: {}); ask the on-call engineer, \
                 or take over the shift in the rotation",
                q.identity,
                role.require_on_call.join(" or "),
                others.join("; ")
            ),
        ));
        None
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
fn given(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn check_incident(role: &Role, q: &AccessQuery<'_>, trace: &mut Trace) {
    let Some(id) = given(q.incident) else {
        if role.require_incident {
            trace.fail(Denied::new(
                DenyCode::IncidentRequired,
                format!(
                    "role {:?} requires an open incident; ask again with --incident ID",
                    role.name
                ),
            ));
        } else {
            trace.pass("no incident required".to_owned());
        }
        return;
    };
    // Any incident named must be one the CA knows and open: its ID goes into
    // the certificate's key ID and the audit log.
    match q.incident_state.unwrap_or(IncidentState::Unknown) {
        IncidentState::Unknown => trace.fail(Denied::new(
            DenyCode::IncidentUnknown,
            format!("the CA knows no incident {id:?}; check the ID, or open it with `shiftkey incident open`"),
        )),
        IncidentState::Resolved => trace.fail(Denied::new(
            DenyCode::IncidentResolved,
            format!("incident {id} is resolved; access under it has ended"),
        )),
        IncidentState::Open { severity } => match role.incident_severity {
            Some(worst_allowed) if severity > worst_allowed => trace.fail(Denied::new(
                DenyCode::IncidentNotSevere,
                format!(
                    "role {:?} needs an incident of sev{worst_allowed} or worse; {id} is sev{severity}",
                    role.name
                ),
            )),
            _ => trace.pass(format!("incident {id} is open (sev{severity})")),
        },
    }
}

/// Last check, once everything else passed: approvals, where the role wants
/// them. An auto-approve rule whose every condition holds approves at once.
fn check_approval(role: &Role, q: &AccessQuery<'_>, on_call: bool, trace: &mut Trace) {
    if role.approvals == 0 {
        trace.pass("no approval required".to_owned());
        return;
    }
    if let Some(rule) = &role.auto_approve {
        let severity_ok = match (rule.incident_severity, q.incident_state) {
            (None, _) => true,
            (Some(worst), Some(IncidentState::Open { severity })) => severity <= worst,
            (Some(_), _) => false,
        };
        if (!rule.on_call || on_call) && severity_ok {
            let mut why = Vec::new();
            if rule.on_call {
                why.push("on call".to_owned());
            }
            if let Some(worst) = rule.incident_severity {
                why.push(format!("incident of sev{worst} or worse"));
            }
            trace.pass(format!("auto-approved: {}", why.join(" and ")));
            return;
        }
    }
    let requester = q.identity.to_ascii_lowercase();
    let mut counted: Vec<String> = q
        .approved_by
        .iter()
        .map(|a| a.to_ascii_lowercase())
        .filter(|a| *a != requester)
        .collect();
    counted.sort();
    counted.dedup();
    if counted.len() >= usize::from(role.approvals) {
        trace.pass(format!("approved by {}", counted.join(", ")));
    } else {
        let approvers: Vec<String> = role.approvers.iter().map(ToString::to_string).collect();
        trace.fail(Denied::new(
            DenyCode::ApprovalRequired,
            format!(
                "role {:?} needs {} approval(s) from {} ({} so far); the request waits for them",
                role.name,
                role.approvals,
                approvers.join(", "),
                counted.len()
            ),
        ));
    }
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
