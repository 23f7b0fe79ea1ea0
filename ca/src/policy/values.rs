//! Syntax of the leaf values a policy file holds: durations, timestamps,
//! principals, host patterns, extensions and CIDR lists.
//!
//! Every function here turns text into a checked value or an error message
//! (without location; the caller knows where the text came from). Nothing in
//! this file panics on any input.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

/// No certificate lives longer than this, whatever the policy says.
/// INVARIANT: every checked `max_ttl` is at most this.
pub(crate) const HARD_MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Upper bound for `settings.clock_skew`: backdating further would make the
/// certificate valid well before anyone asked for it.
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// Shortest and longest rotation shift we accept.
pub(crate) const MIN_SHIFT: Duration = Duration::from_secs(60);
pub(crate) const MAX_SHIFT: Duration = Duration::from_secs(366 * 24 * 3600);

/// Certificate extensions a role may grant (OpenSSH `PROTOCOL.certkeys`).
pub(crate) const EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Parses a humantime duration such as `15m`, `1h 30m` or `7d`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write e.g. \"15m\", \"1h\" or \"7d\"")
    })
}

/// Formats a duration the way operators write them: `30m`, `1h 30m`,
/// `48h`, `7d` (days only for whole days, above two days).
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs > 2 * 86_400 && secs.is_multiple_of(86_400) && millis == 0 {
        return format!("{}d", secs / 86_400);
    }
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(millis), "ms"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if shown.is_empty() {
        "0s".to_owned()
    } else {
        shown.join(" ")
    }
}

/// Parses a wall-clock time without offset: `2026-11-02T09:00` or
/// `2026-11-02T09:00:00`.
pub(crate) fn parse_local_datetime(text: &str) -> Result<NaiveDateTime, String> {
    let has_offset = text
        .split_once('T')
        .is_some_and(|(_, time)| time.contains(['+', '-', 'Z', 'z']));
    if has_offset {
        return Err(format!(
            "{text:?} has a UTC offset, but this is a local time in the schedule's time zone; \
             drop the offset, e.g. \"2026-11-02T09:00\""
        ));
    }
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t);
        }
    }
    Err(format!(
        "invalid local time {text:?}; write e.g. \"2026-11-02T09:00\" (no offset)"
    ))
}

/// Parses an instant with an explicit offset (RFC 3339):
/// `2026-11-05T03:00:00+01:00` or `2026-11-05T02:00:00Z`.
pub(crate) fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(_) if parse_local_datetime(text).is_ok() => Err(format!(
            "{text:?} has no UTC offset; add one, e.g. \"{text}+01:00\" or \"{text}Z\""
        )),
        Err(e) => Err(format!(
            "invalid timestamp {text:?} ({e}); write e.g. \"2026-11-05T03:00:00+01:00\""
        )),
    }
}

/// A login name a role grants on its hosts. Certificates carry it scoped
/// to the role (`LOGIN@ROLE`, see `targets.rs`), so it may not hold `@`
/// itself: `deploy@web` as a login would be indistinguishable from login
/// `deploy` of role `web`.
pub(crate) fn check_principal(principal: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&principal.len())
        && !principal.starts_with('-')
        && principal
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
    if ok {
        Ok(())
    } else if principal.contains('@') {
        Err(format!(
            "invalid login {principal:?}: no '@' (certificates carry LOGIN@ROLE principals); \
             write the login name alone"
        ))
    } else {
        Err(format!(
            "invalid principal {principal:?}: 1 to 64 characters of A-Z a-z 0-9 . _ + -, \
             not starting with '-'"
        ))
    }
}

pub(crate) fn check_extension(name: &str) -> Result<(), String> {
    if EXTENSIONS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "unknown extension {name:?}; known: {}",
            EXTENSIONS.join(", ")
        ))
    }
}

