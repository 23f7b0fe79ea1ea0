//! iCalendar (RFC 5545) syntax for calendar schedules: reading an `.ics`
//! file within a size bound, unfolding lines, splitting content lines into
//! properties, nesting components, and the value types a shift needs
//! (DATE, DATE-TIME, DURATION, TEXT, RECUR). What the values mean for
//! on-call is `calendar.rs`'s business.
//!
//! Written by hand, after looking at crates.io: `icalendar` (0.17) and
//! `ical` (0.11) both parse, but neither keeps the line a property came
//! from, and `policy check` must point at the line of a bad `DTSTART` or
//! `RRULE`. The syntax needed is small (RFC 5545 §3.1), so it lives here;
//! the `rrule` crate does the recurrence arithmetic (see `calendar.rs`).
//!
//! Every error carries the 1-based line (of the first physical line of a
//! folded content line) and column (in characters) it was found at.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime, Weekday};
use chrono_tz::Tz;

/// Largest `.ics` file read. Exports of a year of shifts are a few hundred
/// kilobytes; anything past this is refused rather than parsed.
pub(super) const MAX_ICAL_BYTES: u64 = 5 * 1024 * 1024;

/// Deepest component nesting accepted (VCALENDAR > VEVENT > VALARM is 3).
const MAX_DEPTH: usize = 8;

/// A problem in an `.ics` file, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IcalError {
    pub(super) line: usize,
    pub(super) column: usize,
    pub(super) message: String,
}

/// Reads an `.ics` file: at most [`MAX_ICAL_BYTES`], UTF-8.
pub(super) fn read_file(path: &Path) -> Result<String, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_ICAL_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_ICAL_BYTES {
        return Err(format!(
            "{} is larger than {} MiB; export a shorter time range",
            path.display(),
            MAX_ICAL_BYTES / (1024 * 1024)
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| format!("{} is not UTF-8 text; export it as UTF-8", path.display()))
}

/// One unfolded content line: `NAME;PARAM=VALUE:value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Property {
    /// Upper-cased.
    pub(super) name: String,
    /// Names upper-cased; values unquoted, split at commas.
    pub(super) params: Vec<(String, Vec<String>)>,
    pub(super) value: String,
    pub(super) line: usize,
    /// Column of the value's first character (1 when it is on a
    /// continuation line).
    pub(super) column: usize,
}

impl Property {
    /// The first value of a parameter.
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }

    pub(super) fn error(&self, message: impl Into<String>) -> IcalError {
        IcalError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// `BEGIN:NAME` ... `END:NAME`, with its properties and sub-components.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Component {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) properties: Vec<Property>,
    pub(super) children: Vec<Component>,
}

impl Component {
    pub(super) fn get(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> {
        self.properties.iter().filter(move |p| p.name == name)
    }

    pub(super) fn error(&self, message: impl Into<String>) -> IcalError {
        IcalError {
            line: self.line,
            column: 1,
            message: message.into(),
        }
    }
}

/// A logical line: its text, its first physical line, and how many bytes
/// of the text come from that first physical line.
struct Logical {
    text: String,
    line: usize,
    first_len: usize,
}

/// Unfolds RFC 5545 §3.1 line folding: a line starting with a space or a
/// tab continues the previous one (that one whitespace character dropped).
/// Accepts CRLF and bare LF; skips blank lines.
fn unfold(text: &str) -> Result<Vec<Logical>, IcalError> {
    let mut lines: Vec<Logical> = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let number = index.saturating_add(1);
        let physical = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = physical
            .strip_prefix(' ')
            .or_else(|| physical.strip_prefix('\t'))
        {
            match lines.last_mut() {
                Some(last) => last.text.push_str(rest),
                None => {
                    return Err(IcalError {
                        line: number,
                        column: 1,
                        message: "a continuation line (starting with a space) with no line \
                                  before it to continue"
                            .to_owned(),
                    });
                }
            }
        } else if !physical.is_empty() {
            lines.push(Logical {
                text: physical.to_owned(),
                line: number,
                first_len: physical.len(),
            });
        }
    }
    Ok(lines)
}

