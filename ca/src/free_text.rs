//! Free text the CA accepts from a caller and shows to others (an access
//! reason, an incident title, the reason of a denial, an override or a
//! lock): one line, refused when it holds a character that could hide or
//! reorder what a reviewer reads (`shiftkey_safe_text`: control, bidi and
//! zero-width characters). Each entry point audits the refusal under its
//! own kind before the 400.
//!
//! Never: accept such text; echo the refused text back (the error names
//! the character and where it is).

pub(crate) use shiftkey_safe_text::marked;

/// Free text refused: which field, and the first character that is not
/// allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field}: {refused}; such characters can hide or reorder what others read. Retype the text \
     (pasted text can carry invisible characters)"
)]
pub(crate) struct Unsafe {
    pub(crate) field: &'static str,
    pub(crate) refused: shiftkey_safe_text::Refused,
}

/// The API code of a refusal.
pub(crate) const CODE: &str = "unsafe-text";

/// Refuses `text` (the value of `field`) if it holds a character
/// `shiftkey_safe_text` knows.
pub(crate) fn check(field: &'static str, text: &str) -> Result<(), Unsafe> {
    shiftkey_safe_text::check(text).map_err(|refused| Unsafe { field, refused })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_field_and_character_without_echoing_the_text() {
        let e = check("reason", "LGTM \u{202e}devorppa\u{202c}").unwrap_err();
        let message = e.to_string();
        assert!(message.starts_with("reason: "), "{message}");
        assert!(message.contains("U+202E RLO"), "{message}");
        assert!(!message.contains("devorppa"), "{message}");
        assert!(check("title", "checkout latency").is_ok());
    }
}
