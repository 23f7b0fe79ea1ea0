//! Calendar schedules: the iCalendar syntax, recurrence, exceptions and
//! overrides across DST, the policy's `[[test]]`s over them, and errors
//! located in the `.ics` file.
//!
//! `testdata/oncall/sre-primary.ics` is written like a PagerDuty export:
//! alice and bob alternate weekly from Monday 2026-03-02 09:00 Berlin time;
//! alice's week of 13 April is removed by EXDATE and erin covers part of it
//! with a one-off event (named only in DESCRIPTION); carol covers bob's
//! week of 19 October through a RECURRENCE-ID override. Bob's week of 23
//! March crosses spring-forward, carol's crosses fall-back.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;

use super::Policy;
use super::calendar::{Calendar, MAX_INSTANCES_PER_QUERY};
use super::ical::{self, MAX_ICAL_BYTES};
use super::tests::utc;

const PAGERDUTY: &str = include_str!("testdata/oncall/sre-primary.ics");

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/policy/testdata")
}

fn calendar(text: &str) -> Calendar {
    match Calendar::parse(text, None) {
        Ok(calendar) => calendar,
        Err(errors) => panic!("calendar has errors: {errors:?}"),
    }
}

/// `(member, start, end)` of each shift at `at`, as strings.
fn who(calendar: &Calendar, at: &str) -> Vec<(String, String, String)> {
    calendar
        .shifts_at(utc(at))
        .iter()
        .flat_map(|s| {
            s.members
                .iter()
                .map(|m| (m.to_string(), s.start.to_rfc3339(), s.end.to_rfc3339()))
        })
        .collect()
}

fn one(member: &str, start: &str, end: &str) -> Vec<(String, String, String)> {
    vec![(member.to_owned(), start.to_owned(), end.to_owned())]
}

/// A VCALENDAR around some VEVENT lines.
fn wrap(events: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n")
}

/// Writes a policy and an `.ics` file into a fresh directory and loads it.
fn load(policy: &str, ics: &str) -> Result<Policy, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("oncall")).unwrap();
    std::fs::write(dir.path().join("oncall/x.ics"), ics).unwrap();
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, policy).unwrap();
    let shown = dir.path().display().to_string();
    Policy::load(&file).map_err(|errors| {
        errors
            .to_string()
            .lines()
            .map(|line| line.replace(&shown, "DIR"))
            .collect()
    })
}

const ICAL_POLICY: &str = r#"[[schedule]]
name = "cal"
ical = "oncall/x.ics"
"#;

fn ics_errors(ics: &str) -> Vec<String> {
    match load(ICAL_POLICY, ics) {
        Ok(_) => panic!("calendar accepted"),
        Err(errors) => errors,
    }
}

// ------------------------------------------------------------------ syntax

#[test]
fn folded_lines_are_unfolded_and_quoted_parameters_kept() {
    let components = ical::parse(PAGERDUTY).unwrap();
    let calendar = components.first().unwrap();
    let alice = calendar
        .children
        .iter()
        .find(|c| c.name == "VEVENT")
        .unwrap();
    let attendee = alice.get("ATTENDEE").unwrap();
    assert_eq!(attendee.value, "mailto:alice@example.com");
    assert_eq!(attendee.param("PARTSTAT"), Some("ACCEPTED"));
    assert_eq!(attendee.line, 36); // the first of its two physical lines
    let description = ical::text(&alice.get("DESCRIPTION").unwrap().value);
    assert_eq!(
        description,
        "Alice Example is on call for SRE Primary (escalation level 1).\n\
         Schedule: https://example.pagerduty.com/schedules#PSRE001"
    );
    let bob = calendar.children.get(2).unwrap();
    assert_eq!(
        bob.get("ATTENDEE").unwrap().param("CN"),
        Some("Example, Bob")
    );
}

