//! The policy file as written: serde structs that mirror the TOML, with
//! spans, and the split of a document into its sections.
//!
//! Each `[[role]]`, `[[schedule]]`, ... entry is deserialized on its own, so
//! an unknown key in one role does not hide the errors in the next. Values
//! stay text here; `check.rs` turns them into checked types.

use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::{Loc, Sink};

/// A section entry, with the keys it accepts. Unknown keys are reported
/// and removed before serde sees the table, so that one misspelt key does
/// not hide the entry's other errors (`deny_unknown_fields` stays as a net).
pub(crate) trait Entry: DeserializeOwned {
    const FIELDS: &'static [&'static str];
    /// Keys holding a sub-table, with that table's keys.
    const TABLES: &'static [(&'static str, &'static [&'static str])] = &[];
}

impl Entry for RawSettings {
    const FIELDS: &'static [&'static str] = &[
        "default_ttl",
        "max_ttl",
        "clock_skew",
        "bastion",
        "max_override",
        "approval_ttl",
        "pending_ttl",
    ];
}

impl Entry for RawSchedule {
    const FIELDS: &'static [&'static str] = &["name", "timezone", "rotation", "ical"];
    const TABLES: &'static [(&'static str, &'static [&'static str])] =
        &[("rotation", RawRotation::FIELDS)];
}

impl RawRotation {
    const FIELDS: &'static [&'static str] = &["members", "start", "shift"];
}

impl Entry for RawRole {
    const FIELDS: &'static [&'static str] = &[
        "name",
        "description",
        "principals",
        "hosts",
        "max_ttl",
        "require_on_call",
        "require_incident",
        "incident_severity",
        "require_reason",
        "break_glass",
        "approvals",
        "approvers",
        "auto_approve",
        "extensions",
        "force_command",
        "source_address",
        "max_session",
        "idle_timeout",
        "via_bastion",
        "ports",
        "bare_principals",
        "self_served",
        "approval_ttl",
        "pending_ttl",
    ];
}

impl Entry for RawPerson {
    const FIELDS: &'static [&'static str] = &["name", "identities"];
}

impl Entry for RawAuthority {
    const FIELDS: &'static [&'static str] = &[
        "description",
        "identities",
        "actions",
        "schedules",
        "severities",
        "roles",
        "hosts",
        "for",
        "take_shifts",
    ];
}

impl Entry for RawGrant {
    const FIELDS: &'static [&'static str] = &["identities", "roles"];
}

impl Entry for RawTest {
    const FIELDS: &'static [&'static str] = &[
        "name",
        "identity",
        "groups",
        "at",
        "role",
        "incident",
        "incident_severity",
        "incident_status",
        "reason",
        "ttl",
        "principals",
        "approved_by",
        "expect",
        "deny",
        "valid_before",
        "incident_opened_by",
        "overrides",
        "host",
        "port",
        "action",
        "schedule",
        "member",
        "start",
        "end",
        "new_end",
        "requester",
        "target",
        "locked",
    ];
}

