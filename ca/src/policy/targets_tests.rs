//! Host patterns and targets: the attacks of issue 12 §2 as tests, and
//! properties of the matcher against a slow reference.

use std::net::IpAddr;

use proptest::prelude::{Strategy, prop_assert, prop_assert_eq, prop_oneof, proptest};

use super::{HostPattern, Target, canonical_host, scoped_principal, split_scoped_principal};

fn pattern(text: &str) -> HostPattern {
    HostPattern::parse(text).unwrap()
}

fn host(text: &str) -> Target {
    canonical_host(text).unwrap()
}

fn matches(p: &str, h: &str) -> bool {
    pattern(p).matches(&host(h))
}

#[test]
fn a_star_stays_inside_its_label() {
    assert!(matches("web-*", "web-1"));
    assert!(!matches("web-*", "web-1.evil.example"));
    assert!(!matches("web-*", "web-2.attacker.example"));
    assert!(matches("web-*.prod.example.com", "web-12.prod.example.com"));
    assert!(!matches(
        "web-*.prod.example.com",
        "web-1.x.prod.example.com"
    ));
    assert!(matches("*.example.com", "a.example.com"));
    assert!(!matches("*.example.com", "a.b.example.com"));
    assert!(!matches("*.example.com", "example.com"));
    assert!(matches("*.*.example.com", "a.b.example.com"));
    assert!(matches("db-?", "db-1"));
    assert!(!matches("db-?", "db-12"));
    assert!(!matches("db?example", "db.example"));
    assert!(!matches(
        "db-*.prod.example.com",
        "db-1.prod.example.com.evil"
    ));
    assert!(matches("*", "localhost"));
    assert!(!matches("*", "db-1.example.com"));
}

#[test]
fn names_compare_in_one_canonical_form() {
    assert!(matches("web-*.example.com", "WEB-1.EXAMPLE.COM"));
    assert!(matches("WEB-*.Example.com", "web-1.example.com"));
    assert!(matches("web-1.example.com.", "web-1.example.com"));
    assert!(matches("web-1.example.com", "web-1.example.com."));
    assert_eq!(
        host("WEB-1.Example.COM."),
        Target::Name("web-1.example.com".into())
    );
    assert_eq!(host("WEB-1.Example.COM.").to_string(), "web-1.example.com");
}

#[test]
fn ip_literals_match_only_ip_patterns() {
    assert!(matches("10.1.2.3", "10.1.2.3"));
    assert!(!matches("10.1.2.3", "10.1.2.4"));
    assert!(matches("10.1.0.0/16", "10.1.200.3"));
    assert!(!matches("10.1.0.0/16", "10.2.0.1"));
    assert!(matches("2001:db8::/32", "[2001:db8::1]"));
    assert!(matches("2001:db8::1", "2001:DB8::1"));
    assert!(matches("10.0.0.0/8", "::ffff:10.9.9.9"));
    // A name pattern never matches an address, an address never a name.
    assert!(!matches("*", "10.1.2.3"));
    assert!(!matches("localhost", "127.0.0.1"));
    assert!(!matches("127.0.0.1", "localhost"));
    assert!(!matches("0.0.0.0/0", "db-1"));
    // An address range written as a name pattern is refused with a hint.
    let err = HostPattern::parse("10.0.0.*").unwrap_err();
    assert!(err.contains("10.0.0.0/24"), "{err}");
}

#[test]
fn addresses_in_disguise_are_refused() {
    for disguised in [
        "127.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "10.0.0.01",
        "010.0.0.1",
    ] {
        let err = canonical_host(disguised).unwrap_err();
        assert!(err.contains("IP address"), "{disguised}: {err}");
        assert!(HostPattern::parse(disguised).is_err(), "{disguised}");
    }
    for bad in ["", "a..b", "-db", "db 1", "db_1!", "a/b", "é.example.com"] {
        assert!(canonical_host(bad).is_err(), "{bad:?}");
    }
    assert!(canonical_host(&"a".repeat(64)).is_err());
    assert!(canonical_host(&format!("{}.com", "a.".repeat(130))).is_err());
}

#[test]
fn suspicious_patterns_are_named() {
    let suspicious = |p: &str| pattern(p).suspicion();
    assert!(suspicious("*").unwrap().contains("without a dot"));
    assert!(suspicious("web-1.*").unwrap().contains("top-level"));
    assert!(suspicious("*.com").unwrap().contains("fewer than two"));
    assert!(suspicious("0.0.0.0/0").is_some());
    for fine in [
        "web-*",
        "db-*.internal",
        "*.example.com",
        "web-*.prod.example.com",
        "10.0.0.0/8",
        "10.1.2.3",
    ] {
        assert_eq!(suspicious(fine), None, "{fine}");
    }
}

