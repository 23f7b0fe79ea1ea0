//! Checking who is who and who may do what: `[[person]]`, `admins`,
//! `[[authority]]`, and the identity lists of every other section (one
//! function, so every list follows the same rules).

use super::authority::{ActionKind, AuthorityRule, Scope, Whose};
use super::check::{parse_severity, report};
use super::error::{Loc, Sink};
use super::identity::Identity;
use super::model::Role;
use super::people::{People, Person};
use super::raw::{Item, RawAuthority, RawPerson, RawPolicy};
use super::targets::HostPattern;

/// What kinds of identity a list may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ListKind {
    /// Grants, approvers, reviewers, admins: people and groups.
    People,
    /// `[[authority]]` identities: also webhooks (alert sources may open
    /// and resolve incidents).
    WithWebhooks,
}

/// Parses one entry of an identity list: canonical, persons declared,
/// webhooks only where `kind` allows.
pub(super) fn list_entry(text: &str, kind: ListKind, people: &People) -> Result<Identity, String> {
    let identity = Identity::parse(text)?;
    match &identity {
        Identity::Person(name) if people.named(name).is_none() => Err(format!(
            "no [[person]] is named {name:?}; declare it or name an identity"
        )),
        Identity::Webhook(_) if kind == ListKind::People => Err(format!(
            "{text:?}: a webhook holds no roles and no power but opening and resolving \
             incidents ([[authority]])"
        )),
        _ => Ok(identity),
    }
}

/// Checks a list of identities, reporting each bad one.
pub(super) fn identity_list<T>(
    item: &Item<T>,
    values: &[toml::Spanned<String>],
    context: &str,
    kind: ListKind,
    people: &People,
    sink: &mut Sink<'_>,
) -> Vec<Identity> {
    let mut out: Vec<Identity> = Vec::new();
    for value in values {
        let parsed = list_entry(value.get_ref(), kind, people);
        if let Some(identity) = report(parsed, context, &item.at(value), sink)
            && !out.contains(&identity)
        {
            out.push(identity);
        }
    }
    out
}

/// `[[person]]` entries: unique names, at least one identity each, every
/// identity a human's, in one person only, and never `local:root` (root on
/// the CA host is whoever has root there, not one person).
pub(super) fn check_persons(raw: &RawPolicy, sink: &mut Sink<'_>) -> People {
    let mut people = People::default();
    let mut owners: Vec<(Identity, Loc)> = Vec::new();
    let mut names: Vec<(&str, Loc)> = Vec::new();
    for item in &raw.persons {
        let RawPerson { name, identities } = &item.value;
        let context = format!("person {:?}", name.get_ref());
        let errors_before = sink.len();
        report(
            Identity::parse(&format!("person:{}", name.get_ref())).map(|_| ()),
            &context,
            &item.at(name),
            sink,
        );
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == name.get_ref().as_str()) {
            let first = sink.locate(first);
            sink.at(
                &item.at(name),
                format!("{context} is defined twice; first at {first}; merge them"),
            );
        } else {
            names.push((name.get_ref().as_str(), item.loc()));
        }
        if identities.get_ref().is_empty() {
            sink.at(
                &item.at(identities),
                format!(
                    "{context}: identities are empty; list the person's user: and local: identities"
                ),
            );
        }
        let mut mine = Vec::new();
        for value in identities.get_ref() {
            let loc = item.at(value);
            let Some(identity) = report(Identity::parse(value.get_ref()), &context, &loc, sink)
            else {
                continue;
            };
            if !identity.is_human() {
                sink.at(
                    &loc,
                    format!("{context}: {identity} is not a person's identity; list user: and local: identities"),
                );
                continue;
            }
            if identity.to_string() == super::authority::LOCAL_ROOT {
                sink.at(
                    &loc,
                    format!(
                        "{context}: local:root cannot belong to a person: it is whoever has root \
                         on the CA host; give the person their own local: account"
                    ),
                );
                continue;
            }
            if let Some((_, first)) = owners.iter().find(|(i, _)| *i == identity) {
                let first = sink.locate(first);
                sink.at(
                    &loc,
                    format!("{context}: {identity} already belongs to the person at {first}; an identity is one person's"),
                );
                continue;
            }
            owners.push((identity.clone(), loc));
            if !mine.contains(&identity) {
                mine.push(identity);
            }
        }
        if sink.len() == errors_before {
            people.persons.push(Person {
                name: name.get_ref().clone(),
                identities: mine,
                origin: sink.locate(&item.loc()),
            });
        }
    }
    people
}

