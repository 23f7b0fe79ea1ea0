//! The Shiftkey bastion: an SSH front door built on russh. It authenticates
//! user certificates, asks the CA whether a session may start, reaches the
//! target with a certificate minted for that one session, and records every
//! channel.

mod cli;

pub use cli::{Cli, run};