#[test]
fn durations() {
    let parse = |value: &str| {
        let text = wrap(&format!(
            "BEGIN:VEVENT\r\nDURATION:{value}\r\nEND:VEVENT\r\n"
        ));
        let components = ical::parse(&text).unwrap();
        let event = components.first().unwrap().children.first().unwrap();
        ical::duration(event.get("DURATION").unwrap()).map(|d| (d.days, d.seconds))
    };
    assert_eq!(parse("P7D"), Ok((7, 0)));
    assert_eq!(parse("P1W"), Ok((7, 0)));
    assert_eq!(parse("PT12H"), Ok((0, 43_200)));
    assert_eq!(parse("+P1DT2H30M15S"), Ok((1, 9015)));
    assert!(parse("-PT1H").unwrap_err().message.contains("negative"));
    assert!(parse("P").is_err());
    assert!(parse("PT").is_err());
    assert!(parse("7D").is_err());
    assert!(parse("P1H").is_err());
}

// ---------------------------------------------------- the PagerDuty export

#[test]
fn weekly_recurrence_alternates_and_keeps_nine_local_across_spring_forward() {
    let c = calendar(PAGERDUTY);
    assert_eq!(c.timezone(), Tz::Europe__Berlin); // from X-WR-TIMEZONE
    assert_eq!(
        who(&c, "2026-03-02T08:00:00Z"),
        one(
            "user:alice@example.com",
            "2026-03-02T08:00:00+00:00",
            "2026-03-09T08:00:00+00:00"
        )
    );
    assert_eq!(
        who(&c, "2026-03-10T12:00:00Z"),
        one(
            "user:bob@example.com",
            "2026-03-09T08:00:00+00:00",
            "2026-03-16T08:00:00+00:00"
        )
    );
    // Clocks jump 02:00 -> 03:00 on 2026-03-29: bob's week is an hour
    // shorter and still ends Monday 09:00 local, now CEST.
    let bobs_dst_week = one(
        "user:bob@example.com",
        "2026-03-23T08:00:00+00:00",
        "2026-03-30T07:00:00+00:00",
    );
    assert_eq!(who(&c, "2026-03-29T12:00:00Z"), bobs_dst_week);
    assert_eq!(who(&c, "2026-03-30T06:59:59Z"), bobs_dst_week);
    assert_eq!(
        who(&c, "2026-03-30T07:00:00Z"),
        one(
            "user:alice@example.com",
            "2026-03-30T07:00:00+00:00",
            "2026-04-06T07:00:00+00:00"
        )
    );
}

#[test]
fn exdate_removes_an_instance_and_a_one_off_event_covers_part_of_it() {
    let c = calendar(PAGERDUTY);
    // Erin's override names her only in DESCRIPTION.
    assert_eq!(
        who(&c, "2026-04-14T12:00:00Z"),
        one(
            "user:erin@example.com",
            "2026-04-13T07:00:00+00:00",
            "2026-04-17T07:00:00+00:00"
        )
    );
    // After erin's cover, alice's excluded week has nobody.
    assert!(who(&c, "2026-04-18T12:00:00Z").is_empty());
    // The series goes on after the exception.
    assert_eq!(who(&c, "2026-04-20T07:00:00Z")[0].0, "user:bob@example.com");
    assert_eq!(
        who(&c, "2026-04-27T07:00:00Z")[0].0,
        "user:alice@example.com"
    );
}

#[test]
fn recurrence_id_override_replaces_the_instance_across_fall_back() {
    let c = calendar(PAGERDUTY);
    // Clocks go back 03:00 -> 02:00 on 2026-10-25: carol's cover of bob's
    // week runs from 09:00 CEST to 09:00 CET.
    let carol = one(
        "user:carol@example.com",
        "2026-10-19T07:00:00+00:00",
        "2026-10-26T08:00:00+00:00",
    );
    assert_eq!(who(&c, "2026-10-19T07:00:00Z"), carol);
    assert_eq!(who(&c, "2026-10-25T01:30:00Z"), carol);
    assert_eq!(who(&c, "2026-10-26T07:59:59Z"), carol);
    let (member, start, _) = who(&c, "2026-10-26T08:00:00Z").remove(0);
    assert_eq!(member, "user:alice@example.com");
    assert_eq!(start, "2026-10-26T08:00:00+00:00");
    // Bob's other weeks are untouched.
    assert_eq!(who(&c, "2026-10-06T12:00:00Z")[0].0, "user:bob@example.com");
}

