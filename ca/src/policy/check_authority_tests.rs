//! Checking `[[person]]`, `admins`, `[[authority]]`, the new role and
//! settings keys, authority `[[test]]`s, and `policy check` warnings.

use super::tests::{errors, policy};

const ROLES: &str = r#"
[[schedule]]
name = "primary"
timezone = "UTC"
rotation = { members = ["alice@example.com", "carol@example.com"], start = "2026-11-02T00:00", shift = "7d" }

[[role]]
name = "web-ops"
principals = ["deploy"]
hosts = ["web-*.example.com"]
require_on_call = ["primary"]

[[grant]]
identities = ["group:sre"]
roles = ["web-ops"]
"#;

#[test]
fn persons_are_checked() {
    let found = errors(&format!(
        r#"[[person]]
name = "alice"
identities = ["user:alice@example.com", "local:root", "group:sre", "webhook:x"]

[[person]]
name = "alice"
identities = ["user:ALICE@example.com"]

[[person]]
name = "bob"
identities = []
{ROLES}"#
    ));
    assert_eq!(
        found,
        [
            "policy.toml:3:41: person \"alice\": local:root cannot belong to a person: it is whoever has root on the CA host; give the person their own local: account",
            "policy.toml:3:55: person \"alice\": group:sre is not a person's identity; list user: and local: identities",
            "policy.toml:3:68: person \"alice\": webhook:x is not a person's identity; list user: and local: identities",
            "policy.toml:6:8: person \"alice\" is defined twice; first at policy.toml:1:1; merge them",
            "policy.toml:7:15: person \"alice\": user:alice@example.com already belongs to the person at policy.toml:3:15; an identity is one person's",
            "policy.toml:11:14: person \"bob\": identities are empty; list the person's user: and local: identities",
        ]
    );
}

#[test]
fn identity_lists_name_declared_persons_and_no_webhooks() {
    let found = errors(&format!(
        r#"admins = ["person:nobody", "webhook:alertmanager"]
reviewers = ["webhook:pagerduty"]
{ROLES}
[[grant]]
identities = ["webhook:alertmanager"]
roles = ["web-ops"]
"#
    ));
    assert_eq!(
        found,
        [
            "policy.toml:1:11: admins: no [[person]] is named \"nobody\"; declare it or name an identity",
            "policy.toml:1:28: admins: \"webhook:alertmanager\": a webhook holds no roles and no power but opening and resolving incidents ([[authority]])",
            "policy.toml:2:14: reviewers: \"webhook:pagerduty\": a webhook holds no roles and no power but opening and resolving incidents ([[authority]])",
            "policy.toml:20:15: grant #2: \"webhook:alertmanager\": a webhook holds no roles and no power but opening and resolving incidents ([[authority]])",
        ]
    );
}

#[test]
fn authority_entries_are_checked() {
    let found = errors(&format!(
        r#"{ROLES}
[[authority]]
identities = []
actions = ["incident.close"]

[[authority]]
identities = ["group:sre"]
actions = ["incident.open"]
schedules = ["primary"]
severities = ["sev5"]
for = "self"

[[authority]]
identities = ["group:sre"]
actions = ["override.create"]
schedules = ["secondary"]
for = "me"
take_shifts = true

[[authority]]
identities = ["webhook:alertmanager"]
actions = ["incident.open", "override.create"]

[[authority]]
identities = ["group:platform"]
actions = ["host.enroll"]
hosts = ["10.0.0.*", "web-1.*"]
"#
    ));
    assert_eq!(
        found,
        [
            "policy.toml:18:14: authority #1: identities are empty; list who holds these powers",
            "policy.toml:19:12: authority #1: unknown action \"incident.close\"; known: incident.open, incident.resolve, override.create, override.shorten, override.delete, request.approve, request.deny, recording.review, recording.hold, identity.lock, identity.unlock, certificate.revoke, host.enroll",
            "policy.toml:24:13: authority #2: schedules limits none of this entry's actions (incident.open); remove it or move it to an entry with actions it limits",
            "policy.toml:25:15: authority #2: \"sev5\" is not a severity; use sev1 (the worst) to sev4",
            "policy.toml:26:7: authority #2: for limits none of this entry's actions (incident.open); remove it or move it to an entry with actions it limits",
            "policy.toml:31:14: authority #3: unknown schedule \"secondary\" in schedules",
            "policy.toml:32:7: authority #3: for must be \"self\", \"others\" or \"anyone\", not \"me\"",
            "policy.toml:37:11: authority #4: webhooks may only hold incident.open and incident.resolve; put other actions in an entry of their own",
            "policy.toml:42:10: authority #5: host pattern \"10.0.0.*\" looks like an address range; write a network such as \"10.0.0.0/24\" (names and addresses never match each other's patterns)",
        ]
    );
}

