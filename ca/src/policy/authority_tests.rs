//! Issue 13's escalations as policy-level tests: who may change the facts
//! access depends on, conditions a requester serves themselves, one person
//! with several identities, and role-scoped principals on hosts. Under the
//! old rules (any role holder may open incidents and create overrides,
//! facts count whoever made them, principals are bare logins) each of these
//! was allowed.

use chrono::{DateTime, Duration, Utc};

use super::authority::ActionKind;
use super::tests::{policy, utc};
use super::{AccessQuery, Action, Actor, DenyCode, IncidentState, Override, Policy};

const POLICY: &str = r#"
admins = ["group:ca-admins"]

[settings]
max_ttl = "1h"

[[person]]
name = "alice"
identities = ["user:alice@example.com", "local:alice"]

[[schedule]]
name = "primary"
timezone = "UTC"
rotation = { members = ["alice@example.com", "carol@example.com"], start = "2026-11-02T00:00", shift = "7d" }

[[role]]
name = "web-ops"
principals = ["deploy"]
hosts = ["web-*.prod.example.com"]
require_on_call = ["primary"]
require_incident = true
approvals = 1
approvers = ["group:leads"]
auto_approve = { on_call = true, incident_severity = "sev2" }

[[role]]
name = "db-ops"
principals = ["deploy"]
hosts = ["db-*.prod.example.com"]
ports = [22, 5432]

[[role]]
name = "staging"
principals = ["dev"]
hosts = ["*.staging.example.com"]

[[role]]
name = "self-help"
principals = ["ops"]
hosts = ["ops-*.prod.example.com"]
require_on_call = ["primary"]
require_incident = true
self_served = ["incident", "on_call"]

[[grant]]
identities = ["group:sre", "local:bob", "person:alice", "user:carol@example.com"]
roles = ["web-ops", "db-ops", "staging", "self-help"]

[[grant]]
identities = ["user:dave@example.com"]
roles = ["staging"]

[[authority]]
description = "engineers open minor incidents"
identities = ["group:sre"]
actions = ["incident.open"]
severities = ["sev3", "sev4"]

[[authority]]
identities = ["group:leads"]
actions = ["incident.open", "incident.resolve", "override.create", "override.shorten", "override.delete"]
take_shifts = true

[[authority]]
description = "the people in the rotation swap and cover among themselves"
identities = ["person:alice", "user:carol@example.com"]
actions = ["override.create"]
schedules = ["primary"]

[[authority]]
identities = ["group:sre"]
actions = ["incident.resolve"]
for = "self"

[[authority]]
identities = ["webhook:alertmanager"]
actions = ["incident.open", "incident.resolve"]

[[authority]]
identities = ["group:security"]
actions = ["identity.lock", "identity.unlock", "certificate.revoke"]
for = "others"

[[authority]]
identities = ["group:sre"]
actions = ["certificate.revoke"]
for = "self"

[[authority]]
identities = ["group:platform"]
actions = ["host.enroll"]
hosts = ["web-*.prod.example.com"]
"#;

/// A moment in carol's week on call (alice has 2026-11-02 to -09).
const CAROL_WEEK: &str = "2026-11-10T12:00:00Z";
/// A moment in alice's week.
const ALICE_WEEK: &str = "2026-11-04T12:00:00Z";

fn actor<'a>(identity: &'a str, groups: &'a [String]) -> Actor<'a> {
    Actor {
        identity,
        groups,
        locked: false,
    }
}

fn groups(list: &[&str]) -> Vec<String> {
    list.iter().map(|g| (*g).to_owned()).collect()
}

fn code(policy: &Policy, who: Actor<'_>, action: Action<'_>, at: DateTime<Utc>) -> DenyCode {
    match policy.authorize(&who, &action, at) {
        Ok(allowed) => panic!("allowed via {}", allowed.via()),
        Err(denied) => denied.code,
    }
}

fn allowed(policy: &Policy, who: Actor<'_>, action: Action<'_>, at: DateTime<Utc>) -> String {
    match policy.authorize(&who, &action, at) {
        Ok(allowed) => {
            assert_eq!(allowed.kind(), action.kind());
            let canonical = super::canonical_identity(who.identity).unwrap();
            assert_eq!(allowed.actor(), canonical);
            allowed.via().to_owned()
        }
        Err(denied) => panic!("{denied}"),
    }
}