#[cfg(test)]
impl RawTestOverride {
    pub(crate) const FIELDS: &'static [&'static str] =
        &["schedule", "member", "start", "end", "created_by"];
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    pub(crate) default_ttl: Option<Spanned<String>>,
    pub(crate) max_ttl: Option<Spanned<String>>,
    pub(crate) clock_skew: Option<Spanned<String>>,
    /// The bastion users jump through (`bastion.example.com:2222`), for
    /// roles with `via_bastion`.
    pub(crate) bastion: Option<Spanned<String>>,
    /// Longest on-call override anyone may set (`"24h"`).
    pub(crate) max_override: Option<Spanned<String>>,
    /// How long an approved request may wait to be used (`"1h"`).
    pub(crate) approval_ttl: Option<Spanned<String>>,
    /// How long a request may wait for approvals (`"24h"`).
    pub(crate) pending_ttl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub(crate) name: Spanned<String>,
    /// Required with `rotation`; with `ical`, where floating times are.
    pub(crate) timezone: Option<Spanned<String>>,
    /// Exactly one of `rotation` and `ical`.
    pub(crate) rotation: Option<Spanned<RawRotation>>,
    /// Path of an `.ics` file, relative to the policy file's directory.
    pub(crate) ical: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRotation {
    pub(crate) members: Spanned<Vec<Spanned<String>>>,
    /// A string or a TOML local date-time literal.
    pub(crate) start: Spanned<toml::Value>,
    pub(crate) shift: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub(crate) name: Spanned<String>,
    /// Free text for people reading the policy; only its type is checked.
    pub(crate) description: Option<String>,
    pub(crate) principals: Spanned<Vec<Spanned<String>>>,
    pub(crate) hosts: Spanned<Vec<Spanned<String>>>,
    pub(crate) max_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) require_on_call: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) require_incident: bool,
    /// `"sev2"`: the incident must be this severe or worse.
    pub(crate) incident_severity: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) require_reason: bool,
    #[serde(default)]
    pub(crate) break_glass: bool,
    /// How many approvals a request needs (0: none).
    pub(crate) approvals: Option<Spanned<i64>>,
    /// Who may approve: `user:`, `group:`, `local:` identities.
    #[serde(default)]
    pub(crate) approvers: Vec<Spanned<String>>,
    /// When a request is approved at once, without people.
    pub(crate) auto_approve: Option<Spanned<RawAutoApprove>>,
    #[serde(default)]
    pub(crate) extensions: Vec<Spanned<String>>,
    pub(crate) force_command: Option<Spanned<String>>,
    pub(crate) source_address: Option<Spanned<Vec<Spanned<String>>>>,
    /// Longest bastion session (`"2h"`); the role's max_ttl when absent.
    pub(crate) max_session: Option<Spanned<String>>,
    /// A bastion session without input or output this long ends (`"15m"`).
    pub(crate) idle_timeout: Option<Spanned<String>>,
    /// Users reach the role's hosts through `settings.bastion` (recorded).
    #[serde(default)]
    pub(crate) via_bastion: bool,
    /// Ports on the role's hosts (`[22]` when absent).
    pub(crate) ports: Option<Spanned<Vec<Spanned<i64>>>>,
    /// Also put the bare logins in certificates, for hosts not enrolled.
    #[serde(default)]
    pub(crate) bare_principals: bool,
    /// Conditions the requester may satisfy themselves: `"incident"`,
    /// `"on_call"`.
    #[serde(default)]
    pub(crate) self_served: Vec<Spanned<String>>,
    /// This role's `approval_ttl` and `pending_ttl`, below the settings'.
    pub(crate) approval_ttl: Option<Spanned<String>>,
    pub(crate) pending_ttl: Option<Spanned<String>>,
}

/// `[[person]]`: several identities of one human.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPerson {
    pub(crate) name: Spanned<String>,
    pub(crate) identities: Spanned<Vec<Spanned<String>>>,
}

