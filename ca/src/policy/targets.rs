//! Where a role's certificates may be used: host patterns, targets, ports,
//! and the role-scoped principals that carry the role to the host.
//!
//! Rules, and why:
//!
//! - **One canonical spelling of a host name**: lowercase, no trailing dot
//!   ([`canonical_host`]). The CA, the bastion's target lookup and every
//!   comparison use it, so `WEB-1.Example.com.` is `web-1.example.com`.
//! - **`*` and `?` stay inside one label**: `*` matches any run of
//!   characters except `.`, `?` one character except `.`. So `web-*` does
//!   not match `web-1.evil.example`, and `*.example.com` matches
//!   `a.example.com` but not `a.b.example.com` (list `*.*.example.com` for
//!   that). (OpenSSH's `Host` patterns let `*` cross dots; for an
//!   authorisation decision that turns a name pattern into a suffix match
//!   nobody reviewing the policy meant.)
//! - **IP literals match only IP patterns**: a target written as an
//!   address (`10.1.2.3`, `[2001:db8::1]`) matches an address pattern
//!   (`10.1.2.3`) or a network (`10.1.0.0/16`), never a name pattern; a
//!   name never matches an address pattern. Names that a resolver would
//!   read as a number (`127.1`, `2130706433`, `0x7f.1`, `10.0.0.01`) are
//!   refused as targets and as patterns: they are addresses in disguise.
//! - **Principals name the role**: a certificate for role `web-ops` with
//!   login `deploy` carries the principal `deploy@web-ops`
//!   ([`scoped_principal`]). sshd compares a certificate's principals with
//!   the lines of an `AuthorizedPrincipalsFile` literally (`strcmp`), a
//!   line may not hold blanks or `#` (they start options and comments), and
//!   `@` is neither; logins may not contain `@` and role names are
//!   `A-Z a-z 0-9 . _ -`, so `LOGIN@ROLE` splits one way only. An enrolled
//!   host's file for `deploy` lists only the scoped principals of roles
//!   whose patterns match that host ([`super::Policy::principals_for_host`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::Policy;
use super::denied::{Denied, DenyCode};

/// Default `ports` of a role: SSH.
pub(crate) const DEFAULT_PORTS: [u16; 1] = [22];

/// A host a certificate or session is for, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A DNS name: lowercase, no trailing dot, labels of `a-z 0-9 - _`.
    Name(String),
    /// An address; IPv4-mapped IPv6 addresses are shown as IPv4.
    Ip(IpAddr),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(name) => f.write_str(name),
            Target::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The canonical form of a host name or address as a client wrote it:
/// lowercase, without a trailing dot, IPv6 with or without brackets.
/// Refuses anything else, and names a resolver would read as an address.
pub(crate) fn canonical_host(text: &str) -> Result<Target, String> {
    if let Some(ip) = parse_ip(text) {
        return Ok(Target::Ip(ip));
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    check_labels(&name, false).map_err(|why| format!("invalid host {text:?}: {why}"))?;
    Ok(Target::Name(name))
}

/// An address, with IPv6 optionally in brackets; IPv4-mapped IPv6 as IPv4.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let ip = bare.parse::<IpAddr>().ok()?;
    Some(ip.to_canonical())
}

/// Checks a (lowercased) name or name pattern label by label.
fn check_labels(name: &str, wildcards: bool) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("1 to 253 characters".to_owned());
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && label.chars().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(c, '-' | '_')
                    || (wildcards && matches!(c, '*' | '?'))
            });
        if !ok {
            let allowed = if wildcards {
                "a-z 0-9 - _ and the wildcards * ?"
            } else {
                "a-z 0-9 - _"
            };
            return Err(format!(
                "each dot-separated label is 1 to 63 characters of {allowed}, not starting with '-'"
            ));
        }
    }
    if let Some(last) = labels.last()
        && looks_numeric(last)
    {
        return Err(
            "its last label is a number, so resolvers read it as an IP address; write the \
             address itself (e.g. 10.0.0.1) or a name"
                .to_owned(),
        );
    }
    Ok(())
}

/// A label `inet_aton` would take as part of a number: digits, or `0x`
/// and hex digits. (No top-level domain is numeric.)
fn looks_numeric(label: &str) -> bool {
    let digits = !label.is_empty() && label.chars().all(|c| c.is_ascii_digit());
    let hex = label
        .strip_prefix("0x")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_hexdigit()));
    digits || hex
}

