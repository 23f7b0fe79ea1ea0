//! The Shiftkey bastion: an SSH front door built on russh. It authenticates
//! user certificates, asks the CA whether a session may start, reaches the
//! target with a certificate minted for that one session, and records every
//! channel.
//!
//! It owns the SSH hops (`handler` → `hop` → `pump`), the decisions on
//! every channel request (`channel`), the limits per connection and per
//! address (`limits`), and the recordings (`recorder`, `cast`, `sftp`).
//! It must never forward a byte without a verified certificate, the CA's
//! yes and a live recorder that holds the byte first; never pass a second
//! program on a channel; never take a certificate the CA minted for a
//! bastion as a target's identity; and never let anyone but the CA's own
//! certificate holders write to the CA's audit log.

mod auth;
mod bastion;
mod ca;
mod cast;
mod channel;
mod cli;
mod config;
mod env_vars;
mod events;
/// Fuzz targets (`fuzz/`) and their corpus replay; not an API.
#[doc(hidden)]
pub mod fuzzing;
mod gzip;
mod handler;
mod heartbeat;
mod hop;
mod keys;
mod limits;
mod metrics;
mod pump;
mod recorder;
mod server;
mod session;
mod sftp;
mod target;
mod upstream;

pub use upstream::first_upstream_cipher;
mod verify;

pub use cli::{Cli, run};

/// Reproducible noise for tests (xorshift64, one byte per step): random
/// output without a random crate.
#[cfg(test)]
pub(crate) fn pseudo_random(n: usize, mut state: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
