//! `shiftkey ssh-config`: ssh configuration for the roles the user holds, so
//! plain `ssh host` works, and the host CA in known_hosts, so it never asks
//! to trust a host key.
//!
//! Everything that comes from the CA is checked before it is written under
//! `~/.ssh`: role names, principals and host patterns must be plain tokens
//! (no whitespace, newline, quote or `!`, so they cannot add directives such
//! as `ProxyCommand` or `Match exec`, or extra `@cert-authority` lines); host
//! CA keys are parsed and written back without their comment; the identity
//! and descriptions only ever go into comments, stripped of control
//! characters. A role or key that fails is left out with a warning. Host
//! patterns that are only wildcards (`*`, `*.*`, `?*`) are left out too:
//! trusting the host CA for every host is not what a role means.

use std::path::{Path, PathBuf};

use anyhow::Context;
use shiftkey_wire::{CaConfigResponse, RoleInfo, RolesResponse};
use ssh_key::PublicKey;

/// The file under `~/.ssh/` that `--install` writes and `~/.ssh/config` includes.
const CONFIG_FILE: &str = "shiftkey.conf";
const KNOWN_HOSTS_FILE: &str = "shiftkey_known_hosts";
const INCLUDE_LINE: &str = "Include shiftkey.conf";
/// The CA's own limits (`ca/src/policy`): longer is not from a sane CA.
const MAX_NAME_LEN: usize = 64;
const MAX_HOST_PATTERN_LEN: usize = 253;

/// The two files' contents, and what was left out of them and why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Generated {
    pub(crate) config: String,
    pub(crate) known_hosts: String,
    /// One line each, for stderr.
    pub(crate) warnings: Vec<String>,
}

/// Builds both files from the CA's answers. Fails only if `known_hosts_path`
/// cannot be written into an ssh config (not UTF-8, or a `"` or control
/// character in it).
pub(crate) fn generate(
    ca: &CaConfigResponse,
    roles: &RolesResponse,
    known_hosts_path: &Path,
) -> anyhow::Result<Generated> {
    let known_hosts_arg = config_path_arg(known_hosts_path)?;
    let mut warnings = Vec::new();
    let mut config = format!(
        "# Written by `shiftkey ssh-config` for {}. Do not edit: run it again.\n",
        comment_text(&roles.identity)
    );
    let mut patterns: Vec<String> = Vec::new();
    let mut jump_hosts: Vec<String> = Vec::new();
    for role in &roles.roles {
        if role.hosts.is_empty() {
            continue;
        }
        let hosts = match checked_hosts(role, &mut warnings) {
            Ok(hosts) => hosts,
            Err(reason) => {
                warnings.push(format!("skipped a role from the CA: {reason}"));
                continue;
            }
        };
        config.push_str(&format!(
            "\n# role {}{}\n",
            role.name,
            describe(&role.description)
        ));
        config.push_str(&format!("Host {}\n", hosts.join(" ")));
        if let [only] = role.principals.as_slice() {
            config.push_str(&format!("    User {only}\n"));
        }
        // Recorded roles go through the bastion, which presents host
        // certificates from the same host CA (so it needs the same trust).
        match role.proxy_jump.as_deref().map(jump_host) {
            Some(Ok((jump, known))) => {
                config.push_str(&format!("    ProxyJump {jump}\n"));
                if let Some(host) = jump.rsplit_once(':').map(|(h, _)| h.to_owned())
                    && !jump_hosts.contains(&host)
                {
                    jump_hosts.push(host);
                }
                patterns.extend(known);
            }
            Some(Err(reason)) => warnings.push(format!("role {}: {reason}", role.name)),
            None => {}
        }
        config.push_str(&format!(
            "    UserKnownHostsFile ~/.ssh/known_hosts {known_hosts_arg}\n"
        ));
        config.push_str("    StrictHostKeyChecking yes\n");
        patterns.extend(hosts.iter().map(|h| (*h).to_owned()));
    }
    // The jump itself is an ssh connection too: it trusts the bastion by the
    // same host CA, with no prompt.
    for host in &jump_hosts {
        config.push_str(&format!(
            "\n# the bastion\nHost {host}\n    UserKnownHostsFile ~/.ssh/known_hosts {known_hosts_arg}\n    StrictHostKeyChecking yes\n"
        ));
    }
    patterns.sort_unstable();
    patterns.dedup();
    let mut known_hosts =
        String::from("# Written by `shiftkey ssh-config`: hosts signed by the Shiftkey host CA.\n");
    if !patterns.is_empty() {
        for key in &ca.host_ca_keys {
            match host_ca_key(key) {
                Ok(key) => {
                    known_hosts.push_str(&format!("@cert-authority {} {key}\n", patterns.join(",")))
                }
                Err(reason) => {
                    warnings.push(format!("skipped a host CA key from the CA: {reason}"))
                }
            }
        }
    }
    Ok(Generated {
        config,
        known_hosts,
        warnings,
    })
}