#[test]
fn scoped_principals_split_one_way() {
    assert_eq!(scoped_principal("deploy", "web-ops"), "deploy@web-ops");
    assert_eq!(
        split_scoped_principal("deploy@web-ops"),
        Some(("deploy", "web-ops"))
    );
    assert_eq!(split_scoped_principal("deploy"), None);
    assert_eq!(split_scoped_principal("@web-ops"), None);
    assert_eq!(split_scoped_principal("a@b@c"), None);
}

/// The slow, obviously right matcher: recursion over both strings.
fn reference(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name.get(i - 1) != Some(&'.'))
            .any(|i| reference(rest, name.get(i..).unwrap_or_default())),
        Some(('?', rest)) => match name.split_first() {
            Some((c, tail)) if *c != '.' => reference(rest, tail),
            _ => false,
        },
        Some((p, rest)) => match name.split_first() {
            Some((c, tail)) if c == p => reference(rest, tail),
            _ => false,
        },
    }
}

fn label() -> impl Strategy<Value = String> {
    "[a-c0-9][a-c0-9-]{0,4}"
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(label(), 1..4).prop_map(|labels| {
        let mut labels = labels;
        // The last label must not be numeric.
        if let Some(last) = labels.last_mut() {
            last.push('z');
        }
        labels.join(".")
    })
}

fn name_pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            label(),
            "[a-c0-9]{0,2}\\*[a-c0-9]{0,2}",
            "[a-c]\\?[a-c*]{0,2}",
            "\\*",
        ],
        1..4,
    )
    .prop_map(|labels| {
        let mut labels = labels;
        if let Some(last) = labels.last_mut() {
            last.push('z');
        }
        labels.join(".")
    })
}

proptest! {
    #[test]
    fn matcher_agrees_with_the_reference(p in name_pattern(), n in name()) {
        let parsed = HostPattern::parse(&p).unwrap();
        let target = canonical_host(&n).unwrap();
        let want = reference(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>());
        prop_assert_eq!(parsed.matches(&target), want);
    }

    #[test]
    fn a_star_never_crosses_a_dot(prefix in label(), first in label(), rest in name()) {
        let p = HostPattern::parse(&format!("{prefix}*")).unwrap();
        let target = canonical_host(&format!("{prefix}{first}.{rest}")).unwrap();
        prop_assert!(!p.matches(&target));
    }

    #[test]
    fn case_and_trailing_dot_do_not_matter(p in name_pattern(), n in name(), upper in proptest::bool::ANY) {
        let parsed = HostPattern::parse(&p).unwrap();
        let plain = canonical_host(&n).unwrap();
        let spelled = if upper { n.to_ascii_uppercase() } else { format!("{n}.") };
        let other = canonical_host(&spelled).unwrap();
        prop_assert_eq!(&plain, &other);
        prop_assert_eq!(parsed.matches(&plain), parsed.matches(&other));
    }

    #[test]
    fn a_literal_pattern_matches_only_itself(a in name(), b in name()) {
        let p = HostPattern::parse(&a).unwrap();
        prop_assert!(p.matches(&canonical_host(&a).unwrap()));
        prop_assert_eq!(p.matches(&canonical_host(&b).unwrap()), a == b);
    }

    #[test]
    fn addresses_never_match_name_patterns(p in name_pattern(), octets in proptest::array::uniform4(0u8..)) {
        let parsed = HostPattern::parse(&p).unwrap();
        let ip = IpAddr::from(octets);
        prop_assert!(!parsed.matches(&Target::Ip(ip)));
        prop_assert_eq!(canonical_host(&ip.to_string()).unwrap(), Target::Ip(ip));
    }

    #[test]
    fn networks_hold_exactly_their_addresses(octets in proptest::array::uniform4(0u8..), prefix in 0u8..=32, probe in proptest::array::uniform4(0u8..)) {
        let ip = u32::from_be_bytes(octets);
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
        let net = std::net::Ipv4Addr::from(ip & mask);
        let parsed = HostPattern::parse(&format!("{net}/{prefix}")).unwrap();
        let probe_ip = u32::from_be_bytes(probe);
        let inside = probe_ip & mask == ip & mask;
        prop_assert_eq!(parsed.matches(&Target::Ip(IpAddr::from(probe))), inside);
    }

    #[test]
    fn parsing_never_panics(text in "\\PC{0,40}") {
        let _ = HostPattern::parse(&text);
        let _ = canonical_host(&text);
    }
}
