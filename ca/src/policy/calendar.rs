//! Calendar schedules: who is on call according to an iCalendar export
//! (PagerDuty, Opsgenie, Grafana OnCall), and until when.
//!
//! Each VEVENT is a shift: its time span is the shift, its people are the
//! `ATTENDEE;...:mailto:` addresses or, when there are none, the first email
//! address in `SUMMARY`, then `DESCRIPTION`. Recurring events
//! (`RRULE:FREQ=DAILY|WEEKLY` with INTERVAL, BYDAY, UNTIL, COUNT, WKST)
//! repeat the shift; `EXDATE` removes instances; an event with the same
//! `UID` and a `RECURRENCE-ID` replaces the instance that started then (a
//! swap or a cover), and with `STATUS:CANCELLED` just removes it.
//!
//! Choices, and why:
//!
//! - **The `rrule` crate computes which days a rule falls on** (RFC 5545
//!   recurrence arithmetic with chrono-tz: intervals, week starts, BYDAY,
//!   COUNT and UNTIL). We parse the RRULE ourselves first (`ical.rs`) so
//!   that anything but DAILY/WEEKLY is refused with its line, and so the
//!   crate never meets a rule we did not check.
//! - **Local times follow `schedule.rs`'s one rule** ([`resolve_local`]):
//!   each instance starts at DTSTART's wall-clock time on its day, a time in
//!   a DST gap moves forward by the gap, a time in a fold takes the first
//!   occurrence. (RFC 5545 drops recurrence instances that fall in a gap;
//!   for on-call that would leave a shift with nobody on it.)
//! - **A shift's length is wall-clock when DTSTART and DTEND are in the same
//!   time zone**: a weekly Monday 09:00 → Monday 09:00 shift ends at 09:00
//!   local even in the week the clocks change, so it meets the next
//!   instance exactly. (RFC 5545 keeps the *exact* duration for every
//!   instance, which would leave an hour's gap or overlap at each DST
//!   change.) When DTSTART and DTEND are in different zones the length is
//!   exact; `DURATION` counts days on the wall clock and hours exactly, as
//!   the RFC says.
//! - Floating times and all-day dates are read in the schedule's
//!   `timezone`, else the calendar's `X-WR-TIMEZONE`, else UTC.
//! - `VTIMEZONE` components are not read: `TZID`s must be IANA names, whose
//!   rules chrono-tz knows.
//!
//! Bounds: the file is at most [`super::ical::MAX_ICAL_BYTES`], holds at
//! most [`MAX_EVENTS`] events, and one question "who is on call at T" looks
//! at most at [`MAX_INSTANCES_PER_QUERY`] recurrence instances; past that
//! the remaining recurring events count as nobody on call (fail closed).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use rrule::{Frequency, NWeekday, RRule, RRuleSet};

use super::ical::{self, Component, Freq, IcalError, Property, Rule, Time};
use super::identity::Identity;
use super::schedule::resolve_local;
use super::values::MAX_SHIFT;

/// Most VEVENTs one calendar may hold (a year of daily shifts in two
/// layers is under a thousand).
pub(super) const MAX_EVENTS: usize = 20_000;

/// Most recurrence instances looked at to answer one `on_call` question:
/// a daily rule reaches 27 years before using a tenth of this.
pub(super) const MAX_INSTANCES_PER_QUERY: usize = 100_000;

/// A checked calendar schedule.
#[derive(Clone, Debug)]
pub(crate) struct Calendar {
    events: Vec<Event>,
    /// Where floating times are read, and how shifts are shown.
    timezone: Tz,
}

/// One VEVENT that is a shift (cancelled ones are gone).
#[derive(Clone, Debug)]
struct Event {
    members: Vec<Identity>,
    /// The zone DTSTART is in (UTC for `...Z`); instances keep its
    /// wall-clock time.
    zone: Tz,
    start_local: NaiveDateTime,
    start: DateTime<Utc>,
    length: Length,
    recurrence: Option<RRuleSet>,
    /// Instances removed by EXDATE or replaced by a RECURRENCE-ID.
    skipped: Vec<Skip>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    At(DateTime<Utc>),
    /// A DATE-valued EXDATE/RECURRENCE-ID: the instance starting that day.
    On(NaiveDate),
}