/// `[[authority]]`: who may change which facts, within which scope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthority {
    /// Free text for people reading the policy.
    pub(crate) description: Option<String>,
    pub(crate) identities: Spanned<Vec<Spanned<String>>>,
    pub(crate) actions: Spanned<Vec<Spanned<String>>>,
    pub(crate) schedules: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) severities: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) roles: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) hosts: Option<Spanned<Vec<Spanned<String>>>>,
    /// `"self"`, `"others"` or `"anyone"` (the default).
    #[serde(rename = "for")]
    pub(crate) whose: Option<Spanned<String>>,
    pub(crate) take_shifts: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrant {
    pub(crate) identities: Spanned<Vec<Spanned<String>>>,
    pub(crate) roles: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTest {
    pub(crate) name: Spanned<String>,
    pub(crate) identity: Spanned<String>,
    #[serde(default)]
    pub(crate) groups: Vec<Spanned<String>>,
    /// A string or a TOML offset date-time literal.
    pub(crate) at: Spanned<toml::Value>,
    /// The role asked for; with `action`, the role acted on (if any).
    pub(crate) role: Option<Spanned<String>>,
    pub(crate) incident: Option<String>,
    /// The test's incident's severity, `"sev1"` (default) to `"sev4"`.
    pub(crate) incident_severity: Option<Spanned<String>>,
    /// `"open"` (default), `"resolved"` or `"unknown"`.
    pub(crate) incident_status: Option<Spanned<String>>,
    pub(crate) reason: Option<String>,
    pub(crate) ttl: Option<Spanned<String>>,
    pub(crate) principals: Option<Vec<Spanned<String>>>,
    /// Identities that approved the test's request.
    #[serde(default)]
    pub(crate) approved_by: Vec<String>,
    pub(crate) expect: Spanned<String>,
    pub(crate) deny: Option<Spanned<String>>,
    pub(crate) valid_before: Option<Spanned<toml::Value>>,
    /// Who opened the test's incident (default `webhook:test`).
    pub(crate) incident_opened_by: Option<Spanned<String>>,
    /// On-call overrides in force.
    #[serde(default)]
    pub(crate) overrides: Vec<Spanned<RawTestOverride>>,
    /// Also check this target host (and `port`, default 22) for the role.
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) port: Option<Spanned<i64>>,
    /// An authority test: the action, instead of an access request.
    pub(crate) action: Option<Spanned<String>>,
    pub(crate) schedule: Option<Spanned<String>>,
    pub(crate) member: Option<Spanned<String>>,
    pub(crate) start: Option<Spanned<toml::Value>>,
    pub(crate) end: Option<Spanned<toml::Value>>,
    pub(crate) new_end: Option<Spanned<toml::Value>>,
    pub(crate) requester: Option<Spanned<String>>,
    pub(crate) target: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) locked: bool,
}

/// An override in a `[[test]]`: `{ schedule, member, start, end, created_by }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTestOverride {
    pub(crate) schedule: String,
    pub(crate) member: String,
    pub(crate) start: toml::Value,
    pub(crate) end: toml::Value,
    pub(crate) created_by: String,
}

/// One entry of a section, with the file it came from and the span of its
/// header (`[[role]]`) or inline table.
#[derive(Debug)]
pub(crate) struct Item<T> {
    pub(crate) file: usize,
    pub(crate) span: Range<usize>,
    pub(crate) value: T,
}

impl<T> Item<T> {
    pub(crate) fn loc(&self) -> Loc {
        Loc {
            file: self.file,
            span: self.span.clone(),
        }
    }

    /// Location of a value inside this entry.
    pub(crate) fn at<V>(&self, value: &Spanned<V>) -> Loc {
        Loc {
            file: self.file,
            span: value.span(),
        }
    }
}

/// All entries of all files, in file order, before any checking.
#[derive(Debug, Default)]
pub(crate) struct RawPolicy {
    pub(crate) settings: Vec<Item<RawSettings>>,
    pub(crate) schedules: Vec<Item<RawSchedule>>,
    pub(crate) roles: Vec<Item<RawRole>>,
    pub(crate) grants: Vec<Item<RawGrant>>,
    pub(crate) tests: Vec<Item<RawTest>>,
    /// Top-level `reviewers = [...]`, per file that has one: who may read
    /// session recordings.
    pub(crate) reviewers: Vec<Item<Vec<Spanned<String>>>>,
    /// Top-level `admins = [...]`, per file that has one.
    pub(crate) admins: Vec<Item<Vec<Spanned<String>>>>,
    pub(crate) persons: Vec<Item<RawPerson>>,
    pub(crate) authorities: Vec<Item<RawAuthority>>,
    /// Names of schedules and roles whose entry did not deserialize: they
    /// exist, so references to them are not reported as unknown.
    pub(crate) broken_schedules: Vec<String>,
    pub(crate) broken_roles: Vec<String>,
}

const SECTIONS: &str = "[settings], [[schedule]], [[role]], [[grant]], [[person]], [[authority]], \
                        [[test]], admins, reviewers";

