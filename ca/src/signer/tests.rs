//! The signer with key files, and with real SoftHSM2 tokens (each SoftHSM
//! test re-runs itself in a child process that sees its throwaway token
//! directory: see `shiftkey_tests::softhsm`).

use std::path::Path;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use shiftkey_tests::softhsm::{MODULE, SoftHsm, softhsm_test, test_name};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, Certificate, PrivateKey};

use super::*;

const NAMESPACE: &str = shiftkey_wire::RECORDING_NAMESPACE;
const PIN: &str = "2468";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn user_builder(principal: &str) -> Builder {
    let subject = PrivateKey::random(&mut super::file::rng(), Algorithm::Ed25519).unwrap();
    let mut b = Builder::new_with_random_nonce(
        &mut super::file::rng(),
        subject.public_key().key_data().clone(),
        now() - 60,
        now() + 600,
    )
    .unwrap();
    b.serial(7)
        .unwrap()
        .cert_type(CertType::User)
        .unwrap()
        .key_id("signer-test")
        .unwrap()
        .valid_principal(principal)
        .unwrap();
    b
}

/// The certificate is signed by `signer` and valid now, as ssh-key checks it.
fn assert_signed_by(cert: &Certificate, signer: &CaSigner) {
    assert_eq!(cert.signature_key(), signer.public_key().key_data());
    let fingerprint = signer.public_key().fingerprint(HashAlg::Sha256);
    cert.validate_at(now(), [&fingerprint]).unwrap();
}

fn no_pin() -> Pkcs11Options {
    Pkcs11Options {
        sessions: DEFAULT_SESSIONS,
        checkout_timeout: DEFAULT_CHECKOUT_TIMEOUT,
        env_pin: None,
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

// ---- key files ----

#[test]
fn key_file_signer_signs_certificates_and_seals() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, provenance) = ensure(
        dir.path(),
        CaKind::User,
        &KeyLocation::File,
        KeyAlgorithm::Ed25519,
        None,
        &no_pin(),
    )
    .unwrap();
    assert_eq!(provenance, Provenance::Created);
    assert_eq!(signer.algorithm(), KeyAlgorithm::Ed25519);
    assert_eq!(signer.location(), KeyLocation::File);
    // The same key the CA's key loader reads.
    let loaded = file::load(dir.path(), CaKind::User, None).unwrap();
    assert_eq!(
        loaded.public_key().key_data(),
        signer.public_key().key_data()
    );

    let cert = signer.certify_blocking(user_builder("alice")).unwrap();
    assert_signed_by(&cert, &signer);
    let sig = signer
        .sshsig_blocking(NAMESPACE, HashAlg::Sha512, b"manifest")
        .unwrap();
    signer
        .public_key()
        .verify(NAMESPACE, b"manifest", &sig)
        .unwrap();
    assert!(
        signer
            .public_key()
            .verify(NAMESPACE, b"other", &sig)
            .is_err()
    );

    // ssh-key's own entry points take the signer directly too.
    let cert = user_builder("bob").sign(&signer).unwrap();
    assert_signed_by(&cert, &signer);
}

#[test]
fn key_file_ensure_never_overwrites_and_open_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let pass = Secret::new("correct horse".into());
    let (first, _) = ensure(
        dir.path(),
        CaKind::Host,
        &KeyLocation::File,
        KeyAlgorithm::Ed25519,
        Some(&pass),
        &no_pin(),
    )
    .unwrap();
    let again = ensure(
        dir.path(),
        CaKind::Host,
        &KeyLocation::File,
        KeyAlgorithm::Ed25519,
        Some(&pass),
        &no_pin(),
    );
    assert!(matches!(
        again,
        Err(Error::KeyFile(file::Error::Exists { .. }))
    ));
    let opened = open(
        dir.path(),
        CaKind::Host,
        &KeyLocation::File,
        Some(&pass),
        &no_pin(),
    )
    .unwrap();
    assert_eq!(opened.fingerprint(), first.fingerprint());
    assert!(matches!(
        open(
            dir.path(),
            CaKind::Host,
            &KeyLocation::File,
            None,
            &no_pin()
        ),
        Err(Error::KeyFile(file::Error::PassphraseNeeded { .. }))
    ));
    // Key files are ed25519: asking for P-256 there is refused before
    // anything is written.
    let other = tempfile::tempdir().unwrap();
    assert!(matches!(
        ensure(
            other.path(),
            CaKind::User,
            &KeyLocation::File,
            KeyAlgorithm::EcdsaP256,
            None,
            &no_pin()
        ),
        Err(Error::UnknownAlgorithm { .. })
    ));
    assert!(files_under(other.path()).is_empty());
}

