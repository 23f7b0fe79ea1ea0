//! The policy's own `[[test]]` cases, run by `shiftkey-ca policy test`:
//! access requests (`role = ...`) and uses of a power (`action = ...`),
//! checked when the policy loads and run against it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use toml::Spanned;

use super::Policy;
use super::authority::{Action, ActionKind, Actor};
use super::check::{checked_list, parse_severity, report};
use super::denied::{Denied, DenyCode};
use super::error::Sink;
use super::eval::{AccessQuery, IncidentState};
use super::identity::Identity;
use super::oncall::Override;
use super::raw::{Item, RawTest, RawTestOverride, timestamp_text};
use super::values::{check_principal, parse_duration, parse_instant};

/// Who opened a test's incident unless it says: an alert source, so the
/// incident is independent of the requester.
const DEFAULT_OPENER: &str = "webhook:policy-test";

/// A checked `[[test]]`: identities, groups, times and names are valid.
#[derive(Clone, Debug)]
pub(crate) struct TestCase {
    pub(super) name: String,
    pub(super) identity: String,
    pub(super) groups: Vec<String>,
    pub(super) at: DateTime<Utc>,
    pub(super) kind: TestKind,
    pub(super) expect: Expect,
    /// `file:line:col` of the test's header.
    pub(super) origin: String,
}

#[derive(Clone, Debug)]
pub(crate) enum TestKind {
    Access(Box<AccessTest>),
    Power { action: TestAction, locked: bool },
}

/// An access request, and the facts around it.
#[derive(Clone, Debug)]
pub(crate) struct AccessTest {
    pub(super) role: String,
    pub(super) incident: Option<String>,
    /// What the test's incident is: open sev1, opened by an alert webhook,
    /// unless the test says.
    pub(super) incident_state: IncidentState,
    /// Identities that approved the test's request.
    pub(super) approved_by: Vec<String>,
    pub(super) reason: Option<String>,
    pub(super) ttl: Option<Duration>,
    pub(super) principals: Option<Vec<String>>,
    pub(super) overrides: Vec<Override>,
    /// A target to check as well: host and port.
    pub(super) target: Option<(String, u16)>,
}

/// A use of a power, owning what [`Action`] borrows.
#[derive(Clone, Debug)]
pub(crate) enum TestAction {
    OpenIncident {
        severity: u8,
    },
    ResolveIncident {
        severity: u8,
        opened_by: String,
    },
    CreateOverride {
        new: Override,
        existing: Vec<Override>,
    },
    ShortenOverride {
        existing: Override,
        new_end: DateTime<Utc>,
    },
    DeleteOverride {
        existing: Override,
    },
    Request {
        kind: ActionKind,
        role: String,
        requester: String,
    },
    Identity {
        kind: ActionKind,
        target: String,
    },
    Revoke {
        target: String,
        role: Option<String>,
    },
    Enroll {
        names: Vec<String>,
    },
}

impl TestAction {
    fn action(&self) -> Action<'_> {
        match self {
            TestAction::OpenIncident { severity } => Action::OpenIncident {
                severity: *severity,
            },
            TestAction::ResolveIncident {
                severity,
                opened_by,
            } => Action::ResolveIncident {
                severity: *severity,
                opened_by,
            },
            TestAction::CreateOverride { new, existing } => Action::CreateOverride {
                schedule: &new.schedule,
                member: &new.member,
                start: new.start,
                end: new.end,
                existing,
            },
            TestAction::ShortenOverride { existing, new_end } => Action::ShortenOverride {
                existing,
                new_end: *new_end,
            },
            TestAction::DeleteOverride { existing } => Action::DeleteOverride { existing },
            TestAction::Request {
                kind,
                role,
                requester,
            } => match kind {
                ActionKind::RequestApprove => Action::ApproveRequest { role, requester },
                ActionKind::RequestDeny => Action::DenyRequest { role, requester },
                ActionKind::RecordingHold => Action::HoldRecording {
                    role,
                    owner: requester,
                },
                _ => Action::ReviewRecording {
                    role,
                    owner: requester,
                },
            },
            TestAction::Identity { kind, target } => match kind {
                ActionKind::IdentityLock => Action::LockIdentity { target },
                _ => Action::UnlockIdentity { target },
            },
            TestAction::Revoke { target, role } => Action::RevokeCertificates {
                target,
                role: role.as_deref(),
            },
            TestAction::Enroll { names } => Action::EnrollHost { names },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    Allow { valid_before: Option<DateTime<Utc>> },
    Deny { code: Option<DenyCode> },
}

/// The result of one `[[test]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TestOutcome {
    pub(crate) name: String,
    pub(crate) passed: bool,
    /// What happened, and on failure what was expected instead.
    pub(crate) detail: String,
    /// `file:line:col` of the test.
    pub(crate) location: String,
}

