//! `policy check`: raw entries become checked types, and every problem is
//! reported with its location. Checking goes on after an error so that one
//! run shows them all; an entry with an error is left out of the result,
//! and the caller refuses the policy if the sink holds any error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;

use super::authority::{ActionKind, AuthorityRule};
use super::calendar::Calendar;
use super::check_authority::{
    Known, ListKind, admin_only_powers, check_authority, check_persons, check_top_list,
    identity_list, shorthand_rules,
};
use super::error::{Loc, PolicyError, Sink};
use super::ical;
use super::identity::Identity;
use super::model::{AutoApprove, Fact, Grant, Role, Settings};
use super::people::People;
use super::raw::{Item, RawPolicy, RawRole, RawRotation, RawSchedule, timestamp_text};
use super::schedule::Schedule;
use super::selftest::{TestCase, check_test};
use super::targets::{DEFAULT_PORTS, HostPattern};
use super::values::{
    HARD_MAX_TTL, MAX_CLOCK_SKEW, check_cidr, check_extension, check_force_command,
    check_principal, format_duration, parse_duration, parse_local_datetime,
};

/// Everything that passed its checks.
#[derive(Debug)]
pub(super) struct Checked {
    pub(super) settings: Settings,
    pub(super) schedules: Vec<Schedule>,
    pub(super) roles: Vec<Role>,
    pub(super) grants: Vec<Grant>,
    pub(super) tests: Vec<TestCase>,
    pub(super) people: People,
    pub(super) admins: Vec<Identity>,
    pub(super) admins_origin: String,
    /// `[[authority]]` entries, then what `approvers` and `reviewers`
    /// stand for.
    pub(super) authorities: Vec<AuthorityRule>,
}

pub(super) fn check(raw: &RawPolicy, sink: &mut Sink<'_>) -> Checked {
    let people = check_persons(raw, sink);
    let (settings, settings_ok) = check_settings(raw, sink);
    // With a broken settings.max_ttl there is nothing to compare roles to.
    let global_max = settings_ok.then_some(settings.max_ttl);

    let schedule_names = unique_names(&raw.schedules, |s| &s.name, "schedule", sink);
    let role_names = unique_names(&raw.roles, |r| &r.name, "role", sink);
    let known_schedule = |name: &str| {
        schedule_names.contains_key(name) || raw.broken_schedules.iter().any(|s| s == name)
    };
    let known_role =
        |name: &str| role_names.contains_key(name) || raw.broken_roles.iter().any(|r| r == name);

    let schedules = raw
        .schedules
        .iter()
        .filter_map(|item| check_schedule(item, sink))
        .collect();
    let roles: Vec<Role> = raw
        .roles
        .iter()
        .filter_map(|item| check_role(item, global_max, &settings, &known_schedule, &people, sink))
        .collect();
    let grants = raw
        .grants
        .iter()
        .enumerate()
        .filter_map(|(index, item)| check_grant(index, item, &known_role, &people, sink))
        .collect();
    // `reviewers = [...]`: who may read session recordings (besides admins
    // and `local:root`); `admins = [...]`: who holds every power.
    let (reviewers, reviewers_origin) = check_top_list(&raw.reviewers, "reviewers", &people, sink);
    let (admins, admins_origin) = check_top_list(&raw.admins, "admins", &people, sink);
    let known = Known {
        schedule: &known_schedule,
        role: &known_role,
        people: &people,
    };
    let mut authorities: Vec<AuthorityRule> = raw
        .authorities
        .iter()
        .enumerate()
        .filter_map(|(index, item)| check_authority(index, item, &known, sink))
        .collect();
    authorities.extend(shorthand_rules(&roles, reviewers, &reviewers_origin));
    check_approvals_possible(raw, &roles, &authorities, sink);
    warn_about_powers(raw, &authorities, sink);
    let _ = unique_names(&raw.tests, |t| &t.name, "test", sink);
    let tests = raw
        .tests
        .iter()
        .filter_map(|item| check_test(item, &known_role, &known_schedule, sink))
        .collect();
    Checked {
        settings,
        schedules,
        roles,
        grants,
        tests,
        people,
        admins,
        admins_origin,
        authorities,
    }
}

