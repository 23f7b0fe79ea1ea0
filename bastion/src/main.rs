use clap::Parser;

fn main() -> std::process::ExitCode {
    shiftkey_bastion::run(shiftkey_bastion::Cli::parse())
}
