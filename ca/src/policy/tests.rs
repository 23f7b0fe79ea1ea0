//! Tests of the whole policy module: decisions, `policy explain`, the
//! policy's own tests and the documented example. Checking and loading are
//! in `check_tests.rs`; schedule arithmetic and value syntax are tested
//! beside their code.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::denied::DenyCode;
use super::eval::{IncidentState, Limit};
use super::identity::Identity;
use super::{AccessQuery, Policy, PolicyErrors};

const EXAMPLE: &str = include_str!("../../../docs/examples/policy.toml");

const BASE: &str = r#"
[settings]
default_ttl = "15m"
max_ttl = "1h"
clock_skew = "2m"

[[schedule]]
name = "sre-primary"
timezone = "Europe/Berlin"
rotation = { members = ["alice@example.com", "bob@example.com"], start = "2026-11-02T09:00", shift = "7d" }

[[schedule]]
name = "night"
timezone = "UTC"
rotation = { members = ["local:root"], start = "2026-11-02T00:00", shift = "12h" }

[[role]]
name = "db-debug"
principals = ["postgres", "readonly"]
hosts = ["db-*.prod.example.com"]
max_ttl = "30m"
require_on_call = ["sre-primary"]
require_incident = true
require_reason = true
extensions = ["permit-pty", "permit-X11-forwarding"]
force_command = "/usr/bin/psql"
source_address = ["10.0.0.0/8", "192.168.0.0/16"]

[[role]]
name = "staging"
principals = ["dev"]
hosts = ["*.staging.example.com"]

[[role]]
name = "short"
principals = ["dev"]
hosts = ["*.staging.example.com"]
max_ttl = "10m"

[[role]]
name = "either"
principals = ["ops"]
hosts = ["*"]
require_on_call = ["sre-primary", "night"]

[[grant]]
identities = ["group:sre", "local:root"]
roles = ["db-debug", "either"]

[[grant]]
identities = ["user:carol@example.com"]
roles = ["staging", "short"]
"#;

pub(super) fn policy(src: &str) -> Policy {
    match Policy::parse(src, "policy.toml") {
        Ok(policy) => policy,
        Err(errors) => panic!("policy has errors:\n{errors}"),
    }
}

pub(super) fn errors(src: &str) -> Vec<String> {
    match Policy::parse(src, "policy.toml") {
        Ok(_) => panic!("policy has no errors"),
        Err(errors) => errors.to_string().lines().map(str::to_owned).collect(),
    }
}

pub(super) fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// An open incident of this severity, opened by an alert source (so it
/// counts as independent of every requester).
pub(super) fn open_incident(severity: u8) -> IncidentState {
    IncidentState::Open {
        severity,
        opened_by: "webhook:alertmanager".to_owned(),
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Alice is on call for sre-primary all week from 2026-11-02 09:00 CET.
const ALICE_ON_CALL: &str = "2026-11-05T02:00:00Z";

struct Query {
    identity: &'static str,
    groups: Vec<String>,
    role: &'static str,
    incident: Option<&'static str>,
    incident_state: Option<IncidentState>,
    reason: Option<&'static str>,
    ttl: Option<Duration>,
    principals: Option<Vec<String>>,
    at: DateTime<Utc>,
}

impl Query {
    /// A request by alice for db-debug that passes every check.
    fn alice() -> Query {
        Query {
            identity: "user:alice@example.com",
            groups: strings(&["sre"]),
            role: "db-debug",
            incident: Some("INC-1"),
            incident_state: Some(open_incident(1)),
            reason: Some("restarting the stuck replica"),
            ttl: Some(Duration::from_secs(600)),
            principals: None,
            at: utc(ALICE_ON_CALL),
        }
    }

    fn as_query(&self) -> AccessQuery<'_> {
        AccessQuery {
            identity: self.identity,
            groups: &self.groups,
            role: self.role,
            incident: self.incident,
            incident_state: self.incident_state.clone(),
            approved_by: &[],
            overrides: &[],
            reason: self.reason,
            ttl: self.ttl,
            principals: self.principals.as_deref(),
            at: self.at,
        }
    }

    fn denied(&self, policy: &Policy) -> (DenyCode, String) {
        match policy.evaluate(&self.as_query()) {
            Ok(allowed) => panic!("expected a denial, got {allowed:?}"),
            Err(denied) => (denied.code, denied.message),
        }
    }
}

// ------------------------------------------------------------- decisions

#[test]
fn allow_carries_everything_the_certificate_needs() {
    let policy = policy(BASE);
    let q = Query::alice();
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(allowed.role(), "db-debug");
    // Principals name the role; the logins are what the user types.
    assert_eq!(
        allowed.principals(),
        strings(&["postgres@db-debug", "readonly@db-debug"])
    );
    assert_eq!(allowed.logins(), strings(&["postgres", "readonly"]));
    assert_eq!(allowed.valid_after(), utc("2026-11-05T01:58:00Z"));
    assert_eq!(allowed.valid_before(), utc("2026-11-05T02:10:00Z"));
    assert_eq!(allowed.limited_by(), Limit::RequestedTtl);
    assert_eq!(
        allowed.extensions(),
        strings(&["permit-X11-forwarding", "permit-pty"])
    );
    assert_eq!(
        allowed.critical_options(),
        [
            ("force-command".to_owned(), "/usr/bin/psql".to_owned()),
            (
                "source-address".to_owned(),
                "10.0.0.0/8,192.168.0.0/16".to_owned()
            ),
        ]
    );
    let shift = allowed.shift().unwrap();
    assert_eq!(shift.member, Identity::User("alice@example.com".into()));
    assert_eq!(shift.end, utc("2026-11-09T08:00:00Z"));
    assert_eq!(allowed.incident(), Some("INC-1"));
    assert_eq!(allowed.reason(), Some("restarting the stuck replica"));
}

#[test]
fn requested_principals_narrow_the_certificate() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.principals = Some(strings(&["readonly", "readonly"]));
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(allowed.principals(), strings(&["readonly@db-debug"]));
    // An empty list means "all of the role's", never "no principals".
    q.principals = Some(Vec::new());
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(
        allowed.principals(),
        strings(&["postgres@db-debug", "readonly@db-debug"])
    );
}