#[test]
fn roles_take_ports_self_served_and_request_lifetimes() {
    let found = errors(&format!(
        r#"[settings]
max_override = "40d"
approval_ttl = "2d"
pending_ttl = "0s"
{}"#,
        ROLES.replace(
            "require_on_call = [\"primary\"]",
            "require_on_call = [\"primary\"]\nports = [0, 22, 70000]\nself_served = [\"on-call\"]\nprincipals_x = 1\npending_ttl = \"30d\"",
        )
    ));
    assert_eq!(
        found,
        [
            "policy.toml:2:16: settings: max_override 40d is above the limit of 31d",
            "policy.toml:3:16: settings: approval_ttl 48h is above the limit of 24h",
            "policy.toml:4:15: settings: pending_ttl must be more than zero",
            "policy.toml:16:10: role \"web-ops\": port 0 is not 1 to 65535",
            "policy.toml:16:17: role \"web-ops\": port 70000 is not 1 to 65535",
            "policy.toml:17:16: role \"web-ops\": self_served: \"on-call\" is not a condition; use \"incident\" or \"on_call\"",
            "policy.toml:18:1: role \"web-ops\": unknown key \"principals_x\"; expected one of name, description, principals, hosts, max_ttl, require_on_call, require_incident, incident_severity, require_reason, break_glass, approvals, approvers, auto_approve, extensions, force_command, source_address, max_session, idle_timeout, via_bastion, ports, bare_principals, self_served, approval_ttl, pending_ttl",
            "policy.toml:19:15: role \"web-ops\": pending_ttl 30d is above the limit of 24h",
        ]
    );
}

#[test]
fn logins_may_not_look_like_scoped_principals() {
    let found =
        errors(&ROLES.replace("principals = [\"deploy\"]", "principals = [\"deploy@web\"]"));
    assert_eq!(
        found,
        [
            "policy.toml:9:15: role \"web-ops\": invalid login \"deploy@web\": no '@' (certificates carry LOGIN@ROLE principals); write the login name alone"
        ]
    );
}

#[test]
fn approvals_need_someone_to_give_them() {
    let gated = ROLES.replace(
        "require_on_call = [\"primary\"]",
        "require_on_call = [\"primary\"]\napprovals = 1",
    );
    assert_eq!(
        errors(&gated),
        [
            "policy.toml:7:1: role \"web-ops\": approvals = 1 but nobody may approve; list approvers, or give request.approve for it in an [[authority]] entry"
        ]
    );
    // An [[authority]] entry is as good as `approvers`.
    policy(&format!(
        "{gated}\n[[authority]]\nidentities = [\"group:leads\"]\nactions = [\"request.approve\"]\nroles = [\"web-ops\"]\n"
    ));
}

#[test]
fn check_warns_about_suspicious_patterns_and_admin_only_powers() {
    let p = policy(&ROLES.replace(
        "hosts = [\"web-*.example.com\"]",
        "hosts = [\"web-*.example.com\", \"*\", \"web-1.*\", \"*.com\"]",
    ));
    let warnings: Vec<String> = p.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "policy.toml:1:1: no admins = [...] and no [[authority]] entry: only local:root on the CA host may use incident.open, incident.resolve, override.create (and every power no rule gives); name admins and add [[authority]] entries, or write admins = [] to say root only (see docs/policy.md, \"Authority\")",
            "policy.toml:10:31: role \"web-ops\": \"*\" matches only names without a dot (\"db-1\", not \"db-1.example.com\"); name your domains, e.g. \"*.example.com\"",
            "policy.toml:10:36: role \"web-ops\": \"web-1.*\" has a wildcard in its last label, so it matches names under any top-level domain; spell out the domain",
            "policy.toml:10:47: role \"web-ops\": \"*.com\" fixes fewer than two labels, so it spans a whole top-level domain; spell out the domain",
        ]
    );
}

