//! The Shiftkey bastion: an SSH front door built on russh. It authenticates
//! user certificates, asks the CA whether a session may start, reaches the
//! target with a certificate minted for that one session, and records every
//! channel.

mod ca;
mod cli;
mod config;
mod events;
mod keys;
mod metrics;
mod proxy;
mod recorder;
mod session;
mod sftp;
mod upstream;
mod verify;

pub use cli::{Cli, run};
