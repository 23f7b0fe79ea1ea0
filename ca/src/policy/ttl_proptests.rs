//! Property tests of shift arithmetic and the TTL clamp across time zones
//! and DST changes: whatever the zone (Berlin, New York, Lord Howe's
//! half-hour DST, Chatham, Troll's two-hour DST, Santiago, UTC), the
//! rotation's start, its shift length (whole days, hours, odd minutes) and
//! the instant asked about,
//!
//! - a rotation's shift holds the instant, the next shift starts exactly
//!   where it ends (no gap, no overlap, the next member), and whole-day
//!   shifts hand off at the rotation's local wall-clock time;
//! - a certificate allowed to the person on call never outlives their
//!   shift end, the TTL asked for or the hard cap, and the person not on
//!   call is refused.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::{Just, Strategy, prop_assert, prop_assert_eq, prop_oneof, proptest};

use super::identity::Identity;
use super::schedule::{Schedule, resolve_local};
use super::{AccessQuery, HARD_MAX_TTL, IncidentState, Policy};

const ZONES: [Tz; 8] = [
    Tz::Europe__Berlin,
    Tz::America__New_York,
    Tz::Australia__Lord_Howe,
    Tz::Pacific__Chatham,
    Tz::Antarctica__Troll,
    Tz::America__Santiago,
    Tz::Europe__London,
    Tz::UTC,
];

const MEMBERS: [&str; 3] = ["alice@example.com", "bob@example.com", "carol@example.com"];

fn zone() -> impl Strategy<Value = Tz> {
    (0..ZONES.len()).prop_map(|i| ZONES[i])
}

/// A local start in 2026, often on a DST night at the hours clocks change.
fn start() -> impl Strategy<Value = NaiveDateTime> {
    let dst_night = (
        prop_oneof![
            Just((3, 8)),
            Just((3, 29)),
            Just((4, 5)),
            Just((9, 27)),
            Just((10, 25)),
            Just((11, 1))
        ],
        0u32..4,
        prop_oneof![Just(0u32), Just(30), Just(59)],
    )
        .prop_map(|((m, d), h, min)| day(m, d).and_hms_opt(h, min, 0).unwrap_or_default());
    let any_time = (1u32..=12, 1u32..=28, 0u32..24, 0u32..60)
        .prop_map(|(m, d, h, min)| day(m, d).and_hms_opt(h, min, 0).unwrap_or_default());
    prop_oneof![dst_night, any_time]
}

fn day(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, month, day).unwrap_or_default()
}

/// Whole days, whole hours, and odd minutes.
fn shift() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1u64..=14).prop_map(|d| Duration::from_secs(d * 86_400)),
        (1u64..=36).prop_map(|h| Duration::from_secs(h * 3600)),
        (1u64..=600).prop_map(|m| Duration::from_secs(m * 60 + 60)),
    ]
}

/// An instant from the start to two years on.
fn offset() -> impl Strategy<Value = i64> {
    0i64..2 * 366 * 86_400
}

fn rotation(zone: Tz, start: NaiveDateTime, shift: Duration) -> Schedule {
    let members = MEMBERS
        .iter()
        .map(|m| Identity::User((*m).to_owned()))
        .collect();
    Schedule::new("sre".into(), zone, members, start, shift)
        .unwrap_or_else(|e| panic!("rotation: {e}"))
}