/// Splits one logical line into a property.
fn content_line(logical: &Logical) -> Result<Property, IcalError> {
    let text = logical.text.as_str();
    let at = |byte: usize, message: String| IcalError {
        line: logical.line,
        column: column_of(logical, byte),
        message,
    };
    let name_end = text.find([';', ':']).unwrap_or(text.len());
    let name = text.get(..name_end).unwrap_or_default();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(at(
            0,
            format!(
                "not an iCalendar content line (NAME:VALUE): {:?}",
                shorten(text)
            ),
        ));
    }
    let mut params = Vec::new();
    let mut pos = name_end;
    let bytes = text.as_bytes();
    while bytes.get(pos) == Some(&b';') {
        let start = pos.saturating_add(1);
        let rest = text.get(start..).unwrap_or_default();
        let Some(eq) = rest.find('=') else {
            return Err(at(start, format!("parameter without '=' in {name}")));
        };
        let param_name = rest.get(..eq).unwrap_or_default().to_ascii_uppercase();
        pos = start.saturating_add(eq).saturating_add(1);
        let mut values = Vec::new();
        loop {
            if bytes.get(pos) == Some(&b'"') {
                let open = pos.saturating_add(1);
                let Some(close) = text.get(open..).and_then(|r| r.find('"')) else {
                    return Err(at(pos, format!("unterminated quote in {name}")));
                };
                values.push(
                    text.get(open..open.saturating_add(close))
                        .unwrap_or_default(),
                );
                pos = open.saturating_add(close).saturating_add(1);
            } else {
                let rest = text.get(pos..).unwrap_or_default();
                let end = rest.find([',', ';', ':']).unwrap_or(rest.len());
                values.push(rest.get(..end).unwrap_or_default());
                pos = pos.saturating_add(end);
            }
            if bytes.get(pos) == Some(&b',') {
                pos = pos.saturating_add(1);
            } else {
                break;
            }
        }
        params.push((param_name, values.into_iter().map(str::to_owned).collect()));
    }
    if bytes.get(pos) != Some(&b':') {
        return Err(at(pos, format!("expected ':' before the value of {name}")));
    }
    let value_start = pos.saturating_add(1);
    Ok(Property {
        name: name.to_ascii_uppercase(),
        params,
        value: text.get(value_start..).unwrap_or_default().to_owned(),
        line: logical.line,
        column: column_of(logical, value_start),
    })
}

