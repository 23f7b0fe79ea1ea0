//! The policy's own `[[test]]` cases, run by `shiftkey-ca policy test`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Policy;
use super::eval::{AccessQuery, DenyCode, IncidentState};

/// A checked `[[test]]`: identity, groups and principals are valid, the
/// role exists.
#[derive(Clone, Debug)]
pub(crate) struct TestCase {
    pub(super) name: String,
    pub(super) identity: String,
    pub(super) groups: Vec<String>,
    pub(super) at: DateTime<Utc>,
    pub(super) role: String,
    pub(super) incident: Option<String>,
    /// What the test's incident is: open sev1 unless the test says.
    pub(super) incident_state: IncidentState,
    /// Identities that approved the test's request.
    pub(super) approved_by: Vec<String>,
    pub(super) reason: Option<String>,
    pub(super) ttl: Option<Duration>,
    pub(super) principals: Option<Vec<String>>,
    pub(super) expect: Expect,
    /// `file:line:col` of the test's header.
    pub(super) origin: String,
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
        let query = AccessQuery {
            identity: &test.identity,
            groups: &test.groups,
            role: &test.role,
            incident: test.incident.as_deref(),
            incident_state: Some(test.incident_state),
            approved_by: &test.approved_by,
            overrides: &[],
            reason: test.reason.as_deref(),
            ttl: test.ttl,
            principals: test.principals.as_deref(),
            at: test.at,
        };
        let decision = self.evaluate(&query);
        let (passed, detail) = match (&test.expect, decision) {
            (Expect::Allow { valid_before }, Ok(allowed)) => {
                let got = format!(
                    "allowed until {} (limited by {})",
                    allowed.valid_before().to_rfc3339(),
                    allowed.limited_by()
                );
                match valid_before {
                    Some(want) if *want != allowed.valid_before() => (
                        false,
                        format!("{got}, but expected valid_before {}", want.to_rfc3339()),
                    ),
                    _ => (true, got),
                }
            }
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
            (Expect::Deny { code }, Ok(allowed)) => (
                false,
                format!(
                    "expected deny{}, but allowed until {} (limited by {})",
                    code.map(|c| format!(" ({c})")).unwrap_or_default(),
                    allowed.valid_before().to_rfc3339(),
                    allowed.limited_by()
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
}