#[test]
fn nobody_before_the_first_shift_or_after_until() {
    let c = calendar(PAGERDUTY);
    assert!(who(&c, "2026-03-02T07:59:59Z").is_empty());
    assert!(who(&c, "2020-01-01T00:00:00Z").is_empty());
    // UNTIL=20261231T230000Z: the last instances start on 21 and 28 December.
    assert_eq!(who(&c, "2027-01-03T12:00:00Z").len(), 1);
    assert!(who(&c, "2027-01-05T12:00:00Z").is_empty());
}

#[test]
fn policy_on_call_and_tests_work_on_the_calendar() {
    let policy = Policy::load(&testdata().join("policy.toml")).unwrap();
    let shift = policy
        .on_call("sre-primary", utc("2026-03-29T12:00:00Z"))
        .unwrap();
    assert_eq!(shift.member.to_string(), "user:bob@example.com");
    assert_eq!(shift.end, utc("2026-03-30T07:00:00Z"));
    assert_eq!(
        shift.describe(),
        "user:bob@example.com from 2026-03-23 09:00 CET until 2026-03-30 09:00 CEST"
    );
    assert!(
        policy
            .on_call("sre-primary", utc("2026-04-18T12:00:00Z"))
            .is_none()
    );
    let outcomes = policy.run_tests();
    assert_eq!(outcomes.len(), 7);
    for outcome in &outcomes {
        assert!(
            outcome.passed,
            "{}: {}: {}",
            outcome.location, outcome.name, outcome.detail
        );
    }
}

// -------------------------------------------------------- other forms

#[test]
fn utc_floating_dates_durations_and_daily_rules() {
    let c = match Calendar::parse(
        &wrap(
            "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261102T080000Z\r\nDURATION:PT12H\r\n\
             RRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:frank@example.com on call\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20261102T200000\r\nDTEND:20261103T080000\r\n\
             RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20261106\r\n\
             ATTENDEE:mailto:grace@example.com\r\nATTENDEE:urn:uuid:1234\r\n\
             ATTENDEE;CN=Heidi:MAILTO:heidi@example.com\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261225\r\n\
             SUMMARY:Holiday cover: ivan@example.com\r\nEND:VEVENT\r\n",
        ),
        Some(Tz::America__New_York),
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(c.timezone(), Tz::America__New_York);
    // UTC times with DURATION; COUNT=3 stops after 4 November.
    assert_eq!(
        who(&c, "2026-11-04T19:59:59Z"),
        one(
            "user:frank@example.com",
            "2026-11-04T08:00:00+00:00",
            "2026-11-04T20:00:00+00:00"
        )
    );
    assert!(who(&c, "2026-11-05T14:00:00Z").is_empty());
    // Floating times in the schedule's zone (EST, UTC-5), Mon/Wed/Fri
    // nights, both mailto attendees on call.
    let wednesday = who(&c, "2026-11-05T02:00:00Z");
    let members: Vec<&str> = wednesday.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        members,
        ["user:grace@example.com", "user:heidi@example.com"]
    );
    assert_eq!(wednesday[0].1, "2026-11-05T01:00:00+00:00");
    assert!(who(&c, "2026-11-04T02:00:00Z").is_empty()); // Tuesday night
    // UNTIL as a date includes that day's instance.
    assert_eq!(who(&c, "2026-11-07T02:00:00Z").len(), 2);
    assert!(who(&c, "2026-11-10T02:00:00Z").is_empty());
    // An all-day event is a whole local day.
    assert_eq!(
        who(&c, "2026-12-25T05:00:00Z"),
        one(
            "user:ivan@example.com",
            "2026-12-25T05:00:00+00:00",
            "2026-12-26T05:00:00+00:00"
        )
    );
}

