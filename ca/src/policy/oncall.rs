//! Who is on call: a schedule's own answer, replaced by overrides (covers
//! and swaps set through the CA's API) where they are in force.

use chrono::{DateTime, Utc};

use super::Policy;
use super::identity::Identity;
use super::schedule::{Shift, ShiftSource};

/// Most steps [`Policy::on_call_during`] takes through a window (each a
/// change of who is on call) before it gives up and answers "unknown".
const MAX_WALK_STEPS: usize = 5_000;

/// Someone on call for `schedule` from `start` to `end` in place of the
/// schedule's own answer (a cover or a swap), set through the CA's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    pub(crate) schedule: String,
    /// `user:EMAIL` or `local:USER`.
    pub(crate) member: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    /// Who created it (`user:EMAIL`, `local:USER`): a shift from an
    /// override its own member created is self-served.
    pub(crate) created_by: String,
}

/// One schedule's current and next shifts (see [`Policy::on_call_overview`]).
#[derive(Debug, Clone)]
pub(crate) struct OnCallOverview {
    pub(crate) schedule: String,
    pub(crate) now: Vec<Shift>,
    pub(crate) next: Vec<Shift>,
}

/// Everyone on call during a window, or that it could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OnCallDuring {
    People(Vec<Identity>),
    /// A calendar too long to walk within the budget.
    Unknown,
}

impl Policy {
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
    pub(super) fn on_call(&self, schedule: &str, at: DateTime<Utc>) -> Option<Shift> {
        self.schedule(schedule)?.on_call(at)
    }

    /// Everyone on call for `schedule` at `at`, each with their shift;
    /// empty for an unknown schedule. An override covering `at` replaces
    /// the schedule's own answer (a cover or a swap).
    pub(super) fn on_call_all(
        &self,
        schedule: &str,
        at: DateTime<Utc>,
        overrides: &[Override],
    ) -> Vec<Shift> {
        self.on_call_at(schedule, at, overrides, false)
            .unwrap_or_default()
    }

    /// [`Policy::on_call_all`], or None when a calendar could not be read
    /// to the end within its budget (`complete`), or always Some.
    fn on_call_at(
        &self,
        schedule: &str,
        at: DateTime<Utc>,
        overrides: &[Override],
        complete: bool,
    ) -> Option<Vec<Shift>> {
        let found = self.schedule(schedule)?;
        let covering: Vec<Shift> = overrides
            .iter()
            .filter(|o| o.schedule == schedule && o.start <= at && at < o.end)
            .filter_map(|o| {
                Some(Shift {
                    schedule: schedule.to_owned(),
                    member: Identity::parse_member(&o.member).ok()?,
                    start: o.start,
                    end: o.end,
                    timezone: found.timezone(),
                    source: ShiftSource::Override {
                        created_by: Identity::parse_subject(&o.created_by).ok(),
                    },
                })
            })
            .collect();
        if !covering.is_empty() {
            Some(covering)
        } else if complete {
            found.on_call_complete(at)
        } else {
            Some(found.on_call_all(at))
        }
    }

    /// Everyone on call for `schedule` at any moment of `[start, end)`,
    /// overrides included: the people an override for that window would
    /// take the shift from. Walks from one change of shift to the next.
    pub(crate) fn on_call_during(
        &self,
        schedule: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        overrides: &[Override],
    ) -> OnCallDuring {
        let Some(found) = self.schedule(schedule) else {
            return OnCallDuring::People(Vec::new());
        };
        let mut people: Vec<Identity> = Vec::new();
        let mut at = start;
        for _ in 0..MAX_WALK_STEPS {
            if at >= end {
                return OnCallDuring::People(people);
            }
            let Some(shifts) = self.on_call_at(schedule, at, overrides, true) else {
                return OnCallDuring::Unknown;
            };
            let mut next = end;
            for shift in shifts {
                if shift.end > at {
                    next = next.min(shift.end);
                }
                if !people.contains(&shift.member) {
                    people.push(shift.member);
                }
            }
            for o in overrides.iter().filter(|o| o.schedule == schedule) {
                for edge in [o.start, o.end] {
                    if edge > at {
                        next = next.min(edge);
                    }
                }
            }
            match found.next_start_after(at) {
                Ok(Some(starts)) => next = next.min(starts),
                Ok(None) => {}
                Err(()) => return OnCallDuring::Unknown,
            }
            at = next;
        }
        OnCallDuring::Unknown
    }
}