/// A top-level list (`admins`, `reviewers`): one per policy.
pub(super) fn check_top_list(
    lists: &[Item<Vec<toml::Spanned<String>>>],
    name: &str,
    people: &People,
    sink: &mut Sink<'_>,
) -> (Vec<Identity>, String) {
    let Some(item) = lists.first() else {
        return (Vec::new(), String::new());
    };
    for duplicate in lists.iter().skip(1) {
        let first = sink.locate(&item.loc());
        sink.at(
            &duplicate.loc(),
            format!("{name} appears twice; first at {first}; keep one list"),
        );
    }
    let list = identity_list(item, &item.value, name, ListKind::People, people, sink);
    (list, sink.locate(&item.loc()))
}

/// What `[[authority]]` entries may refer to.
pub(super) struct Known<'a> {
    pub(super) schedule: &'a dyn Fn(&str) -> bool,
    pub(super) role: &'a dyn Fn(&str) -> bool,
    pub(super) people: &'a People,
}

pub(super) fn check_authority(
    index: usize,
    item: &Item<RawAuthority>,
    known: &Known<'_>,
    sink: &mut Sink<'_>,
) -> Option<AuthorityRule> {
    let a = &item.value;
    let context = format!("authority #{}", index.saturating_add(1));
    let errors_before = sink.len();
    if a.identities.get_ref().is_empty() {
        sink.at(
            &item.at(&a.identities),
            format!("{context}: identities are empty; list who holds these powers"),
        );
    }
    let identities = identity_list(
        item,
        a.identities.get_ref(),
        &context,
        ListKind::WithWebhooks,
        known.people,
        sink,
    );
    if a.actions.get_ref().is_empty() {
        sink.at(
            &item.at(&a.actions),
            format!("{context}: actions are empty; list the powers, e.g. \"incident.open\""),
        );
    }
    let mut actions: Vec<ActionKind> = Vec::new();
    for value in a.actions.get_ref() {
        if let Some(kind) = report(
            ActionKind::parse(value.get_ref()),
            &context,
            &item.at(value),
            sink,
        ) && !actions.contains(&kind)
        {
            actions.push(kind);
        }
    }
    let webhook_ok =
        |k: &ActionKind| matches!(k, ActionKind::IncidentOpen | ActionKind::IncidentResolve);
    if identities.iter().any(|i| matches!(i, Identity::Webhook(_)))
        && !actions.iter().all(webhook_ok)
    {
        sink.at(
            &item.at(&a.actions),
            format!(
                "{context}: webhooks may only hold incident.open and incident.resolve; put \
                 other actions in an entry of their own"
            ),
        );
    }
    // A scope no listed action reads is a mistake the reviewer would not
    // see: report it.
    let reads = |scope: Scope| actions.iter().any(|k| k.scopes().contains(&scope));
    let mut unused = |present: bool, scope: Scope, field: &str, loc: Loc| {
        if present && !actions.is_empty() && !reads(scope) {
            let listed: Vec<&str> = actions.iter().map(|k| k.as_str()).collect();
            sink.at(
                &loc,
                format!(
                    "{context}: {field} limits none of this entry's actions ({}); remove it or \
                     move it to an entry with actions it limits",
                    listed.join(", ")
                ),
            );
        }
    };
    let loc_of = |v: &Option<toml::Spanned<Vec<toml::Spanned<String>>>>| {
        v.as_ref().map_or_else(|| item.loc(), |v| item.at(v))
    };
    unused(
        a.schedules.is_some(),
        Scope::Schedules,
        "schedules",
        loc_of(&a.schedules),
    );
    unused(
        a.severities.is_some(),
        Scope::Severities,
        "severities",
        loc_of(&a.severities),
    );
    unused(a.roles.is_some(), Scope::Roles, "roles", loc_of(&a.roles));
    unused(a.hosts.is_some(), Scope::Hosts, "hosts", loc_of(&a.hosts));
    unused(
        a.whose.is_some(),
        Scope::Whose,
        "for",
        a.whose.as_ref().map_or_else(|| item.loc(), |v| item.at(v)),
    );
    unused(
        a.take_shifts.as_ref().is_some_and(|t| *t.get_ref()),
        Scope::TakeShifts,
        "take_shifts",
        a.take_shifts
            .as_ref()
            .map_or_else(|| item.loc(), |v| item.at(v)),
    );

    let names = |list: &Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
                 field: &str,
                 known: &dyn Fn(&str) -> bool,
                 sink: &mut Sink<'_>| {
        list.as_ref().map(|list| {
            if list.get_ref().is_empty() {
                sink.at(
                    &item.at(list),
                    format!("{context}: {field} is empty; remove it (all) or list some"),
                );
            }
            let mut out: Vec<String> = Vec::new();
            for value in list.get_ref() {
                if !known(value.get_ref()) {
                    sink.at(
                        &item.at(value),
                        format!(
                            "{context}: unknown {} {:?} in {field}",
                            field.trim_end_matches('s'),
                            value.get_ref()
                        ),
                    );
                } else if !out.contains(value.get_ref()) {
                    out.push(value.get_ref().clone());
                }
            }
            out
        })
    };
    let schedules = names(&a.schedules, "schedules", known.schedule, sink);
    let roles = names(&a.roles, "roles", known.role, sink);
    let severities = a.severities.as_ref().map(|list| {
        let mut out = Vec::new();
        for value in list.get_ref() {
            if let Some(severity) = report(
                parse_severity(value.get_ref()),
                &context,
                &item.at(value),
                sink,
            ) && !out.contains(&severity)
            {
                out.push(severity);
            }
        }
        out
    });
    let hosts = a.hosts.as_ref().map(|list| {
        let mut out = Vec::new();
        for value in list.get_ref() {
            let loc = item.at(value);
            if let Some(pattern) = report(HostPattern::parse(value.get_ref()), &context, &loc, sink)
            {
                if let Some(why) = pattern.suspicion() {
                    sink.warn(&loc, format!("{context}: {why}"));
                }
                out.push(pattern);
            }
        }
        out
    });
    let whose = match &a.whose {
        None => Whose::Anyone,
        Some(value) => report(
            Whose::parse(value.get_ref()),
            &context,
            &item.at(value),
            sink,
        )
        .unwrap_or(Whose::Own),
    };
    if sink.len() != errors_before {
        return None;
    }
    Some(AuthorityRule {
        identities,
        actions,
        schedules,
        severities,
        roles,
        hosts,
        whose,
        take_shifts: a.take_shifts.as_ref().is_some_and(|t| *t.get_ref()),
        description: a.description.clone(),
        origin: format!("[[authority]] at {}", sink.locate(&item.loc())),
    })
}