impl RawPolicy {
    /// Parses one file into its entries; problems go to `sink`. Returns
    /// false when the file is not valid TOML (its entries are then unusable).
    pub(crate) fn add_file(&mut self, file: usize, text: &str, sink: &mut Sink<'_>) -> bool {
        let (root, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            for error in syntax_errors {
                let span = error.span().unwrap_or(0..0);
                sink.at(
                    &Loc { file, span },
                    format!("TOML syntax: {}", error.message()),
                );
            }
            return false;
        }
        for (key, value) in root.into_inner() {
            let key_loc = Loc {
                file,
                span: key.span(),
            };
            match key.get_ref().as_ref() {
                "settings" => {
                    if let DeValue::Table(_) = value.get_ref() {
                        if let Some(item) = entry(file, value, "settings", sink) {
                            self.settings.push(item);
                        }
                    } else {
                        sink.at(&key_loc, "settings must be a table: write [settings]");
                    }
                }
                "schedule" => self.add_entries(file, value, "schedule", &key_loc, sink),
                "role" => self.add_entries(file, value, "role", &key_loc, sink),
                "grant" => self.add_entries(file, value, "grant", &key_loc, sink),
                "test" => self.add_entries(file, value, "test", &key_loc, sink),
                "person" => self.add_entries(file, value, "person", &key_loc, sink),
                "authority" => self.add_entries(file, value, "authority", &key_loc, sink),
                "reviewers" | "admins" => {
                    let name: &str = key.get_ref().as_ref();
                    let span = value.span();
                    match Vec::<Spanned<String>>::deserialize(ValueDeserializer::from(value)) {
                        Ok(list) => {
                            let item = Item {
                                file,
                                span: key.span().start..span.end,
                                value: list,
                            };
                            if name == "admins" {
                                self.admins.push(item);
                            } else {
                                self.reviewers.push(item);
                            }
                        }
                        Err(_) => sink.at(
                            &Loc { file, span },
                            format!("{name} must be a list of identities: {name} = [\"group:security\", \"user:EMAIL\"]"),
                        ),
                    }
                }
                other => {
                    let hint = match other {
                        "schedules" | "roles" | "grants" | "tests" | "persons" | "authorities" => {
                            let singular = match other {
                                "authorities" => "authority",
                                other => other.trim_end_matches('s'),
                            };
                            format!("; did you mean [[{singular}]]?")
                        }
                        _ => String::new(),
                    };
                    sink.at(
                        &key_loc,
                        format!("unknown section {other:?}; expected one of {SECTIONS}{hint}"),
                    );
                }
            }
        }
        true
    }

    fn add_entries(
        &mut self,
        file: usize,
        value: Spanned<DeValue<'_>>,
        section: &str,
        key_loc: &Loc,
        sink: &mut Sink<'_>,
    ) {
        let DeValue::Array(entries) = value.into_inner() else {
            sink.at(
                key_loc,
                format!("{section} must be an array of tables: write [[{section}]]"),
            );
            return;
        };
        for value in entries {
            if !matches!(value.get_ref(), DeValue::Table(_)) {
                let loc = Loc {
                    file,
                    span: value.span(),
                };
                sink.at(&loc, format!("each {section} must be a table"));
                continue;
            }
            let name = value
                .get_ref()
                .get("name")
                .and_then(|name| name.get_ref().as_str())
                .map(str::to_owned);
            let context = match &name {
                Some(name) => format!("{section} {name:?}"),
                None => section.to_owned(),
            };
            match section {
                "schedule" => match entry::<RawSchedule>(file, value, &context, sink) {
                    Some(item) => self.schedules.push(item),
                    None => self.broken_schedules.extend(name),
                },
                "role" => match entry::<RawRole>(file, value, &context, sink) {
                    Some(item) => self.roles.push(item),
                    None => self.broken_roles.extend(name),
                },
                "grant" => self.grants.extend(entry(file, value, &context, sink)),
                "person" => self.persons.extend(entry(file, value, &context, sink)),
                "authority" => self.authorities.extend(entry(file, value, &context, sink)),
                _ => self.tests.extend(entry(file, value, &context, sink)),
            }
        }
    }
}