/// The role's host patterns to write, once its name, principals and
/// patterns check out; a pattern that is only wildcards is dropped with a
/// warning. `Err` says why the whole role is left out.
fn checked_hosts<'r>(
    role: &'r RoleInfo,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'r str>, String> {
    if !is_token(&role.name) {
        return Err(format!(
            "role name {:?} is not 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ @ + - (not starting with '-')",
            role.name
        ));
    }
    let name = &role.name;
    if let Some(bad) = role.principals.iter().find(|p| !is_token(p)) {
        return Err(format!(
            "role {name}: principal {bad:?} is not 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ @ + - (not starting with '-')"
        ));
    }
    if let Some(bad) = role.hosts.iter().find(|h| !is_host_pattern(h)) {
        return Err(format!(
            "role {name}: host pattern {bad:?} is not 1 to {MAX_HOST_PATTERN_LEN} characters of A-Z a-z 0-9 . - _ : and the wildcards * ? (no negation, not starting with '-' or '.')"
        ));
    }
    let mut hosts = Vec::new();
    for host in &role.hosts {
        if names_a_host(host) {
            hosts.push(host.as_str());
        } else {
            warnings.push(format!(
                "role {name}: left out host pattern {host:?}: it matches any host (github.com too), so the host CA would be trusted everywhere; name a domain, e.g. *.prod.example.com"
            ));
        }
    }
    if hosts.is_empty() {
        return Err(format!("role {name}: no host pattern left to write"));
    }
    Ok(hosts)
}

/// The bastion as a `ProxyJump` value and the known_hosts patterns its
/// host certificate is checked under (`host`, and `[host]:port` off 22).
fn jump_host(address: &str) -> Result<(String, Vec<String>), String> {
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bastion port in {address:?} is not a number"))?,
        ),
        None => (address, 22),
    };
    if !is_host_pattern(host) || host.contains(['*', '?', ':']) || port == 0 {
        return Err(format!(
            "the CA's bastion address {:?} is not HOST[:PORT]",
            comment_text(address)
        ));
    }
    let mut known = vec![host.to_owned()];
    if port != 22 {
        known.push(format!("[{host}]:{port}"));
    }
    Ok((format!("{host}:{port}"), known))
}

/// A role name or principal: `[A-Za-z0-9._@+-]`, not starting with '-'.
fn is_token(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'))
}

/// A host pattern for `Host` and known_hosts: `[A-Za-z0-9.*?:_-]`, so no
/// whitespace, no `,` (which would split a known_hosts pattern list) and no
/// `!` negation.
fn is_host_pattern(s: &str) -> bool {
    (1..=MAX_HOST_PATTERN_LEN).contains(&s.len())
        && !s.starts_with('-')
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | '?' | ':'))
}

/// Whether a (well-formed) pattern names something: at least one of its
/// `.`- or `:`-separated labels is written out without wildcards
/// (`*.prod.example.com`, `bastion`, `10.0.0.*`). `*`, `*.*`, `?*` or
/// `db-*` do not.
fn names_a_host(pattern: &str) -> bool {
    pattern
        .split(['.', ':'])
        .any(|label| !label.is_empty() && !label.contains(['*', '?']))
}

