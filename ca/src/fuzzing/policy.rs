//! Policy target (`crate::policy`): the TOML an operator (or a pull request
//! to the policy repository) hands `shiftkey-ca policy check` and SIGHUP.
//!
//! Properties:
//! - a refusal is a [`PolicyErrors`] list, never empty, every entry located
//!   in the file that was given (line and column inside the text);
//! - checking is deterministic: the same text gives the same errors, or a
//!   policy whose every decision explains the same way;
//! - `explain` agrees with `evaluate` (the decision that signs): its last
//!   step is `ALLOW` exactly when `evaluate` allows, and otherwise names
//!   the same denial; an allowed certificate is valid for a non-empty span
//!   of at most the hard cap, for the role asked, with principals;
//! - raw → model → explain is stable under re-serialising the TOML (the
//!   same document written by the `toml` crate, keys reordered, comments
//!   and layout gone): the policy is accepted or refused alike, and every
//!   decision explains the same way apart from line numbers;
//! - the policy's own `[[test]]`s run without panicking, and the same way
//!   twice.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::policy::{AccessQuery, IncidentState, Policy, PolicyErrors, scoped_principal};

/// Where the text claims to come from: a directory that does not exist, so
/// an `ical = "..."` relative path reads nothing on any machine.
const FILE: &str = "/nonexistent-shiftkey-fuzz/policy.toml";
/// Most roles whose decisions are explained per input (a policy may define
/// thousands; each costs a few decisions).
const MAX_ROLES: usize = 8;
/// Identities asked about: the names the seed policies grant to.
const IDENTITIES: [&str; 5] = [
    "user:alice@example.com",
    "user:bob@example.com",
    "user:carol@example.com",
    "local:root",
    "local:alice",
];
const GROUPS: [&str; 3] = ["sre", "dba", "oncall"];

/// The fuzz entry point: the input as a policy file.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = checked(text);
    let second = checked(text);
    let lines = text.lines().count().max(1);
    let policy = match (first, second) {
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "the same text is refused differently twice");
            assert!(!a.errors().is_empty(), "a refusal names no error");
            for error in a.errors() {
                located(error, lines, text);
            }
            return;
        }
        (Ok(a), Ok(b)) => {
            assert_eq!(
                decisions(&a),
                decisions(&b),
                "the same text explains differently twice"
            );
            assert_eq!(a.run_tests(), b.run_tests(), "[[test]]s ran differently");
            a
        }
        (a, b) => panic!(
            "the same text is accepted once and refused once: {:?} / {:?}",
            a.err(),
            b.err()
        ),
    };
    for warning in policy.warnings() {
        located(warning, lines, text);
    }
    // Raw → model → explain, through another writer of the same TOML.
    let Ok(table) = text.parse::<toml::Table>() else {
        return;
    };
    let Ok(rewritten) = toml::to_string(&table) else {
        return;
    };
    match checked(&rewritten) {
        Ok(again) => assert_eq!(
            without_locations(&decisions(&policy)),
            without_locations(&decisions(&again)),
            "the policy explains differently once rewritten as:\n{rewritten}"
        ),
        Err(errors) => {
            panic!("the policy is refused once rewritten as:\n{rewritten}\nerrors: {errors}")
        }
    }
}

fn checked(text: &str) -> Result<Policy, PolicyErrors> {
    Policy::parse(text, FILE)
}

/// A located error points into the text it was given (whole-file errors,
/// line 0, only for the `ical` files a schedule names).
fn located(error: &crate::policy::PolicyError, lines: usize, text: &str) {
    assert!(!error.message.is_empty(), "an error without a message");
    if error.file != FILE {
        // An error in an iCalendar file the policy names.
        return;
    }
    assert!(
        (1..=lines + 1).contains(&error.line) && error.column >= 1,
        "error {error} is outside the {lines} lines of {text:?}"
    );
}