fn over(member: &str, created_by: &str, start: DateTime<Utc>, hours: i64) -> Override {
    Override {
        schedule: "primary".into(),
        member: member.into(),
        start,
        end: start + Duration::hours(hours),
        created_by: created_by.into(),
    }
}

fn query<'a>(
    identity: &'a str,
    role: &'a str,
    incident: Option<IncidentState>,
    overrides: &'a [Override],
    approved_by: &'a [String],
    at: DateTime<Utc>,
) -> AccessQuery<'a> {
    AccessQuery {
        identity,
        groups: &[],
        role,
        incident: incident.as_ref().map(|_| "INC-1"),
        incident_state: incident,
        approved_by,
        overrides,
        reason: None,
        ttl: None,
        principals: None,
        at,
    }
}

fn opened(severity: u8, by: &str) -> Option<IncidentState> {
    Some(IncidentState::Open {
        severity,
        opened_by: by.to_owned(),
    })
}

// --------------------------------------------------- the reported attack

/// The report: `local:bob`, holding roles but named nowhere else, put
/// himself on call for 20 days, opened a sev1, and got a certificate for a
/// role that requires on-call, an incident and an approval.
#[test]
fn bob_cannot_put_himself_on_call_open_a_sev1_and_get_web_ops() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let none: Vec<String> = Vec::new();
    let bob = actor("local:bob", &none);
    let create = |hours| Action::CreateOverride {
        schedule: "primary",
        member: "local:bob",
        start: now,
        end: now + Duration::hours(hours),
        existing: &[],
    };
    assert_eq!(
        code(&p, bob, create(20 * 24), now),
        DenyCode::OverrideTooLong
    );
    let denied = p.authorize(&bob, &create(8), now).unwrap_err();
    assert_eq!(denied.code, DenyCode::NotAuthorized);
    // The refusal says who could, without naming people.
    assert!(denied.message.contains("you (local:bob) may not put yourself on call for schedule \"primary\", taking the shift"), "{}", denied.message);
    assert!(denied.message.contains("group:leads"), "{}", denied.message);
    assert!(denied.message.contains("admins"), "{}", denied.message);
    assert!(!denied.message.contains("carol"), "{}", denied.message);
    assert_eq!(
        code(&p, bob, Action::OpenIncident { severity: 1 }, now),
        DenyCode::NotAuthorized
    );

    // Had he made those facts anyway, they are his own and count for nothing.
    let own = [over("local:bob", "local:bob", now - Duration::hours(1), 20)];
    let q = query(
        "local:bob",
        "web-ops",
        opened(1, "local:bob"),
        &own,
        &[],
        now,
    );
    let denied = p.evaluate(&q).unwrap_err();
    assert_eq!(denied.code, DenyCode::SelfServed);
    assert!(
        denied.message.contains("opened by you (local:bob)"),
        "{}",
        denied.message
    );
    let explained = p.explain(&q).join("\n");
    assert!(
        explained.contains("only through an override you created"),
        "{explained}"
    );
    assert!(!explained.contains("ok    auto-approved"), "{explained}");
}

// ------------------------------------------------------ self-served facts

#[test]
fn an_incident_bob_opened_does_not_satisfy_require_incident_for_bob() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let approvals = vec!["user:lead@example.com".to_owned()];
    let q = query(
        "user:carol@example.com",
        "web-ops",
        opened(3, "user:CAROL@example.com"),
        &[],
        &approvals,
        now,
    );
    let denied = p.evaluate(&q).unwrap_err();
    assert_eq!(denied.code, DenyCode::SelfServed);
    assert!(
        denied.message.contains("INC-1 was opened by you"),
        "{}",
        denied.message
    );
    // Opened by someone else, or by an alert source: it counts.
    for opener in ["user:lead@example.com", "webhook:alertmanager"] {
        let q = query(
            "user:carol@example.com",
            "web-ops",
            opened(3, opener),
            &[],
            &approvals,
            now,
        );
        assert!(p.evaluate(&q).is_ok(), "{opener}");
    }
    // An opener the policy cannot read fails closed.
    let q = query(
        "user:carol@example.com",
        "web-ops",
        opened(3, "manual"),
        &[],
        &approvals,
        now,
    );
    assert_eq!(p.evaluate(&q).unwrap_err().code, DenyCode::SelfServed);
}

