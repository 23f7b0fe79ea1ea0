//! Authority: who may change the facts the policy decides on.
//!
//! Every power that changes such a fact (open or resolve an incident,
//! create, shorten or delete an on-call override, approve or deny a
//! request, review recordings, hold them past retention, lock or unlock an identity, revoke
//! certificates, enroll a host) is an [`Action`] that
//! [`Policy::authorize`] decides. Closed default: what no rule allows,
//! only admins may (`admins = [...]`, and `local:root` on the CA's own
//! socket always). The rules are, in one place for a reviewer:
//!
//! - `admins`: every power, within the hard rules below;
//! - `[[authority]]` entries: identities, actions, and scopes (`schedules`,
//!   `severities`, `roles`, `hosts`, `for = "self" | "others" | "anyone"`,
//!   `take_shifts`);
//! - shorthands kept from earlier policies, meaning exactly one entry each:
//!   a role's `approvers` (= `request.approve` and `request.deny` for that
//!   role) and the top-level `reviewers` (= `recording.review` for every
//!   role).
//!
//! Hard rules no rule or admin can lift: nobody approves a request of
//! their own person; a locked identity has no power (except `local:root`,
//! the CA host's own administrator, who could edit the store anyway); an
//! override ends after it starts, is not over, and is at most
//! `settings.max_override` long.
//!
//! [`Authorized`] is the proof of a yes: only this file builds one, so code
//! that changes a fact from an `Authorized` knows the check ran.

use chrono::{DateTime, TimeDelta, Utc};

use super::Policy;
use super::denied::{Denied, DenyCode};
use super::identity::Identity;
use super::oncall::{OnCallDuring, Override};
use super::targets::{HostPattern, canonical_host};
use super::values::format_duration;

/// The identity that is an admin whatever the policy says: root on the CA
/// host, through the CA's Unix socket.
pub(crate) const LOCAL_ROOT: &str = "local:root";

/// The kinds of power, as the policy file names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ActionKind {
    IncidentOpen,
    IncidentResolve,
    OverrideCreate,
    OverrideShorten,
    OverrideDelete,
    RequestApprove,
    RequestDeny,
    RecordingReview,
    RecordingHold,
    IdentityLock,
    IdentityUnlock,
    CertificateRevoke,
    HostEnroll,
}

/// Which scope fields of an `[[authority]]` entry an action reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Schedules,
    Severities,
    Roles,
    Hosts,
    /// `for`: whose fact it is (the member, opener, requester, owner or
    /// target), the actor's own person or someone else.
    Whose,
    TakeShifts,
}

impl ActionKind {
    pub(crate) const ALL: [ActionKind; 13] = [
        ActionKind::IncidentOpen,
        ActionKind::IncidentResolve,
        ActionKind::OverrideCreate,
        ActionKind::OverrideShorten,
        ActionKind::OverrideDelete,
        ActionKind::RequestApprove,
        ActionKind::RequestDeny,
        ActionKind::RecordingReview,
        ActionKind::RecordingHold,
        ActionKind::IdentityLock,
        ActionKind::IdentityUnlock,
        ActionKind::CertificateRevoke,
        ActionKind::HostEnroll,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ActionKind::IncidentOpen => "incident.open",
            ActionKind::IncidentResolve => "incident.resolve",
            ActionKind::OverrideCreate => "override.create",
            ActionKind::OverrideShorten => "override.shorten",
            ActionKind::OverrideDelete => "override.delete",
            ActionKind::RequestApprove => "request.approve",
            ActionKind::RequestDeny => "request.deny",
            ActionKind::RecordingReview => "recording.review",
            ActionKind::RecordingHold => "recording.hold",
            ActionKind::IdentityLock => "identity.lock",
            ActionKind::IdentityUnlock => "identity.unlock",
            ActionKind::CertificateRevoke => "certificate.revoke",
            ActionKind::HostEnroll => "host.enroll",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<ActionKind, String> {
        ActionKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown action {text:?}; known: {}", known.join(", "))
            })
    }

    /// The scope fields this action reads.
    pub(crate) fn scopes(self) -> &'static [Scope] {
        match self {
            ActionKind::IncidentOpen => &[Scope::Severities],
            ActionKind::IncidentResolve => &[Scope::Severities, Scope::Whose],
            ActionKind::OverrideCreate => &[Scope::Schedules, Scope::Whose, Scope::TakeShifts],
            ActionKind::OverrideShorten | ActionKind::OverrideDelete => {
                &[Scope::Schedules, Scope::Whose]
            }
            ActionKind::RequestApprove
            | ActionKind::RequestDeny
            | ActionKind::RecordingReview
            | ActionKind::RecordingHold
            | ActionKind::CertificateRevoke => &[Scope::Roles, Scope::Whose],
            ActionKind::IdentityLock | ActionKind::IdentityUnlock => &[Scope::Whose],
            ActionKind::HostEnroll => &[Scope::Hosts],
        }
    }
}

