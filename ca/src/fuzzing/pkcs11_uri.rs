//! PKCS#11 URI target (`crate::signer::uri`): operator input naming the CA
//! key. Properties: a refusal is a typed [`UriError`] with a message; a
//! parse displays as a URI that parses to the same value and displays the
//! same again (parse → display → parse is stable), no longer than
//! percent-encoding the input could make it.

use crate::signer::{Pkcs11Uri, UriError};

/// The fuzz entry point: the input as the text of `[keys] user = "..."`.
pub fn pkcs11_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let uri = match text.parse::<Pkcs11Uri>() {
        Ok(uri) => uri,
        Err(e) => {
            let e: UriError = e;
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let shown = uri.to_string();
    assert!(
        shown.len() <= 3 * text.len() + 16,
        "{} bytes displayed as {} bytes",
        text.len(),
        shown.len()
    );
    let again = shown
        .parse::<Pkcs11Uri>()
        .unwrap_or_else(|e| panic!("{text:?} displays as {shown:?}, which does not parse: {e}"));
    assert_eq!(
        again, uri,
        "{text:?} displays as {shown:?}, which parses to another URI"
    );
    assert_eq!(again.to_string(), shown, "display is not stable");
}

/// URIs as OpenSSH, p11-kit and step-ca documentation write them.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    [
        "pkcs11:token=shiftkey;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/shiftkey/pin",
        "pkcs11:token=My%20CA%3bprod;id=%01%A0%ff;object=caf%C3%A9?module-path=/usr/lib/softhsm/libsofthsm2.so",
        "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=3f1c0a1b2c3d4e5f;token=ca;id=%01;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so",
        "pkcs11:library-manufacturer=OpenSC%20Project;library-description=OpenSC%20smartcard%20framework;library-version=0.23;slot-id=0;object=SIGN%20key?module-path=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        "pkcs11:slot-description=Virtual%20token;slot-manufacturer=SoftHSM%20project;token=host-ca;object=host-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:///etc/shiftkey/pin",
        "PKCS11:token=yubikey;id=%02?module-path=/usr/lib/x86_64-linux-gnu/libykcs11.so",
    ]
    .into_iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}