/// Shift end = the start's wall-clock time plus `wall`, resolved in the
/// event's zone, plus `exact`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Length {
    wall: TimeDelta,
    exact: TimeDelta,
}

/// One shift found in the calendar: these people, from `start` to `end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CalendarShift<'a> {
    pub(super) members: &'a [Identity],
    pub(super) start: DateTime<Utc>,
    pub(super) end: DateTime<Utc>,
}

/// What one VEVENT says, before overrides are matched to their series.
struct Parsed {
    uid: Option<String>,
    replaces: Option<Skip>,
    /// None for a cancelled event.
    event: Option<Event>,
}

impl Calendar {
    /// Parses and checks an `.ics` file's text. `timezone` is the
    /// schedule's own, if it names one. Reports every broken event.
    pub(super) fn parse(text: &str, timezone: Option<Tz>) -> Result<Calendar, Vec<IcalError>> {
        let components = ical::parse(text).map_err(|e| vec![e])?;
        let calendars: Vec<&Component> = components
            .iter()
            .filter(|c| c.name == "VCALENDAR")
            .collect();
        let timezone = match timezone {
            Some(tz) => tz,
            None => match calendars.iter().find_map(|c| c.get("X-WR-TIMEZONE")) {
                None => Tz::UTC,
                Some(p) => p.value.trim().parse::<Tz>().map_err(|_| {
                    vec![p.error(format!(
                        "X-WR-TIMEZONE {:?} is not an IANA time zone; set timezone in the \
                         schedule instead",
                        p.value.trim()
                    ))]
                })?,
            },
        };
        let vevents: Vec<&Component> = calendars
            .iter()
            .flat_map(|c| c.children.iter())
            .filter(|c| c.name == "VEVENT")
            .collect();
        if vevents.len() > MAX_EVENTS {
            let line = vevents.get(MAX_EVENTS).map_or(1, |c| c.line);
            return Err(vec![IcalError {
                line,
                column: 1,
                message: format!("more than {MAX_EVENTS} events; export a shorter time range"),
            }]);
        }
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        for component in vevents {
            match event(component, timezone) {
                Ok(p) => parsed.push(p),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // A RECURRENCE-ID instance replaces the one its series generated at
        // that time; the replacement (unless cancelled) is a shift itself.
        let replaced: Vec<(String, Skip)> = parsed
            .iter()
            .filter_map(|p| Some((p.uid.clone()?, p.replaces?)))
            .collect();
        let mut events = Vec::new();
        for p in parsed {
            let Some(mut event) = p.event else { continue };
            if p.replaces.is_none()
                && let Some(uid) = &p.uid
            {
                event.skipped.extend(
                    replaced
                        .iter()
                        .filter(|(u, _)| u == uid)
                        .map(|(_, skip)| *skip),
                );
            }
            events.push(event);
        }
        Ok(Calendar { events, timezone })
    }

    pub(super) fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Every shift in progress at `at` (`start <= at < end`), in file
    /// order. Past the instance budget the rest count as nobody on call.
    pub(super) fn shifts_at(&self, at: DateTime<Utc>) -> Vec<CalendarShift<'_>> {
        self.scan(at).0
    }

    /// Like [`Calendar::shifts_at`], but None when the instance budget ran
    /// out, for questions where a missed shift would widen a power.
    pub(super) fn all_shifts_at(&self, at: DateTime<Utc>) -> Option<Vec<CalendarShift<'_>>> {
        let (shifts, complete) = self.scan(at);
        complete.then_some(shifts)
    }