#[test]
fn default_ttl_applies_when_none_is_requested() {
    let policy = policy(BASE);
    let q = Query {
        identity: "user:carol@example.com",
        groups: Vec::new(),
        role: "staging",
        incident: None,
        incident_state: Some(open_incident(1)),
        reason: None,
        ttl: None,
        principals: None,
        at: utc("2026-11-05T10:00:00Z"),
    };
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(allowed.valid_before(), utc("2026-11-05T10:15:00Z"));
    assert_eq!(allowed.limited_by(), Limit::DefaultTtl);
    assert!(allowed.shift().is_none());
    assert!(allowed.extensions().is_empty());
    assert!(allowed.critical_options().is_empty());
}

#[test]
fn default_ttl_is_capped_to_the_role_max_silently() {
    let policy = policy(BASE);
    let q = Query {
        identity: "user:carol@example.com",
        groups: Vec::new(),
        role: "short",
        incident: None,
        incident_state: Some(open_incident(1)),
        reason: None,
        ttl: None,
        principals: None,
        at: utc("2026-11-05T10:00:00Z"),
    };
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(allowed.valid_before(), utc("2026-11-05T10:10:00Z"));
    assert_eq!(allowed.limited_by(), Limit::RoleMaxTtl);
}

#[test]
fn requested_ttl_equal_to_the_role_max_is_allowed() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.ttl = Some(Duration::from_secs(30 * 60));
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(allowed.valid_before(), utc("2026-11-05T02:30:00Z"));
    assert_eq!(allowed.limited_by(), Limit::RequestedTtl);
}

#[test]
fn validity_is_capped_at_the_end_of_the_shift() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.at = utc("2026-11-09T07:50:00Z"); // handoff to bob at 08:00Z (09:00 CET)
    q.ttl = Some(Duration::from_secs(30 * 60));
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(allowed.valid_before(), utc("2026-11-09T08:00:00Z"));
    assert_eq!(allowed.limited_by(), Limit::ShiftEnd);
}

#[test]
fn exactly_at_handoff_the_next_member_gets_access() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.at = utc("2026-11-09T08:00:00Z");
    assert_eq!(q.denied(&policy).0, DenyCode::NotOnCall);
    q.identity = "user:bob@example.com";
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(allowed.shift().unwrap().start, utc("2026-11-09T08:00:00Z"));
}

