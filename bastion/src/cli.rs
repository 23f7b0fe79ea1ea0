//! `shiftkey-bastion`: command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Shiftkey bastion: the recorded SSH way into production hosts.
#[derive(Debug, Parser)]
#[command(name = "shiftkey-bastion", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bastion: accept ssh -J and user%host@bastion connections, record every session.
    Serve {
        /// The bastion's configuration file.
        #[arg(long, short, default_value = "/etc/shiftkey/bastion.toml")]
        config: PathBuf,
    },
}

/// Runs the command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => {
            eprintln!(
                "shiftkey-bastion: serve {}: not built yet",
                config.display()
            );
            ExitCode::FAILURE
        }
    }
}