/// A role that needs approvals needs someone besides the admins who may
/// give them: its `approvers`, or an `[[authority]]` entry for
/// `request.approve` that covers it.
fn check_approvals_possible(
    raw: &RawPolicy,
    roles: &[Role],
    authorities: &[AuthorityRule],
    sink: &mut Sink<'_>,
) {
    for role in roles.iter().filter(|r| r.approvals > 0) {
        let covered = authorities.iter().any(|rule| {
            rule.actions.contains(&ActionKind::RequestApprove)
                && rule
                    .roles
                    .as_ref()
                    .is_none_or(|list| list.contains(&role.name))
        });
        if !covered
            && let Some(item) = raw
                .roles
                .iter()
                .find(|i| *i.value.name.get_ref() == role.name)
        {
            sink.at(
                &item.loc(),
                format!(
                    "role {:?}: approvals = {} but nobody may approve; list approvers, or give \
                     request.approve for it in an [[authority]] entry",
                    role.name, role.approvals
                ),
            );
        }
    }
}

/// The migration aid for policies written before authority was policy:
/// one warning when a policy with roles names neither `admins` nor any
/// `[[authority]]` entry, so that only `local:root` holds the powers that
/// every role holder used to have. (`admins = []` says "root only" on
/// purpose and silences it.)
fn warn_about_powers(raw: &RawPolicy, authorities: &[AuthorityRule], sink: &mut Sink<'_>) {
    if raw.roles.is_empty() || !raw.admins.is_empty() || !raw.authorities.is_empty() {
        return;
    }
    let admin_only = admin_only_powers(authorities);
    if admin_only.is_empty() {
        return;
    }
    let anchor = Loc {
        file: 0,
        span: 0..0,
    };
    sink.warn(
        &anchor,
        format!(
            "no admins = [...] and no [[authority]] entry: only local:root on the CA host may \
             use {} (and every power no rule gives); name admins and add [[authority]] \
             entries, or write admins = [] to say root only (see docs/policy.md, \"Authority\")",
            admin_only.join(", ")
        ),
    );
}

/// Reports a check failure at `loc`, prefixed with the entry it is in.
pub(super) fn report<T>(
    result: Result<T, String>,
    context: &str,
    loc: &Loc,
    sink: &mut Sink<'_>,
) -> Option<T> {
    result
        .map_err(|message| sink.at(loc, format!("{context}: {message}")))
        .ok()
}

pub(super) fn duration<T>(
    item: &Item<T>,
    value: &Spanned<String>,
    context: &str,
    field: &str,
    sink: &mut Sink<'_>,
) -> Option<Duration> {
    let loc = item.at(value);
    let parsed = parse_duration(value.get_ref()).map_err(|e| format!("{field}: {e}"));
    let parsed = report(parsed, context, &loc, sink)?;
    if parsed.is_zero() {
        sink.at(&loc, format!("{context}: {field} must be more than zero"));
        return None;
    }
    Some(parsed)
}