/// Instants asked about: the night the clocks go forward in Europe, a
/// weekday morning in November, and a night in the next northern summer
/// (the seed policies' rotations start in March and November 2026).
fn instants() -> [DateTime<Utc>; 3] {
    [
        Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).single(),
        Utc.with_ymd_and_hms(2026, 11, 4, 10, 0, 0).single(),
        Utc.with_ymd_and_hms(2027, 7, 15, 22, 0, 0).single(),
    ]
    .map(|t| t.unwrap_or_default())
}

/// Every decision asked of a policy, explained, with the properties that
/// tie `explain` to `evaluate` checked on the way.
fn decisions(policy: &Policy) -> Vec<Vec<String>> {
    let groups: Vec<String> = GROUPS.iter().map(ToString::to_string).collect();
    let roles: Vec<String> = policy
        .roles()
        .take(MAX_ROLES)
        .map(|r| r.name().to_owned())
        .chain(["no-such-role".to_owned()])
        .collect();
    let mut all = Vec::new();
    for role in &roles {
        for (n, identity) in IDENTITIES.iter().enumerate() {
            for at in instants() {
                let query = AccessQuery {
                    identity,
                    groups: if n % 2 == 0 { &groups } else { &[] },
                    role,
                    incident: Some("INC-42"),
                    incident_state: Some(IncidentState::Open {
                        severity: 1,
                        opened_by: "webhook:alertmanager".to_owned(),
                    }),
                    approved_by: &[],
                    overrides: &[],
                    reason: Some("disk full on db-1, see INC-42"),
                    ttl: Some(Duration::from_secs(15 * 60)),
                    principals: None,
                    at,
                };
                let steps = policy.explain(&query);
                let last = steps.last().cloned().unwrap_or_default();
                match policy.evaluate(&query) {
                    Ok(allowed) => {
                        assert!(
                            last.starts_with("ALLOW"),
                            "evaluate allows, explain: {last}"
                        );
                        let first = allowed
                            .logins()
                            .first()
                            .map(|login| scoped_principal(login, role));
                        assert_eq!(
                            allowed.principals().first(),
                            first.as_ref(),
                            "allowed without LOGIN@ROLE principals for {role}: {last}"
                        );
                        assert!(
                            allowed.valid_before() > allowed.valid_after(),
                            "allowed an empty validity: {last}"
                        );
                        let span = (allowed.valid_before() - at).to_std().unwrap_or_default();
                        assert!(
                            span <= crate::policy::HARD_MAX_TTL,
                            "valid {span:?} from now: {last}"
                        );
                    }
                    Err(denied) => assert_eq!(
                        last,
                        format!("DENY  {}: {}", denied.code, denied.message),
                        "explain's verdict is not evaluate's"
                    ),
                }
                all.push(steps);
            }
        }
    }
    all
}

/// The decisions with `FILE:LINE:COL` reduced to `FILE`.
fn without_locations(decisions: &[Vec<String>]) -> Vec<Vec<String>> {
    decisions
        .iter()
        .map(|steps| steps.iter().map(|s| strip(s)).collect())
        .collect()
}

fn strip(step: &str) -> String {
    let mut out = String::with_capacity(step.len());
    let mut rest = step;
    while let Some(at) = rest.find(FILE) {
        let (before, after) = rest.split_at(at + FILE.len());
        out.push_str(before);
        rest = after;
        // Two `:DIGITS` groups follow a location.
        for _ in 0..2 {
            if let Some(tail) = rest.strip_prefix(':') {
                let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 {
                    rest = tail.get(digits..).unwrap_or_default();
                }
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_are_stripped() {
        let step = format!(
            "role \"db\" defined at {}:12:1, grant at {}:40:3",
            super::FILE,
            super::FILE
        );
        assert_eq!(
            super::strip(&step),
            format!(
                "role \"db\" defined at {}, grant at {}",
                super::FILE,
                super::FILE
            )
        );
    }
}
