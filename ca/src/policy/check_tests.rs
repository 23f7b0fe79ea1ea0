//! `policy check` and loading: every error, with its exact location.

use std::path::{Path, PathBuf};

use super::Policy;
use super::tests::{errors, policy, utc};

/// One of everything that can be wrong, to see that one run reports all.
const ALL_WRONG: &str = r#"[settings]
default_ttl = "15 minutes please"
max_ttl = "48h"
clock_skew = "20m"
colour = "blue"

[[schedule]]
name = "sre-primary"
timezone = "Europe/Berln"
rotation = { members = [], start = "2026-11-02T09:00+01:00", shift = "0s" }

[[schedule]]
name = "sre-primary"
timezone = "UTC"
rotation = { members = ["alice", "group:sre"], start = "2026-11-02T09:00", shift = "7d" }

[[role]]
name = "db-debug"
principals = ["postgres", "-oProxyCommand", "a,b", "x y", ""]
hosts = ["db-*.prod.example.com", "db 1"]
max_ttl = "25h"
require_on_call = ["sre-primry"]
extensions = ["permit-pty", "permit-everything"]
force_command = ""
source_address = ["10.0.0.1/8", "300.0.0.0/8"]

[[role]]
name = "db-debug"
principals = []
hosts = []
max_ttl = "forever"

[[role]]
name = "bad name!"
principals = ["x"]
hosts = ["*"]
hsots = ["*"]

[[grant]]
identities = ["alice@example.com", "team:sre", "user:bob@example.com"]
roles = ["db-debug", "db-admin"]

[[test]]
name = "t1"
identity = "group:sre"
groups = ["ok", " bad"]
at = "2026-11-05T03:00:00"
role = "db-admin"
ttl = "soon"
expect = "maybe"

[[test]]
name = "t1"
identity = "user:alice@example.com"
at = "2026-11-05T03:00:00Z"
role = "db-debug"
expect = "deny"
deny = "not-on-cal"
valid_before = "2026-11-05T03:10:00Z"

[[test]]
name = "t3"
identity = "user:alice@example.com"
at = "2026-11-05T03:00:00Z"
role = "db-debug"
expect = "allow"
deny = "not-on-call"

[[rol]]
name = "x"
"#;