fn check_settings(raw: &RawPolicy, sink: &mut Sink<'_>) -> (Settings, bool) {
    let mut settings = Settings::DEFAULT;
    let Some(item) = raw.settings.first() else {
        return (settings, true);
    };
    for duplicate in raw.settings.iter().skip(1) {
        let first = sink.locate(&item.loc());
        sink.at(
            &duplicate.loc(),
            format!("[settings] appears twice; first at {first}; keep one"),
        );
    }
    let errors_before = sink.len();
    let s = &item.value;
    let context = "settings";
    if let Some(value) = &s.max_ttl
        && let Some(max) = duration(item, value, context, "max_ttl", sink)
    {
        if max > HARD_MAX_TTL {
            sink.at(
                &item.at(value),
                format!(
                    "settings: max_ttl {} is above the hard cap of {}",
                    format_duration(max),
                    format_duration(HARD_MAX_TTL)
                ),
            );
        }
        settings.max_ttl = max;
    }
    if let Some(value) = &s.default_ttl
        && let Some(default) = duration(item, value, context, "default_ttl", sink)
    {
        settings.default_ttl = default;
    }
    if let Some(value) = &s.clock_skew {
        let loc = item.at(value);
        let parsed = parse_duration(value.get_ref()).map_err(|e| format!("clock_skew: {e}"));
        if let Some(skew) = report(parsed, context, &loc, sink) {
            if skew > MAX_CLOCK_SKEW {
                sink.at(
                    &loc,
                    format!(
                        "settings: clock_skew {} is above the limit of {}",
                        format_duration(skew),
                        format_duration(MAX_CLOCK_SKEW)
                    ),
                );
            }
            settings.clock_skew = skew;
        }
    }
    if let Some(value) = &s.bastion {
        let text = value.get_ref();
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok()),
            None => (text.as_str(), Some(22)),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && !host.starts_with(['-', '.'])
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if host_ok && port.is_some_and(|p| p != 0) {
            settings.bastion = Some(text.clone());
        } else {
            sink.at(
                &item.at(value),
                format!("settings: bastion {text:?} is not HOST or HOST:PORT (e.g. bastion.example.com:2222)"),
            );
        }
    }
    if let Some(d) = bounded(
        item,
        &s.max_override,
        context,
        "max_override",
        MAX_OVERRIDE,
        sink,
    ) {
        settings.max_override = d;
    }
    if let Some(d) = bounded(
        item,
        &s.approval_ttl,
        context,
        "approval_ttl",
        HARD_MAX_TTL,
        sink,
    ) {
        settings.approval_ttl = d;
    }
    if let Some(d) = bounded(
        item,
        &s.pending_ttl,
        context,
        "pending_ttl",
        MAX_PENDING_TTL,
        sink,
    ) {
        settings.pending_ttl = d;
    }
    if sink.len() == errors_before && settings.default_ttl > settings.max_ttl {
        let loc = match (&s.default_ttl, &s.max_ttl) {
            (Some(value), _) | (None, Some(value)) => item.at(value),
            (None, None) => item.loc(),
        };
        sink.at(
            &loc,
            format!(
                "settings: default_ttl {} is above max_ttl {}; lower default_ttl or raise max_ttl",
                format_duration(settings.default_ttl),
                format_duration(settings.max_ttl)
            ),
        );
    }
    let ok = sink.len() == errors_before;
    (settings, ok)
}

/// Longest `settings.max_override`: a month of cover.
const MAX_OVERRIDE: Duration = Duration::from_secs(31 * 24 * 3600);

/// Longest `pending_ttl`: a request nobody approved in a week is stale.
const MAX_PENDING_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// An optional duration that must be more than zero and at most `max`.
fn bounded<T>(
    item: &Item<T>,
    value: &Option<Spanned<String>>,
    context: &str,
    field: &str,
    max: Duration,
    sink: &mut Sink<'_>,
) -> Option<Duration> {
    let value = value.as_ref()?;
    let parsed = duration(item, value, context, field, sink)?;
    if parsed > max {
        sink.at(
            &item.at(value),
            format!(
                "{context}: {field} {} is above the limit of {}",
                format_duration(parsed),
                format_duration(max)
            ),
        );
        return None;
    }
    Some(parsed)
}

/// Role and schedule names appear in key IDs and on command lines.
fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -, not starting with '-'"
        ))
    }
}

/// Reports duplicate names; returns each name with its first entry's index.
fn unique_names<T>(
    items: &[Item<T>],
    name: impl Fn(&T) -> &Spanned<String>,
    kind: &str,
    sink: &mut Sink<'_>,
) -> BTreeMap<String, usize> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let value = name(&item.value);
        if let Some(first) = seen.get(value.get_ref()).and_then(|i| items.get(*i)) {
            let first = sink.locate(&first.at(name(&first.value)));
            sink.at(
                &item.at(value),
                format!(
                    "{kind} {:?} is defined twice; first at {first}; rename or remove one",
                    value.get_ref()
                ),
            );
        } else {
            seen.insert(value.get_ref().clone(), index);
        }
    }
    seen
}

