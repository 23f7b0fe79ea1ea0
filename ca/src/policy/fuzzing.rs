//! Fuzz entry point for iCalendar schedules (`crate::fuzzing::ical`
//! calls it): a child of `policy` so that it reads `.ics` text with the
//! very parser the policy uses (`calendar.rs` over `ical.rs`).
//!
//! Properties, for any text:
//! - a refusal is one or more located errors (line and column inside the
//!   file, a message that does not repeat the whole line);
//! - a calendar that loads answers "who is on call at T" only with shifts
//!   that hold T (`start <= T < end`), no longer than the longest shift the
//!   policy takes (366 days, and a DST change's hours), the same shifts
//!   whether or not the caller asked for a complete scan (when it is
//!   complete), and "the next shift starts" strictly after T; this at
//!   instants around the calendar's own shift starts, where DST and
//!   overrides bite.

#![allow(clippy::panic)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::calendar::Calendar;
use super::ical::MAX_ICAL_BYTES;
use super::values::MAX_SHIFT;

/// The fuzz entry point: the input is the `.ics` file's bytes.
pub(crate) fn calendar(data: &[u8]) {
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > MAX_ICAL_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let calendar = match Calendar::parse(text, None) {
        Ok(calendar) => calendar,
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            for e in &errors {
                assert!(
                    e.line >= 1 && e.line <= lines + 1 && e.column >= 1,
                    "error at line {} column {} of a {lines}-line file: {}",
                    e.line,
                    e.column,
                    e.message
                );
                assert!(!e.message.is_empty());
                assert!(
                    e.message.len() <= 400,
                    "a {}-byte error message",
                    e.message.len()
                );
            }
            return;
        }
    };
    let longest = TimeDelta::from_std(MAX_SHIFT).unwrap_or(TimeDelta::MAX) + TimeDelta::hours(3);
    // Walk the shift starts from 1990 on, and look around each.
    let mut at = Utc
        .with_ymd_and_hms(1990, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let mut probes: Vec<DateTime<Utc>> = Vec::new();
    for _ in 0..6 {
        match calendar.next_start_after(at) {
            Ok(Some(next)) => {
                assert!(next > at, "the next start {next} is not after {at}");
                for delta in [-1, 0, 1, 1800, 3600 * 25] {
                    probes.extend(next.checked_add_signed(TimeDelta::seconds(delta)));
                }
                at = next;
            }
            Ok(None) | Err(()) => break,
        }
    }
    for at in probes {
        let shifts = calendar.shifts_at(at);
        for shift in &shifts {
            assert!(
                shift.start <= at && at < shift.end,
                "a shift {}..{} answers for {at}",
                shift.start,
                shift.end
            );
            assert!(
                shift.end - shift.start <= longest,
                "a shift of {} answers for {at}",
                shift.end - shift.start
            );
        }
        if let Some(all) = calendar.all_shifts_at(at) {
            assert_eq!(all, shifts, "a complete scan at {at} differs");
        }
    }
}