    /// The earliest start of an instance after `at`: `Ok(None)` when no
    /// event starts later, `Err(())` when the instance budget ran out.
    pub(super) fn next_start_after(&self, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ()> {
        let mut next: Option<DateTime<Utc>> = None;
        let mut budget = MAX_INSTANCES_PER_QUERY;
        let mut earlier = |t: DateTime<Utc>| {
            if next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        for event in &self.events {
            if event.start > at {
                earlier(event.start);
                continue;
            }
            let Some(set) = &event.recurrence else {
                continue;
            };
            for instance in set {
                budget = budget.checked_sub(1).ok_or(())?;
                let local = instance
                    .naive_local()
                    .date()
                    .and_time(event.start_local.time());
                match resolve_local(event.zone, local) {
                    Some(start) if start > at => {
                        earlier(start);
                        break;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        }
        Ok(next)
    }

    /// The shifts at `at`, and whether every instance was looked at.
    fn scan(&self, at: DateTime<Utc>) -> (Vec<CalendarShift<'_>>, bool) {
        let mut out = Vec::new();
        let mut budget = MAX_INSTANCES_PER_QUERY;
        for event in &self.events {
            if at < event.start {
                continue;
            }
            let Some(set) = &event.recurrence else {
                out.extend(event.instance(event.start_local, at));
                continue;
            };
            for instance in set {
                let Some(left) = budget.checked_sub(1) else {
                    return (out, false);
                };
                budget = left;
                // Every instance of a DAILY/WEEKLY rule starts at DTSTART's
                // wall-clock time; resolve it ourselves, the one way.
                let local = instance
                    .naive_local()
                    .date()
                    .and_time(event.start_local.time());
                match resolve_local(event.zone, local) {
                    Some(start) if start <= at => out.extend(event.instance(local, at)),
                    _ => break,
                }
            }
        }
        (out, true)
    }
}

impl Event {
    /// The instance starting at wall-clock `local`, if it is not skipped
    /// and covers `at`.
    fn instance(&self, local: NaiveDateTime, at: DateTime<Utc>) -> Option<CalendarShift<'_>> {
        let start = resolve_local(self.zone, local)?;
        let skipped = self.skipped.iter().any(|skip| match skip {
            Skip::At(t) => *t == start,
            Skip::On(day) => *day == local.date(),
        });
        if skipped {
            return None;
        }
        let end = end_of(self.zone, local, self.length)?;
        (start <= at && at < end).then_some(CalendarShift {
            members: &self.members,
            start,
            end,
        })
    }
}

fn end_of(zone: Tz, local: NaiveDateTime, length: Length) -> Option<DateTime<Utc>> {
    resolve_local(zone, local.checked_add_signed(length.wall)?)?.checked_add_signed(length.exact)
}

fn one_time(property: &Property) -> Result<Time, IcalError> {
    let times = ical::times(property, false)?;
    times
        .first()
        .copied()
        .ok_or_else(|| property.error(format!("{} has no value", property.name)))
}

fn instant(time: Time, zone: Tz, property: &Property) -> Result<DateTime<Utc>, IcalError> {
    let (local, zone) = time.local(zone);
    resolve_local(zone, local)
        .ok_or_else(|| property.error(format!("{} is out of range", property.name)))
}

fn skip(time: Time, zone: Tz, property: &Property) -> Result<Skip, IcalError> {
    match time {
        Time::Date(day) => Ok(Skip::On(day)),
        other => instant(other, zone, property).map(Skip::At),
    }
}

/// Reads one VEVENT; `zone` is where floating times are read.
fn event(c: &Component, zone: Tz) -> Result<Parsed, IcalError> {
    for name in ["RDATE", "EXRULE"] {
        if let Some(p) = c.get(name) {
            return Err(p.error(format!(
                "{name} is not supported; export the extra or removed shifts as events, \
                 EXDATEs or RECURRENCE-ID overrides"
            )));
        }
    }
    let uid = c.get("UID").map(|p| p.value.trim().to_owned());
    let replaces = match c.get("RECURRENCE-ID") {
        None => None,
        Some(p) => {
            if p.param("RANGE")
                .is_some_and(|r| r.eq_ignore_ascii_case("THISANDFUTURE"))
            {
                return Err(p.error(
                    "RECURRENCE-ID;RANGE=THISANDFUTURE is not supported; end the series with \
                     UNTIL and start a new one",
                ));
            }
            if uid.is_none() {
                return Err(p.error(
                    "RECURRENCE-ID without a UID: add the UID of the recurring event it changes",
                ));
            }
            Some(skip(one_time(p)?, zone, p)?)
        }
    };
    let cancelled = c
        .get("STATUS")
        .is_some_and(|p| p.value.trim().eq_ignore_ascii_case("CANCELLED"));
    if cancelled {
        return Ok(Parsed {
            uid,
            replaces,
            event: None,
        });
    }

    let dtstart = c
        .get("DTSTART")
        .ok_or_else(|| c.error("VEVENT has no DTSTART; a shift needs a start"))?;
    let start_time = one_time(dtstart)?;
    let (start_local, start_zone) = start_time.local(zone);
    let start = instant(start_time, zone, dtstart)?;
    let (length, length_property) = match (c.get("DTEND"), c.get("DURATION")) {
        (Some(_), Some(p)) => return Err(p.error("VEVENT has both DTEND and DURATION; keep one")),
        (Some(p), None) => {
            let end_time = one_time(p)?;
            let (end_local, end_zone) = end_time.local(zone);
            let length = if end_zone == start_zone {
                Length {
                    wall: end_local.signed_duration_since(start_local),
                    exact: TimeDelta::zero(),
                }
            } else {
                Length {
                    wall: TimeDelta::zero(),
                    exact: instant(end_time, zone, p)?.signed_duration_since(start),
                }
            };
            (length, Some(p))
        }
        (None, Some(p)) => {
            let d = ical::duration(p)?;
            let length = TimeDelta::try_days(d.days)
                .zip(TimeDelta::try_seconds(d.seconds))
                .map(|(wall, exact)| Length { wall, exact })
                .ok_or_else(|| p.error("DURATION is too long"))?;
            (length, Some(p))
        }
        (None, None) if matches!(start_time, Time::Date(_)) => (
            Length {
                wall: TimeDelta::days(1),
                exact: TimeDelta::zero(),
            },
            None,
        ),
        (None, None) => {
            return Err(c.error("VEVENT has neither DTEND nor DURATION; a shift needs an end"));
        }
    };
    let located = |message: &str| match length_property {
        Some(p) => p.error(message),
        None => c.error(message),
    };
    let end = end_of(start_zone, start_local, length)
        .ok_or_else(|| located("the shift's end is out of range"))?;
    if end <= start {
        return Err(located(
            "the shift ends before it starts; check DTEND or DURATION",
        ));
    }
    let max = TimeDelta::from_std(MAX_SHIFT).unwrap_or(TimeDelta::MAX);
    if end.signed_duration_since(start) > max {
        return Err(located("the shift is longer than 366 days"));
    }

    let members = match members(c)? {
        Members::AllDeclined => Vec::new(),
        Members::People(people) if people.is_empty() => {
            return Err(c.error(
                "VEVENT names nobody on call: add ATTENDEE:mailto:EMAIL, or an email address in \
                 SUMMARY or DESCRIPTION",
            ));
        }
        Members::People(people) => people,
    };

    let mut rules = c.all("RRULE");
    let recurrence = match (rules.next(), rules.next()) {
        (_, Some(second)) => return Err(second.error("VEVENT has more than one RRULE; keep one")),
        (None, None) => None,
        (Some(p), None) => {
            if replaces.is_some() {
                return Err(p.error(
                    "a RECURRENCE-ID override cannot have its own RRULE; it replaces one instance",
                ));
            }
            Some(recurrence(&ical::rule(p)?, p, start_zone, start)?)
        }
    };
    let mut skipped = Vec::new();
    for p in c.all("EXDATE") {
        for time in ical::times(p, true)? {
            // A floating EXDATE is in DTSTART's zone, like the instances.
            skipped.push(skip(time, start_zone, p)?);
        }
    }
    Ok(Parsed {
        uid,
        replaces,
        event: Some(Event {
            members,
            zone: start_zone,
            start_local,
            start,
            length,
            recurrence,
            skipped,
        }),
    })
}

/// The people on call in an event: `ATTENDEE:mailto:` addresses, except
/// those whose `PARTSTAT` is `DECLINED` (they said they will not take the
/// shift); when the event has no `mailto:` attendee at all, the first email
/// address in SUMMARY, else in DESCRIPTION. An event whose every attendee
/// declined has nobody on call (it does not fall back to SUMMARY).
fn members(c: &Component) -> Result<Members, IcalError> {
    let mut out: Vec<Identity> = Vec::new();
    let mut declined = 0usize;
    for p in c.all("ATTENDEE") {
        let value = p.value.trim();
        let is_mailto = value
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("mailto:"));
        let Some(email) = value.get(7..).filter(|_| is_mailto) else {
            continue;
        };
        if email.contains(':') {
            return Err(p.error(format!("ATTENDEE {value:?} is not an email address")));
        }
        let identity =
            Identity::parse_member(email).map_err(|e| p.error(format!("ATTENDEE: {e}")))?;
        if p.param("PARTSTAT")
            .is_some_and(|status| status.eq_ignore_ascii_case("DECLINED"))
        {
            declined += 1;
            continue;
        }
        if !out.contains(&identity) {
            out.push(identity);
        }
    }
    if declined > 0 && out.is_empty() {
        return Ok(Members::AllDeclined);
    }
    if out.is_empty() {
        for name in ["SUMMARY", "DESCRIPTION"] {
            if let Some(identity) = c.get(name).and_then(|p| email_in(&ical::text(&p.value))) {
                out.push(identity);
                break;
            }
        }
    }
    Ok(Members::People(out))
}

/// Who an event puts on call.
enum Members {
    People(Vec<Identity>),
    /// Every attendee declined: a shift with nobody on it.
    AllDeclined,
}

/// The first email address in free text ("On call: Alice <alice@x.com>").
fn email_in(text: &str) -> Option<Identity> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "._%+-@".contains(c)))
        .filter(|word| word.contains('@'))
        .find_map(|word| Identity::parse_member(word.trim_matches('.')).ok())
}

