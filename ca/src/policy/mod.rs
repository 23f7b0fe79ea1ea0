//! The policy engine: the CA's single policy decision point.
//!
//! Owns the policy file format (schedules, roles, grants, tests), its
//! checking with precise error locations, on-call rotations, and the access
//! decision. A decision to allow is an [`Allowed`] value, which only this
//! module can build: the signer takes one and so cannot sign without a
//! decision.
//!
//! Never does: I/O other than reading the policy files in [`Policy::load`]
//! and the iCalendar files their schedules name (while checking), signing, auditing, or looking up incidents (an incident ID is a required,
//! recorded reference here; whether it is open is decided elsewhere).
//!
//! Layout: `raw.rs` (the TOML as written) → `check.rs` (checked types in
//! `model.rs`, leaf syntax in `values.rs`, schedules in `schedule.rs`:
//! rotations there, iCalendar files in `calendar.rs` over `ical.rs`) →
//! `eval.rs` (decisions) and `selftest.rs` (the policy's `[[test]]`s).
//! The operator reference is `docs/policy.md`.

// Policy files are untrusted input to a security decision: no panics.
// INVARIANT holders explain themselves in comments where they occur.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod calendar;
mod check;
mod error;
mod eval;
mod ical;
mod model;
mod raw;
mod schedule;
mod selftest;
mod values;

#[cfg(test)]
mod calendar_tests;
#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

use chrono::{DateTime, Utc};

pub(crate) use self::check::parse_severity;
pub(crate) use self::error::{PolicyError, PolicyErrors};
pub(crate) use self::eval::{AccessQuery, Allowed, Denied, DenyCode, IncidentState};
pub(crate) use self::model::Role;
pub(crate) use self::schedule::Shift;
pub(crate) use self::values::HARD_MAX_TTL;

/// Someone on call for `schedule` from `start` to `end` in place of the
/// schedule's own answer (a cover or a swap), set through the CA's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    pub(crate) schedule: String,
    /// `user:EMAIL` or `local:USER`.
    pub(crate) member: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
}

/// One schedule's current and next shifts (see [`Policy::on_call_overview`]).
#[derive(Debug, Clone)]
pub(crate) struct OnCallOverview {
    pub(crate) schedule: String,
    pub(crate) now: Vec<Shift>,
    pub(crate) next: Vec<Shift>,
}

use self::error::{Sink, Source};
use self::model::{Grant, Settings};
use self::raw::RawPolicy;
use self::schedule::Schedule;
use self::selftest::TestCase;

/// A checked, immutable policy. Cheap to share behind an `Arc`; a reload
/// builds a new one and keeps the old one if the new one has errors.
#[derive(Debug)]
pub(crate) struct Policy {
    settings: Settings,
    schedules: Vec<Schedule>,
    roles: Vec<Role>,
    grants: Vec<Grant>,
    tests: Vec<TestCase>,
    /// Who may read session recordings (`reviewers = [...]`).
    reviewers: Vec<self::values::Identity>,
    #[cfg(test)]
    sources: Vec<Source>,
}

impl Policy {
    /// Loads a policy file, or a directory whose `*.toml` files (sorted by
    /// name, not recursive) together make one policy.
    pub(crate) fn load(path: &Path) -> Result<Policy, PolicyErrors> {
        let shown = path.display().to_string();
        let fail = |message: String| PolicyErrors(vec![PolicyError::whole_file(&shown, message)]);
        let metadata =
            std::fs::metadata(path).map_err(|e| fail(format!("cannot read the policy: {e}")))?;
        let files = if metadata.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| fail(format!("cannot list the policy directory: {e}")))?;
            let mut files = Vec::new();
            for entry in entries {
                let entry =
                    entry.map_err(|e| fail(format!("cannot list the policy directory: {e}")))?;
                let file = entry.path();
                if file.extension().is_some_and(|ext| ext == "toml") && file.is_file() {
                    files.push(file);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(fail(
                    "the policy directory holds no *.toml file; add one".to_owned(),
                ));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut sources = Vec::new();
        let mut unreadable = Vec::new();
        for file in files {
            let name = file.display().to_string();
            match std::fs::read_to_string(&file) {
                Ok(text) => sources.push(Source { name, text }),
                Err(e) => {
                    unreadable.push(PolicyError::whole_file(&name, format!("cannot read: {e}")))
                }
            }
        }
        if !unreadable.is_empty() {
            return Err(PolicyErrors(unreadable));
        }
        Policy::from_sources(sources)
    }

    /// Parses and checks one policy file's text; `file_name` is used in
    /// error messages.
    pub(crate) fn parse(src: &str, file_name: &str) -> Result<Policy, PolicyErrors> {
        Policy::from_sources(vec![Source {
            name: file_name.to_owned(),
            text: src.to_owned(),
        }])
    }

    fn from_sources(sources: Vec<Source>) -> Result<Policy, PolicyErrors> {
        let mut sink = Sink::new(&sources);
        let mut raw = RawPolicy::default();
        let mut syntax_ok = true;
        for (index, source) in sources.iter().enumerate() {
            syntax_ok &= raw.add_file(index, &source.text, &mut sink);
        }
        // Checking a policy with a file missing would report references to
        // its roles as unknown: fix the syntax first.
        let checked = syntax_ok.then(|| check::check(&raw, &mut sink));
        sink.finish()?;
        let Some(checked) = checked else {
            // Not reached: a file with syntax errors put them in the sink.
            return Err(PolicyErrors(vec![PolicyError::whole_file(
                "policy",
                "TOML syntax errors".to_owned(),
            )]));
        };
        Ok(Policy {
            settings: checked.settings,
            schedules: checked.schedules,
            roles: checked.roles,
            grants: checked.grants,
            tests: checked.tests,
            reviewers: checked.reviewers,
            #[cfg(test)]
            sources,
        })
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether `identity` (`user:EMAIL`, `local:USER`) with `groups` is named
    /// in `reviewers`, directly or through a group. (`local:root` on the
    /// CA's socket may read recordings whatever the list says: that rule
    /// lives with the recordings, not here.)
    pub(crate) fn is_reviewer(&self, identity: &str, groups: &[String]) -> bool {
        let Ok(subject) = self::values::Identity::parse_subject(identity) else {
            return false;
        };
        self.reviewers.iter().any(|r| match r {
            self::values::Identity::Group(group) => groups.iter().any(|g| g == group),
            person => *person == subject,
        })
    }

    /// The `reviewers` list as written (normalized).
    #[cfg(test)]
    pub(crate) fn reviewers(&self) -> Vec<String> {
        self.reviewers.iter().map(ToString::to_string).collect()
    }

    pub(crate) fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|role| role.name() == name)
    }

