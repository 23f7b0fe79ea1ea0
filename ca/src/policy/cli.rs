//! `shiftkey-ca policy check | test | explain | principals`: the policy's
//! command-line front end. CLI code: anyhow errors, data to stdout,
//! problems to stderr, `--json` for scripts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::authority::{Action, ActionKind, Actor};
use super::eval::{AccessQuery, IncidentState};
use super::oncall::Override;
use super::{Policy, parse_severity};

// Parsed once at start-up; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Report every error in a policy file or directory, with file:line:column, and warnings.
    Check {
        /// A policy file, or a directory of *.toml files.
        path: PathBuf,
        /// Print the errors and warnings as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 on warnings too (for CI).
        #[arg(long)]
        strict: bool,
    },
    /// Run the policy's [[test]] cases; exit 1 if any fails.
    Test {
        path: PathBuf,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show step by step how the policy decides one request (--role) or one use of a power (--action).
    Explain(Box<ExplainArgs>),
    /// The AuthorizedPrincipalsFile lines an enrolled host with these names gets, per login.
    Principals {
        path: PathBuf,
        /// The host's names (its host certificate's principals).
        #[arg(required = true)]
        hosts: Vec<String>,
        /// Print the map as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    path: PathBuf,
    /// The identity asking, e.g. user:alice@example.com or local:root.
    #[arg(long)]
    identity: String,
    /// A group the identity is in (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// The role asked for; with --action, the role acted on.
    #[arg(long, required_unless_present = "action")]
    role: Option<String>,
    /// A power instead of a request: incident.open, override.create, request.approve, ...
    #[arg(long, value_parser = ActionKind::ALL.map(ActionKind::as_str))]
    action: Option<String>,
    #[arg(long)]
    incident: Option<String>,
    /// Severity of that incident, taken as open (or being opened or resolved).
    #[arg(long, default_value = "sev1")]
    incident_severity: String,
    /// `resolved` or `unknown` to see how the policy treats those.
    #[arg(long, value_parser = ["open", "resolved", "unknown"])]
    incident_status: Option<String>,
    /// Who opened the incident [default: an alert webhook].
    #[arg(long, default_value = "webhook:explain")]
    incident_opened_by: String,
    #[arg(long)]
    reason: Option<String>,
    /// Requested lifetime, e.g. 15m.
    #[arg(long)]
    ttl: Option<String>,
    /// A host to check the role against (with --port), or to enroll.
    #[arg(long)]
    host: Option<String>,
    #[arg(long, default_value_t = 22)]
    port: u16,
    /// The override's schedule (override.*).
    #[arg(long)]
    schedule: Option<String>,
    /// Who the override puts on call (override.*).
    #[arg(long)]
    member: Option<String>,
    /// The override's start, RFC 3339 [default: --at].
    #[arg(long)]
    start: Option<String>,
    /// The override's end, RFC 3339.
    #[arg(long)]
    end: Option<String>,
    /// override.shorten: the new end, RFC 3339.
    #[arg(long)]
    new_end: Option<String>,
    /// request.*, recording.review, recording.hold: whose request or session.
    #[arg(long)]
    requester: Option<String>,
    /// identity.*, certificate.revoke: whose identity or certificates.
    #[arg(long)]
    target: Option<String>,
    /// The identity asking is locked.
    #[arg(long)]
    locked: bool,
    /// When, RFC 3339 [default: now].
    #[arg(long)]
    at: Option<String>,
}

/// Runs one `shiftkey-ca policy` command.
pub(crate) fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Check { path, json, strict } => check(&path, json, strict),
        PolicyCommand::Test { path, json } => test(&path, json),
        PolicyCommand::Explain(args) => explain(*args),
        PolicyCommand::Principals { path, hosts, json } => {
            let policy = match load(&path, json)? {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let map = policy.principals_for_host_names(&hosts);
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "hosts": hosts, "principals": map })
                );
            } else {
                for (login, principals) in &map {
                    println!("{login}: {}", principals.join(" "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(path: &Path, json: bool) -> anyhow::Result<Result<Policy, ExitCode>> {
    match Policy::load(path) {
        Ok(p) => Ok(Ok(p)),
        Err(errors) => {
            if json {
                let list: Vec<_> = errors
                    .errors()
                    .iter()
                    .map(|e| serde_json::json!({ "file": e.file, "line": e.line, "column": e.column, "message": e.message }))
                    .collect();
                println!("{}", serde_json::json!({ "valid": false, "errors": list }));
            } else {
                eprintln!("{errors}");
                eprintln!("{} error(s) in {}", errors.errors().len(), path.display());
            }
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

fn check(path: &Path, json: bool, strict: bool) -> anyhow::Result<ExitCode> {
    let policy = match load(path, json)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let warnings = policy.warnings();
    if json {
        let list: Vec<_> = warnings
            .iter()
            .map(|w| serde_json::json!({ "file": w.file, "line": w.line, "column": w.column, "message": w.message }))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "valid": true, "roles": policy.roles().count(), "warnings": list })
        );
    } else {
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        println!(
            "{}: valid ({} roles, {} warning(s))",
            path.display(),
            policy.roles().count(),
            warnings.len()
        );
    }
    Ok(if strict && !warnings.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn test(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let policy = match load(path, json)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let outcomes = policy.run_tests();
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<_> = outcomes
            .iter()
            .map(|o| serde_json::json!({ "name": o.name, "passed": o.passed, "detail": o.detail, "location": o.location }))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({ "passed": outcomes.len() - failed, "failed": failed, "tests": list })
        )?;
    } else {
        for o in &outcomes {
            let mark = if o.passed { "pass" } else { "FAIL" };
            writeln!(out, "{mark}  {}", o.name)?;
            if !o.passed {
                writeln!(out, "      {} ({})", o.detail, o.location)?;
            }
        }
        writeln!(out, "{} passed, {} failed", outcomes.len() - failed, failed)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn instant(flag: &str, text: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text)
        .with_context(|| {
            format!("--{flag} {text:?} is not an RFC 3339 time such as 2026-11-05T03:00:00+01:00")
        })?
        .with_timezone(&Utc))
}

fn needed<'a>(value: &'a Option<String>, flag: &str, action: &str) -> anyhow::Result<&'a str> {
    value
        .as_deref()
        .with_context(|| format!("{action} needs --{flag}"))
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let policy = match load(&args.path, false)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let at = match &args.at {
        Some(text) => instant("at", text)?,
        None => Utc::now(),
    };
    let severity = parse_severity(&args.incident_severity)
        .map_err(|e| anyhow::anyhow!("--incident-severity: {e}"))?;
    let Some(action) = &args.action else {
        return explain_access(&policy, &args, at, severity);
    };
    let kind = ActionKind::parse(action).map_err(|e| anyhow::anyhow!("--action: {e}"))?;
    let name = kind.as_str();
    // An override the flags describe, for override.*.
    let described = |created_by: &str| -> anyhow::Result<Override> {
        Ok(Override {
            schedule: needed(&args.schedule, "schedule", name)?.to_owned(),
            member: needed(&args.member, "member", name)?.to_owned(),
            start: match &args.start {
                Some(text) => instant("start", text)?,
                None => at,
            },
            end: instant("end", needed(&args.end, "end", name)?)?,
            created_by: created_by.to_owned(),
        })
    };
    let over = match kind {
        ActionKind::OverrideCreate | ActionKind::OverrideShorten | ActionKind::OverrideDelete => {
            Some(described(&args.identity)?)
        }
        _ => None,
    };
    let new_end = match (kind, &args.new_end) {
        (ActionKind::OverrideShorten, Some(text)) => Some(instant("new-end", text)?),
        (ActionKind::OverrideShorten, None) => anyhow::bail!("{name} needs --new-end"),
        _ => None,
    };
    let role = args.role.as_deref();
    let names: Vec<String> = args.host.iter().cloned().collect();
    let action = match (kind, &over) {
        (ActionKind::IncidentOpen, _) => Action::OpenIncident { severity },
        (ActionKind::IncidentResolve, _) => Action::ResolveIncident {
            severity,
            opened_by: &args.incident_opened_by,
        },
        (ActionKind::OverrideCreate, Some(o)) => Action::CreateOverride {
            schedule: &o.schedule,
            member: &o.member,
            start: o.start,
            end: o.end,
            existing: &[],
        },
        (ActionKind::OverrideShorten, Some(o)) => Action::ShortenOverride {
            existing: o,
            new_end: new_end.unwrap_or(o.end),
        },
        (ActionKind::OverrideDelete, Some(o)) => Action::DeleteOverride { existing: o },
        (ActionKind::RequestApprove, _) => Action::ApproveRequest {
            role: needed(&args.role, "role", name)?,
            requester: needed(&args.requester, "requester", name)?,
        },
        (ActionKind::RequestDeny, _) => Action::DenyRequest {
            role: needed(&args.role, "role", name)?,
            requester: needed(&args.requester, "requester", name)?,
        },
        (ActionKind::RecordingReview, _) => Action::ReviewRecording {
            role: needed(&args.role, "role", name)?,
            owner: needed(&args.requester, "requester", name)?,
        },
        (ActionKind::RecordingHold, _) => Action::HoldRecording {
            role: needed(&args.role, "role", name)?,
            owner: needed(&args.requester, "requester", name)?,
        },
        (ActionKind::IdentityLock, _) => Action::LockIdentity {
            target: needed(&args.target, "target", name)?,
        },
        (ActionKind::IdentityUnlock, _) => Action::UnlockIdentity {
            target: needed(&args.target, "target", name)?,
        },
        (ActionKind::CertificateRevoke, _) => Action::RevokeCertificates {
            target: needed(&args.target, "target", name)?,
            role,
        },
        (ActionKind::HostEnroll, _) => {
            needed(&args.host, "host", name)?;
            Action::EnrollHost { names: &names }
        }
        (_, None) => anyhow::bail!("{name} needs --schedule, --member and --end"),
    };
    let actor = Actor {
        identity: &args.identity,
        groups: &args.groups,
        locked: args.locked,
    };
    for step in policy.explain_authority(&actor, &action, at) {
        println!("{step}");
    }
    Ok(if policy.authorize(&actor, &action, at).is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn explain_access(
    policy: &Policy,
    args: &ExplainArgs,
    at: DateTime<Utc>,
    severity: u8,
) -> anyhow::Result<ExitCode> {
    let role = needed(&args.role, "role", "a request")?;
    let ttl = args
        .ttl
        .as_ref()
        .map(|t| {
            humantime::parse_duration(t)
                .with_context(|| format!("--ttl {t:?} is not a duration such as 15m"))
        })
        .transpose()?;
    let query = AccessQuery {
        identity: &args.identity,
        groups: &args.groups,
        role,
        incident: args.incident.as_deref(),
        incident_state: Some(match args.incident_status.as_deref() {
            Some("resolved") => IncidentState::Resolved,
            Some("unknown") => IncidentState::Unknown,
            _ => IncidentState::Open {
                severity,
                opened_by: args.incident_opened_by.clone(),
            },
        }),
        approved_by: &[],
        overrides: &[],
        reason: args.reason.as_deref(),
        ttl,
        principals: None,
        at,
    };
    let mut allowed = true;
    for step in policy.explain(&query) {
        allowed = !step.starts_with("DENY");
        println!("{step}");
    }
    if let Some(host) = &args.host {
        match policy.check_target(role, host, args.port) {
            Ok(target) => println!(
                "ok    target {}:{} is one of role {role:?}'s",
                target.target(),
                target.port()
            ),
            Err(denied) => {
                allowed = false;
                println!("DENY  {}: {}", denied.code, denied.message);
            }
        }
    }
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