/// `for = "self" | "others" | "anyone"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Whose {
    /// Facts of the actor's own person.
    Own,
    /// Facts of anyone else.
    Others,
    Anyone,
}

impl Whose {
    pub(crate) fn parse(text: &str) -> Result<Whose, String> {
        match text {
            "self" => Ok(Whose::Own),
            "others" => Ok(Whose::Others),
            "anyone" => Ok(Whose::Anyone),
            other => Err(format!(
                "for must be \"self\", \"others\" or \"anyone\", not {other:?}"
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Whose::Own => "self",
            Whose::Others => "others",
            Whose::Anyone => "anyone",
        }
    }
}

/// A checked `[[authority]]` entry, or one a shorthand stands for. `None`
/// scopes cover everything.
#[derive(Clone, Debug)]
pub(crate) struct AuthorityRule {
    pub(super) identities: Vec<Identity>,
    pub(super) actions: Vec<ActionKind>,
    pub(super) schedules: Option<Vec<String>>,
    pub(super) severities: Option<Vec<u8>>,
    pub(super) roles: Option<Vec<String>>,
    pub(super) hosts: Option<Vec<HostPattern>>,
    pub(super) whose: Whose,
    pub(super) take_shifts: bool,
    /// The entry's `description`, for explanations.
    pub(super) description: Option<String>,
    /// What the entry is, where: `[[authority]] at policy.toml:40:1`,
    /// `approvers of role "web-ops" at ...`.
    pub(super) origin: String,
}

/// Who is acting. `locked` is the store's answer for every identity of the
/// actor's person ([`Policy::person_of`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Actor<'a> {
    /// `user:EMAIL`, `local:USER` or `webhook:SOURCE`, any spelling.
    pub(crate) identity: &'a str,
    /// Group names from the identity provider, without `group:`.
    pub(crate) groups: &'a [String],
    pub(crate) locked: bool,
}

/// A power being used, with the facts the decision needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Action<'a> {
    /// Open an incident of this severity (1 = sev1, the worst).
    OpenIncident {
        severity: u8,
    },
    /// Resolve an open incident (which revokes certificates issued under it).
    ResolveIncident {
        severity: u8,
        opened_by: &'a str,
    },
    /// Put `member` on call for `schedule` from `start` to `end`; `existing`
    /// are the overrides in force, to see whose shifts this one takes.
    CreateOverride {
        schedule: &'a str,
        member: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        existing: &'a [Override],
    },
    /// End `existing` earlier, at `new_end`.
    ShortenOverride {
        existing: &'a Override,
        new_end: DateTime<Utc>,
    },
    DeleteOverride {
        existing: &'a Override,
    },
    /// Approve `requester`'s pending request for `role`.
    ApproveRequest {
        role: &'a str,
        requester: &'a str,
    },
    DenyRequest {
        role: &'a str,
        requester: &'a str,
    },
    /// Read the recording of `owner`'s session under `role`.
    ReviewRecording {
        role: &'a str,
        owner: &'a str,
    },
    /// Place or release a legal hold on the recording of `owner`'s session
    /// under `role` (a held recording outlives retention).
    HoldRecording {
        role: &'a str,
        owner: &'a str,
    },
    LockIdentity {
        target: &'a str,
    },
    UnlockIdentity {
        target: &'a str,
    },
    /// Revoke `target`'s certificates, of `role` only or (None) of any role.
    RevokeCertificates {
        target: &'a str,
        role: Option<&'a str>,
    },
    /// Issue a join token for a host with these names.
    EnrollHost {
        names: &'a [String],
    },
}