#[test]
fn another_identity_of_the_same_person_is_still_self() {
    let p = policy(POLICY);
    let now = utc(ALICE_WEEK);
    let approvals = vec!["user:lead@example.com".to_owned()];
    // alice asks as local:alice; she opened the incident from the IdP.
    let q = query(
        "local:alice",
        "web-ops",
        opened(3, "user:alice@example.com"),
        &[],
        &approvals,
        now,
    );
    assert_eq!(p.evaluate(&q).unwrap_err().code, DenyCode::SelfServed);
    // And the rotation names user:alice@, which local:alice is.
    let q = query(
        "local:alice",
        "web-ops",
        opened(3, "webhook:alertmanager"),
        &[],
        &approvals,
        now,
    );
    assert!(p.evaluate(&q).is_ok());
}

#[test]
fn an_override_you_created_does_not_make_you_on_call() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let approvals = vec!["user:lead@example.com".to_owned()];
    let mine = [over("local:bob", "local:bob", now - Duration::hours(1), 8)];
    let q = query(
        "local:bob",
        "web-ops",
        opened(2, "webhook:alertmanager"),
        &mine,
        &approvals,
        now,
    );
    let denied = p.evaluate(&q).unwrap_err();
    assert_eq!(denied.code, DenyCode::SelfServed);
    assert!(
        denied
            .message
            .contains("only through an override you created"),
        "{}",
        denied.message
    );
    // The same override created by a lead counts.
    let theirs = [over(
        "local:bob",
        "user:lead@example.com",
        now - Duration::hours(1),
        8,
    )];
    let q = query(
        "local:bob",
        "web-ops",
        opened(2, "webhook:alertmanager"),
        &theirs,
        &[],
        now,
    );
    let allowed = p
        .evaluate(&q)
        .expect("on call by a lead's override, auto-approved");
    assert_eq!(allowed.principals(), ["deploy@web-ops"]);
}

#[test]
fn auto_approve_never_counts_your_own_incident_or_override() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    // carol is on call by the rotation; her own sev1 does not auto-approve.
    let q = query(
        "user:carol@example.com",
        "web-ops",
        opened(1, "user:carol@example.com"),
        &[],
        &[],
        now,
    );
    let explained = p.explain(&q).join("\n");
    assert!(!explained.contains("ok    auto-approved"), "{explained}");
    // An alert's sev1 does.
    let q = query(
        "user:carol@example.com",
        "web-ops",
        opened(1, "webhook:alertmanager"),
        &[],
        &[],
        now,
    );
    assert!(p.evaluate(&q).is_ok());
}

#[test]
fn a_role_may_accept_self_served_facts_when_it_says_so() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let mine = [over("local:bob", "local:bob", now - Duration::hours(1), 8)];
    let q = query(
        "local:bob",
        "self-help",
        opened(2, "local:bob"),
        &mine,
        &[],
        now,
    );
    let steps = p.explain(&q).join("\n");
    assert!(p.evaluate(&q).is_ok(), "{steps}");
    assert!(steps.contains("accepts self_served incidents"), "{steps}");
    assert!(steps.contains("accepts self_served on_call"), "{steps}");
}

#[test]
fn approvals_from_the_requesters_person_never_count_and_a_person_counts_once() {
    let p = policy(&POLICY.replace("approvals = 1", "approvals = 2"));
    let now = utc(ALICE_WEEK);
    let inc = || opened(3, "webhook:alertmanager");
    let by = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let own = by(&["local:alice", "user:lead@example.com"]);
    let q = query("user:alice@example.com", "web-ops", inc(), &[], &own, now);
    assert_eq!(p.evaluate(&q).unwrap_err().code, DenyCode::ApprovalRequired);
    let twice = by(&["user:lead@example.com", "user:LEAD@example.com"]);
    let q = query("user:alice@example.com", "web-ops", inc(), &[], &twice, now);
    assert_eq!(p.evaluate(&q).unwrap_err().code, DenyCode::ApprovalRequired);
    let two = by(&["user:lead@example.com", "user:other@example.com"]);
    let q = query("user:alice@example.com", "web-ops", inc(), &[], &two, now);
    assert!(p.evaluate(&q).is_ok());
}

// ------------------------------------------------------------- authority

