//! On-call schedules: who holds the shift at an instant, and until when.
//! A schedule is an inline rotation (below) or an iCalendar export
//! (`calendar.rs`); both answer [`Schedule::on_call`] the same way.
//!
//! A rotation hands the shift from member to member, in order, starting at
//! `start` (a wall-clock time in the schedule's time zone). Shifts of a
//! whole number of days hand off at the same local wall-clock time, so a
//! daylight-saving change makes one shift an hour shorter or longer instead
//! of moving the handoff hour. Other shift lengths are absolute durations.
//!
//! Local times that do not exist or exist twice are resolved by one rule,
//! [`resolve_local`]: a time in a DST gap moves forward by the length of the
//! gap (02:30 on a spring-forward night becomes 03:30), a time in a DST fold
//! takes its first occurrence (the one before clocks go back).

use std::time::Duration;

use chrono::offset::LocalResult;
use chrono::{DateTime, Days, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::calendar::Calendar;
use super::identity::Identity;
use super::values::{MAX_SHIFT, MIN_SHIFT, format_duration};

const SECONDS_PER_DAY: u64 = 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShiftLength {
    /// Handoffs at the same local wall-clock time every N days.
    Days(u32),
    /// Handoffs every fixed duration (whole milliseconds, at least a minute).
    Fixed(i64),
}

/// A checked on-call schedule.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    name: String,
    /// Where the rotation's wall-clock times are, and how shifts are shown.
    timezone: Tz,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Rotation(Rotation),
    Calendar(Calendar),
}

#[derive(Clone, Debug)]
struct Rotation {
    members: Vec<Identity>,
    start: NaiveDateTime,
    shift: ShiftLength,
}

/// One member's turn on call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shift {
    pub(crate) schedule: String,
    pub(crate) member: Identity,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    /// The schedule's time zone, to show `start` and `end` to people.
    pub(crate) timezone: Tz,
    /// Where the shift comes from.
    pub(crate) source: ShiftSource,
}

/// Whether a shift is the schedule's own or an override's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ShiftSource {
    Schedule,
    /// An override; its creator, None when the stored name is not an
    /// identity (then it is nobody's independent fact).
    Override {
        created_by: Option<Identity>,
    },
}

impl Shift {
    /// `user:alice@example.com until 2026-11-09 09:00 CET`
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} from {} until {}",
            self.member,
            self.start
                .with_timezone(&self.timezone)
                .format("%Y-%m-%d %H:%M %Z"),
            self.end
                .with_timezone(&self.timezone)
                .format("%Y-%m-%d %H:%M %Z"),
        )
    }
}

impl Schedule {
    /// Builds a schedule; `members` must not be empty and `shift` must be
    /// between one minute and 366 days.
    pub(crate) fn new(
        name: String,
        timezone: Tz,
        members: Vec<Identity>,
        start: NaiveDateTime,
        shift: Duration,
    ) -> Result<Schedule, String> {
        if members.is_empty() {
            return Err("rotation has no members; list at least one".to_owned());
        }
        if shift < MIN_SHIFT || shift > MAX_SHIFT {
            return Err(format!(
                "shift {} is out of range; it must be between {} and {}",
                format_duration(shift),
                format_duration(MIN_SHIFT),
                format_duration(MAX_SHIFT)
            ));
        }
        let length =
            if shift.subsec_nanos() == 0 && shift.as_secs().is_multiple_of(SECONDS_PER_DAY) {
                u32::try_from(shift.as_secs() / SECONDS_PER_DAY).map(ShiftLength::Days)
            } else {
                i64::try_from(shift.as_millis()).map(ShiftLength::Fixed)
            }
            .map_err(|_| "shift is too long".to_owned())?;
        if resolve_local(timezone, start).is_none() {
            return Err("start is out of range".to_owned());
        }
        Ok(Schedule {
            name,
            timezone,
            kind: Kind::Rotation(Rotation {
                members,
                start,
                shift: length,
            }),
        })
    }

    /// A schedule read from an iCalendar file.
    pub(crate) fn from_calendar(name: String, calendar: Calendar) -> Schedule {
        Schedule {
            name,
            timezone: calendar.timezone(),
            kind: Kind::Calendar(calendar),
        }
    }

    /// The schedule's time zone, to show shifts in.
    pub(crate) fn timezone(&self) -> Tz {
        self.timezone
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Who is on call at `at`, with the shift's start and end. None before
    /// the rotation starts, outside every calendar event, and for instants
    /// too far out to compute. When a calendar has several people on call
    /// at once, the shift that started last (the most specific) is shown;
    /// [`Schedule::on_call_all`] lists them all.
    #[cfg(test)]
    pub(crate) fn on_call(&self, at: DateTime<Utc>) -> Option<Shift> {
        self.on_call_all(at).into_iter().reduce(|best, shift| {
            if shift.start > best.start {
                shift
            } else {
                best
            }
        })
    }

    /// Why nobody is on call, for deny messages.
    pub(crate) fn when_nobody(&self) -> &'static str {
        match self.kind {
            Kind::Rotation(_) => "rotation not started",
            Kind::Calendar(_) => "no shift in the calendar at this time",
        }
    }