impl Action<'_> {
    pub(crate) fn kind(&self) -> ActionKind {
        match self {
            Action::OpenIncident { .. } => ActionKind::IncidentOpen,
            Action::ResolveIncident { .. } => ActionKind::IncidentResolve,
            Action::CreateOverride { .. } => ActionKind::OverrideCreate,
            Action::ShortenOverride { .. } => ActionKind::OverrideShorten,
            Action::DeleteOverride { .. } => ActionKind::OverrideDelete,
            Action::ApproveRequest { .. } => ActionKind::RequestApprove,
            Action::DenyRequest { .. } => ActionKind::RequestDeny,
            Action::ReviewRecording { .. } => ActionKind::RecordingReview,
            Action::HoldRecording { .. } => ActionKind::RecordingHold,
            Action::LockIdentity { .. } => ActionKind::IdentityLock,
            Action::UnlockIdentity { .. } => ActionKind::IdentityUnlock,
            Action::RevokeCertificates { .. } => ActionKind::CertificateRevoke,
            Action::EnrollHost { .. } => ActionKind::HostEnroll,
        }
    }

    /// Whose fact the action touches, as written.
    fn subject(&self) -> Option<&str> {
        match self {
            Action::ResolveIncident { opened_by, .. } => Some(opened_by),
            Action::CreateOverride { member, .. } => Some(member),
            Action::ShortenOverride { existing, .. } | Action::DeleteOverride { existing } => {
                Some(&existing.member)
            }
            Action::ApproveRequest { requester, .. } | Action::DenyRequest { requester, .. } => {
                Some(requester)
            }
            Action::ReviewRecording { owner, .. } | Action::HoldRecording { owner, .. } => {
                Some(owner)
            }
            Action::LockIdentity { target }
            | Action::UnlockIdentity { target }
            | Action::RevokeCertificates { target, .. } => Some(target),
            Action::OpenIncident { .. } | Action::EnrollHost { .. } => None,
        }
    }

    fn schedule(&self) -> Option<&str> {
        match self {
            Action::CreateOverride { schedule, .. } => Some(schedule),
            Action::ShortenOverride { existing, .. } | Action::DeleteOverride { existing } => {
                Some(&existing.schedule)
            }
            _ => None,
        }
    }

    fn severity(&self) -> Option<u8> {
        match self {
            Action::OpenIncident { severity } | Action::ResolveIncident { severity, .. } => {
                Some(*severity)
            }
            _ => None,
        }
    }

    fn role(&self) -> Option<&str> {
        match self {
            Action::ApproveRequest { role, .. }
            | Action::DenyRequest { role, .. }
            | Action::ReviewRecording { role, .. }
            | Action::HoldRecording { role, .. } => Some(role),
            Action::RevokeCertificates { role, .. } => *role,
            _ => None,
        }
    }
}

/// Proof that `actor` may use a power. Only [`Policy::authorize`] builds
/// one; the code that changes the fact takes it.
#[derive(Clone, Debug)]
pub(crate) struct Authorized {
    kind: ActionKind,
    actor: String,
    via: String,
    _proof: (),
}