#[test]
fn on_call_for_any_listed_schedule_is_enough_and_the_longest_shift_wins() {
    let policy = policy(BASE);
    // local:root is on the "night" schedule every 12h shift.
    let q = Query {
        identity: "local:root",
        groups: Vec::new(),
        role: "either",
        incident: None,
        incident_state: Some(open_incident(1)),
        reason: None,
        ttl: Some(Duration::from_secs(3600)),
        principals: None,
        at: utc("2026-11-05T11:30:00Z"),
    };
    let allowed = policy.evaluate(&q.as_query()).unwrap();
    assert_eq!(allowed.shift().unwrap().schedule, "night");
    assert_eq!(allowed.valid_before(), utc("2026-11-05T12:00:00Z"));
    assert_eq!(allowed.limited_by(), Limit::ShiftEnd);
}

#[test]
fn user_identities_match_case_insensitively() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.identity = "user:Alice@Example.COM";
    assert!(policy.evaluate(&q.as_query()).is_ok());
}

#[test]
fn deny_unknown_role() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.role = "db-debgu";
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::UnknownRole);
    // Only alice's own roles are named, not carol's "staging" and "short".
    assert!(
        message.ends_with("your roles: db-debug, either"),
        "{message}"
    );
    q.identity = "user:mallory@example.com";
    q.groups = vec![];
    let (_, message) = q.denied(&policy);
    assert!(message.contains("you hold no roles"), "{message}");
}

#[test]
fn deny_not_granted() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.groups = Vec::new();
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::NotGranted);
    assert!(message.contains("ask a policy owner"), "{message}");
    // A group claim alone does not make someone else alice.
    q.identity = "user:mallory@example.com";
    q.groups = strings(&["dev"]);
    assert_eq!(q.denied(&policy).0, DenyCode::NotGranted);
    // Malformed and group identities are never granted.
    q.identity = "alice@example.com";
    q.groups = strings(&["sre"]);
    assert_eq!(q.denied(&policy).0, DenyCode::NotGranted);
    q.identity = "group:sre";
    assert_eq!(q.denied(&policy).0, DenyCode::NotGranted);
}

#[test]
fn deny_principal_not_in_role() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.principals = Some(strings(&["postgres", "root"]));
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::PrincipalNotInRole);
    assert!(
        message.contains("root") && message.contains("choose from postgres, readonly"),
        "{message}"
    );
}

#[test]
fn deny_ttl_above_max_rather_than_shorten() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.ttl = Some(Duration::from_secs(31 * 60));
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::TtlAboveMax);
    assert!(message.contains("ask for 30m or less"), "{message}");
}

#[test]
fn deny_zero_ttl() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.ttl = Some(Duration::ZERO);
    assert_eq!(q.denied(&policy).0, DenyCode::InvalidTtl);
}

#[test]
fn deny_incident_required() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.incident = None;
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::IncidentRequired);
    assert!(message.contains("--incident"), "{message}");
    q.incident = Some("   ");
    assert_eq!(q.denied(&policy).0, DenyCode::IncidentRequired);
}

#[test]
fn deny_reason_required() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.reason = None;
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::ReasonRequired);
    assert!(message.contains("--reason"), "{message}");
    // Nine non-space characters are not enough, however spread out.
    q.reason = Some("abcd  efghi");
    assert_eq!(q.denied(&policy).0, DenyCode::ReasonRequired);
    q.reason = Some(" abcde fghij ");
    assert!(policy.evaluate(&q.as_query()).is_ok());
}

#[test]
fn deny_not_on_call() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.identity = "user:bob@example.com";
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::NotOnCall);
    assert!(message.contains("user:alice@example.com"), "{message}");
    assert!(message.contains("take over the shift"), "{message}");
    // Granted, but not on the listed schedule at all.
    q.identity = "local:root";
    q.groups = Vec::new();
    assert_eq!(q.denied(&policy).0, DenyCode::NotOnCall);
    // Before the rotation starts nobody is on call.
    let mut q = Query::alice();
    q.at = utc("2026-11-01T12:00:00Z");
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::NotOnCall);
    assert!(message.contains("rotation not started"), "{message}");
}

