//! `shiftkey ssh-config`: ssh configuration for the roles the user holds, so
//! plain `ssh host` works, and the host CA in known_hosts, so it never asks
//! to trust a host key.

use std::path::{Path, PathBuf};

use anyhow::Context;
use shiftkey_wire::{CaConfigResponse, RolesResponse};

/// The file under `~/.ssh/` that `--install` writes and `~/.ssh/config` includes.
const CONFIG_FILE: &str = "shiftkey.conf";
const KNOWN_HOSTS_FILE: &str = "shiftkey_known_hosts";
const INCLUDE_LINE: &str = "Include shiftkey.conf";

/// The two files' contents.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Generated {
    pub(crate) config: String,
    pub(crate) known_hosts: String,
}

pub(crate) fn generate(
    ca: &CaConfigResponse,
    roles: &RolesResponse,
    known_hosts_path: &Path,
) -> Generated {
    let mut config = format!(
        "# Written by `shiftkey ssh-config` for {}. Do not edit: run it again.\n",
        roles.identity
    );
    let mut patterns: Vec<&str> = Vec::new();
    for role in &roles.roles {
        if role.hosts.is_empty() {
            continue;
        }
        config.push_str(&format!(
            "\n# role {}{}\n",
            role.name,
            describe(&role.description)
        ));
        config.push_str(&format!("Host {}\n", role.hosts.join(" ")));
        if let [only] = role.principals.as_slice() {
            config.push_str(&format!("    User {only}\n"));
        }
        config.push_str(&format!(
            "    UserKnownHostsFile ~/.ssh/known_hosts {}\n",
            known_hosts_path.display()
        ));
        config.push_str("    StrictHostKeyChecking yes\n");
        patterns.extend(role.hosts.iter().map(String::as_str));
    }
    patterns.sort_unstable();
    patterns.dedup();
    let mut known_hosts =
        String::from("# Written by `shiftkey ssh-config`: hosts signed by the Shiftkey host CA.\n");
    if !patterns.is_empty() {
        for key in &ca.host_ca_keys {
            known_hosts.push_str(&format!("@cert-authority {} {key}\n", patterns.join(",")));
        }
    }
    Generated {
        config,
        known_hosts,
    }
}

fn describe(description: &str) -> String {
    let line: String = description.chars().filter(|c| !c.is_control()).collect();
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

/// Paths under `~/.ssh`.
pub(crate) fn ssh_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os(crate::env_vars::HOME)
        .filter(|h| !h.is_empty())
        .context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".ssh"))
}

pub(crate) fn known_hosts_path(ssh_dir: &Path) -> PathBuf {
    ssh_dir.join(KNOWN_HOSTS_FILE)
}

/// Writes both files and makes `~/.ssh/config` include ours, once.
pub(crate) fn install(ssh_dir: &Path, generated: &Generated) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(ssh_dir)?;
    std::fs::set_permissions(ssh_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let config_path = ssh_dir.join(CONFIG_FILE);
    let known_hosts_path = known_hosts_path(ssh_dir);
    std::fs::write(&config_path, &generated.config)?;
    std::fs::write(&known_hosts_path, &generated.known_hosts)?;
    let main = ssh_dir.join("config");
    let existing = match std::fs::read_to_string(&main) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", main.display())),
    };
    if !existing.lines().any(|l| l.trim() == INCLUDE_LINE) {
        // Include must come before any Host block to apply everywhere.
        std::fs::write(&main, format!("{INCLUDE_LINE}\n{existing}"))?;
        std::fs::set_permissions(&main, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    }
    Ok(vec![config_path, known_hosts_path, main])
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiftkey_wire::RoleInfo;

    fn role(name: &str, principals: &[&str], hosts: &[&str]) -> RoleInfo {
        RoleInfo {
            name: name.into(),
            description: "psql\nInclude /etc/evil".into(),
            principals: principals.iter().map(|s| (*s).to_owned()).collect(),
            hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            max_ttl_seconds: 1800,
            require_on_call: vec![],
            require_incident: false,
            require_reason: false,
            extensions: vec![],
        }
    }

    #[test]
    fn config_and_known_hosts_cover_every_role_and_install_is_idempotent() {
        let ca = CaConfigResponse {
            oidc_issuer: None,
            oidc_client_id: None,
            user_ca_keys: vec![],
            host_ca_keys: vec!["ssh-ed25519 AAAAHOST".into()],
        };
        let roles = RolesResponse {
            identity: "user:alice@example.com".into(),
            roles: vec![
                role("db-debug", &["postgres"], &["db-*.prod.example.com"]),
                role("ops", &["a", "b"], &["*.ops"]),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(&ca, &roles, &known_hosts_path(dir.path()));
        assert!(
            generated
                .config
                .contains("Host db-*.prod.example.com\n    User postgres\n")
        );
        assert!(
            generated
                .config
                .contains("Host *.ops\n    UserKnownHostsFile"),
            "no User with two principals"
        );
        assert!(
            !generated.config.contains("\nInclude /etc/evil"),
            "descriptions cannot inject directives"
        );
        assert_eq!(
            generated.known_hosts.lines().nth(1),
            Some("@cert-authority *.ops,db-*.prod.example.com ssh-ed25519 AAAAHOST")
        );
        std::fs::write(dir.path().join("config"), "Host old\n    User me\n").unwrap();
        install(dir.path(), &generated).unwrap();
        install(dir.path(), &generated).unwrap();
        let main = std::fs::read_to_string(dir.path().join("config")).unwrap();
        assert_eq!(main, "Include shiftkey.conf\nHost old\n    User me\n");
    }
}