#[test]
fn a_cancelled_instance_leaves_nobody_and_several_on_call_take_the_latest() {
    let c = calendar(&wrap(
        "BEGIN:VEVENT\r\nUID:s\r\nDTSTART:20261102T080000Z\r\nDTEND:20261103T080000Z\r\n\
         RRULE:FREQ=DAILY\r\nATTENDEE:mailto:a@example.com\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID:20261103T080000Z\r\nSTATUS:CANCELLED\r\n\
         DTSTART:20261103T080000Z\r\nDTEND:20261104T080000Z\r\nEND:VEVENT\r\n",
    ));
    assert_eq!(who(&c, "2026-11-02T12:00:00Z").len(), 1);
    assert!(who(&c, "2026-11-03T12:00:00Z").is_empty());
    assert_eq!(who(&c, "2026-11-04T12:00:00Z").len(), 1);
}

#[test]
fn the_instance_budget_fails_closed() {
    // A daily rule from 1700 needs more than the budget to reach 2026.
    let c = calendar(&wrap(
        "BEGIN:VEVENT\r\nDTSTART:17000101T000000Z\r\nDTEND:17000102T000000Z\r\n\
         RRULE:FREQ=DAILY\r\nATTENDEE:mailto:a@example.com\r\nEND:VEVENT\r\n",
    ));
    const { assert!(MAX_INSTANCES_PER_QUERY < 120_000) };
    assert_eq!(who(&c, "1750-06-01T12:00:00Z").len(), 1);
    assert!(who(&c, "2026-06-01T12:00:00Z").is_empty());
}

// ------------------------------------------------------------------ errors

#[test]
fn errors_point_at_the_ics_file_line_and_column() {
    let errors = ics_errors(&wrap(
        "BEGIN:VEVENT\r\nDTSTART:20261102T080000Z\r\nDTEND:20261103T080000Z\r\n\
         RRULE:FREQ=MONTHLY;BYMONTHDAY=1\r\nATTENDEE:mailto:a@example.com\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nDTSTART;TZID=Mars/Olympus:20261102T080000\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nDTSTART:20261102T080000Z\r\nDTEND:20261103T080000Z\r\n\
         SUMMARY:On call: nobody we know\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nDTSTART:20261102T080000Z\r\nDTEND:20261102T070000Z\r\n\
         ATTENDEE:mailto:a@example.com\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nDTSTART:20261102T080000Z\r\nDTEND:20261103T080000Z\r\n\
         RRULE:FREQ=DAILY;COUNT=2;UNTIL=20261110T000000Z\r\n\
         ATTENDEE:mailto:a@example.com\r\nEND:VEVENT\r\n",
    ));
    assert_eq!(
        errors,
        [
            "DIR/oncall/x.ics:7:7: schedule \"cal\": RRULE FREQ=MONTHLY is not supported; \
             Shiftkey reads FREQ=DAILY and FREQ=WEEKLY rules with INTERVAL, BYDAY, UNTIL, COUNT \
             and WKST; export the schedule as single events instead",
            "DIR/oncall/x.ics:11:27: schedule \"cal\": DTSTART: unknown TZID \"Mars/Olympus\"; \
             Shiftkey reads IANA time zone names such as \"Europe/Berlin\" (VTIMEZONE \
             definitions are not read); export with IANA names",
            "DIR/oncall/x.ics:13:1: schedule \"cal\": VEVENT names nobody on call: add \
             ATTENDEE:mailto:EMAIL, or an email address in SUMMARY or DESCRIPTION",
            "DIR/oncall/x.ics:20:7: schedule \"cal\": the shift ends before it starts; check \
             DTEND or DURATION",
            "DIR/oncall/x.ics:26:7: schedule \"cal\": RRULE has both UNTIL and COUNT; keep one \
             (RFC 5545)",
        ]
    );
}