#[tokio::test]
async fn async_paths_sign_like_the_blocking_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = ensure(
        dir.path(),
        CaKind::User,
        &KeyLocation::File,
        KeyAlgorithm::Ed25519,
        None,
        &no_pin(),
    )
    .unwrap();
    let cert = signer.certify(user_builder("alice")).await.unwrap();
    assert_signed_by(&cert, &signer);
    let sig = signer
        .sshsig(NAMESPACE, HashAlg::Sha512, b"seal".to_vec())
        .await
        .unwrap();
    signer
        .public_key()
        .verify(NAMESPACE, b"seal", &sig)
        .unwrap();
}

#[test]
fn builder_errors_stay_typed() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = ensure(
        dir.path(),
        CaKind::User,
        &KeyLocation::File,
        KeyAlgorithm::Ed25519,
        None,
        &no_pin(),
    )
    .unwrap();
    // No principal at all would be a golden ticket: ssh-key refuses it.
    let subject = PrivateKey::random(&mut super::file::rng(), Algorithm::Ed25519).unwrap();
    let builder = Builder::new_with_random_nonce(
        &mut super::file::rng(),
        subject.public_key().key_data().clone(),
        now(),
        now() + 60,
    )
    .unwrap();
    assert!(matches!(
        signer.certify_blocking(builder),
        Err(Error::Build(_))
    ));
}

#[test]
fn debug_shows_the_fingerprint_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = ensure(
        dir.path(),
        CaKind::User,
        &KeyLocation::File,
        KeyAlgorithm::Ed25519,
        None,
        &no_pin(),
    )
    .unwrap();
    let pem = std::fs::read_to_string(file::key_path(dir.path(), CaKind::User)).unwrap();
    let shown = format!("{signer:?}");
    assert!(shown.contains(signer.fingerprint()), "{shown}");
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line), "{shown}");
    }
    let options = Pkcs11Options {
        env_pin: Some(Secret::new("hunter2".into())),
        ..no_pin()
    };
    assert!(!format!("{options:?}").contains("hunter2"));
}

#[test]
fn key_locations_parse() {
    assert_eq!("file".parse::<KeyLocation>().unwrap(), KeyLocation::File);
    let uri = format!("pkcs11:token=shiftkey;object=user-ca?module-path={MODULE}");
    let KeyLocation::Pkcs11(parsed) = uri.parse::<KeyLocation>().unwrap() else {
        panic!("not pkcs11")
    };
    assert_eq!(parsed.object.as_deref(), Some("user-ca"));
    assert!(matches!(
        "pkcs11:token=shiftkey".parse::<KeyLocation>(),
        Err(Error::Uri(UriError::ModuleMissing))
    ));
    assert!(matches!(
        "/etc/shiftkey/user_ca".parse::<KeyLocation>(),
        Err(Error::UnknownLocation { .. })
    ));
    assert_eq!(
        "ed25519".parse::<KeyAlgorithm>().unwrap(),
        KeyAlgorithm::Ed25519
    );
    assert_eq!(
        "ecdsa-p256".parse::<KeyAlgorithm>().unwrap(),
        KeyAlgorithm::EcdsaP256
    );
    assert!("rsa".parse::<KeyAlgorithm>().is_err());
}

#[test]
fn a_missing_module_is_a_typed_error() {
    for module in ["/nonexistent/libpkcs11.so", "/etc/hostname"] {
        let uri = format!("pkcs11:token=t;object=k?module-path={module}");
        let location: KeyLocation = uri.parse().unwrap();
        let options = Pkcs11Options {
            env_pin: Some(Secret::new(PIN.into())),
            ..no_pin()
        };
        match open(
            Path::new("/nonexistent"),
            CaKind::User,
            &location,
            None,
            &options,
        ) {
            Err(Error::ModuleLoad { module: m, reason }) => {
                assert_eq!(m, module);
                assert!(!reason.is_empty());
            }
            other => panic!("{module}: {other:?}"),
        }
    }
}

// ---- SoftHSM2 ----

fn uri(hsm: &SoftHsm, token: &str, object: &str) -> KeyLocation {
    let pin = hsm.root().join("pin");
    hsm.uri(token, object, &pin).parse().unwrap()
}

fn one_token(hsm: &SoftHsm) -> anyhow::Result<()> {
    hsm.init_token("shiftkey", PIN)?;
    hsm.pin_file("pin", PIN)?;
    Ok(())
}