fn check_schedule(item: &Item<RawSchedule>, sink: &mut Sink<'_>) -> Option<Schedule> {
    let s = &item.value;
    let context = format!("schedule {:?}", s.name.get_ref());
    let errors_before = sink.len();
    report(
        check_name(s.name.get_ref()),
        &context,
        &item.at(&s.name),
        sink,
    );
    let timezone = s.timezone.as_ref().map(|tz| {
        let parsed = tz.get_ref().parse::<Tz>().map_err(|_| {
            format!(
                "unknown time zone {:?}; use an IANA name such as \"Europe/Berlin\" or \"UTC\"",
                tz.get_ref()
            )
        });
        report(parsed, &context, &item.at(tz), sink)
    });
    let built = match (&s.rotation, &s.ical) {
        (Some(rotation), Some(ical)) => {
            let rotation_at = sink.locate(&item.at(rotation));
            sink.at(
                &item.at(ical),
                format!(
                    "{context}: has both rotation (at {rotation_at}) and ical; a schedule is \
                     one or the other, remove one"
                ),
            );
            None
        }
        (None, None) => {
            sink.at(
                &item.loc(),
                format!(
                    "{context}: needs a rotation = {{ members, start, shift }} or an \
                     ical = \"FILE.ics\""
                ),
            );
            None
        }
        (Some(rotation), None) => {
            if s.timezone.is_none() {
                sink.at(
                    &item.loc(),
                    format!("{context}: a rotation needs timezone = \"Area/City\" or \"UTC\""),
                );
            }
            let timezone = timezone.flatten();
            check_rotation(item, rotation, timezone, &context, errors_before, sink)
        }
        (None, Some(ical)) => match timezone {
            Some(None) => None,
            timezone => check_calendar(item, ical, timezone.flatten(), &context, sink),
        },
    };
    if sink.len() != errors_before {
        return None;
    }
    built
}

fn check_rotation(
    item: &Item<RawSchedule>,
    rotation: &Spanned<RawRotation>,
    timezone: Option<Tz>,
    context: &str,
    errors_before: usize,
    sink: &mut Sink<'_>,
) -> Option<Schedule> {
    let rotation = rotation.get_ref();
    if rotation.members.get_ref().is_empty() {
        sink.at(
            &item.at(&rotation.members),
            format!("{context}: rotation members are empty; list at least one person"),
        );
    }
    let mut members = Vec::new();
    for member in rotation.members.get_ref() {
        let parsed = Identity::parse_member(member.get_ref());
        members.extend(report(parsed, context, &item.at(member), sink));
    }
    let start = timestamp_text(&rotation.start)
        .and_then(|text| parse_local_datetime(&text))
        .map_err(|e| format!("rotation start: {e}"));
    let start = report(start, context, &item.at(&rotation.start), sink);
    let shift_loc = item.at(&rotation.shift);
    let shift = parse_duration(rotation.shift.get_ref()).map_err(|e| format!("shift: {e}"));
    let shift = report(shift, context, &shift_loc, sink);
    if shift.is_some_and(|d| d.is_zero()) {
        sink.at(
            &shift_loc,
            format!("{context}: shift must be more than zero"),
        );
    }
    if sink.len() != errors_before {
        return None;
    }
    let (Some(timezone), Some(start), Some(shift)) = (timezone, start, shift) else {
        return None;
    };
    let built = Schedule::new(
        item.value.name.get_ref().clone(),
        timezone,
        members,
        start,
        shift,
    );
    report(built, context, &shift_loc, sink)
}

