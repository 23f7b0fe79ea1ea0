//! `shiftkey-ca store migrate --from sqlite:PATH --to postgresql://…`: the
//! step from one CA to several replicas. Copies the store (refusing a
//! target that is not empty), then proves the copy: `audit verify` on both
//! sides, the same head, the same number of rows in every table. A live
//! status line goes to stderr; the result to stdout (`--json` for scripts).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::store::{self, Access, PostgresSettings};

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The SQLite store to copy: sqlite:PATH (e.g. sqlite:/var/lib/shiftkey/shiftkey.db).
    #[arg(long, value_name = "sqlite:PATH")]
    from: String,
    /// The empty PostgreSQL database to copy into:
    /// postgresql://USER@HOST:PORT/DB?sslmode=verify-full&sslrootcert=CA.pem
    #[arg(long, value_name = "URL")]
    to: String,
    /// A file holding the database password (mode 0600), instead of one in the URL.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Refuses a SQLite file whose CA is running: rows written during the copy
/// would be lost.
fn refuse_if_served(path: &Path) -> anyhow::Result<()> {
    let lock = path.parent().unwrap_or(Path::new(".")).join("ca.lock");
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(&lock) else {
        return Ok(());
    };
    if nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err() {
        bail!(
            "a shiftkey-ca is serving {} (it holds {})\nhint: stop it first (systemctl stop shiftkey-ca), then migrate",
            path.display(),
            lock.display()
        );
    }
    Ok(())
}

/// The status line: rewritten in place on a terminal, a line per table
/// otherwise.
struct Status {
    terminal: bool,
    last_table: String,
}

impl Status {
    fn show(&mut self, p: &store::Progress<'_>) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(
                err,
                "\r\x1b[Kcopying {}: {} of {} rows",
                p.table, p.copied, p.total
            );
            let _ = err.flush();
        } else if p.copied == p.total && self.last_table != p.table {
            let _ = writeln!(err, "copied {}: {} rows", p.table, p.total);
            self.last_table = p.table.to_owned();
        }
    }

    fn done(&self) {
        if self.terminal {
            eprint!("\r\x1b[K");
        }
    }
}

pub(crate) async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let Some(source) = args.from.strip_prefix("sqlite:") else {
        bail!("--from must be sqlite:PATH, e.g. sqlite:/var/lib/shiftkey/shiftkey.db");
    };
    let source = PathBuf::from(source);
    if !source.exists() {
        bail!("{}: no such SQLite store", source.display());
    }
    refuse_if_served(&source)?;
    let cwd = std::env::current_dir().context("the current directory")?;
    let target = PostgresSettings::parse(&args.to, args.password_file, Some(4), &cwd)
        .map_err(|e| anyhow::anyhow!("--to: {e}"))?;

    let mut status = Status {
        terminal: std::io::stderr().is_terminal(),
        last_table: String::new(),
    };
    eprintln!(
        "copying {} into {} (one transaction)",
        source.display(),
        target.display()
    );
    let copied = store::sqlite_to_postgres(&source, &target, |p| status.show(&p)).await;
    status.done();
    let copied = copied?;

    eprintln!("verifying the audit chain on both sides...");
    let from = store::open_sqlite(&source, Access::ReadOnly)?;
    let to = store::open(&store::Settings::Postgres(target.clone()), Access::ReadOnly).await?;
    let before = crate::audit::verify(from.as_ref(), None).await?;
    let after = crate::audit::verify(to.as_ref(), None).await?;
    let counted = store::count_rows(&target).await?;
    let mut differences = Vec::new();
    for ((table, copied), (_, there)) in copied.tables.iter().zip(&counted) {
        if copied != there {
            differences.push(format!("{table}: {copied} copied, {there} in the target"));
        }
    }
    if (before.rows, &before.head_hash) != (after.rows, &after.head_hash) {
        differences.push(format!(
            "audit head: {} rows ending {} in the source, {} rows ending {} in the target",
            before.rows, before.head_hash, after.rows, after.head_hash
        ));
    }
    let ok = differences.is_empty() && before.problems.is_empty() && after.problems.is_empty();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": ok,
                "tables": copied.tables.iter().map(|(t, n)| (t.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
                "source": before,
                "target": after,
                "differences": differences,
            })
        );
    } else {
        for (table, rows) in &copied.tables {
            println!("{table:<20} {rows:>10} rows");
        }
        println!(
            "audit log: {} rows, head {} {} on both sides",
            after.rows, after.head_seq, after.head_hash
        );
        for problem in before.problems.iter().chain(&after.problems) {
            println!("{problem}");
        }
        for difference in &differences {
            println!("DIFFERENT: {difference}");
        }
        if ok {
            println!(
                "migrated: point [store] url in every replica's ca.toml at {}",
                target.display()
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
