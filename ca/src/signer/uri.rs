//! RFC 7512 PKCS#11 URIs naming a CA key, as OpenSSH, p11-kit and step-ca
//! write them:
//! `pkcs11:token=shiftkey;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/shiftkey/pin`.
//!
//! This is a parser of operator input. It accepts the path attributes of
//! RFC 7512 that select a library, slot, token and object, and the query
//! attributes `module-path` and `pin-source`. It refuses, each with an error
//! that says what to write instead:
//! - attributes it does not know, vendor `x-` ones included: a typo such as
//!   `objet=user-ca` must not silently widen the match to every key;
//! - an attribute given twice;
//! - `pin-value`: a PIN inside the URI ends up in ca.toml, shell history and
//!   process listings; the PIN comes from `pin-source=file:...` or the
//!   `SHIFTKEY_PKCS11_PIN` environment variable instead;
//! - `module-name` (we do not guess a module directory: give `module-path`),
//!   a missing or relative `module-path`, a `pin-source` that is not a file;
//! - a URI that names no object (`object=` or `id=`), or one that names a
//!   type other than `private`.
//!
//! Values are percent-decoded; `id` is raw bytes (`id=%01%a0`), every other
//! value must decode to UTF-8.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The scheme prefix, lower case as RFC 7512 writes it (matched without
/// regard to case, as URI schemes are).
const SCHEME: &str = "pkcs11:";

/// Path attributes we accept (RFC 7512 section 2.3), for error messages.
const PATH_ATTRIBUTES: &str = "token, manufacturer, serial, model, library-manufacturer, \
     library-description, library-version, slot-description, slot-manufacturer, slot-id, \
     object, id, type";
/// Query attributes we accept.
const QUERY_ATTRIBUTES: &str = "module-path, pin-source";

/// Why a PKCS#11 URI was refused. Each message ends with what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UriError {
    #[error(
        "not a PKCS#11 URI: it must start with `pkcs11:` (for example `pkcs11:token=shiftkey;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so`)"
    )]
    NotPkcs11,
    #[error("PKCS#11 URI attribute `{text}` is not NAME=VALUE; write e.g. `object=user-ca`")]
    NotNameValue { text: String },
    #[error(
        "unknown PKCS#11 URI {part} attribute `{name}`; the {part} attributes Shiftkey understands are: {known}"
    )]
    UnknownAttribute {
        name: String,
        part: &'static str,
        known: &'static str,
    },
    #[error("PKCS#11 URI attribute `{name}` is given twice; keep one")]
    Duplicate { name: String },
    #[error(
        "PKCS#11 URI attribute `{name}` has a bad percent escape: `%` must be followed by two hex digits (write `%25` for a literal `%`)"
    )]
    BadEscape { name: String },
    #[error(
        "PKCS#11 URI attribute `{name}` contains {found:?}, which must be percent-encoded (e.g. a space as `%20`)"
    )]
    BadCharacter { name: String, found: char },
    #[error(
        "PKCS#11 URI attribute `{name}` is not UTF-8 once percent-decoded; only `id` may hold raw bytes"
    )]
    NotUtf8 { name: String },
    #[error("PKCS#11 URI attribute `{name}` is empty; give it a value or leave it out")]
    Empty { name: String },
    #[error(
        "PKCS#11 URI `slot-id={value}` is not a decimal slot number; `pkcs11-tool --list-slots` shows them"
    )]
    BadSlotId { value: String },
    #[error("PKCS#11 URI `library-version={value}` is not MAJOR or MAJOR.MINOR (e.g. `2.6`)")]
    BadLibraryVersion { value: String },
    #[error(
        "PKCS#11 URI `type={value}` cannot name a CA signing key; leave `type` out or write `type=private`"
    )]
    BadType { value: String },
    #[error("PKCS#11 URI carries `pin-value`: Shiftkey refuses PINs inside URIs (they end up in config files, shell history and process lists); put the PIN in a file readable only by the CA (mode 0600) and write `pin-source=file:/path/to/pin`, or set {var}", var = crate::env_vars::PKCS11_PIN)]
    PinValueRefused,
    #[error(
        "PKCS#11 URI `pin-source={value}` is not supported: only a file is (`pin-source=file:/etc/shiftkey/pin` or an absolute path)"
    )]
    UnsupportedPinSource { value: String },
    #[error(
        "PKCS#11 URI `module-name` is not supported (Shiftkey does not guess module directories); write `module-path=` with the module's absolute path, e.g. `module-path=/usr/lib/softhsm/libsofthsm2.so`"
    )]
    ModuleNameUnsupported,
    #[error(
        "PKCS#11 URI names no module: add `?module-path=` with the absolute path of the token's PKCS#11 library (SoftHSM2: `module-path=/usr/lib/softhsm/libsofthsm2.so`)"
    )]
    ModuleMissing,
    #[error(
        "PKCS#11 URI `module-path={value}` is not an absolute path; write the full path so the library cannot be picked up from the working directory"
    )]
    ModuleNotAbsolute { value: String },
    #[error(
        "PKCS#11 URI names no key: add `object=LABEL` (the key's CKA_LABEL) or `id=%01%02` (its CKA_ID)"
    )]
    NoObject,
}