/// Reads and checks the `.ics` file of `ical = "..."`, relative to the
/// directory of the policy file that names it. Problems inside the file
/// are reported at their line in it; a file that cannot be read is
/// reported at the `ical` key.
fn check_calendar(
    item: &Item<RawSchedule>,
    ical: &Spanned<String>,
    timezone: Option<Tz>,
    context: &str,
    sink: &mut Sink<'_>,
) -> Option<Schedule> {
    let loc = item.at(ical);
    if ical.get_ref().trim().is_empty() {
        sink.at(&loc, format!("{context}: ical is empty; name an .ics file"));
        return None;
    }
    let policy_file = sink.source_name(item.file).unwrap_or_default();
    let directory = Path::new(policy_file).parent().unwrap_or(Path::new(""));
    let path = directory.join(ical.get_ref());
    let shown = path.display().to_string();
    let text = report(
        ical::read_file(&path).map_err(|e| format!("ical: {e}")),
        context,
        &loc,
        sink,
    )?;
    match Calendar::parse(&text, timezone) {
        Ok(calendar) => Some(Schedule::from_calendar(
            item.value.name.get_ref().clone(),
            calendar,
        )),
        Err(errors) => {
            for error in errors {
                sink.elsewhere(
                    &loc,
                    PolicyError {
                        file: shown.clone(),
                        line: error.line,
                        column: error.column,
                        message: format!("{context}: {}", error.message),
                    },
                );
            }
            None
        }
    }
}

