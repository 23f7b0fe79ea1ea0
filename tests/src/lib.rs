//! Support code for Shiftkey's end-to-end tests: starting the real
//! `shiftkey-ca` binary, a real `sshd`, and a real OIDC provider on loopback,
//! and talking to them as users do. The tests themselves live in `tests/`.
//!
//! A missing tool is an error that says how to install it, never a skip.

pub mod bastion;
pub mod ca;
pub mod device_provider;
pub mod oidc;
pub mod services;
pub mod softhsm;
pub mod ssh_agent;
pub mod sshd;
pub mod util;
