//! `shiftkey-ca keys rotate|activate|retire|status`: the rotation phases
//! ([`super::rotation`]) as commands. Each phase says what it is about to
//! do and asks on a terminal; `--yes` skips the question for scripts, and
//! without a terminal and without `--yes` nothing happens. Results go to
//! stdout (`--json` for scripts), questions and warnings to stderr.
//!
//! Command code: anyhow is the error type here, as in `cli.rs`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::CaKind;
use super::rotation::{Lagging, PhaseResult, Rotation};
use crate::cli::DataDir;
use crate::secret::Secret;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Make the next key and publish it beside the active one (/v1/ca/*.pub, hosts'
    /// TrustedUserCAKeys, clients' @cert-authority lines pick it up at their next refresh).
    Rotate(RotateArgs),
    /// Make the next key sign; the old one stays published until `retire`.
    Activate(PhaseArgs),
    /// Stop publishing the previous key; refused while a certificate it signed can
    /// still be valid, unless --force.
    Retire(RetireArgs),
    /// Each key's state, fingerprint and location, and the hosts that have not
    /// installed every published user CA key.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Which {
    /// The user CA key (signs user certificates; hosts trust it).
    #[arg(long)]
    user: bool,
    /// The host CA key (signs host certificates; clients trust it).
    #[arg(long)]
    host: bool,
}

impl Which {
    fn kind(&self) -> CaKind {
        if self.host {
            CaKind::Host
        } else {
            CaKind::User
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct PhaseArgs {
    #[command(flatten)]
    which: Which,
    #[command(flatten)]
    dir: DataDir,
    /// Do not ask for confirmation (for scripts).
    #[arg(long)]
    yes: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    phase: PhaseArgs,
    /// Rotate, activate and retire at once, revoking everything the old key
    /// signed: for a key that may have leaked. Certificates it signed stop
    /// working at once.
    #[arg(long)]
    emergency: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RetireArgs {
    #[command(flatten)]
    phase: PhaseArgs,
    /// Retire even though certificates the key signed may still be valid
    /// (their holders are locked out).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Print {"keys": [...], "lagging": [...]}.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(cmd: KeysCommand, passphrase: Option<Secret>) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Status(args) => {
            let rotation = open(&args.dir, passphrase).await?;
            let status = rotation.status().await?;
            if args.json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                for k in &status.keys {
                    println!(
                        "{:<5} {:<9} {}  {}{}",
                        k.kind,
                        k.state,
                        k.fingerprint,
                        k.location,
                        if k.revoked { "  (revoked)" } else { "" }
                    );
                }
                if status.lagging.is_empty() {
                    println!("every enrolled host has installed every published user CA key");
                } else {
                    print_lagging(&status.lagging, &mut std::io::stdout());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate(args) => {
            let kind = args.phase.which.kind();
            let rotation = open(&args.phase.dir, passphrase).await?;
            if args.emergency {
                let (active, still_valid, previous) = rotation.outage(kind).await?;
                confirm(
                    &args.phase,
                    &format!(
                        "EMERGENCY rotation of the {kind} CA key {fp}: a new key signs at once, and {fp} is retired and revoked (the KRL names it).\n\
                         Outage: {still_valid} certificate(s) it signed that are valid now stop working at once{what}; \
                         {follow} until they refresh.{prev}",
                        kind = kind.as_str(),
                        fp = active.fingerprint,
                        prev = match &previous {
                            Some((p, n)) => format!(
                                "\nThe previous key {} is retired too (not revoked): {n} certificate(s) it signed stop working once hosts refresh.",
                                p.fingerprint
                            ),
                            None => String::new(),
                        },
                        what = match kind {
                            CaKind::User => ": their holders run `shiftkey access` again",
                            CaKind::Host =>
                                ": hosts present certificates clients no longer trust until `shiftkey host refresh` renews them",
                        },
                        follow = match kind {
                            CaKind::User => "hosts refuse certificates from the new key",
                            CaKind::Host => "clients warn about hosts",
                        },
                    ),
                )?;
                let results = rotation.emergency(kind).await?;
                report(&results, args.phase.json)?;
            } else {
                let active = rotation.check_rotate(kind).await?;
                confirm(
                    &args.phase,
                    &format!(
                        "Make a next {} CA key and publish it beside {} (which keeps signing).",
                        kind.as_str(),
                        active.fingerprint
                    ),
                )?;
                let result = rotation.rotate(kind).await?;
                report(std::slice::from_ref(&result), args.phase.json)?;
                if !args.phase.json {
                    eprintln!(
                        "next: wait until `shiftkey-ca keys status` shows no host lagging, then `shiftkey-ca keys activate --{}`",
                        kind.as_str()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Activate(args) => {
            let kind = args.which.kind();
            let rotation = open(&args.dir, passphrase).await?;
            let (active, next, lagging) = rotation.check_activate(kind).await?;
            if !lagging.is_empty() {
                eprintln!(
                    "warning: {} enrolled host(s) have not installed the next key {} yet; certificates it signs are refused there until they refresh:",
                    lagging.len(),
                    next.fingerprint
                );
                print_lagging(&lagging, &mut std::io::stderr());
            }
            confirm(
                &args,
                &format!(
                    "Make {} sign {} certificates from now on; {} stays published until `keys retire`.",
                    next.fingerprint,
                    kind.as_str(),
                    active.fingerprint
                ),
            )?;
            let result = rotation.activate(kind).await?;
            report(std::slice::from_ref(&result), args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Retire(args) => {
            let kind = args.phase.which.kind();
            let rotation = open(&args.phase.dir, passphrase).await?;
            let (_, previous, still_valid) = rotation.check_retire(kind, args.force).await?;
            confirm(
                &args.phase,
                &format!(
                    "Stop publishing the {} CA key {}{}.",
                    kind.as_str(),
                    previous.fingerprint,
                    if still_valid > 0 {
                        format!(
                            ": {still_valid} certificate(s) it signed are still valid and stop working once hosts refresh"
                        )
                    } else {
                        String::new()
                    }
                ),
            )?;
            let result = rotation.retire(kind, args.force).await?;
            report(std::slice::from_ref(&result), args.phase.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open(dir: &DataDir, passphrase: Option<Secret>) -> anyhow::Result<Rotation> {
    Rotation::open(&dir.data_dir, dir.config.as_deref(), passphrase).await
}

/// Says what is about to happen and asks, unless `--yes`.
fn confirm(args: &PhaseArgs, what: &str) -> anyhow::Result<()> {
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{what}\nrefusing without confirmation: there is no terminal to ask on\nhint: pass --yes to confirm in a script"
        );
    }
    let mut err = std::io::stderr();
    write!(err, "{what}\nType yes to continue: ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("not confirmed; nothing changed");
    }
    Ok(())
}

fn report(results: &[PhaseResult], json: bool) -> anyhow::Result<()> {
    for r in results {
        if json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            match r.phase {
                "rotate" => println!(
                    "{} CA: next key {} at {}, published beside {}",
                    r.kind, r.key, r.location, r.active
                ),
                "activate" => println!("{} CA: {} signs from now on", r.kind, r.key),
                _ => println!(
                    "{} CA: retired {}{}",
                    r.kind,
                    r.key,
                    if r.still_valid > 0 {
                        format!(
                            " ({} certificate(s) it signed were still valid)",
                            r.still_valid
                        )
                    } else {
                        String::new()
                    }
                ),
            }
        }
    }
    Ok(())
}

fn print_lagging(lagging: &[Lagging], out: &mut dyn Write) {
    for l in lagging {
        let _ = writeln!(
            out,
            "  lagging: {} lacks {} (last refresh: {})",
            l.host,
            l.missing.join(", "),
            l.reported_at
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map_or_else(|| "never reported".to_owned(), |t| t.to_rfc3339())
        );
    }
}