/// A checked host pattern of a role or an authority entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// A name with `*`/`?` wildcards that stay inside a label.
    Name(String),
    /// One address.
    Ip(IpAddr),
    /// A network: address with no host bits set, and prefix length.
    Cidr(IpAddr, u8),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Name(name) => f.write_str(name),
            HostPattern::Ip(ip) => write!(f, "{ip}"),
            HostPattern::Cidr(ip, prefix) => write!(f, "{ip}/{prefix}"),
        }
    }
}

impl HostPattern {
    /// Parses `web-*.example.com`, `10.1.2.3`, `2001:db8::1`, `10.1.0.0/16`.
    pub(crate) fn parse(text: &str) -> Result<HostPattern, String> {
        if let Some((addr, prefix)) = text.split_once('/') {
            super::values::check_cidr(text)?;
            let ip = addr
                .parse::<IpAddr>()
                .map_err(|_| format!("invalid network {text:?}"))?;
            let prefix = prefix
                .parse::<u8>()
                .map_err(|_| format!("invalid prefix length in {text:?}"))?;
            return Ok(HostPattern::Cidr(ip, prefix));
        }
        if let Some(ip) = parse_ip(text) {
            return Ok(HostPattern::Ip(ip));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let all_numeric = name.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '?')
        });
        if all_numeric
            && name.contains('.')
            && name.contains(['*', '?'])
            && name.contains(|c: char| c.is_ascii_digit())
        {
            return Err(format!(
                "host pattern {text:?} looks like an address range; write a network such as \
                 \"10.0.0.0/24\" (names and addresses never match each other's patterns)"
            ));
        }
        check_labels(&name, true).map_err(|why| format!("invalid host pattern {text:?}: {why}"))?;
        Ok(HostPattern::Name(name))
    }

    /// Whether `target` is one of the hosts this pattern names.
    pub(crate) fn matches(&self, target: &Target) -> bool {
        match (self, target) {
            (HostPattern::Name(pattern), Target::Name(name)) => glob_in_labels(pattern, name),
            (HostPattern::Ip(ip), Target::Ip(target)) => ip == target,
            (HostPattern::Cidr(net, prefix), Target::Ip(target)) => {
                in_network(*net, *prefix, *target)
            }
            _ => false,
        }
    }

    /// Why a pattern that parses is still worth a second look, for
    /// `policy check`; None when it is unremarkable.
    pub(crate) fn suspicion(&self) -> Option<String> {
        match self {
            HostPattern::Name(name) if name == "*" => Some(
                "\"*\" matches only names without a dot (\"db-1\", not \"db-1.example.com\"); \
                 name your domains, e.g. \"*.example.com\""
                    .to_owned(),
            ),
            HostPattern::Name(name)
                if name.contains('.')
                    && name
                        .rsplit('.')
                        .next()
                        .is_some_and(|last| last.contains(['*', '?'])) =>
            {
                Some(format!(
                    "{name:?} has a wildcard in its last label, so it matches names under any \
                     top-level domain; spell out the domain"
                ))
            }
            HostPattern::Name(name)
                if name.starts_with("*.")
                    && name.split('.').filter(|l| !l.contains(['*', '?'])).count() < 2 =>
            {
                Some(format!(
                    "{name:?} fixes fewer than two labels, so it spans a whole top-level \
                     domain; spell out the domain"
                ))
            }
            HostPattern::Cidr(_, prefix) if *prefix == 0 => Some(
                "a /0 network matches every address; name the networks your hosts are in"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// `*` any run of non-dot characters, `?` one non-dot character; both
/// strings are already lowercase.
fn glob_in_labels(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was and how much of the name it has eaten.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let c = name.get(n).copied();
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') if c != Some('.') => {
                p += 1;
                n += 1;
            }
            Some(&pc) if Some(pc) == c && pc != '?' => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // A star may take one more character, unless it is a dot.
                Some((sp, sn)) if name.get(sn) != Some(&'.') => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                _ => return false,
            },
        }
    }
    pattern.iter().skip(p).all(|&c| c == '*')
}