    /// Everyone on call at `at`, each with their shift: at most one person
    /// for a rotation, any number for a calendar (an event with several
    /// attendees, or overlapping events).
    pub(crate) fn on_call_all(&self, at: DateTime<Utc>) -> Vec<Shift> {
        self.on_call_checked(at, false).unwrap_or_default()
    }

    /// Like [`Schedule::on_call_all`], but None when a calendar's
    /// recurrence budget ran out (the answer may miss someone).
    pub(crate) fn on_call_complete(&self, at: DateTime<Utc>) -> Option<Vec<Shift>> {
        self.on_call_checked(at, true)
    }

    fn on_call_checked(&self, at: DateTime<Utc>, complete: bool) -> Option<Vec<Shift>> {
        let shift = |member: &Identity, start, end| Shift {
            schedule: self.name.clone(),
            member: member.clone(),
            start,
            end,
            timezone: self.timezone,
            source: ShiftSource::Schedule,
        };
        Some(match &self.kind {
            Kind::Rotation(rotation) => rotation
                .on_call(self.timezone, at)
                .map(|(member, start, end)| shift(member, start, end))
                .into_iter()
                .collect(),
            Kind::Calendar(calendar) => {
                if complete {
                    calendar.all_shifts_at(at)?
                } else {
                    calendar.shifts_at(at)
                }
            }
            .iter()
            .flat_map(|found| {
                found
                    .members
                    .iter()
                    .map(|member| shift(member, found.start, found.end))
            })
            .collect(),
        })
    }

    /// The earliest moment after `at` when a shift starts: `Ok(None)` when
    /// none does, `Err(())` when a calendar is too long to tell.
    pub(crate) fn next_start_after(&self, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ()> {
        match &self.kind {
            Kind::Rotation(rotation) => Ok(match rotation.on_call(self.timezone, at) {
                Some((_, _, end)) => Some(end),
                None => {
                    let first = resolve_local(self.timezone, rotation.start);
                    first.filter(|first| *first > at)
                }
            }),
            Kind::Calendar(calendar) => calendar.next_start_after(at),
        }
    }
}

impl Rotation {
    fn on_call(
        &self,
        timezone: Tz,
        at: DateTime<Utc>,
    ) -> Option<(&Identity, DateTime<Utc>, DateTime<Utc>)> {
        let (index, start, end) = match self.shift {
            ShiftLength::Days(days) => self.day_shift(timezone, days, at)?,
            ShiftLength::Fixed(millis) => self.fixed_shift(timezone, millis, at)?,
        };
        let count = u64::try_from(self.members.len()).ok()?;
        let slot = usize::try_from(index.checked_rem(count)?).ok()?;
        Some((self.members.get(slot)?, start, end))
    }

    /// Start of the `index`th shift of a whole-days rotation.
    fn handoff(&self, timezone: Tz, days: u32, index: u64) -> Option<DateTime<Utc>> {
        let offset = index.checked_mul(u64::from(days))?;
        let local = self.start.checked_add_days(Days::new(offset))?;
        resolve_local(timezone, local)
    }

    fn day_shift(
        &self,
        timezone: Tz,
        days: u32,
        at: DateTime<Utc>,
    ) -> Option<(u64, DateTime<Utc>, DateTime<Utc>)> {
        if at < self.handoff(timezone, days, 0)? {
            return None;
        }
        // First guess from the local calendar, then correct by at most a
        // step or two: handoffs are d days apart, give or take a DST hour.
        let local_now = at.with_timezone(&timezone).naive_local();
        let elapsed_days = local_now
            .date()
            .signed_duration_since(self.start.date())
            .num_days();
        let mut index = u64::try_from(elapsed_days.max(0))
            .ok()?
            .checked_div(u64::from(days))?;
        for _ in 0..4 {
            if index > 0 && self.handoff(timezone, days, index)? > at {
                index = index.checked_sub(1)?;
            } else if self.handoff(timezone, days, index.checked_add(1)?)? <= at {
                index = index.checked_add(1)?;
            } else {
                break;
            }
        }
        let start = self.handoff(timezone, days, index)?;
        let end = self.handoff(timezone, days, index.checked_add(1)?)?;
        (start <= at && at < end).then_some((index, start, end))
    }