fn check_role(
    item: &Item<RawRole>,
    global_max: Option<Duration>,
    settings: &Settings,
    known_schedule: &dyn Fn(&str) -> bool,
    people: &People,
    sink: &mut Sink<'_>,
) -> Option<Role> {
    let r = &item.value;
    let name = r.name.get_ref();
    let context = format!("role {name:?}");
    let errors_before = sink.len();
    report(check_name(name), &context, &item.at(&r.name), sink);

    if r.principals.get_ref().is_empty() {
        sink.at(
            &item.at(&r.principals),
            format!("{context}: principals are empty; list the login names this role grants"),
        );
    }
    let principals = checked_list(
        item,
        r.principals.get_ref(),
        &context,
        check_principal,
        sink,
    );
    if r.hosts.get_ref().is_empty() {
        sink.at(
            &item.at(&r.hosts),
            format!("{context}: hosts are empty; list host patterns such as \"db-*.example.com\""),
        );
    }
    // Host patterns say which enrolled hosts list the role's principals
    // (`principals_for_host`), where the bastion may connect, and tell
    // clients where the role is for (`GET /v1/roles`, `ssh-config`).
    let mut hosts: Vec<String> = Vec::new();
    let mut patterns: Vec<HostPattern> = Vec::new();
    for value in r.hosts.get_ref() {
        let loc = item.at(value);
        let Some(pattern) = report(HostPattern::parse(value.get_ref()), &context, &loc, sink)
        else {
            continue;
        };
        if patterns.contains(&pattern) {
            sink.at(
                &loc,
                format!("{context}: {:?} is listed twice", value.get_ref()),
            );
            continue;
        }
        if let Some(why) = pattern.suspicion() {
            sink.warn(&loc, format!("{context}: {why}"));
        }
        hosts.push(pattern.to_string());
        patterns.push(pattern);
    }
    let ports = match &r.ports {
        None => DEFAULT_PORTS.to_vec(),
        Some(list) => {
            if list.get_ref().is_empty() {
                sink.at(
                    &item.at(list),
                    format!("{context}: ports is empty; remove it (22) or list ports"),
                );
            }
            let mut ports: Vec<u16> = Vec::new();
            for value in list.get_ref() {
                match u16::try_from(*value.get_ref()) {
                    Ok(port) if port > 0 => {
                        if !ports.contains(&port) {
                            ports.push(port);
                        }
                    }
                    _ => sink.at(
                        &item.at(value),
                        format!("{context}: port {} is not 1 to 65535", value.get_ref()),
                    ),
                }
            }
            ports
        }
    };
    let mut self_served = Vec::new();
    for value in &r.self_served {
        if let Some(fact) = report(
            Fact::parse(value.get_ref()),
            &context,
            &item.at(value),
            sink,
        ) && !self_served.contains(&fact)
        {
            self_served.push(fact);
        }
    }
    let approval_ttl = bounded(
        item,
        &r.approval_ttl,
        &context,
        "approval_ttl",
        settings.approval_ttl,
        sink,
    )
    .unwrap_or(settings.approval_ttl);
    let pending_ttl = bounded(
        item,
        &r.pending_ttl,
        &context,
        "pending_ttl",
        settings.pending_ttl,
        sink,
    )
    .unwrap_or(settings.pending_ttl);

    let max_ttl = match &r.max_ttl {
        None => settings.max_ttl,
        Some(value) => {
            let parsed = duration(item, value, &context, "max_ttl", sink);
            if let Some(max) = parsed {
                if max > HARD_MAX_TTL {
                    sink.at(
                        &item.at(value),
                        format!(
                            "{context}: max_ttl {} is above the hard cap of {}",
                            format_duration(max),
                            format_duration(HARD_MAX_TTL)
                        ),
                    );
                } else if let Some(global) = global_max.filter(|global| max > *global) {
                    sink.at(
                        &item.at(value),
                        format!(
                            "{context}: max_ttl {} is above settings.max_ttl {}; lower it or \
                             raise settings.max_ttl",
                            format_duration(max),
                            format_duration(global)
                        ),
                    );
                }
            }
            parsed.unwrap_or(settings.max_ttl)
        }
    };

    let mut session_limit =
        |value: &Option<Spanned<String>>, field: &'static str, default| match value {
            None => default,
            Some(value) => match duration(item, value, &context, field, sink) {
                Some(d) if d.is_zero() || d > HARD_MAX_TTL => {
                    sink.at(
                        &item.at(value),
                        format!("{context}: {field} must be longer than zero and at most 24h"),
                    );
                    default
                }
                Some(d) => d,
                None => default,
            },
        };
    let max_session = session_limit(&r.max_session, "max_session", max_ttl);
    let idle_timeout = session_limit(
        &r.idle_timeout,
        "idle_timeout",
        Duration::from_secs(15 * 60),
    );

    if r.via_bastion && settings.bastion.is_none() {
        sink.at(
            &item.loc(),
            format!("{context}: via_bastion needs settings.bastion = \"HOST:PORT\" (where users jump through)"),
        );
    }

    let mut require_on_call = Vec::new();
    for schedule in &r.require_on_call {
        if known_schedule(schedule.get_ref()) {
            if !require_on_call.contains(schedule.get_ref()) {
                require_on_call.push(schedule.get_ref().clone());
            }
        } else {
            sink.at(
                &item.at(schedule),
                format!(
                    "{context}: unknown schedule {:?} in require_on_call",
                    schedule.get_ref()
                ),
            );
        }
    }

    let mut extensions = checked_list(item, &r.extensions, &context, check_extension, sink);
    extensions.sort();

    let incident_severity = r.incident_severity.as_ref().and_then(|value| {
        report(
            parse_severity(value.get_ref()).map_err(|e| format!("incident_severity: {e}")),
            &context,
            &item.at(value),
            sink,
        )
    });

    let force_command = r.force_command.as_ref().and_then(|value| {
        let checked = check_force_command(value.get_ref()).map(|()| value.get_ref().clone());
        report(checked, &context, &item.at(value), sink)
    });

    let source_address = match &r.source_address {
        None => Vec::new(),
        Some(list) => {
            if list.get_ref().is_empty() {
                sink.at(
                    &item.at(list),
                    format!("{context}: source_address is empty; remove it or list networks"),
                );
            }
            checked_list(item, list.get_ref(), &context, check_cidr, sink)
        }
    };

    let approvals = match &r.approvals {
        None => 0,
        Some(value) => match u8::try_from(*value.get_ref()) {
            Ok(n) if n <= 5 => n,
            _ => {
                sink.at(
                    &item.at(value),
                    format!("{context}: approvals must be 0 to 5"),
                );
                0
            }
        },
    };
    let approvers = identity_list(item, &r.approvers, &context, ListKind::People, people, sink);
    let auto_approve = r.auto_approve.as_ref().and_then(|value| {
        let raw = value.get_ref();
        if approvals == 0 {
            sink.at(&item.at(value), format!("{context}: auto_approve without approvals means nothing; remove it or set approvals"));
        }
        if raw.on_call && r.require_on_call.is_empty() {
            sink.at(&item.at(value), format!("{context}: auto_approve.on_call needs require_on_call to name schedules"));
        }
        let incident_severity = match &raw.incident_severity {
            Some(text) => Some(report(parse_severity(text).map_err(|e| format!("auto_approve.incident_severity: {e}")), &context, &item.at(value), sink)?),
            None => None,
        };
        if !raw.on_call && incident_severity.is_none() {
            sink.at(&item.at(value), format!("{context}: auto_approve needs a condition (on_call, incident_severity)"));
        }
        Some(AutoApprove { on_call: raw.on_call, incident_severity })
    });
    if sink.len() != errors_before {
        return None;
    }
    Some(Role {
        name: name.clone(),
        description: r.description.clone().unwrap_or_default(),
        principals,
        hosts,
        max_ttl,
        max_session,
        idle_timeout,
        via_bastion: r.via_bastion,
        require_on_call,
        require_incident: r.require_incident,
        incident_severity,
        require_reason: r.require_reason,
        break_glass: r.break_glass,
        approvals,
        approvers,
        auto_approve,
        extensions,
        force_command,
        source_address,
        patterns,
        ports,
        bare_principals: r.bare_principals,
        self_served,
        approval_ttl,
        pending_ttl,
        origin: sink.locate(&item.loc()),
    })
}