#[test]
fn the_first_failing_check_in_order_decides() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    q.identity = "user:bob@example.com"; // not on call
    q.incident = None;
    q.reason = None;
    q.ttl = Some(Duration::from_secs(7200));
    q.principals = Some(strings(&["root"]));
    assert_eq!(q.denied(&policy).0, DenyCode::PrincipalNotInRole);
    q.principals = None;
    assert_eq!(q.denied(&policy).0, DenyCode::TtlAboveMax);
    q.ttl = None;
    assert_eq!(q.denied(&policy).0, DenyCode::IncidentRequired);
    q.incident = Some("INC-9");
    assert_eq!(q.denied(&policy).0, DenyCode::ReasonRequired);
    q.reason = Some("looking at locks");
    assert_eq!(q.denied(&policy).0, DenyCode::NotOnCall);
    q.groups = Vec::new();
    assert_eq!(q.denied(&policy).0, DenyCode::NotGranted);
}

#[test]
fn explain_shows_every_step_and_every_failure() {
    let policy = policy(BASE);
    let mut q = Query::alice();
    let steps = policy.explain(&q.as_query());
    assert!(
        steps
            .iter()
            .any(|s| s.contains("granted to group:sre by the grant at policy.toml:"))
    );
    let last = steps.last().unwrap();
    assert!(last.starts_with("ALLOW role \"db-debug\""), "{last}");
    assert!(last.contains("limited by requested-ttl"), "{last}");

    q.identity = "user:bob@example.com";
    q.incident = None;
    let steps = policy.explain(&q.as_query());
    let failures: Vec<&String> = steps.iter().filter(|s| s.starts_with("FAIL")).collect();
    assert_eq!(failures.len(), 2, "{steps:#?}");
    assert!(failures[0].contains("incident-required"));
    assert!(failures[1].contains("not-on-call"));
    assert!(steps.last().unwrap().starts_with("DENY  incident-required"));
}

#[test]
fn on_call_api() {
    let policy = policy(BASE);
    let shift = policy.on_call("sre-primary", utc(ALICE_ON_CALL)).unwrap();
    assert_eq!(shift.member.to_string(), "user:alice@example.com");
    assert_eq!(shift.start, utc("2026-11-02T08:00:00Z"));
    assert_eq!(shift.end, utc("2026-11-09T08:00:00Z"));
    assert!(
        policy
            .on_call("sre-primary", utc("2026-11-02T07:59:59Z"))
            .is_none()
    );
    assert!(policy.on_call("nope", utc(ALICE_ON_CALL)).is_none());
}

#[test]
fn accessors() {
    let policy = policy(BASE);
    assert_eq!(policy.settings().default_ttl(), Duration::from_secs(900));
    assert_eq!(policy.settings().max_ttl(), Duration::from_secs(3600));
    assert_eq!(policy.settings().clock_skew(), Duration::from_secs(120));
    let names: Vec<&str> = policy.roles().map(|r| r.name()).collect();
    assert_eq!(names, ["db-debug", "staging", "short", "either"]);
    let role = policy.role("staging").unwrap();
    assert_eq!(role.max_ttl(), Duration::from_secs(3600)); // from settings
    assert_eq!(role.origin(), "policy.toml:29:1");
    assert!(policy.role("nope").is_none());
    assert_eq!(policy.schedules().count(), 2);
    assert_eq!(policy.grants().count(), 2);
    assert_eq!(policy.sources().count(), 1);
}

#[test]
fn settings_default_when_absent() {
    let policy = policy("");
    assert_eq!(
        policy.settings().default_ttl(),
        Duration::from_secs(15 * 60)
    );
    assert_eq!(policy.settings().max_ttl(), Duration::from_secs(3600));
    assert_eq!(policy.settings().clock_skew(), Duration::from_secs(60));
}

#[test]
fn policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<PolicyErrors>();
}

// ------------------------------------------------------- the example file

#[test]
fn the_documented_example_parses_and_all_its_tests_pass() {
    // Loaded from its path: its calendar schedule names a file beside it.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/policy.toml");
    let policy = match Policy::load(&path) {
        Ok(policy) => policy,
        Err(errors) => panic!("policy has errors:\n{errors}"),
    };
    assert_eq!(policy.sources().next().map(|(_, text)| text), Some(EXAMPLE));
    let outcomes = policy.run_tests();
    assert_eq!(outcomes.len(), 48);
    assert!(policy.warnings().is_empty(), "{:?}", policy.warnings());
    for outcome in &outcomes {
        assert!(
            outcome.passed,
            "{}: {}: {}",
            outcome.location, outcome.name, outcome.detail
        );
    }
}