#[test]
fn nobody_approves_their_own_request_not_even_an_admin_or_from_another_identity() {
    let p = policy(POLICY);
    let now = utc(ALICE_WEEK);
    let admin = groups(&["ca-admins", "leads"]);
    let approve = |requester| Action::ApproveRequest {
        role: "web-ops",
        requester,
    };
    assert_eq!(
        code(
            &p,
            actor("local:alice", &admin),
            approve("user:Alice@example.com"),
            now
        ),
        DenyCode::SelfApproval
    );
    assert!(
        p.authorize(&actor("local:alice", &admin), &approve("local:bob"), now)
            .is_ok()
    );
    assert!(p.may_approve(
        "web-ops",
        "user:lead@example.com",
        &groups(&["leads"]),
        "local:bob"
    ));
    assert!(!p.may_approve(
        "web-ops",
        "user:x@example.com",
        &groups(&["sre"]),
        "local:bob"
    ));
    assert!(!p.may_approve(
        "staging",
        "user:lead@example.com",
        &groups(&["leads"]),
        "local:bob"
    ));
}

#[test]
fn a_staging_holder_can_neither_put_others_on_call_nor_resolve_their_incidents() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let none = Vec::new();
    let dave = actor("user:dave@example.com", &none);
    let put = Action::CreateOverride {
        schedule: "primary",
        member: "user:carol@example.com",
        start: now,
        end: now + Duration::hours(4),
        existing: &[],
    };
    assert_eq!(code(&p, dave, put, now), DenyCode::NotAuthorized);
    let resolve = Action::ResolveIncident {
        severity: 2,
        opened_by: "user:carol@example.com",
    };
    assert_eq!(code(&p, dave, resolve, now), DenyCode::NotAuthorized);
    // An engineer resolves only what they opened; a lead anything.
    let sre = groups(&["sre"]);
    assert_eq!(
        code(&p, actor("user:erin@example.com", &sre), resolve, now),
        DenyCode::NotAuthorized
    );
    let own = Action::ResolveIncident {
        severity: 2,
        opened_by: "user:Erin@example.com",
    };
    assert!(
        p.authorize(&actor("user:erin@example.com", &sre), &own, now)
            .is_ok()
    );
    let leads = groups(&["leads"]);
    assert!(
        p.authorize(&actor("user:lead@example.com", &leads), &resolve, now)
            .is_ok()
    );
}

#[test]
fn incident_severities_are_scoped() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let sre = groups(&["sre"]);
    let eng = actor("user:erin@example.com", &sre);
    assert!(
        allowed(&p, eng, Action::OpenIncident { severity: 3 }, now)
            .contains("[[authority]] at policy.toml")
    );
    let denied = p
        .authorize(&eng, &Action::OpenIncident { severity: 1 }, now)
        .unwrap_err();
    assert_eq!(denied.code, DenyCode::NotAuthorized);
    assert!(
        denied.message.contains("covers severities sev3, sev4 only"),
        "{}",
        denied.message
    );
    let hook = actor("webhook:alertmanager", &[]);
    allowed(&p, hook, Action::OpenIncident { severity: 1 }, now);
    assert_eq!(
        code(
            &p,
            actor("webhook:pagerduty", &[]),
            Action::OpenIncident { severity: 1 },
            now
        ),
        DenyCode::NotAuthorized
    );
}

