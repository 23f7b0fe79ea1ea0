//! Support code for Shiftkey's end-to-end tests: starting the real
//! `shiftkey-ca` binary (one, or replicas behind a real HAProxy), a real
//! `sshd`, and a real OIDC provider on loopback, and talking to them as
//! users do; a database and a bucket prefix of their own on the PostgreSQL
//! and S3 servers a test run shares (`services.rs`). The tests themselves
//! live in `tests/`.
//!
//! A missing tool is an error that says how to install it, never a skip.

pub mod bastion;
pub mod ca;
pub mod device_provider;
pub mod haproxy;
pub mod oidc;
pub mod services;
pub mod softhsm;
pub mod ssh_agent;
pub mod sshd;
pub mod util;