impl Policy {
    /// Runs every `[[test]]` in file order.
    pub(crate) fn run_tests(&self) -> Vec<TestOutcome> {
        self.tests.iter().map(|test| self.run_test(test)).collect()
    }

    fn run_test(&self, test: &TestCase) -> TestOutcome {
        // What was allowed, and until when (access tests).
        let decision: Result<(String, Option<DateTime<Utc>>), Denied> = match &test.kind {
            TestKind::Access(access) => self.run_access(test, access),
            TestKind::Power { action, locked } => {
                let actor = Actor {
                    identity: &test.identity,
                    groups: &test.groups,
                    locked: *locked,
                };
                self.authorize(&actor, &action.action(), test.at)
                    .map(|ok| (format!("allowed via {}", ok.via()), None))
            }
        };
        let (passed, detail) = match (&test.expect, decision) {
            (Expect::Allow { valid_before }, Ok((got, until))) => match (valid_before, until) {
                (Some(want), Some(until)) if *want != until => (
                    false,
                    format!("{got}, but expected valid_before {}", want.to_rfc3339()),
                ),
                _ => (true, got),
            },
            (Expect::Allow { .. }, Err(denied)) => (
                false,
                format!(
                    "expected allow, but denied ({}): {}",
                    denied.code, denied.message
                ),
            ),
            (Expect::Deny { code }, Err(denied)) => {
                let got = format!("denied ({}): {}", denied.code, denied.message);
                match code {
                    Some(want) if *want != denied.code => {
                        (false, format!("expected deny ({want}), but {got}"))
                    }
                    _ => (true, got),
                }
            }
            (Expect::Deny { code }, Ok((got, _))) => (
                false,
                format!(
                    "expected deny{}, but {got}",
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            ),
        };
        TestOutcome {
            name: test.name.clone(),
            passed,
            detail,
            location: test.origin.clone(),
        }
    }

    /// An access test: the decision, then the target if it names one.
    fn run_access(
        &self,
        test: &TestCase,
        access: &AccessTest,
    ) -> Result<(String, Option<DateTime<Utc>>), Denied> {
        let query = AccessQuery {
            identity: &test.identity,
            groups: &test.groups,
            role: &access.role,
            incident: access.incident.as_deref(),
            incident_state: Some(access.incident_state.clone()),
            approved_by: &access.approved_by,
            overrides: &access.overrides,
            reason: access.reason.as_deref(),
            ttl: access.ttl,
            principals: access.principals.as_deref(),
            at: test.at,
        };
        let allowed = self.evaluate(&query)?;
        if let Some((host, port)) = &access.target {
            self.check_target(&access.role, host, *port)?;
        }
        let got = format!(
            "allowed until {} (limited by {})",
            allowed.valid_before().to_rfc3339(),
            allowed.limited_by()
        );
        Ok((got, Some(allowed.valid_before())))
    }
}

/// Which fields each kind of test reads, beyond name, identity, groups,
/// at, expect, deny and locked.
fn fields_of(kind: Option<ActionKind>) -> &'static [&'static str] {
    match kind {
        None => &[
            "role",
            "incident",
            "incident_severity",
            "incident_status",
            "incident_opened_by",
            "reason",
            "ttl",
            "principals",
            "approved_by",
            "overrides",
            "host",
            "port",
            "valid_before",
        ],
        Some(ActionKind::IncidentOpen) => &["incident_severity"],
        Some(ActionKind::IncidentResolve) => &["incident_severity", "incident_opened_by"],
        Some(ActionKind::OverrideCreate) => &["schedule", "member", "start", "end", "overrides"],
        Some(ActionKind::OverrideShorten) => &["schedule", "member", "start", "end", "new_end"],
        Some(ActionKind::OverrideDelete) => &["schedule", "member", "start", "end"],
        Some(
            ActionKind::RequestApprove
            | ActionKind::RequestDeny
            | ActionKind::RecordingReview
            | ActionKind::RecordingHold,
        ) => &["role", "requester"],
        Some(ActionKind::IdentityLock | ActionKind::IdentityUnlock) => &["target"],
        Some(ActionKind::CertificateRevoke) => &["target", "role"],
        Some(ActionKind::HostEnroll) => &["host"],
    }
}