#[test]
fn rotation_members_cover_and_fill_gaps_but_only_leads_take_a_shift() {
    let p = policy(POLICY);
    let now = utc(ALICE_WEEK);
    let none = Vec::new();
    let create = |member, hours| Action::CreateOverride {
        schedule: "primary",
        member,
        start: now,
        end: now + Duration::hours(hours),
        existing: &[],
    };
    // alice (on call) hands her shift to carol: a cover.
    allowed(
        &p,
        actor("local:alice", &none),
        create("user:carol@example.com", 8),
        now,
    );
    // carol takes alice's shift: not without take_shifts.
    let denied = p
        .authorize(
            &actor("user:carol@example.com", &none),
            &create("user:carol@example.com", 8),
            now,
        )
        .unwrap_err();
    assert_eq!(denied.code, DenyCode::NotAuthorized);
    assert!(denied.message.contains("take_shifts"), "{}", denied.message);
    // A lead may move anyone.
    allowed(
        &p,
        actor("user:lead@example.com", &groups(&["leads"])),
        create("user:carol@example.com", 8),
        now,
    );
    // The window is walked to its end: a 24h cover starting 12h before
    // alice's handoff to carol also takes 12h of carol's shift.
    let handoff = utc("2026-11-09T00:00:00Z");
    let late = Action::CreateOverride {
        schedule: "primary",
        member: "local:alice",
        start: handoff - Duration::hours(12),
        end: handoff + Duration::hours(12),
        existing: &[],
    };
    assert_eq!(
        code(
            &p,
            actor("local:alice", &none),
            late,
            handoff - Duration::hours(12)
        ),
        DenyCode::NotAuthorized
    );
    // An override in force counts as who is on call.
    let covering = [over(
        "user:carol@example.com",
        "user:lead@example.com",
        now,
        4,
    )];
    let mine = Action::CreateOverride {
        schedule: "primary",
        member: "local:alice",
        start: now + Duration::hours(1),
        end: now + Duration::hours(2),
        existing: &covering,
    };
    assert_eq!(
        code(&p, actor("local:alice", &none), mine, now),
        DenyCode::NotAuthorized
    );
}

#[test]
fn overrides_are_bounded_for_everyone() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let root = actor("local:root", &[]);
    let create = |start, end| Action::CreateOverride {
        schedule: "primary",
        member: "local:bob",
        start,
        end,
        existing: &[],
    };
    assert_eq!(
        code(&p, root, create(now, now + Duration::hours(25)), now),
        DenyCode::OverrideTooLong
    );
    assert_eq!(
        code(&p, root, create(now, now), now),
        DenyCode::OverrideInvalid
    );
    assert_eq!(
        code(
            &p,
            root,
            create(now - Duration::hours(3), now - Duration::hours(1)),
            now
        ),
        DenyCode::OverrideInvalid
    );
    allowed(&p, root, create(now, now + Duration::hours(24)), now);
    let bad_member = Action::CreateOverride {
        schedule: "primary",
        member: "group:sre",
        start: now,
        end: now + Duration::hours(1),
        existing: &[],
    };
    assert_eq!(code(&p, root, bad_member, now), DenyCode::OverrideInvalid);
    let unknown = Action::CreateOverride {
        schedule: "nope",
        member: "local:bob",
        start: now,
        end: now + Duration::hours(1),
        existing: &[],
    };
    assert_eq!(code(&p, root, unknown, now), DenyCode::UnknownSchedule);
    let longer = policy(&POLICY.replace(
        "max_ttl = \"1h\"",
        "max_ttl = \"1h\"\nmax_override = \"3d\"",
    ));
    allowed(&longer, root, create(now, now + Duration::hours(72)), now);
    let existing = over("local:bob", "local:root", now, 4);
    let shorten = |new_end| Action::ShortenOverride {
        existing: &existing,
        new_end,
    };
    assert_eq!(
        code(&p, root, shorten(now + Duration::hours(5)), now),
        DenyCode::OverrideInvalid
    );
    allowed(&p, root, shorten(now + Duration::hours(1)), now);
    // Shortening and deleting follow their own rules: the rotation may
    // create but not delete.
    let none = Vec::new();
    assert_eq!(
        code(
            &p,
            actor("local:alice", &none),
            Action::DeleteOverride {
                existing: &existing
            },
            now
        ),
        DenyCode::NotAuthorized
    );
    allowed(
        &p,
        actor("user:lead@example.com", &groups(&["leads"])),
        Action::DeleteOverride {
            existing: &existing,
        },
        now,
    );
}

#[test]
fn closed_defaults_admins_and_root() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let admin = groups(&["ca-admins"]);
    let review = Action::ReviewRecording {
        role: "db-ops",
        owner: "local:bob",
    };
    // Nobody is given review: only admins and root.
    assert_eq!(
        code(
            &p,
            actor("user:x@example.com", &groups(&["sre"])),
            review,
            now
        ),
        DenyCode::NotAuthorized
    );
    assert!(
        allowed(&p, actor("user:x@example.com", &admin), review, now)
            .starts_with("admins at policy.toml:2:1")
    );
    assert!(allowed(&p, actor("local:root", &[]), review, now).contains("always an admin"));
    // A locked identity loses every power; root cannot be locked out.
    let locked = Actor {
        identity: "user:x@example.com",
        groups: &admin,
        locked: true,
    };
    assert_eq!(code(&p, locked, review, now), DenyCode::IdentityLocked);
    let root = Actor {
        identity: "local:root",
        groups: &[],
        locked: true,
    };
    assert!(p.authorize(&root, &review, now).is_ok());
    // Not an identity at all.
    assert_eq!(
        code(&p, actor("group:ca-admins", &[]), review, now),
        DenyCode::NotAuthorized
    );
}

