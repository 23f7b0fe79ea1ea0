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

mod authority;
mod calendar;
mod check;
mod check_authority;
pub(crate) mod cli;
mod conditions;
mod denied;
mod error;
mod eval;
/// The iCalendar fuzz target's entry point (`crate::fuzzing::ical`).
#[doc(hidden)]
pub(crate) mod fuzzing;
mod ical;
mod identity;
mod model;
mod oncall;
mod people;
mod raw;
mod schedule;
mod selftest;
mod targets;
mod values;

#[cfg(test)]
mod authority_tests;
#[cfg(test)]
mod calendar_tests;
#[cfg(test)]
mod check_authority_tests;
#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod ttl_proptests;

use std::path::Path;

pub(crate) use self::authority::{Action, ActionKind, Actor, Authorized};
pub(crate) use self::check::parse_severity;
pub(crate) use self::denied::{Denied, DenyCode};
pub(crate) use self::error::{PolicyError, PolicyErrors};
pub(crate) use self::eval::{AccessQuery, Allowed, IncidentState};
pub(crate) use self::identity::canonical_identity;
pub(crate) use self::model::Role;
pub(crate) use self::oncall::Override;
pub(crate) use self::schedule::Shift;
pub(crate) use self::targets::{Target, canonical_host, scoped_principal};
pub(crate) use self::values::HARD_MAX_TTL;

use self::authority::AuthorityRule;
use self::error::{Sink, Source};
use self::identity::Identity;
use self::model::{Grant, Settings};
use self::people::People;
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
    /// `[[person]]` entries: identities that are one human.
    people: People,
    /// `admins = [...]` (canonical), and where the list is.
    admins: Vec<Identity>,
    admins_origin: String,
    /// `[[authority]]` entries, then the rules `approvers` and `reviewers`
    /// stand for.
    authorities: Vec<AuthorityRule>,
    /// Things `policy check` points out that are not errors.
    warnings: Vec<PolicyError>,
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
        let warnings = sink.take_warnings();
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
            people: checked.people,
            admins: checked.admins,
            admins_origin: checked.admins_origin,
            authorities: checked.authorities,
            warnings,
            #[cfg(test)]
            sources,
        })
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Problems `policy check` reports without refusing the policy
    /// (suspicious host patterns, powers nobody but admins hold).
    pub(crate) fn warnings(&self) -> &[PolicyError] {
        &self.warnings
    }

    /// Whether `identity` (`user:EMAIL`, `local:USER`) with `groups` may
    /// review every recording: an admin, or named (directly, through a
    /// group or a person) by `reviewers` or a `recording.review` entry
    /// without role or `for` limits. Per-recording decisions go through
    /// [`Policy::authorize`] with [`Action::ReviewRecording`].
    pub(crate) fn is_reviewer(&self, identity: &str, groups: &[String]) -> bool {
        self.may_review_everything(identity, groups)
    }

    /// The `reviewers` list as written (canonical).
    #[cfg(test)]
    pub(crate) fn reviewers(&self) -> Vec<String> {
        self.authorities
            .iter()
            .filter(|rule| rule.origin.starts_with("reviewers at"))
            .flat_map(|rule| rule.identities.iter().map(ToString::to_string))
            .collect()
    }

    /// Every identity of `identity`'s person, canonical, itself first: the
    /// set locks and revocation by identity apply to. Just the identity
    /// when it is in no `[[person]]`; empty when it is not an identity.
    pub(crate) fn person_of(&self, identity: &str) -> Vec<String> {
        match Identity::parse_subject(identity) {
            Ok(subject) => self
                .people
                .identities_of(&subject)
                .iter()
                .map(ToString::to_string)
                .collect(),
            Err(_) => Vec::new(),
        }
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

    /// The files this policy was built from, as `(name, text)`, in load
    /// order.
    #[cfg(test)]
    pub(crate) fn sources(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sources
            .iter()
            .map(|s| (s.name.as_str(), s.text.as_str()))
    }
}