impl Authorized {
    pub(crate) fn kind(&self) -> ActionKind {
        self.kind
    }
    /// The actor's canonical identity.
    pub(crate) fn actor(&self) -> &str {
        &self.actor
    }
    /// The rule that allowed it, for the audit row: `admins at
    /// policy.toml:3:1`, `[[authority]] at policy.toml:40:1`.
    pub(crate) fn via(&self) -> &str {
        &self.via
    }
}

/// What one decision found out about the action, shared by every rule.
struct Facts<'a> {
    kind: ActionKind,
    /// Whether the subject is the actor's own person (None: no subject).
    own: Option<bool>,
    schedule: Option<&'a str>,
    severity: Option<u8>,
    role: Option<&'a str>,
    hosts: &'a [String],
    /// For a new override: it takes a shift from someone other than its
    /// member and the actor (or that could not be ruled out).
    takes_shift: bool,
}

impl Policy {
    /// Decides whether `actor` may use a power now. Order: the actor's
    /// identity, the lock, the hard rules, admins, then each rule.
    pub(crate) fn authorize(
        &self,
        actor: &Actor<'_>,
        action: &Action<'_>,
        at: DateTime<Utc>,
    ) -> Result<Authorized, Denied> {
        self.decide_power(actor, action, at, &mut Vec::new())
    }

    /// Every step of an authority decision in words, ending with it.
    pub(crate) fn explain_authority(
        &self,
        actor: &Actor<'_>,
        action: &Action<'_>,
        at: DateTime<Utc>,
    ) -> Vec<String> {
        let mut steps = Vec::new();
        let decision = self.decide_power(actor, action, at, &mut steps);
        steps.push(match decision {
            Ok(allowed) => format!(
                "ALLOW {} by {} via {}",
                allowed.kind.as_str(),
                allowed.actor,
                allowed.via
            ),
            Err(denied) => format!("DENY  {}: {}", denied.code, denied.message),
        });
        steps
    }

    /// Whether `identity` may review every recording of every role and
    /// person: root, an admin, or named by a `recording.review` rule with
    /// no role or `for` limit (`reviewers = [...]` is one).
    pub(super) fn may_review_everything(&self, identity: &str, groups: &[String]) -> bool {
        let Ok(who) = Identity::parse_subject(identity) else {
            return false;
        };
        let names = |list: &[Identity]| list.iter().any(|e| self.people.names(e, &who, groups));
        who.to_string() == LOCAL_ROOT
            || names(&self.admins)
            || self.authority_rules().any(|rule| {
                rule.actions.contains(&ActionKind::RecordingReview)
                    && rule.roles.is_none()
                    && rule.whose == Whose::Anyone
                    && names(&rule.identities)
            })
    }

    /// Whether `identity` may review some recordings: root, an admin, or
    /// named by any `recording.review` rule (whatever its role or `for`
    /// limits). Each recording is then [`Policy::authorize`]d on its own.
    pub(crate) fn may_review_some(&self, identity: &str, groups: &[String]) -> bool {
        let Ok(who) = Identity::parse_subject(identity) else {
            return false;
        };
        let names = |list: &[Identity]| list.iter().any(|e| self.people.names(e, &who, groups));
        who.to_string() == LOCAL_ROOT
            || names(&self.admins)
            || self.authority_rules().any(|rule| {
                rule.actions.contains(&ActionKind::RecordingReview) && names(&rule.identities)
            })
    }

    /// Whether `identity` holds `kind` for something: root, an admin, or
    /// named by a rule that lists it, whatever the rule's scopes. The use
    /// itself is still [`Policy::authorize`]d.
    pub(crate) fn holds_power(&self, kind: ActionKind, identity: &str, groups: &[String]) -> bool {
        let Ok(who) = Identity::parse_subject(identity) else {
            return false;
        };
        let names = |list: &[Identity]| list.iter().any(|e| self.people.names(e, &who, groups));
        who.to_string() == LOCAL_ROOT
            || names(&self.admins)
            || self
                .authority_rules()
                .any(|rule| rule.actions.contains(&kind) && names(&rule.identities))
    }