/// A `library-version` of `MAJOR` (any minor) or `MAJOR.MINOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LibraryVersion {
    pub(crate) major: u8,
    pub(crate) minor: Option<u8>,
}

/// Where the PIN comes from when the URI says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinSource {
    /// A file holding the PIN (one trailing newline is ignored).
    File(PathBuf),
}

/// A parsed PKCS#11 URI naming one private key on one token. Every field is
/// a constraint the token and object must meet; `None` means "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pkcs11Uri {
    pub(crate) library_manufacturer: Option<String>,
    pub(crate) library_description: Option<String>,
    pub(crate) library_version: Option<LibraryVersion>,
    pub(crate) slot_id: Option<u64>,
    pub(crate) slot_description: Option<String>,
    pub(crate) slot_manufacturer: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) manufacturer: Option<String>,
    pub(crate) serial: Option<String>,
    pub(crate) model: Option<String>,
    /// CKA_LABEL of the key objects.
    pub(crate) object: Option<String>,
    /// CKA_ID of the key objects.
    pub(crate) id: Option<Vec<u8>>,
    // INVARIANT: absolute (checked by the parser).
    pub(crate) module_path: PathBuf,
    pub(crate) pin_source: Option<PinSource>,
}

impl FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Self, UriError> {
        parse(text)
    }
}

fn parse(text: &str) -> Result<Pkcs11Uri, UriError> {
    let text = text.trim();
    let rest = match text.get(..SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => &text[SCHEME.len()..],
        _ => return Err(UriError::NotPkcs11),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let mut uri = Pkcs11Uri {
        library_manufacturer: None,
        library_description: None,
        library_version: None,
        slot_id: None,
        slot_description: None,
        slot_manufacturer: None,
        token: None,
        manufacturer: None,
        serial: None,
        model: None,
        object: None,
        id: None,
        module_path: PathBuf::new(),
        pin_source: None,
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, raw) in attributes(path, ';')? {
        note(&mut seen, &name)?;
        path_attribute(&mut uri, &name, raw)?;
    }
    let mut module = None;
    for (name, raw) in attributes(query.unwrap_or(""), '&')? {
        note(&mut seen, &name)?;
        match name.as_str() {
            "module-path" => module = Some(text_value(&name, raw, true)?),
            "pin-source" => uri.pin_source = Some(pin_source(&text_value(&name, raw, true)?)?),
            "pin-value" => return Err(UriError::PinValueRefused),
            "module-name" => return Err(UriError::ModuleNameUnsupported),
            _ => {
                return Err(UriError::UnknownAttribute {
                    name,
                    part: "query",
                    known: QUERY_ATTRIBUTES,
                });
            }
        }
    }
    let module = module.ok_or(UriError::ModuleMissing)?;
    let module_path = PathBuf::from(&module);
    if !module_path.is_absolute() {
        return Err(UriError::ModuleNotAbsolute { value: module });
    }
    uri.module_path = module_path;
    if uri.object.is_none() && uri.id.is_none() {
        return Err(UriError::NoObject);
    }
    Ok(uri)
}

/// Splits `part` at `separator` into (lower-case name, raw value) pairs.
/// Empty pieces (`a=1;;b=2`, a trailing `;`) are skipped as p11-kit does.
fn attributes(part: &str, separator: char) -> Result<Vec<(String, &str)>, UriError> {
    part.split(separator)
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_ascii_lowercase(), value)),
            _ => Err(UriError::NotNameValue {
                text: piece.to_owned(),
            }),
        })
        .collect()
}

fn note(seen: &mut Vec<String>, name: &str) -> Result<(), UriError> {
    if seen.iter().any(|s| s == name) {
        return Err(UriError::Duplicate {
            name: name.to_owned(),
        });
    }
    seen.push(name.to_owned());
    Ok(())
}

fn path_attribute(uri: &mut Pkcs11Uri, name: &str, raw: &str) -> Result<(), UriError> {
    let text = |raw: &str| text_value(name, raw, false);
    match name {
        "token" => uri.token = Some(text(raw)?),
        "manufacturer" => uri.manufacturer = Some(text(raw)?),
        "serial" => uri.serial = Some(text(raw)?),
        "model" => uri.model = Some(text(raw)?),
        "library-manufacturer" => uri.library_manufacturer = Some(text(raw)?),
        "library-description" => uri.library_description = Some(text(raw)?),
        "library-version" => uri.library_version = Some(library_version(&text(raw)?)?),
        "slot-description" => uri.slot_description = Some(text(raw)?),
        "slot-manufacturer" => uri.slot_manufacturer = Some(text(raw)?),
        "slot-id" => {
            let value = text(raw)?;
            let id = value
                .parse::<u64>()
                .map_err(|_| UriError::BadSlotId { value })?;
            uri.slot_id = Some(id);
        }
        "object" => uri.object = Some(text(raw)?),
        "id" => {
            let bytes = decode(name, raw, false)?;
            if bytes.is_empty() {
                return Err(UriError::Empty {
                    name: name.to_owned(),
                });
            }
            uri.id = Some(bytes);
        }
        "type" => {
            let value = text(raw)?;
            if value != "private" {
                return Err(UriError::BadType { value });
            }
        }
        _ => {
            return Err(UriError::UnknownAttribute {
                name: name.to_owned(),
                part: "path",
                known: PATH_ATTRIBUTES,
            });
        }
    }
    Ok(())
}

