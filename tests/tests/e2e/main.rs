//! End-to-end tests: the real `shiftkey-ca` binary with real OpenSSH, a real
//! OIDC provider, real SQLite files and real HTTP over loopback.
//! Needs root (sshd, a login user) and the tools `scripts/test` installs.

mod approvals;
mod audit;
mod bad_input;
mod bastion;
mod client;
mod escalation;
mod fixtures;
mod flood;
mod forwards;
mod free_text;
mod fuzz_corpus;
mod ha;
mod host_roles;
mod hostile;
mod hosts;
mod issuance;
mod keys;
mod notifications;
mod oidc;
mod openapi;
mod pkcs11;
mod pkcs11_ca;
mod policy_cli;
mod quickstart;
mod recordings;
mod revocation;
mod rotation;
mod session_lifecycle;
mod ui;
mod ui_glance;
mod ui_link;
mod ui_powers;
mod ui_provider;
mod webhooks;
