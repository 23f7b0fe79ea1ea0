//! `shiftkey oncall`: who is on call now and next, and the overrides
//! (covers and swaps) that change it — create one, list, shorten and delete
//! them. The CA's policy decides who may change which (its `[[authority]]`);
//! a refusal says who could.

use anyhow::{Context, bail};
use clap::Subcommand;
use shiftkey_wire::OnCallOverride;

use crate::access::printable;
use crate::ca_client::CaClient;
use crate::requests::table;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Cover or swap a shift: MEMBER is on call for SCHEDULE instead, from
    /// --from (default now) for --for (e.g. 8h).
    Override {
        schedule: String,
        /// user:EMAIL or local:USER.
        #[arg(long)]
        member: String,
        /// Start, RFC 3339 (default: now).
        #[arg(long)]
        from: Option<String>,
        /// How long, e.g. 8h (at most the policy's max_override, 24h unless set).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why; recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// The overrides in force now and later: list (the default), shorten, delete.
    Overrides {
        #[command(subcommand)]
        action: Option<OverridesAction>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OverridesAction {
    /// Overrides in force now and later, by start: ID, schedule, member, window, who made it.
    List {
        /// Only this schedule's.
        #[arg(long)]
        schedule: Option<String>,
    },
    /// End an override earlier: at --until TIME, or --in DURATION from now.
    Shorten {
        /// The override's ID (ov_…), from `shiftkey oncall overrides`.
        id: String,
        /// The new end, RFC 3339.
        #[arg(long, conflicts_with = "within", required_unless_present = "within")]
        until: Option<String>,
        /// The new end, this long from now (e.g. 30m).
        #[arg(long = "in", value_name = "DURATION")]
        within: Option<String>,
        /// Why; recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Delete an override: the schedule's own answer counts again.
    Delete {
        /// The override's ID (ov_…), from `shiftkey oncall overrides`.
        id: String,
        /// Why; recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
}

/// Runs `shiftkey oncall ...`.
pub(crate) async fn run(
    client: &CaClient,
    action: Option<Action>,
    schedule: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        None => show_on_call(client, schedule.as_deref(), json).await,
        Some(Action::Override {
            schedule,
            member,
            from,
            duration,
            reason,
        }) => {
            let start = match from {
                Some(text) => parse_time(&text, "--from")?,
                None => chrono::Utc::now().timestamp(),
            };
            let end = start.saturating_add(seconds(&duration, "--for")?);
            let request = shiftkey_wire::OverrideRequest {
                schedule,
                member,
                start,
                end,
                reason,
            };
            let made = client.add_override(&request).await?;
            if json {
                println!("{}", serde_json::to_string(&made)?);
            } else {
                println!(
                    "{} is on call for {} until {} ({})",
                    printable(&made.member),
                    printable(&made.schedule),
                    local(made.end),
                    made.id
                );
            }
            Ok(())
        }
        Some(Action::Overrides { action }) => match action {
            None => list(client, None, json).await,
            Some(OverridesAction::List { schedule }) => {
                list(client, schedule.as_deref(), json).await
            }
            Some(OverridesAction::Shorten {
                id,
                until,
                within,
                reason,
            }) => {
                let end = match (until, within) {
                    (Some(text), _) => parse_time(&text, "--until")?,
                    (None, Some(text)) => chrono::Utc::now()
                        .timestamp()
                        .saturating_add(seconds(&text, "--in")?),
                    (None, None) => bail!("say when it ends: --until TIME or --in DURATION"),
                };
                let shortened = client.shorten_override(&id, end, &reason).await?;
                if json {
                    println!("{}", serde_json::to_string(&shortened)?);
                } else {
                    println!(
                        "{} now ends {}: {} is on call for {} until then",
                        shortened.id,
                        local(shortened.end),
                        printable(&shortened.member),
                        printable(&shortened.schedule)
                    );
                }
                Ok(())
            }
            Some(OverridesAction::Delete { id, reason }) => {
                let deleted = client.delete_override(&id, &reason).await?;
                if json {
                    println!("{}", serde_json::to_string(&deleted)?);
                } else {
                    println!(
                        "deleted {}: {} is no longer on call for {} through it",
                        deleted.id,
                        printable(&deleted.member),
                        printable(&deleted.schedule)
                    );
                }
                Ok(())
            }
        },
    }
}

async fn list(client: &CaClient, schedule: Option<&str>, json: bool) -> anyhow::Result<()> {
    let overrides = client.overrides(schedule).await?;
    if json {
        println!("{}", serde_json::to_string(&overrides)?);
    } else if overrides.is_empty() {
        println!("no overrides in force or to come");
    } else {
        print!("{}", overrides_table(&overrides));
    }
    Ok(())
}

/// The overrides as an aligned table; control characters escaped.
fn overrides_table(overrides: &[OnCallOverride]) -> String {
    let header = ["ID", "SCHEDULE", "MEMBER", "FROM", "UNTIL", "BY", "REASON"]
        .map(str::to_owned)
        .to_vec();
    let rows: Vec<Vec<String>> = overrides
        .iter()
        .map(|o| {
            vec![
                printable(&o.id),
                printable(&o.schedule),
                printable(&o.member),
                local(o.start),
                local(o.end),
                printable(&o.created_by),
                printable(&o.reason),
            ]
        })
        .collect();
    table(&header, &rows)
}

async fn show_on_call(client: &CaClient, schedule: Option<&str>, json: bool) -> anyhow::Result<()> {
    let schedules = client.on_call(schedule).await?;
    if json {
        println!("{}", serde_json::to_string(&schedules)?);
        return Ok(());
    }
    let when = |unix: i64, tz: &str| {
        let time = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
        match tz.parse::<chrono_tz::Tz>() {
            Ok(tz) => time
                .with_timezone(&tz)
                .format("%a %d %b %H:%M %Z")
                .to_string(),
            Err(_) => time.format("%a %d %b %H:%M UTC").to_string(),
        }
    };
    for s in schedules {
        println!("{}", printable(&s.schedule));
        if s.now.is_empty() {
            println!("  now   nobody");
        }
        for shift in &s.now {
            println!(
                "  now   {}  until {}",
                shift.member,
                when(shift.end, &shift.timezone)
            );
        }
        for shift in &s.next {
            println!(
                "  next  {}  from {}",
                shift.member,
                when(shift.start, &shift.timezone)
            );
        }
    }
    Ok(())
}

fn parse_time(text: &str, flag: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| {
            format!("{flag} {text:?} is not an RFC 3339 time such as 2026-11-25T20:00:00+01:00")
        })?
        .timestamp())
}

fn seconds(text: &str, flag: &str) -> anyhow::Result<i64> {
    let length = humantime::parse_duration(text)
        .with_context(|| format!("{flag} {text:?} is not a duration such as 8h"))?;
    Ok(i64::try_from(length.as_secs()).unwrap_or(i64::MAX / 2))
}

/// Unix seconds in the local time zone, as people read a schedule.
fn local(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&chrono::Local)
        .format("%a %d %b %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn overrides_list_by_default_and_shorten_needs_an_end() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        assert!(parse(&["shiftkey", "oncall", "overrides"]).is_ok());
        assert!(parse(&["shiftkey", "oncall", "overrides", "list", "--json"]).is_ok());
        assert!(
            parse(&[
                "shiftkey",
                "oncall",
                "overrides",
                "shorten",
                "ov_1",
                "--reason",
                "back"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "shiftkey",
                "oncall",
                "overrides",
                "shorten",
                "ov_1",
                "--in",
                "30m",
                "--reason",
                "back"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "shiftkey",
                "oncall",
                "overrides",
                "shorten",
                "ov_1",
                "--in",
                "30m",
                "--until",
                "2026-11-25T20:00:00Z",
                "--reason",
                "back"
            ])
            .is_err()
        );
        assert!(
            parse(&["shiftkey", "oncall", "overrides", "delete", "ov_1"]).is_err(),
            "a reason is required"
        );
    }

    #[test]
    fn the_overrides_table_escapes_what_people_typed() {
        let o = OnCallOverride {
            id: "ov_0a".into(),
            schedule: "primary".into(),
            member: "user:bob@example.com".into(),
            start: 0,
            end: 3600,
            reason: "cover\x1b[2J".into(),
            created_by: "user:alice@example.com".into(),
            created_at: "x".into(),
        };
        let text = overrides_table(&[o]);
        assert!(text.starts_with("ID     SCHEDULE"), "{text}");
        assert!(text.contains("cover\u{241b}[2J"), "{text}");
        assert!(!text.contains('\x1b'));
    }
}