#[test]
fn syntax_errors_are_located() {
    let cases = [
        (
            " folded\r\n",
            "DIR/oncall/x.ics:1:1: schedule \"cal\": a continuation line",
        ),
        (
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n",
            "DIR/oncall/x.ics:3:5: schedule \"cal\": END:VCALENDAR closes BEGIN:VEVENT of line 2",
        ),
        (
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:2026\r\n",
            "DIR/oncall/x.ics:3:1: schedule \"cal\": BEGIN:VEVENT of line 2 is never closed",
        ),
        (
            "BEGIN:VCALENDAR\r\nthis is no ical\r\nEND:VCALENDAR\r\n",
            "DIR/oncall/x.ics:2:1: schedule \"cal\": not an iCalendar content line",
        ),
        (
            "BEGIN:VCARD\r\nEND:VCARD\r\n",
            "DIR/oncall/x.ics:1:1: schedule \"cal\": not an iCalendar file",
        ),
        (
            &wrap("BEGIN:VEVENT\r\nDTSTART:20261102T0800\r\nEND:VEVENT\r\n"),
            "DIR/oncall/x.ics:5:9: schedule \"cal\": DTSTART: \"20261102T0800\" is not a \
             date-time",
        ),
    ];
    for (ics, expected) in cases {
        let errors = ics_errors(ics);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(expected), "{errors:?}");
    }
}

#[test]
fn rotation_and_ical_are_exclusive_and_the_file_must_exist() {
    let both = "[[schedule]]\nname = \"cal\"\ntimezone = \"UTC\"\n\
                rotation = { members = [\"a@example.com\"], start = \"2026-11-02T09:00\", shift = \"7d\" }\n\
                ical = \"oncall/x.ics\"\n";
    assert_eq!(
        load(both, &wrap("")).unwrap_err(),
        [
            "DIR/policy.toml:5:8: schedule \"cal\": has both rotation (at DIR/policy.toml:4:12) \
             and ical; a schedule is one or the other, remove one"
        ]
    );
    let neither = "[[schedule]]\nname = \"cal\"\ntimezone = \"UTC\"\n";
    assert_eq!(
        load(neither, &wrap("")).unwrap_err(),
        [
            "DIR/policy.toml:1:1: schedule \"cal\": needs a rotation = { members, start, shift } \
             or an ical = \"FILE.ics\""
        ]
    );
    let no_zone = "[[schedule]]\nname = \"r\"\n\
                   rotation = { members = [\"a@example.com\"], start = \"2026-11-02T09:00\", shift = \"7d\" }\n";
    assert_eq!(
        load(no_zone, &wrap("")).unwrap_err(),
        [
            "DIR/policy.toml:1:1: schedule \"r\": a rotation needs timezone = \"Area/City\" or \"UTC\""
        ]
    );
    let missing = ICAL_POLICY.replace("x.ics", "missing.ics");
    let errors = load(&missing, &wrap("")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "DIR/policy.toml:3:8: schedule \"cal\": ical: cannot read DIR/oncall/missing.ics:"
        ),
        "{errors:?}"
    );
    // An empty calendar is a schedule with nobody on call.
    let policy = load(ICAL_POLICY, &wrap("")).unwrap();
    assert!(policy.on_call("cal", utc("2026-11-02T12:00:00Z")).is_none());
}

#[test]
fn oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.ics");
    let size = usize::try_from(MAX_ICAL_BYTES).unwrap() + 1;
    std::fs::write(&path, "X".repeat(size)).unwrap();
    let error = ical::read_file(&path).unwrap_err();
    assert!(error.contains("larger than 5 MiB"), "{error}");
    std::fs::write(&path, b"\xff\xfe").unwrap();
    assert!(ical::read_file(&path).unwrap_err().contains("not UTF-8"));
}

