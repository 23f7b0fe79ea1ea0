//! The quickstart's policy: `shiftkey-ca init`'s example, plus one role for
//! the recorded path through the bastion to the quickstart's own target.
//!
//! The target's port lives in the policy (the role's `ports`: the bastion
//! connects only to ports a role allows), so it is chosen once, when the
//! directory is created, and read back from the policy on every later run:
//! the policy file stays the one place that says where the role reaches.

use std::path::Path;

use anyhow::Context;

use crate::policy::Policy;

/// The role whose certificates go through the bastion to the target.
pub(super) const ROLE: &str = "quickstart";

/// The target's name: what the user types after `ssh`, the name in its host
/// certificate, the bastion's `[targets]` key and the role's one host.
pub(super) const TARGET: &str = "quickstart-target";

/// The policy the quickstart writes into a new directory for `user`, with
/// the target sshd on `port`.
pub(super) fn text(user: &str, port: u16) -> String {
    format!(
        r#"{example}
# The quickstart's recorded path: plain `ssh` through the bastion that
# `shiftkey-ca quickstart` runs, to its throwaway sshd on loopback (an
# enrolled host named {TARGET}). `ports` is that sshd's port.
[[role]]
name = "{ROLE}"
description = "Recorded shell as {user} on the quickstart's target, through the bastion"
principals = ["{user}"]
hosts = ["{TARGET}"]
ports = [{port}]
max_ttl = "10m"
extensions = ["permit-pty"]

[[grant]]
identities = ["local:{user}"]
roles = ["{ROLE}"]

[[test]]
name = "the local user gets the quickstart's recorded shell"
identity = "local:{user}"
at = "2026-11-05T03:00:00+01:00"
role = "{ROLE}"
expect = "allow"
"#,
        example = crate::init::example_policy(user)
    )
}

/// The target's port: the first of the role's `ports` in the directory's
/// policy, or why there is none (a directory made before the quickstart
/// had the bastion, or a policy edited since).
pub(super) fn target_port(policy: &Path) -> anyhow::Result<u16> {
    let loaded = Policy::load(policy).map_err(|errors| {
        anyhow::anyhow!(
            "{} has errors:\n{errors}\nhint: `shiftkey-ca policy check {}`",
            policy.display(),
            policy.display()
        )
    })?;
    let role = loaded.role(ROLE).with_context(|| {
        format!(
            "{} has no role {ROLE:?}, so the recorded path through the bastion cannot run (this directory was made by an older quickstart, or the role was removed)\nhint: move the directory aside and run the quickstart again: it makes a new one with the role",
            policy.display()
        )
    })?;
    role.ports().first().copied().with_context(|| {
        format!(
            "role {ROLE:?} in {} allows no port\nhint: give it `ports = [PORT]`, a free loopback port for the target sshd",
            policy.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_port_is_read_back_from_the_policy_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, text("alice", 40123)).unwrap();
        assert_eq!(target_port(&path).unwrap(), 40123);
        let policy = Policy::load(&path).unwrap();
        let role = policy.role(ROLE).unwrap();
        assert!(role.covers_host(TARGET));
        assert!(
            !role.covers_host("127.0.0.1"),
            "only the quickstart's target"
        );
    }

    #[test]
    fn a_directory_from_an_older_quickstart_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, crate::init::example_policy("alice")).unwrap();
        let message = format!("{:#}", target_port(&path).unwrap_err());
        assert!(message.contains("has no role \"quickstart\""), "{message}");
        assert!(
            message.contains("hint: move the directory aside"),
            "{message}"
        );
    }
}
