use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = shiftkey_ca::Cli::parse();
    shiftkey_ca::init_process();
    shiftkey_ca::run(cli)
}