/// The optional fields a test gave, by name, with where they are.
fn given_fields(t: &RawTest) -> Vec<(&'static str, std::ops::Range<usize>)> {
    fn span<T>(v: &Option<Spanned<T>>) -> Option<std::ops::Range<usize>> {
        v.as_ref().map(Spanned::span)
    }
    let mut out = Vec::new();
    let mut add = |name: &'static str, span: Option<std::ops::Range<usize>>| {
        if let Some(span) = span {
            out.push((name, span));
        }
    };
    add("role", span(&t.role));
    add("incident", t.incident.as_ref().map(|_| 0..0));
    add("incident_severity", span(&t.incident_severity));
    add("incident_status", span(&t.incident_status));
    add("incident_opened_by", span(&t.incident_opened_by));
    add("reason", t.reason.as_ref().map(|_| 0..0));
    add("ttl", span(&t.ttl));
    add("principals", t.principals.as_ref().map(|_| 0..0));
    add("approved_by", (!t.approved_by.is_empty()).then_some(0..0));
    add("overrides", t.overrides.first().map(Spanned::span));
    add("host", span(&t.host));
    add("port", span(&t.port));
    add("valid_before", span(&t.valid_before));
    add("schedule", span(&t.schedule));
    add("member", span(&t.member));
    add("start", span(&t.start));
    add("end", span(&t.end));
    add("new_end", span(&t.new_end));
    add("requester", span(&t.requester));
    add("target", span(&t.target));
    out
}

fn instant<T>(
    item: &Item<T>,
    value: &Spanned<toml::Value>,
    context: &str,
    field: &str,
    sink: &mut Sink<'_>,
) -> Option<DateTime<Utc>> {
    let parsed = timestamp_text(value)
        .and_then(|text| parse_instant(&text))
        .map_err(|e| format!("{field}: {e}"));
    report(parsed, context, &item.at(value), sink)
}