/// The short example at the top of docs/policy.md and the policy the
/// packages install: valid, without warnings, every test passing.
#[test]
fn the_other_documented_policies_pass_check_and_test() {
    let reference = include_str!("../../../docs/policy.md");
    let short = reference
        .split("## A short example\n\n```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/policy.md has a short example");
    let packaged = include_str!("../../../packaging/etc/policy.toml");
    for (name, text, count) in [("short example", short, 2), ("packaged", packaged, 6)] {
        let policy = policy(text);
        assert!(
            policy.warnings().is_empty(),
            "{name}: {:?}",
            policy.warnings()
        );
        let outcomes = policy.run_tests();
        assert_eq!(outcomes.len(), count, "{name}");
        for outcome in &outcomes {
            assert!(
                outcome.passed,
                "{name}: {}: {}",
                outcome.name, outcome.detail
            );
        }
    }
}

// ---------------------------------------------------------------- run_tests

#[test]
fn run_tests_reports_passes_and_failures() {
    let src = format!(
        "{BASE}{}",
        r#"
[[test]]
name = "alice may debug"
identity = "user:alice@example.com"
groups = ["sre"]
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
incident = "INC-1"
reason = "replica is stuck again"
ttl = "10m"
expect = "allow"
valid_before = "2026-11-05T03:10:00+01:00"

[[test]]
name = "wrong end"
identity = "user:alice@example.com"
groups = ["sre"]
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
incident = "INC-1"
reason = "replica is stuck again"
expect = "allow"
valid_before = "2026-11-05T03:20:00+01:00"

[[test]]
name = "wrong code"
identity = "user:bob@example.com"
groups = ["sre"]
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
incident = "INC-1"
reason = "replica is stuck again"
expect = "deny"
deny = "not-granted"

[[test]]
name = "expected deny"
identity = "user:carol@example.com"
at = "2026-11-05T03:00:00+01:00"
role = "staging"
expect = "deny"

[[test]]
name = "expected allow"
identity = "user:carol@example.com"
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
expect = "allow"

[[test]]
name = "any denial will do"
identity = "user:carol@example.com"
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
principals = ["postgres"]
ttl = "0s"
expect = "deny"
"#
    );
    let outcomes = policy(&src).run_tests();
    let summary: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|o| (o.name.as_str(), o.passed))
        .collect();
    assert_eq!(
        summary,
        [
            ("alice may debug", true),
            ("wrong end", false),
            ("wrong code", false),
            ("expected deny", false),
            ("expected allow", false),
            ("any denial will do", true),
        ]
    );
    let detail = |i: usize| outcomes[i].detail.as_str();
    assert_eq!(
        detail(0),
        "allowed until 2026-11-05T02:10:00+00:00 (limited by requested-ttl)"
    );
    assert_eq!(
        detail(1),
        "allowed until 2026-11-05T02:15:00+00:00 (limited by default-ttl), but expected \
         valid_before 2026-11-05T02:20:00+00:00"
    );
    assert!(
        detail(2).starts_with("expected deny (not-granted), but denied (not-on-call)"),
        "{}",
        detail(2)
    );
    assert!(
        detail(3).starts_with("expected deny, but allowed until"),
        "{}",
        detail(3)
    );
    assert!(
        detail(4).starts_with("expected allow, but denied (not-granted)"),
        "{}",
        detail(4)
    );
    assert_eq!(outcomes[0].location, "policy.toml:54:1");
}

#[test]
fn granted_roles_lists_what_grants_give_with_hosts() {
    let p = policy(BASE);
    let names = |identity: &str, groups: &[&str]| -> Vec<String> {
        p.granted_roles(identity, &strings(groups))
            .iter()
            .map(|r| r.name().to_owned())
            .collect()
    };
    assert_eq!(
        names("user:alice@example.com", &["sre"]),
        ["db-debug", "either"]
    );
    assert_eq!(names("local:root", &[]), ["db-debug", "either"]);
    assert_eq!(names("user:carol@example.com", &[]), ["staging", "short"]);
    assert!(names("user:mallory@example.com", &["sre-adjacent"]).is_empty());
    assert!(
        names("group:sre", &[]).is_empty(),
        "a group is not a requester"
    );
    let db = p
        .granted_roles("local:root", &[])
        .into_iter()
        .find(|r| r.name() == "db-debug")
        .unwrap();
    assert_eq!(db.hosts(), ["db-*.prod.example.com"]);
    assert_eq!(db.principals(), ["postgres", "readonly"]);
}