/// A host CA key as a known_hosts key field: parsed, and written back in
/// canonical form without the comment (which could hold anything).
fn host_ca_key(key: &str) -> Result<String, String> {
    let summary: String = key.chars().filter(|c| !c.is_control()).take(40).collect();
    let mut parsed = PublicKey::from_openssh(key)
        .map_err(|e| format!("{summary:?}...: not an OpenSSH public key: {e}"))?;
    parsed.set_comment("");
    let line = parsed
        .to_openssh()
        .map_err(|e| format!("{summary:?}...: cannot encode it: {e}"))?;
    // Canonical `<algorithm> <base64>`: one line, two fields.
    if line.split(' ').count() != 2 || line.chars().any(char::is_control) {
        return Err(format!("{summary:?}...: not a plain public key"));
    }
    Ok(line)
}

/// `path` as one ssh_config argument: `%` doubled (ssh expands `%` tokens
/// in `UserKnownHostsFile`), in double quotes if it has spaces.
fn config_path_arg(path: &Path) -> anyhow::Result<String> {
    let text = path.to_str().with_context(|| {
        format!(
            "{} is not UTF-8: cannot name it in an ssh config",
            path.display()
        )
    })?;
    if text.chars().any(|c| c == '"' || c.is_control()) {
        anyhow::bail!(
            "{text:?} has a quote or control character: cannot name it in an ssh config; set HOME to a plainer path"
        );
    }
    let text = text.replace('%', "%%");
    if text
        .chars()
        .any(|c| c.is_whitespace() || c == '#' || c == '\'')
    {
        Ok(format!("\"{text}\""))
    } else {
        Ok(text)
    }
}