/// Deserializes one table; on failure reports where and returns None.
fn entry<T: Entry>(
    file: usize,
    mut value: Spanned<DeValue<'_>>,
    context: &str,
    sink: &mut Sink<'_>,
) -> Option<Item<T>> {
    let span = value.span();
    if let DeValue::Table(table) = value.get_mut() {
        drop_unknown_keys(file, table, T::FIELDS, context, "", sink);
        for (key, fields) in T::TABLES {
            if let Some(DeValue::Table(inner)) = table.get_mut(*key).map(Spanned::get_mut) {
                drop_unknown_keys(file, inner, fields, context, key, sink);
            }
        }
    }
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(value) => Some(Item { file, span, value }),
        Err(error) => {
            let span = error.span().unwrap_or(span);
            sink.at(
                &Loc { file, span },
                format!("{context}: {}", error.message()),
            );
            None
        }
    }
}

fn drop_unknown_keys(
    file: usize,
    table: &mut DeTable<'_>,
    fields: &[&str],
    context: &str,
    parent: &str,
    sink: &mut Sink<'_>,
) {
    let unknown: Vec<_> = table
        .keys()
        .filter(|key| !fields.contains(&key.get_ref().as_ref()))
        .cloned()
        .collect();
    for key in unknown {
        let name: &str = key.get_ref().as_ref();
        let shown = if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        };
        sink.at(
            &Loc {
                file,
                span: key.span(),
            },
            format!(
                "{context}: unknown key {shown:?}; expected one of {}",
                fields.join(", ")
            ),
        );
        table.remove(&key);
    }
}

/// The text of a timestamp written either as a string or as a TOML
/// date-time literal.
pub(crate) fn timestamp_text(value: &Spanned<toml::Value>) -> Result<String, String> {
    match value.get_ref() {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Datetime(datetime) => Ok(datetime.to_string()),
        other => Err(format!(
            "expected a timestamp, found a {}",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use toml::de::ValueDeserializer;

    use super::{
        Entry, RawAuthority, RawGrant, RawPerson, RawRole, RawRotation, RawSchedule, RawSettings,
        RawTest, RawTestOverride,
    };

    /// serde's own list of fields, from its unknown-field error.
    fn serde_fields<T: for<'de> Deserialize<'de>>() -> String {
        let Err(error) = T::deserialize(ValueDeserializer::parse("{ zzz = 1 }").unwrap()) else {
            panic!("zzz accepted");
        };
        error.message().to_owned()
    }

    fn expected(fields: &[&str]) -> String {
        let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
        format!("unknown field `zzz`, expected one of {}", quoted.join(", "))
    }

    #[test]
    fn field_lists_match_the_structs() {
        assert_eq!(serde_fields::<RawSettings>(), expected(RawSettings::FIELDS));
        assert_eq!(serde_fields::<RawSchedule>(), expected(RawSchedule::FIELDS));
        assert_eq!(serde_fields::<RawRotation>(), expected(RawRotation::FIELDS));
        assert_eq!(serde_fields::<RawRole>(), expected(RawRole::FIELDS));
        assert_eq!(serde_fields::<RawTest>(), expected(RawTest::FIELDS));
        assert_eq!(
            serde_fields::<RawAuthority>(),
            expected(RawAuthority::FIELDS)
        );
        assert_eq!(
            serde_fields::<RawTestOverride>(),
            expected(RawTestOverride::FIELDS)
        );
        assert_eq!(
            serde_fields::<RawPerson>(),
            "unknown field `zzz`, expected `name` or `identities`"
        );
        // serde words a two-field list differently.
        assert_eq!(
            serde_fields::<RawGrant>(),
            "unknown field `zzz`, expected `identities` or `roles`"
        );
    }
}

/// `auto_approve = { on_call = true, incident_severity = "sev2" }`: every
/// condition given must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAutoApprove {
    #[serde(default)]
    pub(crate) on_call: bool,
    pub(crate) incident_severity: Option<String>,
}
