//! Every environment variable the bastion reads.

/// Log filter (`tracing_subscriber`'s syntax, e.g. `info,russh=warn`).
pub(crate) const RUST_LOG: &str = "RUST_LOG";
/// Set (to anything): no ANSI colour in the logs, even on a terminal.
pub(crate) const NO_COLOR: &str = "NO_COLOR";