/// A percent-decoded, non-empty UTF-8 value.
fn text_value(name: &str, raw: &str, in_query: bool) -> Result<String, UriError> {
    let bytes = decode(name, raw, in_query)?;
    if bytes.is_empty() {
        return Err(UriError::Empty {
            name: name.to_owned(),
        });
    }
    String::from_utf8(bytes).map_err(|_| UriError::NotUtf8 {
        name: name.to_owned(),
    })
}

/// Percent-decodes one value. Literal characters must be printable ASCII
/// other than the URI's own delimiters (`/` and `?` only in the query, where
/// module paths need them unescaped).
fn decode(name: &str, raw: &str, in_query: bool) -> Result<Vec<u8>, UriError> {
    let mut out = Vec::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UriError::BadEscape {
                    name: name.to_owned(),
                })?;
            out.push(hex);
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_graphic()
            && !matches!(
                b,
                b'#' | b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'}'
            )
            && (in_query || !matches!(b, b'/' | b'?'));
        if !allowed {
            let found = raw
                .get(i..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            return Err(UriError::BadCharacter {
                name: name.to_owned(),
                found,
            });
        }
        out.push(b);
        i += 1;
    }
    Ok(out)
}

fn library_version(value: &str) -> Result<LibraryVersion, UriError> {
    let bad = || UriError::BadLibraryVersion {
        value: value.to_owned(),
    };
    let (major, minor) = match value.split_once('.') {
        Some((major, minor)) => (major, Some(minor)),
        None => (value, None),
    };
    let major = major.parse::<u8>().map_err(|_| bad())?;
    let minor = minor
        .map(|m| m.parse::<u8>().map_err(|_| bad()))
        .transpose()?;
    Ok(LibraryVersion { major, minor })
}

fn pin_source(value: &str) -> Result<PinSource, UriError> {
    // `file:/p`, `file:///p` and a bare absolute path all name a file.
    let path = if let Some(rest) = value.strip_prefix("file://") {
        rest
    } else if let Some(rest) = value.strip_prefix("file:") {
        rest
    } else {
        value
    };
    if path.starts_with('/') {
        Ok(PinSource::File(PathBuf::from(path)))
    } else {
        Err(UriError::UnsupportedPinSource {
            value: value.to_owned(),
        })
    }
}

/// Re-encodes the URI in its canonical form: safe to log (it never holds a
/// PIN, only where to find one) and parseable again to an equal value.
impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path: Vec<String> = Vec::new();
        let mut text = |name: &str, value: &Option<String>| {
            if let Some(v) = value {
                path.push(format!("{name}={}", encode(v.as_bytes(), false)));
            }
        };
        text("library-manufacturer", &self.library_manufacturer);
        text("library-description", &self.library_description);
        text("slot-description", &self.slot_description);
        text("slot-manufacturer", &self.slot_manufacturer);
        text("token", &self.token);
        text("manufacturer", &self.manufacturer);
        text("serial", &self.serial);
        text("model", &self.model);
        text("object", &self.object);
        if let Some(v) = self.library_version {
            path.push(match v.minor {
                Some(minor) => format!("library-version={}.{minor}", v.major),
                None => format!("library-version={}", v.major),
            });
        }
        if let Some(id) = self.slot_id {
            path.push(format!("slot-id={id}"));
        }
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02x}")).collect();
            path.push(format!("id={hex}"));
        }
        write!(
            f,
            "pkcs11:{}?module-path={}",
            path.join(";"),
            encode(self.module_path.as_os_str().as_encoded_bytes(), true)
        )?;
        if let Some(PinSource::File(p)) = &self.pin_source {
            let path = p.as_os_str().as_encoded_bytes();
            // `file:` and the path, unless the path starts with `//`: the
            // parser reads `file://` as the prefix, which would drop two
            // slashes (`//etc/pin` would come back as `etc/pin`, refused).
            let scheme = if path.starts_with(b"//") {
                "file://"
            } else {
                "file:"
            };
            write!(f, "&pin-source={scheme}{}", encode(path, true))?;
        }
        Ok(())
    }
}

fn encode(bytes: &[u8], in_query: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let plain = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
            )
            || (in_query && b == b'/');
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