    fn fixed_shift(
        &self,
        timezone: Tz,
        millis: i64,
        at: DateTime<Utc>,
    ) -> Option<(u64, DateTime<Utc>, DateTime<Utc>)> {
        let first = resolve_local(timezone, self.start)?;
        if at < first {
            return None;
        }
        let elapsed = at.signed_duration_since(first).num_milliseconds();
        let index = elapsed.checked_div(millis)?;
        let start =
            first.checked_add_signed(TimeDelta::milliseconds(index.checked_mul(millis)?))?;
        let end = start.checked_add_signed(TimeDelta::milliseconds(millis))?;
        Some((u64::try_from(index).ok()?, start, end))
    }
}

/// The instant a local wall-clock time names in `timezone`.
///
/// - exists once: that instant;
/// - in a DST fold (exists twice): the first occurrence;
/// - in a DST gap (does not exist): read with the offset in force before the
///   gap, which moves it forward by the gap's length (02:30 becomes 03:30
///   when clocks jump from 02:00 to 03:00).
///
/// None only for dates chrono cannot represent.
pub(crate) fn resolve_local(timezone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match timezone.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Walk back minute by minute to the last local time before the
            // gap; gaps last at most a few hours.
            for minutes in 1..=48 * 60 {
                let probe = local.checked_sub_signed(TimeDelta::minutes(minutes))?;
                if let Some(before) = timezone.from_local_datetime(&probe).latest() {
                    let offset = before.offset().fix().local_minus_utc();
                    let utc = local.checked_sub_signed(TimeDelta::seconds(i64::from(offset)))?;
                    return Some(utc.and_utc());
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, NaiveDateTime, Utc};
    use chrono_tz::Tz;

    use super::{Schedule, resolve_local};
    use crate::policy::identity::Identity;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").unwrap()
    }

    fn schedule(start: &str, shift: Duration) -> Schedule {
        let members = ["alice@example.com", "bob@example.com", "carol@example.com"]
            .map(|m| Identity::User(m.to_owned()))
            .to_vec();
        Schedule::new(
            "sre".into(),
            Tz::Europe__Berlin,
            members,
            local(start),
            shift,
        )
        .unwrap()
    }

    fn who(s: &Schedule, at: &str) -> (String, String, String) {
        let shift = s.on_call(utc(at)).unwrap();
        (
            shift.member.to_string(),
            shift.start.to_rfc3339(),
            shift.end.to_rfc3339(),
        )
    }

    const WEEK: Duration = Duration::from_secs(7 * 86_400);
    const HALF_DAY: Duration = Duration::from_secs(12 * 3600);

    #[test]
    fn weekly_handoff_stays_at_nine_local_across_spring_forward() {
        // Clocks jump 02:00 -> 03:00 on 2026-03-29.
        let s = schedule("2026-03-23T09:00", WEEK);
        let (member, start, end) = who(&s, "2026-03-29T12:00:00Z");
        assert_eq!(member, "user:alice@example.com");
        assert_eq!(start, "2026-03-23T08:00:00+00:00"); // 09:00 CET
        assert_eq!(end, "2026-03-30T07:00:00+00:00"); // 09:00 CEST
        assert_eq!(who(&s, "2026-03-30T06:59:59Z").0, "user:alice@example.com");
        let (member, start, end) = who(&s, "2026-03-30T07:00:00Z");
        assert_eq!(member, "user:bob@example.com");
        assert_eq!(start, "2026-03-30T07:00:00+00:00");
        assert_eq!(end, "2026-04-06T07:00:00+00:00");
    }

    #[test]
    fn weekly_handoff_stays_at_nine_local_across_fall_back() {
        // Clocks go back 03:00 -> 02:00 on 2026-10-25.
        let s = schedule("2026-10-19T09:00", WEEK);
        let (member, start, end) = who(&s, "2026-10-25T01:30:00Z");
        assert_eq!(member, "user:alice@example.com");
        assert_eq!(start, "2026-10-19T07:00:00+00:00"); // 09:00 CEST
        assert_eq!(end, "2026-10-26T08:00:00+00:00"); // 09:00 CET
        assert_eq!(who(&s, "2026-10-26T07:59:59Z").0, "user:alice@example.com");
        assert_eq!(who(&s, "2026-10-26T08:00:00Z").0, "user:bob@example.com");
    }

    #[test]
    fn twelve_hour_shifts_are_absolute_across_dst() {
        let s = schedule("2026-03-28T21:00", HALF_DAY);
        let (member, start, end) = who(&s, "2026-03-28T20:00:00Z");
        assert_eq!(member, "user:alice@example.com");
        assert_eq!(start, "2026-03-28T20:00:00+00:00");
        assert_eq!(end, "2026-03-29T08:00:00+00:00"); // 10:00 CEST, not 09:00
        let (member, start, end) = who(&s, "2026-03-29T08:00:00Z");
        assert_eq!(member, "user:bob@example.com");
        assert_eq!(start, "2026-03-29T08:00:00+00:00");
        assert_eq!(end, "2026-03-29T20:00:00+00:00");
        assert_eq!(who(&s, "2026-03-29T20:00:00Z").0, "user:carol@example.com");
        assert_eq!(who(&s, "2026-03-30T08:00:00Z").0, "user:alice@example.com");

        let s = schedule("2026-10-24T21:00", HALF_DAY);
        assert_eq!(
            who(&s, "2026-10-25T07:00:00Z").1,
            "2026-10-25T07:00:00+00:00"
        );
        assert_eq!(who(&s, "2026-10-25T07:00:00Z").0, "user:bob@example.com");
    }

    #[test]
    fn exactly_at_handoff_the_next_member_is_on_call() {
        let s = schedule("2026-11-02T09:00", WEEK);
        assert_eq!(who(&s, "2026-11-02T08:00:00Z").0, "user:alice@example.com");
        assert_eq!(
            who(&s, "2026-11-09T07:59:59.999Z").0,
            "user:alice@example.com"
        );
        assert_eq!(who(&s, "2026-11-09T08:00:00Z").0, "user:bob@example.com");
        assert_eq!(who(&s, "2026-11-16T08:00:00Z").0, "user:carol@example.com");
        // The rotation wraps around.
        assert_eq!(who(&s, "2026-11-23T08:00:00Z").0, "user:alice@example.com");
        // Far in the future, still whole weeks at 09:00 local.
        let (member, start, _) = who(&s, "2031-07-01T12:00:00Z");
        assert!(member.starts_with("user:"));
        assert!(start.ends_with("T07:00:00+00:00"), "{start}");
    }

    #[test]
    fn nobody_is_on_call_before_start() {
        let s = schedule("2026-11-02T09:00", WEEK);
        assert!(s.on_call(utc("2026-11-02T07:59:59Z")).is_none());
        assert!(s.on_call(utc("1970-01-01T00:00:00Z")).is_none());
        let s = schedule("2026-11-02T09:00", HALF_DAY);
        assert!(s.on_call(utc("2026-11-02T07:59:59Z")).is_none());
        assert!(s.on_call(utc("2026-11-02T08:00:00Z")).is_some());
    }

    #[test]
    fn local_time_in_a_gap_moves_forward_by_the_gap() {
        let berlin = Tz::Europe__Berlin;
        let t = resolve_local(berlin, local("2026-03-29T02:30")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-29T01:30:00+00:00"); // 03:30 CEST
        // A daily rotation handing off at 02:30 does so at 03:30 on that day
        // only, and at 02:30 again the next day.
        let s = schedule("2026-03-28T02:30", Duration::from_secs(86_400));
        let (member, start, end) = who(&s, "2026-03-29T01:00:00Z");
        assert_eq!(member, "user:alice@example.com");
        assert_eq!(start, "2026-03-28T01:30:00+00:00");
        assert_eq!(end, "2026-03-29T01:30:00+00:00");
        let (member, _, end) = who(&s, "2026-03-29T01:30:00Z");
        assert_eq!(member, "user:bob@example.com");
        assert_eq!(end, "2026-03-30T00:30:00+00:00");
    }

    #[test]
    fn local_time_in_a_fold_takes_the_first_occurrence() {
        let t = resolve_local(Tz::Europe__Berlin, local("2026-10-25T02:30")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-25T00:30:00+00:00"); // 02:30 CEST
        let s = schedule("2026-10-24T02:30", Duration::from_secs(86_400));
        assert_eq!(who(&s, "2026-10-25T00:30:00Z").0, "user:bob@example.com");
        assert_eq!(who(&s, "2026-10-25T01:30:00Z").0, "user:bob@example.com");
    }

    #[test]
    fn shift_and_members_are_checked() {
        let start = local("2026-11-02T09:00");
        let one = vec![Identity::User("a@b.c".into())];
        let berlin = Tz::Europe__Berlin;
        assert!(Schedule::new("s".into(), berlin, vec![], start, WEEK).is_err());
        assert!(Schedule::new("s".into(), berlin, one.clone(), start, Duration::ZERO).is_err());
        assert!(
            Schedule::new(
                "s".into(),
                berlin,
                one.clone(),
                start,
                Duration::from_secs(59)
            )
            .is_err()
        );
        let s = Schedule::new("s".into(), berlin, one, start, Duration::from_secs(90)).unwrap();
        assert_eq!(
            who(&s, "2026-11-02T08:01:30Z").1,
            "2026-11-02T08:01:30+00:00"
        );
    }
}