/// The rules `approvers` and `reviewers` stand for, after the explicit
/// entries.
pub(super) fn shorthand_rules(
    roles: &[Role],
    reviewers: Vec<Identity>,
    reviewers_origin: &str,
) -> Vec<AuthorityRule> {
    let mut rules: Vec<AuthorityRule> = roles
        .iter()
        .filter(|role| !role.approvers.is_empty())
        .map(|role| AuthorityRule {
            identities: role.approvers.clone(),
            actions: vec![ActionKind::RequestApprove, ActionKind::RequestDeny],
            schedules: None,
            severities: None,
            roles: Some(vec![role.name.clone()]),
            hosts: None,
            whose: Whose::Anyone,
            take_shifts: false,
            description: None,
            origin: format!("approvers of role {:?} at {}", role.name, role.origin),
        })
        .collect();
    if !reviewers.is_empty() {
        rules.push(AuthorityRule {
            identities: reviewers,
            actions: vec![ActionKind::RecordingReview],
            schedules: None,
            severities: None,
            roles: None,
            hosts: None,
            whose: Whose::Anyone,
            take_shifts: false,
            description: None,
            origin: format!("reviewers at {reviewers_origin}"),
        });
    }
    rules
}

/// Powers no rule gives anyone, for one warning: in a policy written before
/// `[[authority]]` existed these were open to every role holder; now only
/// admins hold them.
pub(super) fn admin_only_powers(rules: &[AuthorityRule]) -> Vec<&'static str> {
    [
        ActionKind::IncidentOpen,
        ActionKind::IncidentResolve,
        ActionKind::OverrideCreate,
    ]
    .into_iter()
    .filter(|kind| !rules.iter().any(|rule| rule.actions.contains(kind)))
    .map(ActionKind::as_str)
    .collect()
}