/// Authority `[[test]]`s: a change that widens a power fails the test that
/// pins it.
const PINNED: &str = r#"
[[authority]]
identities = ["group:leads"]
actions = ["override.create", "incident.open"]
take_shifts = true

[[test]]
name = "bob may not put himself on call"
identity = "local:bob"
at = "2026-11-03T12:00:00Z"
action = "override.create"
schedule = "primary"
member = "local:bob"
start = "2026-11-03T12:00:00Z"
end = "2026-11-03T20:00:00Z"
expect = "deny"
deny = "not-authorized"

[[test]]
name = "a lead may"
identity = "user:lead@example.com"
groups = ["leads"]
at = "2026-11-03T12:00:00Z"
action = "override.create"
schedule = "primary"
member = "local:bob"
start = "2026-11-03T12:00:00Z"
end = "2026-11-03T20:00:00Z"
expect = "allow"

[[test]]
name = "an incident bob opened does not count for bob"
identity = "user:alice@example.com"
groups = ["sre"]
at = "2026-11-03T12:00:00Z"
role = "web-ops"
incident = "INC-1"
incident_opened_by = "user:Alice@example.com"
host = "web-1.example.com"
expect = "allow"

[[test]]
name = "no self-approval"
identity = "user:lead@example.com"
groups = ["ca-admins"]
at = "2026-11-03T12:00:00Z"
action = "request.approve"
role = "web-ops"
requester = "user:LEAD@example.com"
expect = "deny"
deny = "self-approval"

[[test]]
name = "web-ops is not for db-1"
identity = "user:alice@example.com"
groups = ["sre"]
at = "2026-11-03T12:00:00Z"
role = "web-ops"
host = "db-1.example.com"
expect = "deny"
deny = "host-not-in-role"

[[test]]
name = "a locked lead has no power"
identity = "user:lead@example.com"
groups = ["leads"]
at = "2026-11-03T12:00:00Z"
action = "incident.open"
incident_severity = "sev2"
locked = true
expect = "deny"
deny = "identity-locked"

[[test]]
name = "bob's own override does not make him on call"
identity = "local:bob"
at = "2026-11-10T12:00:00Z"
role = "web-ops"
overrides = [{ schedule = "primary", member = "local:bob", start = "2026-11-10T00:00:00Z", end = "2026-11-10T20:00:00Z", created_by = "local:bob" }]
expect = "deny"
deny = "self-served"
"#;

#[test]
fn admins_or_authority_entries_silence_the_migration_warning() {
    for prefix in ["admins = []\n", "admins = [\"group:ca-admins\"]\n"] {
        assert!(
            policy(&format!("{prefix}{ROLES}")).warnings().is_empty(),
            "{prefix}"
        );
    }
    let with_entry = format!(
        "{ROLES}\n[[authority]]\nidentities = [\"group:leads\"]\nactions = [\"incident.open\"]\n"
    );
    assert!(policy(&with_entry).warnings().is_empty());
}

#[test]
fn authority_tests_run_and_catch_a_widened_power() {
    let roles = ROLES.replace(
        "identities = [\"group:sre\"]",
        "identities = [\"group:sre\", \"local:bob\"]",
    );
    let p = policy(&format!("admins = [\"group:ca-admins\"]\n{roles}{PINNED}"));
    let outcomes = p.run_tests();
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(outcomes.len(), 7);
    // "an incident bob opened" is the requester's own: alice opened it.
    assert_eq!(
        outcomes[2].detail,
        "allowed until 2026-11-03T12:15:00+00:00 (limited by default-ttl)"
    );

    // Widening: bob gets override.create. The pinned test now fails.
    let widened = format!(
        "admins = [\"group:ca-admins\"]\n{roles}{PINNED}\n[[authority]]\nidentities = [\"local:bob\"]\nactions = [\"override.create\"]\ntake_shifts = true\n"
    );
    let outcomes = policy(&widened).run_tests();
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(failed, ["bob may not put himself on call"]);
    assert!(
        outcomes[0]
            .detail
            .starts_with("expected deny (not-authorized), but allowed via [[authority]] at"),
        "{}",
        outcomes[0].detail
    );
}