/// Column (in characters, 1-based) of a byte offset in a logical line, on
/// its first physical line; 1 for text from continuation lines.
fn column_of(logical: &Logical, byte: usize) -> usize {
    if byte > logical.first_len {
        return 1;
    }
    logical
        .text
        .get(..byte)
        .map_or(1, |before| before.chars().count().saturating_add(1))
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Parses a whole file into its top-level components (normally one
/// VCALENDAR). Stops at the first syntax error: what follows a broken
/// BEGIN/END cannot be trusted.
pub(super) fn parse(text: &str) -> Result<Vec<Component>, IcalError> {
    let mut top = Vec::new();
    let mut stack: Vec<Component> = Vec::new();
    let mut last_line = 1;
    for logical in unfold(text)? {
        last_line = logical.line;
        let property = content_line(&logical)?;
        match property.name.as_str() {
            "BEGIN" => {
                if stack.len() >= MAX_DEPTH {
                    return Err(property.error("components nested too deeply"));
                }
                stack.push(Component {
                    name: property.value.trim().to_ascii_uppercase(),
                    line: property.line,
                    ..Component::default()
                });
            }
            "END" => {
                let name = property.value.trim().to_ascii_uppercase();
                let Some(open) = stack.pop() else {
                    return Err(property.error(format!("END:{name} without BEGIN:{name}")));
                };
                if open.name != name {
                    return Err(property.error(format!(
                        "END:{name} closes BEGIN:{} of line {}",
                        open.name, open.line
                    )));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(open),
                    None => top.push(open),
                }
            }
            _ => match stack.last_mut() {
                Some(component) => component.properties.push(property),
                None => {
                    return Err(property.error(format!(
                        "{} outside any component; an .ics file starts with BEGIN:VCALENDAR",
                        property.name
                    )));
                }
            },
        }
    }
    if let Some(open) = stack.last() {
        return Err(IcalError {
            line: last_line,
            column: 1,
            message: format!(
                "BEGIN:{} of line {} is never closed; the file may be cut short",
                open.name, open.line
            ),
        });
    }
    if !top.iter().any(|c| c.name == "VCALENDAR") {
        return Err(IcalError {
            line: 1,
            column: 1,
            message: "not an iCalendar file: no BEGIN:VCALENDAR".to_owned(),
        });
    }
    Ok(top)
}

/// A DATE or DATE-TIME value, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Time {
    /// `19980119T070000Z`
    Utc(NaiveDateTime),
    /// `TZID=Europe/Berlin:19980119T070000`
    Zoned(NaiveDateTime, Tz),
    /// `19980119T070000`: local time wherever the reader is (the
    /// schedule's time zone here).
    Floating(NaiveDateTime),
    /// `VALUE=DATE:19980119`: a whole day, floating.
    Date(NaiveDate),
}

impl Time {
    /// The wall-clock time and the zone it is read in; floating values and
    /// dates (at midnight) take `floating_zone`.
    pub(super) fn local(self, floating_zone: Tz) -> (NaiveDateTime, Tz) {
        match self {
            Time::Utc(t) => (t, Tz::UTC),
            Time::Zoned(t, tz) => (t, tz),
            Time::Floating(t) => (t, floating_zone),
            Time::Date(d) => (d.and_time(chrono::NaiveTime::MIN), floating_zone),
        }
    }
}

/// Reads the value(s) of a DTSTART/DTEND/EXDATE/RECURRENCE-ID property,
/// honouring `VALUE=DATE` and `TZID`. Several values only where `list`.
pub(super) fn times(property: &Property, list: bool) -> Result<Vec<Time>, IcalError> {
    let value_type = property.param("VALUE").map(str::to_ascii_uppercase);
    let zone = match property.param("TZID") {
        None => None,
        Some(name) => Some(name.parse::<Tz>().map_err(|_| {
            property.error(format!(
                "{}: unknown TZID {name:?}; Shiftkey reads IANA time zone names such as \
                 \"Europe/Berlin\" (VTIMEZONE definitions are not read); export with IANA names",
                property.name
            ))
        })?),
    };
    let values: Vec<&str> = if list {
        property.value.split(',').map(str::trim).collect()
    } else {
        vec![property.value.trim()]
    };
    let mut out = Vec::new();
    for text in values {
        let bad = |what: &str| {
            property.error(format!(
                "{}: {text:?} is not a {what}; write e.g. {}",
                property.name,
                if what == "date" {
                    "20261102"
                } else {
                    "20261102T090000, 20261102T080000Z"
                }
            ))
        };
        let time = match value_type.as_deref() {
            Some("DATE") => Time::Date(date(text).ok_or_else(|| bad("date"))?),
            // A bare 8-digit value without VALUE=DATE: exporters do write it.
            None if text.len() == 8 => Time::Date(date(text).ok_or_else(|| bad("date"))?),
            None | Some("DATE-TIME") => {
                let (body, utc) = match text.strip_suffix(['Z', 'z']) {
                    Some(body) => (body, true),
                    None => (text, false),
                };
                let t = date_time(body).ok_or_else(|| bad("date-time"))?;
                match (utc, zone) {
                    (true, _) => Time::Utc(t),
                    (false, Some(tz)) => Time::Zoned(t, tz),
                    (false, None) => Time::Floating(t),
                }
            }
            Some(other) => {
                return Err(property.error(format!(
                    "{}: VALUE={other} is not supported; use a DATE or DATE-TIME",
                    property.name
                )));
            }
        };
        out.push(time);
    }
    Ok(out)
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn date(text: &str) -> Option<NaiveDate> {
    if text.len() != 8 || !all_digits(text) {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y%m%d").ok()
}

fn date_time(text: &str) -> Option<NaiveDateTime> {
    let (day, time) = text.split_once(['T', 't'])?;
    if time.len() != 6 || !all_digits(time) {
        return None;
    }
    let day = date(day)?;
    let time = chrono::NaiveTime::parse_from_str(time, "%H%M%S").ok()?;
    Some(day.and_time(time))
}

/// A DURATION value: weeks and days are nominal (wall-clock) days, the
/// time part is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IcalDuration {
    pub(super) days: i64,
    pub(super) seconds: i64,
}

/// `P7D`, `PT12H`, `P1W`, `P1DT2H30M`; a leading `+` is allowed, a
/// negative duration is not (a shift cannot end before it starts).
pub(super) fn duration(property: &Property) -> Result<IcalDuration, IcalError> {
    let text = property.value.trim();
    let bad = || {
        property.error(format!(
            "DURATION {text:?} is not a duration; write e.g. P7D, PT12H or P1DT6H"
        ))
    };
    if text.starts_with('-') {
        return Err(property.error(format!(
            "DURATION {text:?} is negative; a shift must end after it starts"
        )));
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    let body = body.strip_prefix(['P', 'p']).ok_or_else(bad)?;
    let (date_part, time_part) = match body.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let mut out = IcalDuration {
        days: 0,
        seconds: 0,
    };
    let mut seen_any = false;
    for (unit, amount) in units(date_part).ok_or_else(bad)? {
        let days = match unit {
            'W' => amount.checked_mul(7),
            'D' => Some(amount),
            _ => None,
        }
        .ok_or_else(bad)?;
        out.days = out.days.checked_add(days).ok_or_else(bad)?;
        seen_any = true;
    }
    if let Some(time_part) = time_part {
        let parsed = units(time_part).ok_or_else(bad)?;
        if parsed.is_empty() {
            return Err(bad());
        }
        for (unit, amount) in parsed {
            let seconds = match unit {
                'H' => amount.checked_mul(3600),
                'M' => amount.checked_mul(60),
                'S' => Some(amount),
                _ => None,
            }
            .ok_or_else(bad)?;
            out.seconds = out.seconds.checked_add(seconds).ok_or_else(bad)?;
            seen_any = true;
        }
    }
    if !seen_any {
        return Err(bad());
    }
    Ok(out)
}

/// `7D` → [('D', 7)]; `1H30M` → [('H', 1), ('M', 30)].
fn units(text: &str) -> Option<Vec<(char, i64)>> {
    let mut out = Vec::new();
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            if number.len() >= 9 {
                return None;
            }
            number.push(c);
        } else {
            let amount = number.parse::<i64>().ok()?;
            number.clear();
            out.push((c.to_ascii_uppercase(), amount));
        }
    }
    number.is_empty().then_some(out)
}

/// A TEXT value with its escapes (`\n`, `\,`, `\;`, `\\`) undone.
pub(super) fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How often a rule repeats. Only what on-call rotations use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Freq {
    Daily,
    Weekly,
}

/// An RRULE limited to FREQ=DAILY/WEEKLY with INTERVAL, BYDAY, UNTIL,
/// COUNT and WKST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    pub(super) freq: Freq,
    pub(super) interval: u16,
    pub(super) by_day: Vec<Weekday>,
    pub(super) until: Option<Time>,
    pub(super) count: Option<u32>,
    pub(super) week_start: Option<Weekday>,
}