/// Checks each string of a list, reporting each bad or repeated one.
pub(super) fn checked_list<T>(
    item: &Item<T>,
    values: &[Spanned<String>],
    context: &str,
    check: fn(&str) -> Result<(), String>,
    sink: &mut Sink<'_>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in values {
        if report(check(value.get_ref()), context, &item.at(value), sink).is_none() {
            continue;
        }
        if out.contains(value.get_ref()) {
            sink.at(
                &item.at(value),
                format!("{context}: {:?} is listed twice", value.get_ref()),
            );
        } else {
            out.push(value.get_ref().clone());
        }
    }
    out
}

fn check_grant(
    index: usize,
    item: &Item<super::raw::RawGrant>,
    known_role: &dyn Fn(&str) -> bool,
    people: &People,
    sink: &mut Sink<'_>,
) -> Option<Grant> {
    let g = &item.value;
    let context = format!("grant #{}", index.saturating_add(1));
    let errors_before = sink.len();
    if g.identities.get_ref().is_empty() {
        sink.at(
            &item.at(&g.identities),
            format!("{context}: identities are empty; list who gets the roles"),
        );
    }
    let identities = identity_list(
        item,
        g.identities.get_ref(),
        &context,
        ListKind::People,
        people,
        sink,
    );
    if g.roles.get_ref().is_empty() {
        sink.at(
            &item.at(&g.roles),
            format!("{context}: roles are empty; list the roles to grant"),
        );
    }
    let mut roles: Vec<String> = Vec::new();
    for role in g.roles.get_ref() {
        if !known_role(role.get_ref()) {
            sink.at(
                &item.at(role),
                format!("{context}: unknown role {:?}", role.get_ref()),
            );
        } else if !roles.contains(role.get_ref()) {
            roles.push(role.get_ref().clone());
        }
    }
    if sink.len() != errors_before {
        return None;
    }
    Some(Grant {
        identities,
        roles,
        origin: sink.locate(&item.loc()),
    })
}

/// `"sev1"` (the worst) to `"sev4"`, as 1 to 4.
pub(crate) fn parse_severity(text: &str) -> Result<u8, String> {
    match text {
        "sev1" => Ok(1),
        "sev2" => Ok(2),
        "sev3" => Ok(3),
        "sev4" => Ok(4),
        other => Err(format!(
            "{other:?} is not a severity; use sev1 (the worst) to sev4"
        )),
    }
}