#[test]
fn unsupported_recurrence_features_are_refused() {
    let event = |extra: &str| {
        wrap(&format!(
            "BEGIN:VEVENT\r\nUID:u\r\nDTSTART:20261102T080000Z\r\nDTEND:20261103T080000Z\r\n\
             ATTENDEE:mailto:a@example.com\r\n{extra}\r\nEND:VEVENT\r\n"
        ))
    };
    let refused = |extra: &str, needle: &str| {
        let errors = Calendar::parse(&event(extra), None).unwrap_err();
        assert!(
            errors.iter().any(|e| e.message.contains(needle)),
            "{extra}: {errors:?}"
        );
    };
    refused("RRULE:FREQ=YEARLY", "FREQ=YEARLY is not supported");
    refused("RRULE:FREQ=WEEKLY;BYDAY=1MO", "BYDAY=1MO is not supported");
    refused("RRULE:FREQ=WEEKLY;BYSETPOS=1", "BYSETPOS is not supported");
    refused("RRULE:INTERVAL=2", "RRULE has no FREQ");
    refused("RRULE:FREQ=DAILY;INTERVAL=0", "INTERVAL=0");
    refused("RRULE:FREQ=DAILY;UNTIL=20250101T000000Z", "RRULE:");
    refused("RDATE:20261110T080000Z", "RDATE is not supported");
    refused(
        "RECURRENCE-ID;RANGE=THISANDFUTURE:20261102T080000Z",
        "THISANDFUTURE",
    );
    refused("DURATION:PT1H", "both DTEND and DURATION");
    refused("ATTENDEE:mailto:not-an-email", "ATTENDEE");
}

// ------------------------------------------------------- declined shifts

#[test]
fn attendees_who_declined_are_not_on_call() {
    let c = calendar(&wrap(
        "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261102T080000Z\r\nDTEND:20261102T200000Z\r\n\
         ATTENDEE;PARTSTAT=DECLINED:mailto:grace@example.com\r\n\
         ATTENDEE;PARTSTAT=ACCEPTED:mailto:heidi@example.com\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20261103T080000Z\r\nDTEND:20261103T200000Z\r\n\
         SUMMARY:ivan@example.com on call\r\n\
         ATTENDEE;PARTSTAT=declined;CN=Ivan:mailto:ivan@example.com\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20261104T080000Z\r\nDTEND:20261104T200000Z\r\n\
         ATTENDEE;PARTSTAT=TENTATIVE:mailto:judy@example.com\r\nEND:VEVENT\r\n",
    ));
    let members = |at: &str| -> Vec<String> { who(&c, at).into_iter().map(|s| s.0).collect() };
    assert_eq!(members("2026-11-02T12:00:00Z"), ["user:heidi@example.com"]);
    // Everyone declined: nobody is on call (not the SUMMARY's address).
    assert!(members("2026-11-03T12:00:00Z").is_empty());
    // Only DECLINED removes someone.
    assert_eq!(members("2026-11-04T12:00:00Z"), ["user:judy@example.com"]);
}

#[test]
fn the_next_shift_start_is_found_across_gaps() {
    let c = calendar(&wrap(
        "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261102T080000Z\r\nDTEND:20261102T120000Z\r\n\
         RRULE:FREQ=DAILY;COUNT=3\r\nATTENDEE:mailto:a@example.com\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20261102T100000Z\r\nDTEND:20261102T110000Z\r\n\
         ATTENDEE:mailto:b@example.com\r\nEND:VEVENT\r\n",
    ));
    let next = |at: &str| c.next_start_after(utc(at)).unwrap().map(|t| t.to_rfc3339());
    assert_eq!(
        next("2026-11-01T00:00:00Z").as_deref(),
        Some("2026-11-02T08:00:00+00:00")
    );
    assert_eq!(
        next("2026-11-02T08:00:00Z").as_deref(),
        Some("2026-11-02T10:00:00+00:00")
    );
    assert_eq!(
        next("2026-11-02T13:00:00Z").as_deref(),
        Some("2026-11-03T08:00:00+00:00")
    );
    assert_eq!(next("2026-11-04T09:00:00Z"), None);
}