#[test]
fn incidents_must_be_known_open_and_severe_enough() {
    let src = BASE.replace(
        "require_reason = true\n",
        "require_reason = true\nincident_severity = \"sev2\"\n",
    );
    let policy = policy(&src);
    let mut q = Query::alice();
    q.incident_state = Some(open_incident(2));
    assert!(
        policy.evaluate(&q.as_query()).is_ok(),
        "sev2 is severe enough"
    );
    q.incident_state = Some(open_incident(3));
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::IncidentNotSevere);
    assert!(
        message.contains("sev2 or worse; INC-1 is sev3"),
        "{message}"
    );
    q.incident_state = Some(IncidentState::Resolved);
    assert_eq!(q.denied(&policy).0, DenyCode::IncidentResolved);
    q.incident_state = Some(IncidentState::Unknown);
    assert_eq!(q.denied(&policy).0, DenyCode::IncidentUnknown);
    // Not looked up counts as unknown: fail closed.
    q.incident_state = None;
    assert_eq!(q.denied(&policy).0, DenyCode::IncidentUnknown);
    // A role that needs no incident still refuses one the CA does not know.
    q.role = "staging";
    q.identity = "user:carol@example.com";
    q.incident_state = Some(IncidentState::Unknown);
    assert_eq!(q.denied(&policy).0, DenyCode::IncidentUnknown);
}

#[test]
fn approvals_count_others_and_auto_approve_needs_every_condition() {
    let src = format!(
        "{BASE}\n[[role]]\nname = \"gated\"\nprincipals = [\"ops\"]\nhosts = [\"*.prod\"]\nrequire_on_call = [\"sre-primary\"]\n\
         approvals = 2\napprovers = [\"group:leads\", \"user:carol@example.com\"]\n\
         auto_approve = {{ on_call = true, incident_severity = \"sev1\" }}\n\n[[grant]]\nidentities = [\"group:sre\"]\nroles = [\"gated\"]\n"
    );
    let policy = policy(&src);
    let mut q = Query::alice();
    q.role = "gated";
    // On call but only a sev2 incident: the rule does not hold; approvals needed.
    q.incident_state = Some(open_incident(2));
    let (code, message) = q.denied(&policy);
    assert_eq!(code, DenyCode::ApprovalRequired);
    assert!(message.contains("needs 2 approval(s)"), "{message}");
    // A sev1 incident: auto-approved.
    q.incident_state = Some(open_incident(1));
    assert!(policy.evaluate(&q.as_query()).is_ok());
    // The requester's own approval never counts; two others do.
    q.incident_state = Some(open_incident(2));
    let own = strings(&["user:alice@example.com", "user:carol@example.com"]);
    let query = AccessQuery {
        approved_by: &own,
        ..q.as_query()
    };
    assert_eq!(
        policy.evaluate(&query).err().map(|d| d.code),
        Some(DenyCode::ApprovalRequired)
    );
    let two = strings(&["user:carol@example.com", "user:dave@example.com"]);
    let query = AccessQuery {
        approved_by: &two,
        ..q.as_query()
    };
    assert!(policy.evaluate(&query).is_ok());
    // Who may approve.
    assert!(policy.may_approve(
        "gated",
        "user:carol@example.com",
        &[],
        "user:alice@example.com"
    ));
    assert!(policy.may_approve(
        "gated",
        "user:dave@example.com",
        &strings(&["leads"]),
        "user:alice@example.com"
    ));
    assert!(!policy.may_approve(
        "gated",
        "user:alice@example.com",
        &strings(&["leads"]),
        "user:alice@example.com"
    ));
    assert!(!policy.may_approve(
        "gated",
        "user:eve@example.com",
        &strings(&["sre"]),
        "user:alice@example.com"
    ));
}

#[test]
fn filler_reasons_are_refused() {
    for filler in [
        "testtesttest",
        "debugging debugging",
        "aaaaaaaaaaaa bbbb",
        "need access",
        "asdfasdfasdf",
        "n/a n/a n/a n/a",
    ] {
        assert!(super::eval::is_filler_for_tests(filler), "{filler:?}");
    }
    for real in [
        "restarting the stuck replica",
        "failover db-1 to db-2 (INC-42)",
        "identity provider down, restoring login",
    ] {
        assert!(!super::eval::is_filler_for_tests(real), "{real:?}");
    }
}