/// Builds the `rrule` crate's set for a checked rule, starting at `start`
/// in `zone`.
fn recurrence(
    rule: &Rule,
    property: &Property,
    zone: Tz,
    start: DateTime<Utc>,
) -> Result<RRuleSet, IcalError> {
    let tz = rrule::Tz::from(zone);
    let mut built = RRule::new(match rule.freq {
        Freq::Daily => Frequency::Daily,
        Freq::Weekly => Frequency::Weekly,
    })
    .interval(rule.interval);
    if !rule.by_day.is_empty() {
        built = built.by_weekday(rule.by_day.iter().map(|d| NWeekday::Every(*d)).collect());
    }
    if let Some(count) = rule.count {
        built = built.count(count);
    }
    if let Some(week_start) = rule.week_start {
        built = built.week_start(week_start);
    }
    if let Some(until) = rule.until {
        // A floating UNTIL is in DTSTART's zone; a date includes its day.
        let until = match until {
            Time::Date(day) => resolve_local(zone, day.and_time(NaiveTime::MIN))
                .and_then(|t| t.checked_add_signed(TimeDelta::days(1) - TimeDelta::seconds(1))),
            other => {
                let (local, until_zone) = other.local(zone);
                resolve_local(until_zone, local)
            }
        }
        .ok_or_else(|| property.error("RRULE UNTIL is out of range"))?;
        built = built.until(until.with_timezone(&rrule::Tz::UTC));
    }
    built
        .build(start.with_timezone(&tz))
        .map(RRuleSet::limit)
        .map_err(|e| property.error(format!("RRULE: {e}")))
}
