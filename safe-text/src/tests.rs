use std::collections::HashSet;

use proptest::prelude::{
    Just, Strategy, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
};

use super::*;

/// Every character the crate is about.
fn all_hazards() -> Vec<char> {
    (0u32..=0x10ffff)
        .filter_map(char::from_u32)
        .filter(|c| hazard(*c).is_some())
        .collect()
}

#[test]
fn the_classes_are_exactly_the_ones_documented() {
    let mut expected: Vec<char> = (0u32..=0x9f)
        .filter(|c| *c < 0x20 || *c >= 0x7f)
        .filter_map(char::from_u32)
        .collect();
    expected.extend(
        [
            0x61c, 0x200e, 0x200f, 0x200b, 0x200c, 0x200d, 0x2060, 0xfeff, 0x2028, 0x2029,
        ]
        .into_iter()
        .chain(0x202a..=0x202e)
        .chain(0x2066..=0x2069)
        .filter_map(char::from_u32),
    );
    expected.sort_unstable();
    assert_eq!(all_hazards(), expected);
}

#[test]
fn every_hazard_has_a_name_and_its_own_visible_marker() {
    let mut seen = HashSet::new();
    for c in all_hazards() {
        let m = marker(c).expect("a marker");
        assert!(name(c).is_some(), "{c:?} has no name");
        assert!(
            m.chars().all(|m| hazard(m).is_none() && !m.is_whitespace()),
            "{c:?}: {m:?}"
        );
        assert!(seen.insert(m.clone().into_owned()), "{c:?} shares {m:?}");
    }
}

#[test]
fn c1_controls_do_not_look_like_c0_ones() {
    // 0x9B (CSI) used to be shown as ESC's picture.
    assert_eq!(marked("a\u{9b}31m"), "a\u{27e8}CSI\u{27e9}31m");
    assert_eq!(marked("a\u{1b}[31m"), "a\u{241b}[31m");
    assert_eq!(marked("x\u{7f}"), "x\u{2421}");
}

#[test]
fn the_spoofed_approval_is_refused_and_shown_marked() {
    let spoof = "LGTM \u{202e}devorppa\u{202c} \u{2014} per CISO";
    let refused = check(spoof).unwrap_err();
    assert_eq!(refused.character, '\u{202e}');
    assert_eq!(refused.hazard, Hazard::Bidi);
    assert_eq!(refused.position, 6);
    assert!(refused.to_string().contains("U+202E RLO"), "{refused}");
    assert_eq!(
        marked(spoof),
        "LGTM \u{27e8}RLO\u{27e9}devorppa\u{27e8}PDF\u{27e9} \u{2014} per CISO"
    );
    // A zero-width space inside a ticket number.
    assert_eq!(
        check("CHG-\u{200b}1234").unwrap_err().hazard,
        Hazard::ZeroWidth
    );
    assert!(check("deploy hotfix 1.2.3 — per CISO, ünïcode ok 日本").is_ok());
    assert!(check("two\nlines").is_err() && check("tab\there").is_err());
}

#[test]
fn clean_text_is_borrowed() {
    assert!(matches!(marked("plain text"), Cow::Borrowed("plain text")));
}

/// Text mixing ordinary characters with hazards of every kind.
fn text_with_hazards() -> impl Strategy<Value = String> {
    let hazards = all_hazards();
    prop::collection::vec(
        prop_oneof![
            3 => any::<char>(),
            1 => prop::sample::select(hazards),
            1 => Just('\u{27e8}'),
        ],
        0..64,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #[test]
    fn marked_text_holds_no_hazard(text in text_with_hazards()) {
        let shown = marked(&text);
        prop_assert!(shown.chars().all(|c| hazard(c).is_none()), "{shown:?}");
        prop_assert!(check(&shown).is_ok());
    }

    #[test]
    fn check_accepts_exactly_what_marking_leaves_alone(text in text_with_hazards()) {
        let unchanged = matches!(marked(&text), Cow::Borrowed(_));
        prop_assert_eq!(check(&text).is_ok(), unchanged);
    }

    #[test]
    fn a_refusal_points_at_the_first_hazard(text in text_with_hazards()) {
        if let Err(refused) = check(&text) {
            let chars: Vec<char> = text.chars().collect();
            prop_assert_eq!(chars[refused.position - 1], refused.character);
            prop_assert!(chars[..refused.position - 1].iter().all(|c| hazard(*c).is_none()));
        }
    }

    #[test]
    fn hazard_free_text_is_shown_as_it_is(text in any::<String>()) {
        let clean: String = text.chars().filter(|c| hazard(*c).is_none()).collect();
        prop_assert_eq!(marked(&clean), clean.as_str());
    }
}