const RULE_HINT: &str = "Shiftkey reads FREQ=DAILY and FREQ=WEEKLY rules with INTERVAL, BYDAY, \
                         UNTIL, COUNT and WKST; export the schedule as single events instead";

/// Parses an RRULE value, refusing what an on-call rotation does not need
/// (and what could not be checked here) with a message naming the part.
pub(super) fn rule(property: &Property) -> Result<Rule, IcalError> {
    let mut freq = None;
    let mut interval = 1;
    let mut by_day = Vec::new();
    let mut until = None;
    let mut count = None;
    let mut week_start = None;
    let mut seen: Vec<String> = Vec::new();
    for part in property.value.trim().split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(property.error(format!("RRULE part {part:?} has no '='")));
        };
        let key = key.trim().to_ascii_uppercase();
        if seen.contains(&key) {
            return Err(property.error(format!("RRULE has {key} twice")));
        }
        seen.push(key.clone());
        let value = value.trim();
        match key.as_str() {
            "FREQ" => {
                freq = Some(match value.to_ascii_uppercase().as_str() {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    other => {
                        return Err(property
                            .error(format!("RRULE FREQ={other} is not supported; {RULE_HINT}")));
                    }
                });
            }
            "INTERVAL" => {
                interval = value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        property.error(format!(
                            "RRULE INTERVAL={value} must be a whole number from 1 to 65535"
                        ))
                    })?;
            }
            "COUNT" => {
                count = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            property.error(format!("RRULE COUNT={value} must be a positive number"))
                        })?,
                );
            }
            "UNTIL" => {
                let until_property = Property {
                    name: "RRULE UNTIL".to_owned(),
                    params: Vec::new(),
                    value: value.to_owned(),
                    ..property.clone()
                };
                until = times(&until_property, false)?.first().copied();
            }
            "BYDAY" => {
                for day in value.split(',') {
                    by_day.push(weekday(day).ok_or_else(|| {
                        property.error(format!(
                            "RRULE BYDAY={day} is not supported; list plain days (MO,TU,WE,TH,\
                             FR,SA,SU) without a number"
                        ))
                    })?);
                }
            }
            "WKST" => {
                week_start = Some(weekday(value).ok_or_else(|| {
                    property.error(format!("RRULE WKST={value} is not a day (MO to SU)"))
                })?);
            }
            other => {
                return Err(property.error(format!("RRULE {other} is not supported; {RULE_HINT}")));
            }
        }
    }
    let Some(freq) = freq else {
        return Err(property.error("RRULE has no FREQ; add FREQ=DAILY or FREQ=WEEKLY"));
    };
    if until.is_some() && count.is_some() {
        return Err(property.error("RRULE has both UNTIL and COUNT; keep one (RFC 5545)"));
    }
    Ok(Rule {
        freq,
        interval,
        by_day,
        until,
        count,
        week_start,
    })
}

fn weekday(text: &str) -> Option<Weekday> {
    match text.trim().to_ascii_uppercase().as_str() {
        "MO" => Some(Weekday::Mon),
        "TU" => Some(Weekday::Tue),
        "WE" => Some(Weekday::Wed),
        "TH" => Some(Weekday::Thu),
        "FR" => Some(Weekday::Fri),
        "SA" => Some(Weekday::Sat),
        "SU" => Some(Weekday::Sun),
        _ => None,
    }
}