    /// Roles in the order the policy defines them.
    pub(crate) fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.iter()
    }

    #[cfg(test)]
    pub(crate) fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name() == name)
    }

    #[cfg(test)]
    pub(crate) fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.iter()
    }

    /// Who is on call now and who takes over next, for `only` or every
    /// schedule. "Next" is who is on call when the current shift ends (or,
    /// when nobody is on call now, at the first hour within two weeks when
    /// someone is, looked for hourly over the next two days).
    pub(crate) fn on_call_overview(
        &self,
        only: Option<&str>,
        at: DateTime<Utc>,
        overrides: &[Override],
    ) -> Vec<OnCallOverview> {
        // Each probe may expand a calendar's recurrences: keep them few.
        const LOOK_AHEAD_HOURS: i64 = 48;
        self.schedules
            .iter()
            .filter(|s| only.is_none_or(|name| s.name() == name))
            .map(|schedule| {
                let now = self.on_call_all(schedule.name(), at, overrides);
                let handoff = now.iter().map(|s| s.end).min();
                let next = match handoff {
                    Some(end) => self.on_call_all(schedule.name(), end, overrides),
                    None => (1..=LOOK_AHEAD_HOURS)
                        .map(|h| {
                            self.on_call_all(
                                schedule.name(),
                                at + chrono::Duration::hours(h),
                                overrides,
                            )
                        })
                        .find(|shifts| !shifts.is_empty())
                        .unwrap_or_default(),
                };
                OnCallOverview {
                    schedule: schedule.name().to_owned(),
                    now,
                    next,
                }
            })
            .collect()
    }

    /// Who is on call for `schedule` at `at`, and the shift's start and end.
    /// None for an unknown schedule, before its rotation starts, or outside
    /// its calendar's events. (Decisions use [`Policy::on_call_all`]: a
    /// calendar can have several people on call at once.)
    #[cfg(test)]
    fn on_call(&self, schedule: &str, at: DateTime<Utc>) -> Option<Shift> {
        self.schedule(schedule)?.on_call(at)
    }

    /// Everyone on call for `schedule` at `at`, each with their shift;
    /// empty for an unknown schedule. An override covering `at` replaces
    /// the schedule's own answer (a cover or a swap).
    fn on_call_all(&self, schedule: &str, at: DateTime<Utc>, overrides: &[Override]) -> Vec<Shift> {
        let Some(found) = self.schedule(schedule) else {
            return Vec::new();
        };
        let covering: Vec<Shift> = overrides
            .iter()
            .filter(|o| o.schedule == schedule && o.start <= at && at < o.end)
            .filter_map(|o| {
                Some(Shift {
                    schedule: schedule.to_owned(),
                    member: self::values::Identity::parse_subject(&o.member).ok()?,
                    start: o.start,
                    end: o.end,
                    timezone: found.timezone(),
                })
            })
            .collect();
        if covering.is_empty() {
            found.on_call_all(at)
        } else {
            covering
        }
    }

    /// The files this policy was built from, as `(name, text)`, in load
    /// order.
    #[cfg(test)]
    pub(crate) fn sources(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sources
            .iter()
            .map(|s| (s.name.as_str(), s.text.as_str()))
    }
}