fn in_network(net: IpAddr, prefix: u8, target: IpAddr) -> bool {
    let (net, target, bits) = match (net, target) {
        (IpAddr::V4(n), IpAddr::V4(t)) => (u128::from(u32::from(n)), u128::from(u32::from(t)), 32),
        (IpAddr::V6(n), IpAddr::V6(t)) => (u128::from(n), u128::from(t), 128),
        _ => return false,
    };
    let prefix = u32::from(prefix);
    if prefix > bits {
        return false;
    }
    let host_bits = bits - prefix;
    let shift = |v: u128| v.checked_shr(host_bits).unwrap_or(0);
    shift(net) == shift(target)
}

/// The principal a certificate carries for `login` under `role`:
/// `LOGIN@ROLE`.
pub(crate) fn scoped_principal(login: &str, role: &str) -> String {
    format!("{login}@{role}")
}

/// Splits a scoped principal into login and role; None for a bare login.
#[cfg(test)]
pub(crate) fn split_scoped_principal(principal: &str) -> Option<(&str, &str)> {
    principal
        .split_once('@')
        .filter(|(login, role)| !login.is_empty() && !role.is_empty() && !role.contains('@'))
}

/// Proof that a role may be used on a host and port: what the bastion
/// connects to (canonical name or address) once the CA said yes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetAllowed {
    target: Target,
    port: u16,
    _proof: (),
}

impl TargetAllowed {
    /// The host in canonical form: connect to this, look it up by this.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Policy {
    /// Whether role `role` may be used on `host` (any spelling) at `port`:
    /// the host matches one of the role's patterns and the port is in its
    /// `ports`. The CA asks this before a bastion session or a forwarded
    /// connection starts; the bastion connects to the canonical target.
    pub(crate) fn check_target(
        &self,
        role: &str,
        host: &str,
        port: u16,
    ) -> Result<TargetAllowed, Denied> {
        let Some(found) = self.role(role) else {
            return Err(Denied::new(
                DenyCode::UnknownRole,
                format!("there is no role {role:?}"),
            ));
        };
        let target = canonical_host(host).map_err(|why| {
            Denied::new(
                DenyCode::HostNotInRole,
                format!("{why}; ask for a host of role {role:?}"),
            )
        })?;
        if !found.covers(&target) {
            return Err(Denied::new(
                DenyCode::HostNotInRole,
                format!(
                    "role {role:?} is not for host {target} (its hosts: {}); ask for a role \
                     whose hosts include it",
                    found.hosts.join(", ")
                ),
            ));
        }
        if !found.ports.contains(&port) {
            let ports: Vec<String> = found.ports.iter().map(u16::to_string).collect();
            return Err(Denied::new(
                DenyCode::PortNotInRole,
                format!(
                    "role {role:?} allows ports {} on its hosts, not {port}",
                    ports.join(", ")
                ),
            ));
        }
        Ok(TargetAllowed {
            target,
            port,
            _proof: (),
        })
    }

    /// What an enrolled host named `hostname` writes into its
    /// `AuthorizedPrincipalsFile`s: for each login, the scoped principals
    /// (`LOGIN@ROLE`) of the roles whose host patterns match the host, and
    /// nothing else (never a bare login). Empty for a name that is not a
    /// host name or address.
    #[cfg(test)]
    pub(crate) fn principals_for_host(&self, hostname: &str) -> BTreeMap<String, Vec<String>> {
        self.principals_for_host_names(&[hostname.to_owned()])
    }

    /// [`Policy::principals_for_host`] for a host known by several names
    /// (its host certificate's principals): the union over the names.
    pub(crate) fn principals_for_host_names(
        &self,
        names: &[String],
    ) -> BTreeMap<String, Vec<String>> {
        let targets: Vec<Target> = names
            .iter()
            .filter_map(|name| canonical_host(name).ok())
            .collect();
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for role in &self.roles {
            if !targets.iter().any(|t| role.covers(t)) {
                continue;
            }
            for login in &role.principals {
                let principal = scoped_principal(login, &role.name);
                let entry = map.entry(login.clone()).or_default();
                if !entry.contains(&principal) {
                    entry.push(principal);
                }
            }
        }
        map
    }
}

#[cfg(test)]
#[path = "targets_tests.rs"]
mod tests;