fn humantime(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

proptest! {
    #[test]
    fn shifts_hold_the_instant_and_hand_off_without_gap_or_overlap(
        zone in zone(), start in start(), shift in shift(), offset in offset(),
    ) {
        let schedule = rotation(zone, start, shift);
        let Some(first) = resolve_local(zone, start) else { return Ok(()); };
        let at = first + TimeDelta::seconds(offset);
        let on_call = schedule.on_call_all(at);
        prop_assert_eq!(on_call.len(), 1, "nobody on call at {}", at);
        let now = &on_call[0];
        prop_assert!(now.start <= at && at < now.end, "{:?} at {}", now, at);
        let next = schedule.on_call_all(now.end);
        prop_assert_eq!(next.len(), 1);
        prop_assert_eq!(next[0].start, now.end, "a gap or overlap at the handoff");
        prop_assert!(next[0].member != now.member, "the same member twice in a row");
        prop_assert_eq!(schedule.next_start_after(at), Ok(Some(now.end)));
        let whole_days = shift.as_secs() % 86_400 == 0;
        if whole_days {
            // The handoff stays at the local wall-clock time, unless that
            // time does not exist that night (then it moves by the gap).
            let local = now.start.with_timezone(&zone).naive_local();
            if zone.from_local_datetime(&local.date().and_time(start.time())).single().is_some() {
                prop_assert_eq!(local.time(), start.time(), "handoff moved at {}", now.start);
            }
            let length = now.end - now.start;
            let days = i64::try_from(shift.as_secs() / 86_400).unwrap_or(i64::MAX);
            prop_assert!(
                (length - TimeDelta::days(days)).num_minutes().abs() <= 120,
                "a {}-day shift lasts {}", days, length
            );
        } else {
            prop_assert_eq!((now.end - now.start).to_std().ok(), Some(shift));
        }
        prop_assert!(now.start.with_timezone(&zone).naive_local().second() == start.second());
    }

    #[test]
    fn a_certificate_never_outlives_the_shift_end(
        zone in zone(), start in start(), shift in shift(), offset in offset(),
        ttl in 2u64..=86_400, who in 0usize..3,
    ) {
        let policy_text = format!(
            r#"[settings]
default_ttl = "15m"
max_ttl = "24h"

[[schedule]]
name = "sre"
timezone = "{zone}"
rotation = {{ members = ["{}", "{}", "{}"], start = "{}", shift = "{}" }}

[[role]]
name = "oncall"
principals = ["ops"]
hosts = ["*.prod.example.com"]
max_ttl = "24h"
require_on_call = ["sre"]

[[grant]]
identities = ["group:sre"]
roles = ["oncall"]
"#,
            MEMBERS[0], MEMBERS[1], MEMBERS[2],
            start.format("%Y-%m-%dT%H:%M"),
            humantime(shift),
        );
        let policy = Policy::parse(&policy_text, "ttl.toml")
            .unwrap_or_else(|e| panic!("{e:?}\n{policy_text}"));
        let schedule = rotation(zone, start, shift);
        let Some(first) = resolve_local(zone, start) else { return Ok(()); };
        let at = first + TimeDelta::seconds(offset);
        let identity = format!("user:{}", MEMBERS[who]);
        let groups = vec!["sre".to_owned()];
        let ttl = Duration::from_secs(ttl);
        let query = AccessQuery {
            identity: &identity,
            groups: &groups,
            role: "oncall",
            incident: None,
            incident_state: Some(IncidentState::Unknown),
            approved_by: &[],
            overrides: &[],
            reason: None,
            ttl: Some(ttl),
            principals: None,
            at,
        };
        let on_call = schedule.on_call_all(at);
        let mine = on_call.iter().find(|s| s.member.to_string() == identity);
        match (policy.evaluate(&query), mine) {
            (Ok(allowed), Some(shift)) => {
                let end = allowed.valid_before();
                prop_assert!(end <= shift.end, "valid until {} past the shift end {}", end, shift.end);
                prop_assert!(end <= at + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX));
                prop_assert!(end <= at + TimeDelta::from_std(HARD_MAX_TTL).unwrap_or(TimeDelta::MAX));
                prop_assert!(end > at, "an already expired certificate");
            }
            (Ok(allowed), None) => {
                prop_assert!(false, "allowed to someone off shift until {}", allowed.valid_before());
            }
            (Err(denied), Some(shift)) => {
                prop_assert!(false, "the person on call ({}..{}) is refused: {}", shift.start, shift.end, denied.message);
            }
            (Err(_), None) => {}
        }
    }
}

/// A fixed instant on a spring-forward night, checked by hand: Berlin's
/// clocks jump from 02:00 to 03:00 on 2026-03-29; a daily handoff at 02:30
/// moves to 03:30 local (01:30 UTC), and the certificate asked for at
/// 01:00 UTC for an hour ends at the handoff.
#[test]
fn the_handoff_in_a_dst_gap_ends_the_certificate() {
    let start = day(3, 20).and_hms_opt(2, 30, 0).unwrap_or_default();
    let schedule = rotation(Tz::Europe__Berlin, start, Duration::from_secs(86_400));
    let at = Utc
        .with_ymd_and_hms(2026, 3, 29, 1, 0, 0)
        .single()
        .unwrap_or_default();
    let now = schedule.on_call_all(at);
    assert_eq!(now.len(), 1);
    let handoff: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 3, 29, 1, 30, 0)
        .single()
        .unwrap_or_default();
    assert_eq!(now[0].end, handoff);
}