#[test]
fn locks_and_revocation_are_scoped_by_whose() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let sec = groups(&["security"]);
    let sre = groups(&["sre"]);
    allowed(
        &p,
        actor("user:s@example.com", &sec),
        Action::LockIdentity {
            target: "local:bob",
        },
        now,
    );
    let denied = p
        .authorize(
            &actor("user:s@example.com", &sec),
            &Action::UnlockIdentity {
                target: "user:S@example.com",
            },
            now,
        )
        .unwrap_err();
    assert!(
        denied.message.contains("is for = \"others\" only"),
        "{}",
        denied.message
    );
    let mine = Action::RevokeCertificates {
        target: "user:erin@example.com",
        role: Some("db-ops"),
    };
    allowed(&p, actor("user:erin@example.com", &sre), mine, now);
    let theirs = Action::RevokeCertificates {
        target: "local:bob",
        role: None,
    };
    assert_eq!(
        code(&p, actor("user:erin@example.com", &sre), theirs, now),
        DenyCode::NotAuthorized
    );
}

#[test]
fn host_enrollment_is_scoped_by_host_patterns() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let platform = groups(&["platform"]);
    let web = vec!["web-7.prod.example.com".to_owned()];
    let db = vec![
        "web-7.prod.example.com".to_owned(),
        "db-1.prod.example.com".to_owned(),
    ];
    allowed(
        &p,
        actor("user:p@example.com", &platform),
        Action::EnrollHost { names: &web },
        now,
    );
    let denied = p
        .authorize(
            &actor("user:p@example.com", &platform),
            &Action::EnrollHost { names: &db },
            now,
        )
        .unwrap_err();
    assert!(
        denied.message.contains("not \"db-1.prod.example.com\""),
        "{}",
        denied.message
    );
}

#[test]
fn explain_authority_walks_every_rule() {
    let p = policy(POLICY);
    let now = utc(CAROL_WEEK);
    let sre = groups(&["sre"]);
    let steps = p.explain_authority(
        &actor("local:alice", &sre),
        &Action::OpenIncident { severity: 4 },
        now,
    );
    let text = steps.join("\n");
    assert!(
        text.contains("local:alice is one person with user:alice@example.com, local:alice ([[person]] \"alice\" at policy.toml:7:1)"),
        "{text}"
    );
    assert!(text.contains("ok    not an admin"), "{text}");
    assert!(
        text.contains("allowed by [[authority]] at policy.toml:"),
        "{text}"
    );
    assert!(text.contains("engineers open minor incidents"), "{text}");
    assert!(
        steps
            .last()
            .unwrap()
            .starts_with("ALLOW incident.open by local:alice via"),
        "{text}"
    );
}

// --------------------------------------------------------- one person

#[test]
fn grants_and_rotations_name_every_identity_of_a_person() {
    let p = policy(POLICY);
    assert_eq!(
        p.person_of("user:ALICE@example.com"),
        ["user:alice@example.com", "local:alice"]
    );
    assert_eq!(
        p.person_of("local:alice"),
        ["local:alice", "user:alice@example.com"]
    );
    assert_eq!(p.person_of("local:bob"), ["local:bob"]);
    assert!(p.person_of("group:sre").is_empty());
    let roles: Vec<&str> = p
        .granted_roles("local:alice", &[])
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(roles, ["web-ops", "db-ops", "staging", "self-help"]);
}

// ------------------------------------------------------- hosts, principals

