use super::*;

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn parse_ok(text: &str) -> Pkcs11Uri {
    match text.parse::<Pkcs11Uri>() {
        Ok(uri) => uri,
        Err(e) => panic!("{text}: {e}"),
    }
}

fn parse_err(text: &str) -> UriError {
    match text.parse::<Pkcs11Uri>() {
        Ok(uri) => panic!("{text} parsed as {uri:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_issue_example_parses_to_each_field() {
    let uri = parse_ok(
        "pkcs11:token=shiftkey;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/shiftkey/pin",
    );
    assert_eq!(uri.token.as_deref(), Some("shiftkey"));
    assert_eq!(uri.object.as_deref(), Some("user-ca"));
    assert_eq!(uri.module_path, PathBuf::from(SOFTHSM));
    assert_eq!(
        uri.pin_source,
        Some(PinSource::File(PathBuf::from("/etc/shiftkey/pin")))
    );
    assert_eq!(uri.id, None);
}

#[test]
fn percent_encoding_decodes_text_and_raw_id_bytes() {
    let uri = parse_ok(&format!(
        "pkcs11:token=My%20CA%3bprod;id=%01%A0%ff;object=caf%C3%A9?module-path={SOFTHSM}"
    ));
    assert_eq!(uri.token.as_deref(), Some("My CA;prod"));
    assert_eq!(uri.id, Some(vec![0x01, 0xa0, 0xff]));
    assert_eq!(uri.object.as_deref(), Some("café"));
}

#[test]
fn path_and_query_attributes_stay_in_their_part() {
    // A query attribute in the path is unknown there, and the reverse.
    assert!(matches!(
        parse_err(&format!("pkcs11:object=k;module-path={SOFTHSM}")),
        UriError::UnknownAttribute { part: "path", .. }
    ));
    assert!(matches!(
        parse_err(&format!("pkcs11:object=k?module-path={SOFTHSM}&token=t")),
        UriError::UnknownAttribute { part: "query", .. }
    ));
    // `/` is literal in the query (module paths) but must be escaped in the path.
    assert!(matches!(
        parse_err(&format!("pkcs11:object=a/b?module-path={SOFTHSM}")),
        UriError::BadCharacter { found: '/', .. }
    ));
    let uri = parse_ok(&format!("pkcs11:object=a%2Fb?module-path={SOFTHSM}"));
    assert_eq!(uri.object.as_deref(), Some("a/b"));
}

#[test]
fn every_rfc7512_path_attribute_is_understood() {
    let uri = parse_ok(&format!(
        "pkcs11:library-manufacturer=SoftHSM;library-description=Implementation%20of%20PKCS11;\
         library-version=2.6;slot-description=SoftHSM%20slot%20ID%200x1;slot-manufacturer=SoftHSM;\
         slot-id=1109014645;token=shiftkey;manufacturer=SoftHSM%20project;serial=a1b2c3;\
         model=SoftHSM%20v2;object=user-ca;id=%01;type=private?module-path={SOFTHSM}"
    ));
    assert_eq!(uri.library_manufacturer.as_deref(), Some("SoftHSM"));
    assert_eq!(
        uri.library_version,
        Some(LibraryVersion {
            major: 2,
            minor: Some(6)
        })
    );
    assert_eq!(uri.slot_id, Some(1_109_014_645));
    assert_eq!(uri.slot_description.as_deref(), Some("SoftHSM slot ID 0x1"));
    assert_eq!(uri.serial.as_deref(), Some("a1b2c3"));
    assert_eq!(uri.model.as_deref(), Some("SoftHSM v2"));
    assert_eq!(uri.manufacturer.as_deref(), Some("SoftHSM project"));
    assert_eq!(
        parse_ok(&format!(
            "pkcs11:object=k;library-version=3?module-path={SOFTHSM}"
        ))
        .library_version,
        Some(LibraryVersion {
            major: 3,
            minor: None
        })
    );
}

#[test]
fn unknown_and_vendor_attributes_are_refused_with_the_known_list() {
    let e = parse_err(&format!(
        "pkcs11:token=t;objet=user-ca?module-path={SOFTHSM}"
    ));
    assert_eq!(
        e,
        UriError::UnknownAttribute {
            name: "objet".into(),
            part: "path",
            known: PATH_ATTRIBUTES
        }
    );
    assert!(e.to_string().contains("object, id, type"), "{e}");
    assert!(matches!(
        parse_err(&format!("pkcs11:object=k;x-vendor=1?module-path={SOFTHSM}")),
        UriError::UnknownAttribute { .. }
    ));
}

#[test]
fn a_missing_or_relative_module_is_refused() {
    let e = parse_err("pkcs11:token=shiftkey;object=user-ca");
    assert_eq!(e, UriError::ModuleMissing);
    assert!(e.to_string().contains("module-path="), "{e}");
    assert_eq!(
        parse_err("pkcs11:object=k?module-path=libsofthsm2.so"),
        UriError::ModuleNotAbsolute {
            value: "libsofthsm2.so".into()
        }
    );
    assert_eq!(
        parse_err("pkcs11:object=k?module-name=softhsm2"),
        UriError::ModuleNameUnsupported
    );
}

#[test]
fn pin_value_is_refused_and_says_where_the_pin_goes() {
    let e = parse_err(&format!(
        "pkcs11:object=k?module-path={SOFTHSM}&pin-value=1234"
    ));
    assert_eq!(e, UriError::PinValueRefused);
    let message = e.to_string();
    assert!(message.contains("pin-source=file:"), "{message}");
    assert!(message.contains(crate::env_vars::PKCS11_PIN), "{message}");
    assert!(!message.contains("1234"), "{message}");
}

#[test]
fn pin_source_forms() {
    for form in ["file:/run/pin", "file:///run/pin", "/run/pin"] {
        let uri = parse_ok(&format!(
            "pkcs11:object=k?module-path={SOFTHSM}&pin-source={form}"
        ));
        assert_eq!(
            uri.pin_source,
            Some(PinSource::File(PathBuf::from("/run/pin"))),
            "{form}"
        );
    }
    // A command (`|/usr/bin/pinentry`) or a relative file is not a PIN source.
    for form in [
        "%7C/usr/bin/pinentry",
        "pin.txt",
        "https://example.invalid/pin",
    ] {
        assert!(
            matches!(
                parse_err(&format!(
                    "pkcs11:object=k?module-path={SOFTHSM}&pin-source={form}"
                )),
                UriError::UnsupportedPinSource { .. }
            ),
            "{form}"
        );
    }
}

#[test]
fn malformed_input_gets_a_typed_error() {
    let m = format!("?module-path={SOFTHSM}");
    type Expect = fn(&UriError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        ("pkcs12:object=k".into(), |e| *e == UriError::NotPkcs11),
        ("object=k".into(), |e| *e == UriError::NotPkcs11),
        (format!("pkcs11:object{m}"), |e| {
            matches!(e, UriError::NotNameValue { .. })
        }),
        (format!("pkcs11:=k{m}"), |e| {
            matches!(e, UriError::NotNameValue { .. })
        }),
        (format!("pkcs11:object=a;object=b{m}"), |e| {
            matches!(e, UriError::Duplicate { .. })
        }),
        (format!("pkcs11:object=%4{m}"), |e| {
            matches!(e, UriError::BadEscape { .. })
        }),
        (format!("pkcs11:object=%zz{m}"), |e| {
            matches!(e, UriError::BadEscape { .. })
        }),
        (format!("pkcs11:object=a b{m}"), |e| {
            matches!(e, UriError::BadCharacter { found: ' ', .. })
        }),
        (format!("pkcs11:object=caf\u{e9}{m}"), |e| {
            matches!(
                e,
                UriError::BadCharacter {
                    found: '\u{e9}',
                    ..
                }
            )
        }),
        (format!("pkcs11:object=%ff{m}"), |e| {
            matches!(e, UriError::NotUtf8 { .. })
        }),
        (format!("pkcs11:object={m}"), |e| {
            matches!(e, UriError::Empty { .. })
        }),
        (format!("pkcs11:id={m}"), |e| {
            matches!(e, UriError::Empty { .. })
        }),
        (format!("pkcs11:object=k;slot-id=0x1{m}"), |e| {
            matches!(e, UriError::BadSlotId { .. })
        }),
        (format!("pkcs11:object=k;library-version=2.x{m}"), |e| {
            matches!(e, UriError::BadLibraryVersion { .. })
        }),
        (format!("pkcs11:object=k;type=cert{m}"), |e| {
            matches!(e, UriError::BadType { .. })
        }),
        (format!("pkcs11:token=shiftkey{m}"), |e| {
            *e == UriError::NoObject
        }),
        (format!("pkcs11:object=k{m}&module-path=/other.so"), |e| {
            matches!(e, UriError::Duplicate { .. })
        }),
    ];
    for (text, expected) in cases {
        let e = parse_err(&text);
        assert!(expected(&e), "{text}: got {e:?}");
    }
}

#[test]
fn scheme_and_attribute_names_ignore_case_and_empty_pieces_are_skipped() {
    let uri = parse_ok(&format!("PKCS11:Token=t;;OBJECT=k;?Module-Path={SOFTHSM}&"));
    assert_eq!(uri.token.as_deref(), Some("t"));
    assert_eq!(uri.object.as_deref(), Some("k"));
}

#[test]
fn display_round_trips_and_never_holds_a_pin() {
    let texts = [
        "pkcs11:token=shiftkey;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/shiftkey/pin",
        "pkcs11:token=My%20CA;serial=ab;slot-id=7;library-version=2;id=%01%ff?module-path=/opt/hsm%20lib/p11.so",
        "pkcs11:object=caf%C3%A9%3B;model=m;library-version=1.2?module-path=/m.so",
    ];
    for text in texts {
        let uri = parse_ok(text);
        let shown = uri.to_string();
        assert_eq!(parse_ok(&shown), uri, "{text} -> {shown}");
        assert!(!shown.contains("pin-value"), "{shown}");
    }
}

#[test]
fn a_pin_file_path_with_two_leading_slashes_displays_as_it_parses() {
    // Found by the pkcs11_uri fuzz target: `//etc/pin` was shown as
    // `file://etc/pin`, which parses as the relative `etc/pin` and is refused.
    let uri = parse_ok("pkcs11:object=k?module-path=/m.so&pin-source=file:////etc/pin");
    let shown = uri.to_string();
    assert_eq!(parse_ok(&shown), uri, "{shown}");
    assert_eq!(parse_ok(&shown).to_string(), shown);
}