    /// Why `identity` holds none of `kinds` (with `unlimited`: none for
    /// every role and person), in the words of a denial, naming nobody else:
    /// the entries that would allow it (groups by name, people counted) and
    /// the admins.
    pub(crate) fn powers_denied(
        &self,
        identity: &str,
        kinds: &[ActionKind],
        unlimited: bool,
    ) -> String {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let allowing: Vec<String> = self
            .authority_rules()
            .filter(|rule| rule.actions.iter().any(|a| kinds.contains(a)))
            .filter(|rule| !unlimited || (rule.roles.is_none() && rule.whose == Whose::Anyone))
            .map(|rule| format!("{} ({})", rule.origin, summarize(&rule.identities)))
            .collect();
        let limit = if unlimited {
            " for every role and person"
        } else {
            ""
        };
        let mut message = format!("you ({identity}) hold none of {}{limit}", names.join(", "));
        if allowing.is_empty() {
            message.push_str(&format!(
                "; no entry grants it, so only admins do ({}); ask a policy owner for an \
                 [[authority]] entry",
                self.admins_summary()
            ));
        } else {
            message.push_str(&format!(
                "; granted by: {}, and admins ({}); ask a policy owner to name you or one of your \
                 groups there",
                allowing.join(", "),
                self.admins_summary()
            ));
        }
        message
    }

    /// Every rule that grants some power, shorthands included, in policy
    /// order: `[[authority]]`, then roles' approvers, then reviewers.
    pub(super) fn authority_rules(&self) -> impl Iterator<Item = &AuthorityRule> {
        self.authorities.iter()
    }