#[test]
fn check_reports_every_error_with_its_location() {
    let expected = [
        r#"policy.toml:2:15: settings: default_ttl: invalid duration "15 minutes please" (expected number at 11); write e.g. "15m", "1h" or "7d""#,
        r#"policy.toml:3:11: settings: max_ttl 48h is above the hard cap of 24h"#,
        r#"policy.toml:4:14: settings: clock_skew 20m is above the limit of 10m"#,
        r#"policy.toml:5:1: settings: unknown key "colour"; expected one of default_ttl, max_ttl, clock_skew, bastion, max_override, approval_ttl, pending_ttl"#,
        r#"policy.toml:9:12: schedule "sre-primary": unknown time zone "Europe/Berln"; use an IANA name such as "Europe/Berlin" or "UTC""#,
        r#"policy.toml:10:24: schedule "sre-primary": rotation members are empty; list at least one person"#,
        r#"policy.toml:10:36: schedule "sre-primary": rotation start: "2026-11-02T09:00+01:00" has a UTC offset, but this is a local time in the schedule's time zone; drop the offset, e.g. "2026-11-02T09:00""#,
        r#"policy.toml:10:70: schedule "sre-primary": shift must be more than zero"#,
        r#"policy.toml:13:8: schedule "sre-primary" is defined twice; first at policy.toml:8:8; rename or remove one"#,
        r#"policy.toml:15:25: schedule "sre-primary": invalid email "alice"; write e.g. "alice@example.com""#,
        r#"policy.toml:15:34: schedule "sre-primary": "group:sre": a group cannot be on call; list its members instead"#,
        r#"policy.toml:19:27: role "db-debug": invalid principal "-oProxyCommand": 1 to 64 characters of A-Z a-z 0-9 . _ + -, not starting with '-'"#,
        r#"policy.toml:19:45: role "db-debug": invalid principal "a,b": 1 to 64 characters of A-Z a-z 0-9 . _ + -, not starting with '-'"#,
        r#"policy.toml:19:52: role "db-debug": invalid principal "x y": 1 to 64 characters of A-Z a-z 0-9 . _ + -, not starting with '-'"#,
        r#"policy.toml:19:59: role "db-debug": invalid principal "": 1 to 64 characters of A-Z a-z 0-9 . _ + -, not starting with '-'"#,
        r#"policy.toml:20:35: role "db-debug": invalid host pattern "db 1": each dot-separated label is 1 to 63 characters of a-z 0-9 - _ and the wildcards * ?, not starting with '-'"#,
        r#"policy.toml:21:11: role "db-debug": max_ttl 25h is above the hard cap of 24h"#,
        r#"policy.toml:22:20: role "db-debug": unknown schedule "sre-primry" in require_on_call"#,
        r#"policy.toml:23:29: role "db-debug": unknown extension "permit-everything"; known: permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc"#,
        r#"policy.toml:24:17: role "db-debug": force_command is empty; remove it or name a command"#,
        r#"policy.toml:25:19: role "db-debug": "10.0.0.1/8" has host bits set; write "10.0.0.0/8""#,
        r#"policy.toml:25:33: role "db-debug": invalid address "300.0.0.0/8"; write e.g. "10.0.0.0/8" or "2001:db8::/32""#,
        r#"policy.toml:28:8: role "db-debug" is defined twice; first at policy.toml:18:8; rename or remove one"#,
        r#"policy.toml:29:14: role "db-debug": principals are empty; list the login names this role grants"#,
        r#"policy.toml:30:9: role "db-debug": hosts are empty; list host patterns such as "db-*.example.com""#,
        r#"policy.toml:31:11: role "db-debug": max_ttl: invalid duration "forever" (expected number at 0); write e.g. "15m", "1h" or "7d""#,
        r#"policy.toml:34:8: role "bad name!": invalid name "bad name!": 1 to 64 characters of A-Z a-z 0-9 . _ -, not starting with '-'"#,
        r#"policy.toml:37:1: role "bad name!": unknown key "hsots"; expected one of name, description, principals, hosts, max_ttl, require_on_call, require_incident, incident_severity, require_reason, break_glass, approvals, approvers, auto_approve, extensions, force_command, source_address, max_session, idle_timeout, via_bastion, ports, bare_principals, self_served, approval_ttl, pending_ttl"#,
        r#"policy.toml:40:15: grant #1: identity "alice@example.com" has no prefix; write "user:alice@example.com""#,
        r#"policy.toml:40:36: grant #1: invalid identity "team:sre"; write "user:EMAIL", "local:USER", "group:NAME", "person:NAME" or "webhook:SOURCE""#,
        r#"policy.toml:41:22: grant #1: unknown role "db-admin""#,
        r#"policy.toml:45:12: test "t1": "group:sre" is a group; a caller is "user:EMAIL", "local:USER" or "webhook:SOURCE""#,
        r#"policy.toml:46:17: test "t1": invalid group name " bad": 1 to 256 characters, no control characters, no leading or trailing blanks"#,
        r#"policy.toml:47:6: test "t1": at: "2026-11-05T03:00:00" has no UTC offset; add one, e.g. "2026-11-05T03:00:00+01:00" or "2026-11-05T03:00:00Z""#,
        r#"policy.toml:48:8: test "t1": unknown role "db-admin""#,
        r#"policy.toml:49:7: test "t1": ttl: invalid duration "soon" (expected number at 0); write e.g. "15m", "1h" or "7d""#,
        r#"policy.toml:50:10: test "t1": expect must be "allow" or "deny", not "maybe""#,
        r#"policy.toml:53:8: test "t1" is defined twice; first at policy.toml:44:8; rename or remove one"#,
        r#"policy.toml:58:8: test "t1": unknown deny code "not-on-cal"; known: unknown-role, not-granted, principal-not-in-role, invalid-ttl, ttl-above-max, incident-required, incident-unknown, incident-resolved, incident-not-severe, approval-required, reason-required, not-on-call, self-served, host-not-in-role, port-not-in-role, not-authorized, self-approval, override-too-long, override-invalid, unknown-schedule, identity-locked"#,
        r#"policy.toml:59:16: test "t1": valid_before is only for expect = "allow"; remove it"#,
        r#"policy.toml:67:8: test "t3": deny is only for expect = "deny"; remove it"#,
        r#"policy.toml:69:3: unknown section "rol"; expected one of [settings], [[schedule]], [[role]], [[grant]], [[person]], [[authority]], [[test]], admins, reviewers"#,
    ];
    let got = errors(ALL_WRONG);
    for (got, want) in got.iter().zip(expected.iter()) {
        assert_eq!(got, want);
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

/// A policy that is fine, to break one thing at a time.
const SMALL: &str = r#"[settings]
max_ttl = "1h"

[[schedule]]
name = "sre"
timezone = "UTC"
rotation = { members = ["alice@example.com"], start = "2026-11-02T09:00", shift = "7d" }

[[role]]
name = "db"
principals = ["postgres"]
hosts = ["db-*"]
require_on_call = ["sre"]

[[grant]]
identities = ["group:sre"]
roles = ["db"]
"#;

fn small_with(from: &str, to: &str) -> Vec<String> {
    assert!(SMALL.contains(from), "{from}");
    errors(&SMALL.replacen(from, to, 1))
}

#[test]
fn small_policy_is_fine() {
    policy(SMALL);
}

#[test]
fn toml_syntax_error_is_reported_with_its_location() {
    assert_eq!(
        small_with("max_ttl = \"1h\"", "max_ttl = 1h"),
        ["policy.toml:2:11: TOML syntax: string values must be quoted, expected literal string"]
    );
}

#[test]
fn wrong_value_type() {
    assert_eq!(
        small_with(
            "hosts = [\"db-*\"]",
            "hosts = [\"db-*\"]\nrequire_incident = \"yes\""
        ),
        [r#"policy.toml:13:20: role "db": invalid type: string "yes", expected a boolean"#]
    );
}

#[test]
fn missing_key_points_at_the_entry() {
    assert_eq!(
        small_with("hosts = [\"db-*\"]\n", ""),
        [r#"policy.toml:9:1: role "db": missing field `hosts`"#]
    );
}

#[test]
fn a_broken_role_does_not_cause_unknown_role_errors() {
    // The grant refers to "db", whose entry has an error of its own.
    assert_eq!(
        small_with("hosts = [\"db-*\"]\n", "hosts = 3\n"),
        [r#"policy.toml:12:9: role "db": invalid type: integer `3`, expected a sequence"#]
    );
}

#[test]
fn sections_must_have_the_right_shape() {
    assert_eq!(
        errors("[role]\nname = \"x\"\n"),
        ["policy.toml:1:2: role must be an array of tables: write [[role]]"]
    );
    assert_eq!(
        errors("[[settings]]\nmax_ttl = \"1h\"\n"),
        ["policy.toml:1:3: settings must be a table: write [settings]"]
    );
    assert_eq!(
        errors("[[roles]]\nname = \"x\"\n"),
        [
            r#"policy.toml:1:3: unknown section "roles"; expected one of [settings], [[schedule]], [[role]], [[grant]], [[person]], [[authority]], [[test]], admins, reviewers; did you mean [[role]]?"#
        ]
    );
}

#[test]
fn unknown_key_in_the_rotation_table() {
    assert_eq!(
        small_with("shift = \"7d\"", "shift = \"7d\", length = \"7d\""),
        [
            r#"policy.toml:7:89: schedule "sre": unknown key "rotation.length"; expected one of members, start, shift"#
        ]
    );
}

#[test]
fn settings_must_be_consistent() {
    assert_eq!(
        small_with("max_ttl = \"1h\"", "max_ttl = \"10m\""),
        [
            "policy.toml:2:11: settings: default_ttl 15m is above max_ttl 10m; lower default_ttl or raise max_ttl"
        ]
    );
    assert_eq!(
        small_with("max_ttl = \"1h\"", "max_ttl = \"0s\""),
        ["policy.toml:2:11: settings: max_ttl must be more than zero"]
    );
    assert_eq!(
        small_with("[settings]\n", "[settings]\n[settings]\n"),
        ["policy.toml:2:2: TOML syntax: duplicate key"]
    );
}

#[test]
fn role_max_ttl_may_not_exceed_settings_max_ttl() {
    assert_eq!(
        small_with("require_on_call", "max_ttl = \"2h\"\nrequire_on_call"),
        [
            r#"policy.toml:13:11: role "db": max_ttl 2h is above settings.max_ttl 1h; lower it or raise settings.max_ttl"#
        ]
    );
}

#[test]
fn shift_length_is_checked() {
    assert_eq!(
        small_with("shift = \"7d\"", "shift = \"30s\""),
        [
            r#"policy.toml:7:83: schedule "sre": shift 30s is out of range; it must be between 1m and 366d"#
        ]
    );
    assert_eq!(
        small_with("shift = \"7d\"", "shift = \"a week\""),
        [
            r#"policy.toml:7:83: schedule "sre": shift: invalid duration "a week" (expected number at 0); write e.g. "15m", "1h" or "7d""#
        ]
    );
}

#[test]
fn bad_rotation_start() {
    assert_eq!(
        small_with("2026-11-02T09:00", "2026-11-31T09:00"),
        [
            r#"policy.toml:7:55: schedule "sre": rotation start: invalid local time "2026-11-31T09:00"; write e.g. "2026-11-02T09:00" (no offset)"#
        ]
    );
    assert_eq!(
        small_with("\"2026-11-02T09:00\"", "2026-11-02"),
        [
            r#"policy.toml:7:55: schedule "sre": rotation start: invalid local time "2026-11-02"; write e.g. "2026-11-02T09:00" (no offset)"#
        ]
    );
    assert_eq!(
        small_with("\"2026-11-02T09:00\"", "42"),
        [
            r#"policy.toml:7:55: schedule "sre": rotation start: expected a timestamp, found a integer"#
        ]
    );
}

#[test]
fn toml_date_time_literals_are_accepted() {
    let src = SMALL.replacen("\"2026-11-02T09:00\"", "2026-11-02T09:00:00", 1);
    let policy = policy(&src);
    let shift = policy.on_call("sre", utc("2026-11-02T09:00:00Z")).unwrap();
    assert_eq!(shift.start, utc("2026-11-02T09:00:00Z"));
}

#[test]
fn duplicate_extension_and_empty_source_address() {
    assert_eq!(
        small_with(
            "require_on_call",
            "extensions = [\"permit-pty\", \"permit-pty\"]\nsource_address = []\nrequire_on_call"
        ),
        [
            r#"policy.toml:13:29: role "db": "permit-pty" is listed twice"#,
            r#"policy.toml:14:18: role "db": source_address is empty; remove it or list networks"#,
        ]
    );
}

#[test]
fn empty_grant_lists() {
    assert_eq!(
        small_with(
            "identities = [\"group:sre\"]\nroles = [\"db\"]",
            "identities = []\nroles = []"
        ),
        [
            "policy.toml:16:14: grant #1: identities are empty; list who gets the roles",
            "policy.toml:17:9: grant #1: roles are empty; list the roles to grant",
        ]
    );
}

#[test]
fn test_entries_are_checked() {
    let test = r#"
[[test]]
name = "x"
identity = "user:alice@example.com"
at = "2026-11-05T03:00:00Z"
role = "db"
principals = ["ok", "not ok"]
expect = "allow"
valid_before = "tomorrow"
"#;
    assert_eq!(
        errors(&format!("{SMALL}{test}")),
        [
            r#"policy.toml:24:21: test "x": invalid principal "not ok": 1 to 64 characters of A-Z a-z 0-9 . _ + -, not starting with '-'"#,
            r#"policy.toml:26:16: test "x": valid_before: invalid timestamp "tomorrow" (premature end of input); write e.g. "2026-11-05T03:00:00+01:00""#,
        ]
    );
}

// ------------------------------------------------------------- directories

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("shiftkey-policy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> &Path {
        std::fs::write(self.0.join(name), text).unwrap();
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SCHEDULES_AND_ROLES: &str = r#"[[schedule]]
name = "sre"
timezone = "UTC"
rotation = { members = ["alice@example.com"], start = "2026-11-02T09:00", shift = "7d" }

[[role]]
name = "db"
principals = ["postgres"]
hosts = ["db-*"]
require_on_call = ["sre"]
"#;

#[test]
fn a_directory_of_files_is_one_policy() {
    let dir = TempDir::new("ok");
    dir.write("10-roles.toml", SCHEDULES_AND_ROLES);
    dir.write(
        "20-grants.toml",
        "[[grant]]\nidentities = [\"group:sre\"]\nroles = [\"db\"]\n",
    );
    dir.write("README.md", "not a policy file");
    let policy = Policy::load(&dir.0).unwrap();
    assert_eq!(policy.roles().count(), 1);
    assert_eq!(policy.grants().count(), 1);
    let names: Vec<String> = policy.sources().map(|(name, _)| name.to_owned()).collect();
    assert!(
        names[0].ends_with("10-roles.toml") && names[1].ends_with("20-grants.toml"),
        "{names:?}"
    );
    assert!(
        policy
            .grants()
            .next()
            .unwrap()
            .origin()
            .ends_with("20-grants.toml:1:1")
    );
}

#[test]
fn errors_in_the_second_file_name_that_file() {
    let dir = TempDir::new("errors");
    dir.write("10-roles.toml", SCHEDULES_AND_ROLES);
    dir.write(
        "20-more.toml",
        "[[role]]\nname = \"db\"\nprincipals = [\"x\"]\nhosts = [\"*\"]\n\n[[grant]]\nidentities = [\"group:sre\"]\nroles = [\"db\", \"dbx\"]\n",
    );
    let errors = Policy::load(&dir.0).unwrap_err();
    let first = dir.0.join("10-roles.toml").display().to_string();
    let second = dir.0.join("20-more.toml").display().to_string();
    assert_eq!(
        errors.to_string(),
        format!(
            "{second}:2:8: role \"db\" is defined twice; first at {first}:7:8; rename or remove one\n\
             {second}:8:16: grant #1: unknown role \"dbx\""
        )
    );
    let error = &errors.errors()[1];
    assert_eq!(
        (error.file.as_str(), error.line, error.column),
        (second.as_str(), 8, 16)
    );
}

#[test]
fn a_syntax_error_in_one_file_is_reported_alone() {
    let dir = TempDir::new("syntax");
    dir.write("a.toml", SCHEDULES_AND_ROLES);
    dir.write("b.toml", "[[grant]\n");
    let errors = Policy::load(&dir.0).unwrap_err();
    assert_eq!(errors.errors().len(), 1, "{errors}");
    assert!(errors.errors()[0].file.ends_with("b.toml"));
    assert_eq!(errors.errors()[0].line, 1);
}

#[test]
fn loading_a_single_file_and_missing_paths() {
    let dir = TempDir::new("single");
    let path = dir.write("policy.toml", SMALL).join("policy.toml");
    assert_eq!(Policy::load(&path).unwrap().roles().count(), 1);
    let missing = Policy::load(&dir.0.join("nope.toml")).unwrap_err();
    assert_eq!(missing.errors()[0].line, 0);
    assert!(
        missing
            .to_string()
            .contains("nope.toml: cannot read the policy"),
        "{missing}"
    );
    let empty = TempDir::new("empty");
    let none = Policy::load(&empty.0).unwrap_err();
    assert!(none.to_string().contains("no *.toml file"), "{none}");
}

#[test]
fn reviewers_are_identities_and_match_people_and_groups() {
    let p = policy(&format!(
        "reviewers = [\"group:security\", \"user:Sec@Example.com\", \"local:root\"]\n{SMALL}"
    ));
    assert_eq!(
        p.reviewers(),
        ["group:security", "user:sec@example.com", "local:root"]
    );
    assert!(p.is_reviewer("user:sec@example.com", &[]));
    assert!(p.is_reviewer("user:SEC@example.com", &[]));
    assert!(p.is_reviewer("user:carol@example.com", &["security".into()]));
    assert!(p.is_reviewer("local:root", &[]));
    assert!(!p.is_reviewer("user:carol@example.com", &["sre".into()]));
    assert!(!p.is_reviewer("local:alice", &[]));
    assert!(!p.is_reviewer("group:security", &[]));
    // local:root on the CA host is always an admin, and admins may review.
    assert!(policy(SMALL).is_reviewer("local:root", &[]));
    assert!(!policy(SMALL).is_reviewer("local:alice", &[]));
}

#[test]
fn bad_reviewers_are_reported_where_they_are() {
    assert_eq!(
        errors(&format!(
            "reviewers = [\"sec@example.com\", \"team:x\"]\n{SMALL}"
        )),
        [
            "policy.toml:1:14: reviewers: identity \"sec@example.com\" has no prefix; write \"user:sec@example.com\"",
            "policy.toml:1:33: reviewers: invalid identity \"team:x\"; write \"user:EMAIL\", \"local:USER\", \"group:NAME\", \"person:NAME\" or \"webhook:SOURCE\"",
        ]
    );
    assert_eq!(
        errors(&format!("reviewers = \"group:security\"\n{SMALL}")),
        [
            "policy.toml:1:13: reviewers must be a list of identities: reviewers = [\"group:security\", \"user:EMAIL\"]"
        ]
    );
    let dir = TempDir::new("reviewers-twice");
    dir.write("a.toml", &format!("reviewers = [\"group:a\"]\n{SMALL}"));
    dir.write("b.toml", "reviewers = [\"group:b\"]\n");
    let errors = Policy::load(&dir.0).unwrap_err().to_string();
    assert!(
        errors.contains("b.toml:1:1: reviewers appears twice; first at"),
        "{errors}"
    );
}

#[test]
fn roles_may_set_bastion_session_limits() {
    // Regression: the keys were in the struct but not in the list of known
    // keys, so every policy using them was refused.
    let p = policy(&SMALL.replace(
        "require_on_call = [\"sre\"]",
        "require_on_call = [\"sre\"]\nmax_session = \"30m\"\nidle_timeout = \"5m\"",
    ));
    let role = p.role("db").unwrap();
    assert_eq!(role.max_session().as_secs(), 1800);
    assert_eq!(role.idle_timeout().as_secs(), 300);
}

#[test]
fn a_role_through_the_bastion_needs_the_bastion_named() {
    assert_eq!(
        small_with(
            "hosts = [\"db-*\"]\n",
            "hosts = [\"db-*\"]\nvia_bastion = true\n"
        ),
        [
            r#"policy.toml:9:1: role "db": via_bastion needs settings.bastion = "HOST:PORT" (where users jump through)"#
        ]
    );
    let ok = SMALL
        .replacen("max_ttl = \"1h\"\n", "max_ttl = \"1h\"\nbastion = \"bastion.example.com:2222\"\n", 1)
        .replacen("hosts = [\"db-*\"]\n", "hosts = [\"db-*\"]\nvia_bastion = true\nmax_session = \"20m\"\nidle_timeout = \"5m\"\n", 1);
    let policy = policy(&ok);
    let role = policy.role("db").unwrap();
    assert!(role.via_bastion());
    assert_eq!(role.max_session(), std::time::Duration::from_secs(1200));
    assert_eq!(role.idle_timeout(), std::time::Duration::from_secs(300));
    assert_eq!(
        policy.settings().bastion(),
        Some("bastion.example.com:2222")
    );
    for bad in ["bastion b", "-b:22", "b:0", "b:99999", "b:x"] {
        let text = SMALL.replacen(
            "max_ttl = \"1h\"\n",
            &format!("max_ttl = \"1h\"\nbastion = \"{bad}\"\n"),
            1,
        );
        let errors = errors(&text);
        assert!(
            errors.len() == 1 && errors[0].contains("is not HOST or HOST:PORT"),
            "{bad}: {errors:?}"
        );
    }
    assert!(
        small_with(
            "hosts = [\"db-*\"]\n",
            "hosts = [\"db-*\"]\nmax_session = \"0s\"\n"
        )[0]
        .contains("max_session must be more than zero")
    );
}
