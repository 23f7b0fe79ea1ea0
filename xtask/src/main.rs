//! `cargo run -p xtask -- man|completions OUT_DIR`: the build helpers that
//! `packaging/build` calls.
//!
//! Owns turning the three binaries' clap definitions (`shiftkey_ca::Cli`,
//! `shiftkey_bastion::Cli`, `shiftkey::Cli`) into man pages and shell
//! completions, so that the packages document exactly the flags the binaries
//! accept. Must never hand-write what clap already knows: a flag added to a
//! `Cli` shows up in the packages with no edit here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

/// The shells whose completions the packages ship.
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Build helpers for Shiftkey's packages")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write a man page (section 1, roff, uncompressed) for every binary and
    /// every subcommand to OUT_DIR/BINARY/, e.g. `shiftkey-ca/shiftkey-ca-serve.1`.
    Man { out_dir: PathBuf },
    /// Write bash, zsh and fish completions for every binary to
    /// OUT_DIR/{bash,zsh,fish}/.
    Completions { out_dir: PathBuf },
}

/// The three binaries, by the name they are installed under.
fn commands() -> [clap::Command; 3] {
    [
        shiftkey_ca::Cli::command(),
        shiftkey_bastion::Cli::command(),
        shiftkey::Cli::command(),
    ]
}

fn main() -> ExitCode {
    let args = Args::parse();
    let done = match args.task {
        Task::Man { out_dir } => man(&out_dir),
        Task::Completions { out_dir } => completions(&out_dir),
    };
    match done {
        Ok(written) => {
            eprintln!("xtask: wrote {written} files");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One directory per binary, so that each package picks up its own pages
/// with one glob.
fn man(out_dir: &Path) -> anyhow::Result<usize> {
    let mut written = 0;
    for cmd in commands() {
        let dir = out_dir.join(cmd.get_name());
        create_dir(&dir)?;
        // The `help` subcommand would only get a page saying "print help".
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        written += man_pages(&cmd, &dir)?;
    }
    Ok(written)
}

/// One page for `cmd` and one for each of its visible subcommands, named
/// after clap's display name (`shiftkey-ca-policy-check.1`).
fn man_pages(cmd: &clap::Command, out_dir: &Path) -> anyhow::Result<usize> {
    let mut written = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += man_pages(sub, out_dir)?;
    }
    let version = cmd.get_version().unwrap_or(env!("CARGO_PKG_VERSION"));
    let page = clap_mangen::Man::new(cmd.clone())
        .section("1")
        .source(format!("Shiftkey {version}"))
        .manual("Shiftkey Manual");
    let path = page
        .generate_to(out_dir)
        .with_context(|| format!("{}: cannot write the man page", out_dir.display()))?;
    check_nonempty(&path)?;
    Ok(written + 1)
}

fn completions(out_dir: &Path) -> anyhow::Result<usize> {
    let mut written = 0;
    for shell in SHELLS {
        let dir = out_dir.join(shell.to_string());
        create_dir(&dir)?;
        for mut cmd in commands() {
            let name = cmd.get_name().to_owned();
            let path = clap_complete::generate_to(shell, &mut cmd, &name, &dir)
                .with_context(|| format!("{}: cannot write {shell} completions", dir.display()))?;
            check_nonempty(&path)?;
            written += 1;
        }
    }
    Ok(written)
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))
}

/// A generator that wrote nothing would give the packages an empty file.
fn check_nonempty(path: &Path) -> anyhow::Result<()> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}: not written", path.display()))?
        .len();
    anyhow::ensure!(len > 0, "{}: written empty", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_gets_pages_for_its_subcommands() {
        let dir = std::env::temp_dir().join(format!("xtask-man-{}", std::process::id()));
        let written = man(&dir).unwrap();
        for page in [
            "shiftkey-ca/shiftkey-ca.1",
            "shiftkey-ca/shiftkey-ca-serve.1",
            "shiftkey-ca/shiftkey-ca-policy-check.1",
            "shiftkey-bastion/shiftkey-bastion.1",
            "shiftkey/shiftkey.1",
            "shiftkey/shiftkey-access.1",
        ] {
            assert!(dir.join(page).is_file(), "{page} missing");
        }
        assert!(written > 6, "{written}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn completions_for_three_shells_and_three_binaries() {
        let dir = std::env::temp_dir().join(format!("xtask-comp-{}", std::process::id()));
        assert_eq!(completions(&dir).unwrap(), 9);
        assert!(dir.join("bash/shiftkey-ca.bash").is_file());
        assert!(dir.join("zsh/_shiftkey-bastion").is_file());
        assert!(dir.join("fish/shiftkey.fish").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