    fn decide_power(
        &self,
        actor: &Actor<'_>,
        action: &Action<'_>,
        at: DateTime<Utc>,
        steps: &mut Vec<String>,
    ) -> Result<Authorized, Denied> {
        let kind = action.kind();
        let deny = |steps: &mut Vec<String>, code: DenyCode, message: String| {
            steps.push(format!("FAIL  {code}: {message}"));
            Err(Denied::new(code, message))
        };
        let Ok(who) = Identity::parse_subject(actor.identity) else {
            return deny(
                steps,
                DenyCode::NotAuthorized,
                format!(
                    "{:?} is not a caller's identity; sign in again so the CA sees \
                     \"user:EMAIL\" or \"local:USER\"",
                    actor.identity
                ),
            );
        };
        let shown = who.to_string();
        let is_root = shown == LOCAL_ROOT;
        if let Some(person) = self.people.of(&who) {
            let all: Vec<String> = person.identities.iter().map(ToString::to_string).collect();
            steps.push(format!(
                "ok    {shown} is one person with {} ([[person]] {:?} at {})",
                all.join(", "),
                person.name,
                person.origin
            ));
        }
        if actor.locked && !is_root {
            return deny(
                steps,
                DenyCode::IdentityLocked,
                format!(
                    "{shown} is locked: a locked identity has no power; ask an admin to unlock it \
                     (`shiftkey-ca unlock`)"
                ),
            );
        }

        let own = action.subject().map(|subject| {
            Identity::parse_subject(subject)
                .or_else(|_| Identity::parse_member(subject))
                .is_ok_and(|s| self.people.same(&s, &who))
        });
        self.check_hard_rules(&who, action, own, at, steps)?;
        let takes_shift = self.takes_shift(&who, action, at, steps);
        let hosts: &[String] = match action {
            Action::EnrollHost { names } => names,
            _ => &[],
        };
        let facts = Facts {
            kind,
            own,
            schedule: action.schedule(),
            severity: action.severity(),
            role: action.role(),
            hosts,
            takes_shift,
        };

        if is_root {
            steps.push(format!(
                "ok    {LOCAL_ROOT} is an admin (root on the CA host, always)"
            ));
            return Ok(self.authorized(kind, shown, format!("{LOCAL_ROOT}, always an admin")));
        }
        if let Some(entry) = self
            .admins
            .iter()
            .find(|entry| self.people.names(entry, &who, actor.groups))
        {
            let via = format!("admins at {} ({entry})", self.admins_origin);
            steps.push(format!("ok    admin: {via}"));
            return Ok(self.authorized(kind, shown, via));
        }
        steps.push("ok    not an admin".to_owned());

        let mut near_misses = Vec::new();
        // Entries that do not list the action are none of this decision's
        // business: they are left out of the steps and the message.
        for rule in self.authority_rules().filter(|r| r.actions.contains(&kind)) {
            let names_actor = rule
                .identities
                .iter()
                .any(|entry| self.people.names(entry, &who, actor.groups));
            match (names_actor, rule_covers(rule, &facts)) {
                (true, Ok(())) => {
                    let about = rule
                        .description
                        .as_ref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    steps.push(format!("ok    allowed by {}{about}", rule.origin));
                    return Ok(self.authorized(kind, shown, rule.origin.clone()));
                }
                (true, Err(why)) => {
                    steps.push(format!("no    {} names you, but {why}", rule.origin));
                    near_misses.push(format!("{} names you, but {why}", rule.origin));
                }
                (false, Ok(())) => steps.push(format!("no    {} does not name you", rule.origin)),
                (false, Err(_)) => {}
            }
        }
        let mut message = format!(
            "you ({shown}) may not {}",
            describe(action, own, takes_shift)
        );
        let allowing: Vec<String> = self
            .authority_rules()
            .filter(|rule| rule.actions.contains(&kind) && rule_covers(rule, &facts).is_ok())
            .map(|rule| format!("{} ({})", rule.origin, summarize(&rule.identities)))
            .collect();
        if !near_misses.is_empty() {
            message.push_str(&format!("; {}", near_misses.join("; ")));
        }
        if allowing.is_empty() {
            message.push_str(&format!(
                "; no [[authority]] entry allows this, so only admins may ({}); ask one of them, \
                 or a policy owner for an [[authority]] entry",
                self.admins_summary()
            ));
        } else {
            message.push_str(&format!(
                "; allowed to: {}, and admins ({}); ask one of them",
                allowing.join(", "),
                self.admins_summary()
            ));
        }
        deny(steps, DenyCode::NotAuthorized, message)
    }

    fn authorized(&self, kind: ActionKind, actor: String, via: String) -> Authorized {
        Authorized {
            kind,
            actor,
            via,
            _proof: (),
        }
    }

    /// Who the admins are, without naming people: groups by name,
    /// identities counted.
    fn admins_summary(&self) -> String {
        let listed = if self.admins.is_empty() {
            "none listed".to_owned()
        } else {
            format!(
                "admins at {}: {}",
                self.admins_origin,
                summarize(&self.admins)
            )
        };
        format!("{listed}; {LOCAL_ROOT} on the CA host")
    }