#[test]
fn authority_tests_are_checked() {
    let found = errors(&format!(
        r#"{ROLES}
[[test]]
name = "a"
identity = "local:bob"
at = "2026-11-03T12:00:00Z"
action = "override.create"
schedule = "primary"
role = "web-ops"
expect = "deny"

[[test]]
name = "b"
identity = "local:bob"
at = "2026-11-03T12:00:00Z"
action = "request.approve"
ttl = "1h"
locked = true
expect = "allow"

[[test]]
name = "c"
identity = "local:bob"
at = "2026-11-03T12:00:00Z"
role = "web-ops"
locked = true
member = "local:bob"
expect = "allow"
"#
    ));
    assert_eq!(
        found,
        [
            "policy.toml:17:1: test \"a\": override.create needs member",
            "policy.toml:17:1: test \"a\": override.create needs start",
            "policy.toml:17:1: test \"a\": override.create needs end",
            "policy.toml:23:8: test \"a\": role is not used by override.create; it reads schedule, member, start, end, overrides",
            "policy.toml:26:1: test \"b\": request.approve needs role = \"NAME\"",
            "policy.toml:26:1: test \"b\": request.approve needs requester",
            "policy.toml:31:7: test \"b\": ttl is not used by request.approve; it reads role, requester",
            "policy.toml:35:1: test \"c\": locked is for action tests (a locked identity's requests are refused before the policy)",
            "policy.toml:41:10: test \"c\": member is not used by an access test (no action); it reads role, incident, incident_severity, incident_status, incident_opened_by, reason, ttl, principals, approved_by, overrides, host, port, valid_before",
        ]
    );
}

/// `recording.hold` is a power of its own: reviewing everything does not
/// give it; an entry gives it for its roles; `[[test]]`s pin both.
#[test]
fn recording_hold_tests_pin_who_may_keep_a_recording() {
    let tests = r#"
[[role]]
name = "db"
principals = ["postgres"]
hosts = ["db-*.example.com"]

[[grant]]
identities = ["group:sre"]
roles = ["db"]

[[authority]]
identities = ["group:legal"]
actions = ["recording.hold"]
roles = ["web-ops"]

[[test]]
name = "legal holds web-ops recordings"
identity = "user:lee@example.com"
groups = ["legal"]
at = "2026-11-03T12:00:00Z"
action = "recording.hold"
role = "web-ops"
requester = "user:alice@example.com"
expect = "allow"

[[test]]
name = "legal does not hold db recordings"
identity = "user:lee@example.com"
groups = ["legal"]
at = "2026-11-03T12:00:00Z"
action = "recording.hold"
role = "db"
requester = "user:alice@example.com"
expect = "deny"
deny = "not-authorized"

[[test]]
name = "reviewing everything is not holding"
identity = "user:sam@example.com"
groups = ["security"]
at = "2026-11-03T12:00:00Z"
action = "recording.hold"
role = "web-ops"
requester = "user:alice@example.com"
expect = "deny"
deny = "not-authorized"
"#;
    let p = policy(&format!(
        "admins = [\"group:ca-admins\"]\nreviewers = [\"group:security\"]\n{ROLES}{tests}"
    ));
    let outcomes = p.run_tests();
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(outcomes.len(), 3);
    // A test without whose recording it is, is refused by the checker.
    let found = errors(&format!(
        "{ROLES}\n[[test]]\nname = \"h\"\nidentity = \"local:bob\"\nat = \"2026-11-03T12:00:00Z\"\naction = \"recording.hold\"\nrole = \"web-ops\"\nexpect = \"deny\"\n"
    ));
    assert_eq!(
        found,
        ["policy.toml:17:1: test \"h\": recording.hold needs requester"]
    );
}