/// Text for a comment line: control characters (newlines above all) out.
fn comment_text(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

fn describe(description: &str) -> String {
    let line = comment_text(description);
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

    /// A real key, so it parses (`ssh-keygen -t ed25519`).
    const HOST_CA: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    fn role(name: &str, principals: &[&str], hosts: &[&str]) -> RoleInfo {
        RoleInfo {
            name: name.into(),
            description: "psql\nInclude /etc/evil".into(),
            principals: principals.iter().map(|s| (*s).to_owned()).collect(),
            hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            max_ttl_seconds: 1800,
            require_on_call: vec![],
            require_incident: false,
            incident_severity: None,
            require_reason: false,
            extensions: vec![],
            proxy_jump: None,
        }
    }

    fn ca(keys: &[&str]) -> CaConfigResponse {
        CaConfigResponse {
            oidc_issuer: None,
            oidc_client_id: None,
            user_ca_keys: vec![],
            host_ca_keys: keys.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn roles(roles: Vec<RoleInfo>) -> RolesResponse {
        RolesResponse {
            identity: "user:alice@example.com".into(),
            roles,
        }
    }

    fn generate_for(ca: &CaConfigResponse, roles: &RolesResponse) -> Generated {
        generate(ca, roles, Path::new("/home/a/.ssh/shiftkey_known_hosts")).unwrap()
    }

    /// Every directive line in the config, comments and blank lines aside.
    fn directives(config: &str) -> Vec<&str> {
        config
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    /// The config is only the `good` role's block: nothing of the others.
    fn only_good_role(generated: &Generated) {
        assert_eq!(
            directives(&generated.config),
            [
                "Host good.example.com",
                "User deploy",
                "UserKnownHostsFile ~/.ssh/known_hosts /home/a/.ssh/shiftkey_known_hosts",
                "StrictHostKeyChecking yes",
            ],
            "{}",
            generated.config
        );
        assert_eq!(
            generated.known_hosts.lines().skip(1).collect::<Vec<_>>(),
            [format!("@cert-authority good.example.com {HOST_CA}")],
            "{}",
            generated.known_hosts
        );
    }

    #[test]
    fn config_and_known_hosts_cover_every_role_and_install_is_idempotent() {
        let ca = ca(&[&format!("{HOST_CA} host-ca@example.com")]);
        let roles = roles(vec![
            role("db-debug", &["postgres"], &["db-*.prod.example.com"]),
            role("ops", &["a", "b"], &["*.ops"]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(&ca, &roles, &known_hosts_path(dir.path())).unwrap();
        assert_eq!(generated.warnings, Vec::<String>::new());
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
            Some(format!("@cert-authority *.ops,db-*.prod.example.com {HOST_CA}").as_str()),
            "the key's comment is not written"
        );
        std::fs::write(dir.path().join("config"), "Host old\n    User me\n").unwrap();
        install(dir.path(), &generated).unwrap();
        install(dir.path(), &generated).unwrap();
        let main = std::fs::read_to_string(dir.path().join("config")).unwrap();
        assert_eq!(main, "Include shiftkey.conf\nHost old\n    User me\n");
    }

    #[test]
    fn recorded_roles_jump_through_the_bastion_it_trusts_by_the_host_ca() {
        let mut r = role("db", &["postgres"], &["db-*.prod.example.com"]);
        r.proxy_jump = Some("bastion.example.com:2222".into());
        let generated = generate_for(&ca(&[HOST_CA]), &roles(vec![r]));
        assert!(
            generated
                .config
                .contains("Host db-*.prod.example.com\n    User postgres\n    ProxyJump bastion.example.com:2222\n"),
            "{}",
            generated.config
        );
        assert!(
            generated
                .known_hosts
                .contains("@cert-authority [bastion.example.com]:2222,bastion.example.com,db-*.prod.example.com "),
            "{}",
            generated.known_hosts
        );
        assert!(
            generated
                .config
                .contains("Host bastion.example.com\n    UserKnownHostsFile"),
            "{}",
            generated.config
        );
        for bad in [
            "b\nInclude /tmp/x",
            "*:22",
            "b:0",
            "b:x",
            "-oProxyCommand=x",
        ] {
            let mut r = role("db", &["postgres"], &["db-*.prod.example.com"]);
            r.proxy_jump = Some(bad.into());
            let generated = generate_for(&ca(&[HOST_CA]), &roles(vec![r]));
            assert!(
                !generated.config.contains("ProxyJump"),
                "{bad:?}: {}",
                generated.config
            );
            assert!(!generated.warnings.is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn a_newline_in_a_role_name_cannot_add_directives() {
        let generated = generate_for(
            &ca(&[HOST_CA]),
            &roles(vec![
                role("good", &["deploy"], &["good.example.com"]),
                role(
                    "x\nMatch exec \"touch /tmp/pwned\"",
                    &["root"],
                    &["evil.example.com"],
                ),
            ]),
        );
        only_good_role(&generated);
        assert_eq!(generated.warnings.len(), 1, "{:?}", generated.warnings);
        assert!(generated.warnings[0].contains("role name"));
    }

    #[test]
    fn a_newline_or_space_in_a_host_pattern_cannot_add_directives() {
        for bad in [
            "evil.example.com\n    ProxyCommand sh -c 'touch /tmp/pwned'",
            "evil.example.com ProxyCommand=x",
            "evil.example.com\t*",
            "a.example.com,*",
            "!good.example.com",
            "evil.example.com\n@cert-authority *",
        ] {
            let generated = generate_for(
                &ca(&[HOST_CA]),
                &roles(vec![
                    role("good", &["deploy"], &["good.example.com"]),
                    role("evil", &["root"], &["other.example.com", bad]),
                ]),
            );
            only_good_role(&generated);
            assert_eq!(
                generated.warnings.len(),
                1,
                "{bad:?}: {:?}",
                generated.warnings
            );
            assert!(generated.warnings[0].contains("host pattern"), "{bad:?}");
        }
    }

    #[test]
    fn a_newline_in_a_principal_cannot_add_directives() {
        for bad in [
            "root\n    ProxyCommand nc evil 22",
            "root user",
            "-oProxyCommand=x",
        ] {
            let generated = generate_for(
                &ca(&[HOST_CA]),
                &roles(vec![
                    role("good", &["deploy"], &["good.example.com"]),
                    role("evil", &[bad], &["evil.example.com"]),
                ]),
            );
            only_good_role(&generated);
            assert_eq!(
                generated.warnings.len(),
                1,
                "{bad:?}: {:?}",
                generated.warnings
            );
            assert!(generated.warnings[0].contains("principal"), "{bad:?}");
        }
    }

    #[test]
    fn a_newline_in_a_host_ca_key_cannot_add_trust() {
        for bad in [
            format!("{HOST_CA} comment\n@cert-authority * {HOST_CA}"),
            format!("{HOST_CA}\n@cert-authority * {HOST_CA}"),
            "ssh-ed25519 AAAA\n@cert-authority * ssh-ed25519 AAAA".to_owned(),
            "not a key".to_owned(),
        ] {
            let generated = generate_for(
                &ca(&[&bad]),
                &roles(vec![role("good", &["deploy"], &["good.example.com"])]),
            );
            let lines: Vec<&str> = generated.known_hosts.lines().skip(1).collect();
            // A key that parses comes back alone on its line; one that
            // does not is left out.
            assert!(
                lines.is_empty()
                    || lines == [format!("@cert-authority good.example.com {HOST_CA}")],
                "{bad:?}: {}",
                generated.known_hosts
            );
            assert!(!generated.known_hosts.contains(" * "), "{bad:?}");
            assert_eq!(
                lines.is_empty(),
                generated.warnings.len() == 1,
                "{bad:?}: {:?}",
                generated.warnings
            );
        }
    }

    #[test]
    fn wildcard_only_host_patterns_are_left_out() {
        for everything in ["*", "*.*", "?*", "*:*", "db-*", "*.?"] {
            let generated = generate_for(
                &ca(&[HOST_CA]),
                &roles(vec![
                    role("good", &["deploy"], &["good.example.com"]),
                    role("all", &["root"], &[everything]),
                ]),
            );
            only_good_role(&generated);
            assert_eq!(
                generated.warnings.len(),
                2,
                "{everything:?}: {:?}",
                generated.warnings
            );
            assert!(
                generated.warnings[0].contains("matches any host"),
                "{everything:?}"
            );
        }
        // Next to a pattern that names hosts, only the wildcard one goes.
        let generated = generate_for(
            &ca(&[HOST_CA]),
            &roles(vec![role("good", &["deploy"], &["*", "good.example.com"])]),
        );
        only_good_role(&generated);
        assert_eq!(generated.warnings.len(), 1, "{:?}", generated.warnings);
        for names in [
            "*.prod.example.com",
            "bastion",
            "10.0.0.*",
            "fd00::*",
            "web?.ops",
        ] {
            assert!(names_a_host(names), "{names}");
        }
    }

    #[test]
    fn the_identity_stays_a_comment() {
        let mut roles = roles(vec![role("good", &["deploy"], &["good.example.com"])]);
        roles.identity = "alice\nProxyCommand sh\r\n".into();
        let generated = generate_for(&ca(&[HOST_CA]), &roles);
        only_good_role(&generated);
        assert!(generated.config.starts_with(
            "# Written by `shiftkey ssh-config` for aliceProxyCommand sh. Do not edit"
        ));
    }

    #[test]
    fn the_known_hosts_path_is_quoted_or_refused() {
        let roles = roles(vec![role("good", &["deploy"], &["good.example.com"])]);
        let generated = generate(
            &ca(&[HOST_CA]),
            &roles,
            Path::new("/home/a b/50%/.ssh/shiftkey_known_hosts"),
        )
        .unwrap();
        assert!(
            generated.config.contains(
                "    UserKnownHostsFile ~/.ssh/known_hosts \"/home/a b/50%%/.ssh/shiftkey_known_hosts\"\n"
            ),
            "{}",
            generated.config
        );
        for bad in ["/home/a\"b/kh", "/home/a\nProxyCommand x/kh"] {
            assert!(
                generate(&ca(&[HOST_CA]), &roles, Path::new(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
