use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = shiftkey::Cli::parse();
    shiftkey::run(cli)
}