/// `force-command`: one line, no control characters.
pub(crate) fn check_force_command(command: &str) -> Result<(), String> {
    if command.trim().is_empty() {
        return Err("force_command is empty; remove it or name a command".to_owned());
    }
    if command.chars().any(char::is_control) || command.len() > 4096 {
        return Err(
            "force_command must be one line without control characters, at most 4096 bytes"
                .to_owned(),
        );
    }
    Ok(())
}

/// One `source-address` entry: an address or a network in CIDR notation
/// with no host bits set (OpenSSH rejects `10.0.0.1/8`).
pub(crate) fn check_cidr(text: &str) -> Result<(), String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Err(format!(
            "invalid address {text:?}; write e.g. \"10.0.0.0/8\" or \"2001:db8::/32\""
        ));
    };
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => return Ok(()),
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
            p.parse::<u32>().ok().filter(|p| *p <= bits)
        }
        Some(_) => None,
    };
    let Some(prefix) = prefix else {
        return Err(format!(
            "invalid prefix length in {text:?}: must be 0 to {bits}"
        ));
    };
    let value: u128 = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let host_bits = bits - prefix;
    let host_mask = if host_bits == 0 {
        0
    } else {
        u128::MAX >> (128 - host_bits)
    };
    if value & host_mask != 0 {
        let network = value & !host_mask;
        let network = match addr {
            IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(
                u32::try_from(network).unwrap_or(0),
            )),
            IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(network)),
        };
        return Err(format!(
            "{text:?} has host bits set; write \"{network}/{prefix}\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{
        check_cidr, check_principal, format_duration, parse_duration, parse_instant,
        parse_local_datetime,
    };
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("15 minutes please").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_format_like_operators_write_them() {
        let show = |secs| format_duration(Duration::from_secs(secs));
        assert_eq!(show(0), "0s");
        assert_eq!(show(90), "1m 30s");
        assert_eq!(show(1800), "30m");
        assert_eq!(show(5400), "1h 30m");
        assert_eq!(show(86_400), "24h");
        assert_eq!(show(90_000), "25h");
        assert_eq!(show(2 * 86_400), "48h");
        assert_eq!(show(7 * 86_400), "7d");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
    }

    #[test]
    fn timestamps() {
        let t = parse_local_datetime("2026-11-02T09:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-02 09:00:00");
        assert!(parse_local_datetime("2026-11-02T09:00:00").is_ok());
        for with_offset in [
            "2026-11-02T09:00:00+01:00",
            "2026-11-02T09:00Z",
            "2026-11-02T09:00-05:00",
        ] {
            let err = parse_local_datetime(with_offset).unwrap_err();
            assert!(err.contains("drop the offset"), "{err}");
        }
        assert!(parse_local_datetime("2026-13-02T09:00").is_err());
        let i = parse_instant("2026-11-05T03:00:00+01:00").unwrap();
        assert_eq!(i.to_rfc3339(), "2026-11-05T02:00:00+00:00");
        let err = parse_instant("2026-11-05T03:00:00").unwrap_err();
        assert!(err.contains("no UTC offset"), "{err}");
        assert!(parse_instant("yesterday").is_err());
    }

    #[test]
    fn principals() {
        for ok in ["postgres", "a", "deploy-bot", "x.y_z+1", &"p".repeat(64)] {
            assert!(check_principal(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-oProxyCommand",
            "deploy@web-ops",
            "a#b",
            "a,b",
            "a b",
            "a\0",
            "a\n",
            "ü",
            &"p".repeat(65),
        ] {
            assert!(check_principal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidrs() {
        for ok in [
            "10.0.0.0/8",
            "192.168.1.7",
            "192.168.1.7/32",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::1",
        ] {
            assert!(check_cidr(ok).is_ok(), "{ok}");
        }
        assert!(
            check_cidr("10.0.0.1/8")
                .unwrap_err()
                .contains("\"10.0.0.0/8\"")
        );
        assert!(
            check_cidr("2001:db8::1/32")
                .unwrap_err()
                .contains("2001:db8::/32")
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
            "::/129",
        ] {
            assert!(check_cidr(bad).is_err(), "{bad}");
        }
    }
}