/// Checks a `[[test]]`; an error in it is reported and the test left out
/// (the policy is then refused).
pub(super) fn check_test(
    item: &Item<RawTest>,
    known_role: &dyn Fn(&str) -> bool,
    known_schedule: &dyn Fn(&str) -> bool,
    sink: &mut Sink<'_>,
) -> Option<TestCase> {
    let t = &item.value;
    let context = format!("test {:?}", t.name.get_ref());
    let errors_before = sink.len();
    if t.name.get_ref().trim().is_empty() {
        sink.at(
            &item.at(&t.name),
            "test: name is empty; say what the test shows",
        );
    }
    let identity = report(
        Identity::parse_subject(t.identity.get_ref()),
        &context,
        &item.at(&t.identity),
        sink,
    );
    for group in &t.groups {
        let parsed = Identity::parse(&format!("group:{}", group.get_ref()));
        report(parsed, &context, &item.at(group), sink);
    }
    let at = instant(item, &t.at, &context, "at", sink);
    let action = t.action.as_ref().and_then(|value| {
        report(
            ActionKind::parse(value.get_ref()),
            &context,
            &item.at(value),
            sink,
        )
    });
    if t.action.is_some() && action.is_none() {
        return None;
    }
    let allowed = fields_of(action);
    let what = action.map_or("an access test (no action)", |k| k.as_str());
    for (field, span) in given_fields(t) {
        if !allowed.contains(&field) {
            let loc = if span.is_empty() {
                item.loc()
            } else {
                super::error::Loc {
                    file: item.file,
                    span,
                }
            };
            sink.at(
                &loc,
                format!(
                    "{context}: {field} is not used by {what}; it reads {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    if t.locked && action.is_none() {
        sink.at(
            &item.loc(),
            format!("{context}: locked is for action tests (a locked identity's requests are refused before the policy)"),
        );
    }
    let role = |sink: &mut Sink<'_>, required: bool| -> Option<String> {
        match &t.role {
            Some(role) if known_role(role.get_ref()) => Some(role.get_ref().clone()),
            Some(role) => {
                sink.at(
                    &item.at(role),
                    format!("{context}: unknown role {:?}", role.get_ref()),
                );
                None
            }
            None => {
                if required {
                    sink.at(
                        &item.loc(),
                        format!("{context}: {what} needs role = \"NAME\""),
                    );
                }
                None
            }
        }
    };
    let severity = match &t.incident_severity {
        None => Some(1),
        Some(value) => report(
            parse_severity(value.get_ref()),
            &context,
            &item.at(value),
            sink,
        ),
    };
    let opener = match &t.incident_opened_by {
        None => Some(DEFAULT_OPENER.to_owned()),
        Some(value) => report(
            Identity::parse_subject(value.get_ref()).map(|i| i.to_string()),
            &context,
            &item.at(value),
            sink,
        ),
    };
    let overrides: Vec<Override> = t
        .overrides
        .iter()
        .filter_map(|o| test_override(item, o, &context, known_schedule, sink))
        .collect();
    let expect = check_expect(item, &context, action.is_none(), sink);

    let kind = match action {
        None => {
            let role = role(sink, true);
            let incident_state = match t
                .incident_status
                .as_ref()
                .map(|v| (v, v.get_ref().as_str()))
            {
                None | Some((_, "open")) => match (severity, opener) {
                    (Some(severity), Some(opened_by)) => Some(IncidentState::Open {
                        severity,
                        opened_by,
                    }),
                    _ => None,
                },
                Some((_, "resolved")) => Some(IncidentState::Resolved),
                Some((_, "unknown")) => Some(IncidentState::Unknown),
                Some((value, other)) => report(
                    Err(format!(
                        "incident_status must be \"open\", \"resolved\" or \"unknown\", not {other:?}"
                    )),
                    &context,
                    &item.at(value),
                    sink,
                ),
            };
            let ttl = t.ttl.as_ref().and_then(|value| {
                let parsed = parse_duration(value.get_ref()).map_err(|e| format!("ttl: {e}"));
                report(parsed, &context, &item.at(value), sink)
            });
            let principals = t
                .principals
                .as_ref()
                .map(|list| checked_list(item, list, &context, check_principal, sink));
            let port = match &t.port {
                None => Some(22),
                Some(value) => match u16::try_from(*value.get_ref()) {
                    Ok(port) if port > 0 => Some(port),
                    _ => report(
                        Err("port must be 1 to 65535".to_owned()),
                        &context,
                        &item.at(value),
                        sink,
                    ),
                },
            };
            if t.port.is_some() && t.host.is_none() {
                sink.at(
                    &item.loc(),
                    format!("{context}: port needs host = \"NAME\""),
                );
            }
            let target = t
                .host
                .as_ref()
                .and_then(|host| Some((host.get_ref().clone(), port?)));
            match (role, incident_state) {
                (Some(role), Some(incident_state)) => {
                    Some(TestKind::Access(Box::new(AccessTest {
                        role,
                        incident: t.incident.clone(),
                        incident_state,
                        approved_by: t.approved_by.clone(),
                        reason: t.reason.clone(),
                        ttl,
                        principals,
                        overrides,
                        target,
                    })))
                }
                _ => None,
            }
        }
        Some(kind) => {
            let common = Common {
                context: &context,
                severity,
                opener,
                overrides,
                identity: identity.as_ref(),
            };
            check_test_action(item, kind, common, &role, known_schedule, sink)
        }
        .map(|action| TestKind::Power {
            action,
            locked: t.locked,
        }),
    };
    if sink.len() != errors_before {
        return None;
    }
    let (Some(at), Some(expect), Some(kind)) = (at, expect, kind) else {
        return None;
    };
    Some(TestCase {
        name: t.name.get_ref().clone(),
        identity: t.identity.get_ref().clone(),
        groups: t.groups.iter().map(|g| g.get_ref().clone()).collect(),
        at,
        kind,
        expect,
        origin: sink.locate(&item.loc()),
    })
}

/// `expect` and `deny` (and `valid_before`, for access tests).
fn check_expect(
    item: &Item<RawTest>,
    context: &str,
    access: bool,
    sink: &mut Sink<'_>,
) -> Option<Expect> {
    let t = &item.value;
    match t.expect.get_ref().as_str() {
        "allow" => {
            if let Some(deny) = &t.deny {
                sink.at(
                    &item.at(deny),
                    format!("{context}: deny is only for expect = \"deny\"; remove it"),
                );
            }
            let valid_before = t
                .valid_before
                .as_ref()
                .filter(|_| access)
                .and_then(|value| instant(item, value, context, "valid_before", sink));
            Some(Expect::Allow { valid_before })
        }
        "deny" => {
            if let Some(value) = &t.valid_before {
                sink.at(
                    &item.at(value),
                    format!("{context}: valid_before is only for expect = \"allow\"; remove it"),
                );
            }
            let code = t.deny.as_ref().and_then(|value| {
                let code = DenyCode::parse(value.get_ref()).ok_or_else(|| {
                    let known: Vec<&str> = DenyCode::ALL.iter().map(|c| c.as_str()).collect();
                    format!(
                        "unknown deny code {:?}; known: {}",
                        value.get_ref(),
                        known.join(", ")
                    )
                });
                report(code, context, &item.at(value), sink)
            });
            Some(Expect::Deny { code })
        }
        other => {
            sink.at(
                &item.at(&t.expect),
                format!("{context}: expect must be \"allow\" or \"deny\", not {other:?}"),
            );
            None
        }
    }
}

fn test_override(
    item: &Item<RawTest>,
    value: &Spanned<RawTestOverride>,
    context: &str,
    known_schedule: &dyn Fn(&str) -> bool,
    sink: &mut Sink<'_>,
) -> Option<Override> {
    let o = value.get_ref();
    let loc = item.at(value);
    let time = |v: &toml::Value, field: &str| {
        let text = match v {
            toml::Value::String(text) => Ok(text.clone()),
            toml::Value::Datetime(datetime) => Ok(datetime.to_string()),
            other => Err(format!(
                "expected a timestamp, found a {}",
                other.type_str()
            )),
        };
        text.and_then(|text| parse_instant(&text))
            .map_err(|e| format!("overrides: {field}: {e}"))
    };
    let start = report(time(&o.start, "start"), context, &loc, sink);
    let end = report(time(&o.end, "end"), context, &loc, sink);
    if !known_schedule(&o.schedule) {
        sink.at(
            &loc,
            format!("{context}: overrides: unknown schedule {:?}", o.schedule),
        );
    }
    let member = report(
        Identity::parse_member(&o.member).map_err(|e| format!("overrides: member: {e}")),
        context,
        &loc,
        sink,
    );
    let created_by = report(
        Identity::parse_subject(&o.created_by).map_err(|e| format!("overrides: created_by: {e}")),
        context,
        &loc,
        sink,
    );
    Some(Override {
        schedule: o.schedule.clone(),
        member: member?.to_string(),
        start: start?,
        end: end?,
        created_by: created_by?.to_string(),
    })
}

/// What a test's shared keys came to, for [`check_test_action`].
struct Common<'a> {
    context: &'a str,
    severity: Option<u8>,
    opener: Option<String>,
    overrides: Vec<Override>,
    /// The test's `identity`, creator of the override it names.
    identity: Option<&'a Identity>,
}

/// The action of an action test, from the fields it reads.
fn check_test_action(
    item: &Item<RawTest>,
    kind: ActionKind,
    common: Common<'_>,
    role: &dyn Fn(&mut Sink<'_>, bool) -> Option<String>,
    known_schedule: &dyn Fn(&str) -> bool,
    sink: &mut Sink<'_>,
) -> Option<TestAction> {
    let Common {
        context,
        severity,
        opener,
        overrides,
        identity,
    } = common;
    let t = &item.value;
    let required = |sink: &mut Sink<'_>, field: &str, present: bool| {
        if !present {
            sink.at(
                &item.loc(),
                format!("{context}: {} needs {field}", kind.as_str()),
            );
        }
    };
    let text = |sink: &mut Sink<'_>, value: &Option<Spanned<String>>, field: &str| {
        required(sink, field, value.is_some());
        value.as_ref().map(|v| v.get_ref().clone())
    };
    let time = |sink: &mut Sink<'_>, value: &Option<Spanned<toml::Value>>, field: &str| {
        required(sink, field, value.is_some());
        value
            .as_ref()
            .and_then(|v| instant(item, v, context, field, sink))
    };
    let subject = |sink: &mut Sink<'_>, value: &Option<Spanned<String>>, field: &str| {
        required(sink, field, value.is_some());
        let value = value.as_ref()?;
        report(
            Identity::parse_subject(value.get_ref()).map(|i| i.to_string()),
            context,
            &item.at(value),
            sink,
        )
    };
    // An override the test names: the one to create, shorten or delete.
    let named_override = |sink: &mut Sink<'_>| -> Option<Override> {
        let schedule = text(sink, &t.schedule, "schedule");
        if let (Some(name), Some(value)) = (&schedule, &t.schedule)
            && !known_schedule(name)
        {
            sink.at(
                &item.at(value),
                format!("{context}: unknown schedule {name:?}"),
            );
        }
        let member = text(sink, &t.member, "member");
        let start = time(sink, &t.start, "start");
        let end = time(sink, &t.end, "end");
        Some(Override {
            schedule: schedule?,
            member: member?,
            start: start?,
            end: end?,
            created_by: identity?.to_string(),
        })
    };
    match kind {
        ActionKind::IncidentOpen => Some(TestAction::OpenIncident {
            severity: severity?,
        }),
        ActionKind::IncidentResolve => {
            required(sink, "incident_opened_by", t.incident_opened_by.is_some());
            Some(TestAction::ResolveIncident {
                severity: severity?,
                opened_by: opener?,
            })
        }
        ActionKind::OverrideCreate => Some(TestAction::CreateOverride {
            new: named_override(sink)?,
            existing: overrides,
        }),
        ActionKind::OverrideShorten => {
            let existing = named_override(sink);
            let new_end = time(sink, &t.new_end, "new_end");
            Some(TestAction::ShortenOverride {
                existing: existing?,
                new_end: new_end?,
            })
        }
        ActionKind::OverrideDelete => Some(TestAction::DeleteOverride {
            existing: named_override(sink)?,
        }),
        ActionKind::RequestApprove
        | ActionKind::RequestDeny
        | ActionKind::RecordingReview
        | ActionKind::RecordingHold => {
            let role = role(sink, true);
            let requester = subject(sink, &t.requester, "requester");
            Some(TestAction::Request {
                kind,
                role: role?,
                requester: requester?,
            })
        }
        ActionKind::IdentityLock | ActionKind::IdentityUnlock => Some(TestAction::Identity {
            kind,
            target: subject(sink, &t.target, "target")?,
        }),
        ActionKind::CertificateRevoke => {
            let role = role(sink, false);
            Some(TestAction::Revoke {
                target: subject(sink, &t.target, "target")?,
                role,
            })
        }
        ActionKind::HostEnroll => Some(TestAction::Enroll {
            names: vec![text(sink, &t.host, "host")?],
        }),
    }
}
