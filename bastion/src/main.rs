use clap::Parser;

/// jemalloc with background purge threads: what closed sessions freed is
/// given back to the system within seconds, where glibc's malloc kept most
/// of it (docs/benchmarks.md, the memory rounds).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    shiftkey_bastion::run(shiftkey_bastion::Cli::parse())
}