    /// Rules that hold whoever asks, admins included.
    fn check_hard_rules(
        &self,
        who: &Identity,
        action: &Action<'_>,
        own: Option<bool>,
        at: DateTime<Utc>,
        steps: &mut Vec<String>,
    ) -> Result<(), Denied> {
        let fail = |steps: &mut Vec<String>, code: DenyCode, message: String| {
            steps.push(format!("FAIL  {code}: {message}"));
            Err(Denied::new(code, message))
        };
        match action {
            Action::ApproveRequest { role, .. } if own != Some(false) => fail(
                steps,
                DenyCode::SelfApproval,
                format!(
                    "{who} may not approve this request for role {role:?}: it is your own \
                     (nobody approves a request of their own person); someone else must \
                     approve it"
                ),
            ),
            Action::CreateOverride {
                schedule,
                member,
                start,
                end,
                ..
            } => {
                if self.schedule(schedule).is_none() {
                    return fail(
                        steps,
                        DenyCode::UnknownSchedule,
                        format!(
                            "there is no schedule {schedule:?}; check the name with `shiftkey oncall`"
                        ),
                    );
                }
                if let Err(why) = Identity::parse_member(member) {
                    return fail(steps, DenyCode::OverrideInvalid, format!("member: {why}"));
                }
                if end <= start || *end <= at {
                    return fail(
                        steps,
                        DenyCode::OverrideInvalid,
                        "the override must end after it starts, and in the future".to_owned(),
                    );
                }
                let max = TimeDelta::from_std(self.settings.max_override).unwrap_or(TimeDelta::MAX);
                if end.signed_duration_since(*start) > max {
                    return fail(
                        steps,
                        DenyCode::OverrideTooLong,
                        format!(
                            "an override may last at most {} (settings.max_override); create a \
                             shorter one, or change the schedule itself",
                            format_duration(self.settings.max_override)
                        ),
                    );
                }
                steps.push("ok    the override is well-formed and within max_override".to_owned());
                Ok(())
            }
            Action::ShortenOverride { existing, new_end } => {
                if *new_end >= existing.end || *new_end <= existing.start {
                    return fail(
                        steps,
                        DenyCode::OverrideInvalid,
                        "shortening must move the end earlier, and after the start (to remove \
                         the override, delete it)"
                            .to_owned(),
                    );
                }
                Ok(())
            }
            Action::EnrollHost { names } => {
                if names.is_empty() {
                    return fail(
                        steps,
                        DenyCode::NotAuthorized,
                        "a host enrollment names no host".to_owned(),
                    );
                }
                if let Some(bad) = names.iter().find(|n| canonical_host(n).is_err()) {
                    return fail(
                        steps,
                        DenyCode::NotAuthorized,
                        format!("{bad:?} is not a host name or address"),
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether a new override would take a shift from someone who is
    /// neither its member nor the actor (giving away your own shift is a
    /// cover; taking someone else's needs `take_shifts`). From now on only:
    /// the past is not changed by an override.
    fn takes_shift(
        &self,
        who: &Identity,
        action: &Action<'_>,
        at: DateTime<Utc>,
        steps: &mut Vec<String>,
    ) -> bool {
        let Action::CreateOverride {
            schedule,
            member,
            start,
            end,
            existing,
        } = action
        else {
            return false;
        };
        let Ok(member) = Identity::parse_member(member) else {
            return true;
        };
        match self.on_call_during(schedule, (*start).max(at), *end, existing) {
            OnCallDuring::Unknown => {
                steps.push(
                    "note  the calendar is too long to tell whose shifts this override covers; \
                     counted as taking someone else's"
                        .to_owned(),
                );
                true
            }
            OnCallDuring::People(people) => {
                let others = people
                    .iter()
                    .filter(|p| !self.people.same(p, &member) && !self.people.same(p, who))
                    .count();
                if others > 0 {
                    steps.push(format!(
                        "note  the override takes the shift of {others} other person(s) on call then"
                    ));
                } else {
                    steps.push("ok    the override takes nobody else's shift".to_owned());
                }
                others > 0
            }
        }
    }
}

/// Whether a rule's actions and scopes cover these facts; if not, why.
fn rule_covers(rule: &AuthorityRule, facts: &Facts<'_>) -> Result<(), String> {
    if !rule.actions.contains(&facts.kind) {
        return Err(format!("does not list {}", facts.kind.as_str()));
    }
    if let (Some(list), Some(schedule)) = (&rule.schedules, facts.schedule)
        && !list.iter().any(|s| s == schedule)
    {
        return Err(format!("covers schedules {} only", list.join(", ")));
    }
    if let (Some(list), Some(severity)) = (&rule.severities, facts.severity)
        && !list.contains(&severity)
    {
        let shown: Vec<String> = list.iter().map(|s| format!("sev{s}")).collect();
        return Err(format!("covers severities {} only", shown.join(", ")));
    }
    if let Some(list) = &rule.roles
        && facts.kind.scopes().contains(&Scope::Roles)
        && !facts
            .role
            .is_some_and(|role| list.iter().any(|r| r == role))
    {
        return Err(format!("covers roles {} only", list.join(", ")));
    }
    if let Some(patterns) = &rule.hosts {
        let outside = facts.hosts.iter().find(|name| {
            !canonical_host(name).is_ok_and(|t| patterns.iter().any(|p| p.matches(&t)))
        });
        if let Some(name) = outside {
            let shown: Vec<String> = patterns.iter().map(ToString::to_string).collect();
            return Err(format!(
                "covers hosts {} only, not {name:?}",
                shown.join(", ")
            ));
        }
    }
    match (rule.whose, facts.own) {
        (Whose::Own | Whose::Others, Some(own)) if own != (rule.whose == Whose::Own) => {
            return Err(format!("is for = {:?} only", rule.whose.as_str()));
        }
        _ => {}
    }
    if facts.takes_shift && !rule.take_shifts {
        return Err(
            "this override takes someone else's shift, which needs take_shifts = true".to_owned(),
        );
    }
    Ok(())
}

/// A list of identities as a denial may show it: groups and persons by
/// name, individual identities only counted.
fn summarize(identities: &[Identity]) -> String {
    let mut named: Vec<String> = identities
        .iter()
        .filter(|i| matches!(i, Identity::Group(_)))
        .map(ToString::to_string)
        .collect();
    let people = identities.len() - named.len();
    if people > 0 {
        named.push(format!(
            "{people} named identit{}",
            if people == 1 { "y" } else { "ies" }
        ));
    }
    named.join(", ")
}

/// The power in words, without naming anyone but the actor.
fn describe(action: &Action<'_>, own: Option<bool>, takes_shift: bool) -> String {
    let whose =
        |yours: &str, theirs: &str| if own == Some(true) { yours } else { theirs }.to_owned();
    match action {
        Action::OpenIncident { severity } => format!("open a sev{severity} incident"),
        Action::ResolveIncident { severity, .. } => format!(
            "resolve a sev{severity} incident opened by {}",
            whose("you", "someone else")
        ),
        Action::CreateOverride { schedule, .. } => format!(
            "put {} on call for schedule {schedule:?}{}",
            whose("yourself", "someone else"),
            if takes_shift {
                ", taking the shift of someone else on call then"
            } else {
                ""
            }
        ),
        Action::ShortenOverride { existing, .. } => format!(
            "shorten {} on-call override for schedule {:?}",
            whose("your", "someone else's"),
            existing.schedule
        ),
        Action::DeleteOverride { existing } => format!(
            "delete {} on-call override for schedule {:?}",
            whose("your", "someone else's"),
            existing.schedule
        ),
        Action::ApproveRequest { role, .. } => format!("approve requests for role {role:?}"),
        Action::DenyRequest { role, .. } => format!(
            "deny {} request for role {role:?}",
            whose("your own", "someone else's")
        ),
        Action::ReviewRecording { role, .. } => format!(
            "review {} recordings of role {role:?}",
            whose("your own", "someone else's")
        ),
        Action::HoldRecording { role, .. } => format!(
            "hold or release {} recordings of role {role:?}",
            whose("your own", "someone else's")
        ),
        Action::LockIdentity { .. } => {
            format!("lock {}", whose("your own identity", "another identity"))
        }
        Action::UnlockIdentity { .. } => {
            format!("unlock {}", whose("your own identity", "another identity"))
        }
        Action::RevokeCertificates { role, .. } => format!(
            "revoke {} certificates{}",
            whose("your own", "someone else's"),
            role.map(|r| format!(" of role {r:?}")).unwrap_or_default()
        ),
        Action::EnrollHost { names } => format!("enroll host {}", names.join(", ")),
    }
}