/// Generated on the token, for both algorithms: certificates and SSHSIGs
/// that verify, nothing in the data directory, and a private key the token
/// will not hand out.
#[test]
fn softhsm_generates_on_the_token_and_signs() {
    let name = test_name(module_path!(), "softhsm_generates_on_the_token_and_signs");
    softhsm_test(&name, one_token, |hsm| {
        let data = tempfile::tempdir()?;
        for (object, algorithm) in [
            ("user-ca", KeyAlgorithm::Ed25519),
            ("host-ca", KeyAlgorithm::EcdsaP256),
        ] {
            let location = uri(hsm, "shiftkey", object);
            let (signer, provenance) = ensure(
                data.path(),
                CaKind::User,
                &location,
                algorithm,
                None,
                &no_pin(),
            )?;
            assert_eq!(provenance, Provenance::Created);
            assert_eq!(signer.algorithm(), algorithm);
            assert_eq!(signer.location(), location);
            let cert = signer.certify_blocking(user_builder("alice"))?;
            assert_signed_by(&cert, &signer);
            let sig = signer.sshsig_blocking(NAMESPACE, HashAlg::Sha512, b"manifest")?;
            signer.public_key().verify(NAMESPACE, b"manifest", &sig)?;

            // A second `ensure` finds the same key; `open` too.
            let (again, provenance) = ensure(
                data.path(),
                CaKind::User,
                &location,
                algorithm,
                None,
                &no_pin(),
            )?;
            assert_eq!(provenance, Provenance::Existing);
            assert_eq!(again.fingerprint(), signer.fingerprint());
            let opened = open(data.path(), CaKind::User, &location, None, &no_pin())?;
            assert_eq!(opened.public_line(), signer.public_line());
        }
        assert_eq!(files_under(data.path()), Vec::<String>::new());

        // Ask the token for the private values ourselves: it refuses.
        let context = module::load(match &uri(hsm, "shiftkey", "user-ca") {
            KeyLocation::Pkcs11(u) => u,
            KeyLocation::File | KeyLocation::NamedFile(_) => anyhow::bail!("not pkcs11"),
        })?;
        let slot = context.get_slots_with_token()?[0];
        let session = context.open_ro_session(slot)?;
        match session.login(UserType::User, Some(&AuthPin::new(PIN.into()))) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => return Err(e.into()),
        }
        let privates = session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
        assert_eq!(privates.len(), 2);
        for key in privates {
            let attributes = session.get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::Local,
                    AttributeType::Token,
                ],
            )?;
            for expected in [
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::NeverExtractable(true),
                Attribute::AlwaysSensitive(true),
                Attribute::Local(true),
                Attribute::Token(true),
            ] {
                assert!(
                    attributes.contains(&expected),
                    "{expected:?} in {attributes:?}"
                );
            }
            // CKA_VALUE of a sensitive key is unavailable: cryptoki skips it.
            let value = session.get_attributes(key, &[AttributeType::Value])?;
            assert!(value.is_empty(), "the token handed out a private value");
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn softhsm_wrong_pin_is_a_typed_error() {
    let name = test_name(module_path!(), "softhsm_wrong_pin_is_a_typed_error");
    softhsm_test(
        &name,
        |hsm| {
            hsm.init_token("shiftkey", PIN)?;
            hsm.pin_file("pin", "1111")?;
            Ok(())
        },
        |hsm| {
            let data = tempfile::tempdir()?;
            let location = uri(hsm, "shiftkey", "user-ca");
            let e = ensure(
                data.path(),
                CaKind::User,
                &location,
                KeyAlgorithm::Ed25519,
                None,
                &no_pin(),
            )
            .unwrap_err();
            assert!(
                matches!(&e, Error::PinIncorrect { token } if token == "shiftkey"),
                "{e:?}"
            );
            assert!(!e.to_string().contains("1111"), "{e}");
            // The environment PIN is only a fallback: the URI's file wins.
            let options = Pkcs11Options {
                env_pin: Some(Secret::new(PIN.into())),
                ..no_pin()
            };
            let e = open(data.path(), CaKind::User, &location, None, &options).unwrap_err();
            assert!(matches!(e, Error::PinIncorrect { .. }), "{e:?}");
            Ok(())
        },
    )
    .unwrap();
}

#[test]
fn softhsm_missing_object_and_token_are_typed_errors() {
    let name = test_name(
        module_path!(),
        "softhsm_missing_object_and_token_are_typed_errors",
    );
    softhsm_test(&name, one_token, |hsm| {
        let data = tempfile::tempdir()?;
        let e = open(
            data.path(),
            CaKind::User,
            &uri(hsm, "shiftkey", "nope"),
            None,
            &no_pin(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::ObjectNotFound { token, .. } if token == "shiftkey"),
            "{e:?}"
        );
        let e = open(
            data.path(),
            CaKind::User,
            &uri(hsm, "other", "user-ca"),
            None,
            &no_pin(),
        )
        .unwrap_err();
        match &e {
            Error::TokenNotFound { present, .. } => assert!(present.contains("`shiftkey`"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Without a PIN anywhere: says where to put one.
        let no_source: KeyLocation =
            format!("pkcs11:token=shiftkey;object=k?module-path={MODULE}").parse()?;
        let e = open(data.path(), CaKind::User, &no_source, None, &no_pin()).unwrap_err();
        assert!(matches!(e, Error::Pin(PinError::Missing)), "{e:?}");
        Ok(())
    })
    .unwrap();
}

/// A key made elsewhere: by OpenSC's `pkcs11-tool` (Ed25519 with the
/// `edwards25519` string as CKA_EC_PARAMS) it is used; asked for as the
/// other algorithm it is refused; an extractable one is refused.
#[test]
fn softhsm_keys_made_elsewhere_are_checked() {
    let name = test_name(module_path!(), "softhsm_keys_made_elsewhere_are_checked");
    softhsm_test(
        &name,
        |hsm| {
            one_token(hsm)?;
            run_tool(
                hsm,
                &[
                    "--login",
                    "--pin",
                    PIN,
                    "--token-label",
                    "shiftkey",
                    "--keypairgen",
                    "--key-type",
                    "EC:edwards25519",
                    "--label",
                    "opensc-ed",
                    "--id",
                    "0a0b",
                ],
            )?;
            Ok(())
        },
        |hsm| {
            let data = tempfile::tempdir()?;
            let location = uri(hsm, "shiftkey", "opensc-ed");
            let signer = open(data.path(), CaKind::User, &location, None, &no_pin())?;
            assert_eq!(signer.algorithm(), KeyAlgorithm::Ed25519);
            let cert = signer.certify_blocking(user_builder("alice"))?;
            assert_signed_by(&cert, &signer);
            let e = ensure(
                data.path(),
                CaKind::User,
                &location,
                KeyAlgorithm::EcdsaP256,
                None,
                &no_pin(),
            )
            .unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::AlgorithmMismatch {
                        found: KeyAlgorithm::Ed25519,
                        wanted: KeyAlgorithm::EcdsaP256,
                        ..
                    }
                ),
                "{e:?}"
            );

            // An extractable key, made through the module directly.
            let KeyLocation::Pkcs11(parsed) = &location else {
                anyhow::bail!("not pkcs11")
            };
            let context = module::load(parsed)?;
            let slot = context.get_slots_with_token()?[0];
            let session = context.open_rw_session(slot)?;
            let _ = session.login(UserType::User, Some(&AuthPin::new(PIN.into())));
            session.generate_key_pair(
                &cryptoki::mechanism::Mechanism::EccEdwardsKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::EcParams(encoding::ED25519_OID.to_vec()),
                    Attribute::Label(b"leaky".to_vec()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Sign(true),
                    Attribute::Label(b"leaky".to_vec()),
                ],
            )?;
            let e = open(
                data.path(),
                CaKind::User,
                &uri(hsm, "shiftkey", "leaky"),
                None,
                &no_pin(),
            )
            .unwrap_err();
            assert!(matches!(e, Error::KeyExtractable { .. }), "{e:?}");
            Ok(())
        },
    )
    .unwrap();
}

/// Many threads over a pool of 4 sessions; then the token logs every
/// session out under the signer, which recovers with new sessions.
#[test]
fn softhsm_pool_signs_concurrently_and_survives_lost_sessions() {
    let name = test_name(
        module_path!(),
        "softhsm_pool_signs_concurrently_and_survives_lost_sessions",
    );
    softhsm_test(&name, one_token, |hsm| {
        let data = tempfile::tempdir()?;
        let location = uri(hsm, "shiftkey", "user-ca");
        let (signer, _) = ensure(
            data.path(),
            CaKind::User,
            &location,
            KeyAlgorithm::EcdsaP256,
            None,
            &no_pin(),
        )?;
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let signer = signer.clone();
                thread::spawn(move || {
                    for _ in 0..10 {
                        let cert = signer
                            .certify_blocking(user_builder(&format!("u{i}")))
                            .unwrap();
                        assert_signed_by(&cert, &signer);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| anyhow::anyhow!("a signing thread panicked"))?;
        }

        // Logging out is per application: every pooled session loses it.
        let KeyLocation::Pkcs11(parsed) = &location else {
            anyhow::bail!("not pkcs11")
        };
        let context = module::load(parsed)?;
        let slot = context.get_slots_with_token()?[0];
        let session = context.open_ro_session(slot)?;
        session.logout()?;
        drop(session);
        for _ in 0..6 {
            let cert = signer.certify_blocking(user_builder("after-logout"))?;
            assert_signed_by(&cert, &signer);
        }
        Ok(())
    })
    .unwrap();
}

pub(super) fn run_tool(hsm: &SoftHsm, args: &[&str]) -> anyhow::Result<String> {
    shiftkey_tests::util::run_ok(hsm.pkcs11_tool()?.args(args))
}