#[test]
fn a_web_ops_principal_never_appears_in_db_1s_principals_map() {
    let p = policy(POLICY);
    let db = p.principals_for_host("db-1.prod.example.com");
    assert_eq!(db.len(), 1);
    assert_eq!(db["deploy"], ["deploy@db-ops"]);
    let web = p.principals_for_host("WEB-1.prod.example.com.");
    assert_eq!(web["deploy"], ["deploy@web-ops"]);
    // Never a bare login, never a name that only looks like a match.
    assert!(
        p.principals_for_host("web-1.prod.example.com.evil")
            .is_empty()
    );
    assert!(p.principals_for_host("10.0.0.1").is_empty());
    assert!(p.principals_for_host("not a host").is_empty());
    let both = p.principals_for_host_names(&[
        "db-1.prod.example.com".to_owned(),
        "web-1.prod.example.com".to_owned(),
    ]);
    assert_eq!(both["deploy"], ["deploy@web-ops", "deploy@db-ops"]);
}

#[test]
fn targets_are_checked_against_hosts_and_ports() {
    let p = policy(POLICY);
    let ok = p
        .check_target("db-ops", "DB-1.prod.example.com", 5432)
        .unwrap();
    assert_eq!(ok.target().to_string(), "db-1.prod.example.com");
    assert_eq!(ok.port(), 5432);
    assert_eq!(
        p.check_target("db-ops", "db-1.prod.example.com", 80)
            .unwrap_err()
            .code,
        DenyCode::PortNotInRole
    );
    assert_eq!(
        p.check_target("web-ops", "web-1.prod.example.com", 80)
            .unwrap_err()
            .code,
        DenyCode::PortNotInRole
    );
    assert_eq!(
        p.check_target("web-ops", "web-1.evil.example", 22)
            .unwrap_err()
            .code,
        DenyCode::HostNotInRole
    );
    assert_eq!(
        p.check_target("web-ops", "db-1.prod.example.com", 22)
            .unwrap_err()
            .code,
        DenyCode::HostNotInRole
    );
    assert_eq!(
        p.check_target("nope", "db-1", 22).unwrap_err().code,
        DenyCode::UnknownRole
    );
    assert_eq!(p.role("db-ops").unwrap().ports(), [22, 5432]);
    assert_eq!(p.role("web-ops").unwrap().ports(), [22]);
}

#[test]
fn bare_logins_only_where_the_role_opts_in() {
    let p = policy(&POLICY.replace(
        "hosts = [\"*.staging.example.com\"]",
        "hosts = [\"*.staging.example.com\"]\nbare_principals = true",
    ));
    let now = utc(CAROL_WEEK);
    let q = query("user:dave@example.com", "staging", None, &[], &[], now);
    let allowed = p.evaluate(&q).unwrap();
    assert_eq!(allowed.principals(), ["dev@staging", "dev"]);
    assert!(p.role("staging").unwrap().bare_principals());
    // An enrolled host still lists only the scoped principal.
    assert_eq!(
        p.principals_for_host("a.staging.example.com")["dev"],
        ["dev@staging"]
    );
}

#[test]
fn request_lifetimes_come_from_settings_and_roles() {
    let p = policy(POLICY);
    let role = p.role("web-ops").unwrap();
    assert_eq!(role.approval_ttl(), std::time::Duration::from_secs(3600));
    assert_eq!(
        role.pending_ttl(),
        std::time::Duration::from_secs(24 * 3600)
    );
    assert_eq!(
        p.settings().max_override(),
        std::time::Duration::from_secs(24 * 3600)
    );
    let tuned = policy(&POLICY.replace(
        "max_ttl = \"1h\"",
        "max_ttl = \"1h\"\napproval_ttl = \"30m\"\npending_ttl = \"2h\"",
    ).replace(
        "auto_approve = { on_call = true, incident_severity = \"sev2\" }",
        "auto_approve = { on_call = true, incident_severity = \"sev2\" }\napproval_ttl = \"10m\"",
    ));
    assert_eq!(
        tuned.role("web-ops").unwrap().approval_ttl(),
        std::time::Duration::from_secs(600)
    );
    assert_eq!(
        tuned.role("staging").unwrap().approval_ttl(),
        std::time::Duration::from_secs(1800)
    );
    assert_eq!(
        tuned.role("staging").unwrap().pending_ttl(),
        std::time::Duration::from_secs(7200)
    );
}

#[test]
fn action_names_round_trip() {
    for kind in ActionKind::ALL {
        assert_eq!(ActionKind::parse(kind.as_str()), Ok(kind));
    }
    assert!(
        ActionKind::parse("incident.close")
            .unwrap_err()
            .contains("incident.open")
    );
}
