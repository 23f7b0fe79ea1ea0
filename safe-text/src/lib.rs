//! Text a reviewer reads must say what it seems to say.
//!
//! One definition, shared by the CA and the client, of the characters that
//! can hide, reorder or disguise text on a screen: control characters (C0,
//! DEL, C1), bidirectional controls, zero-width characters and the Unicode
//! line separators. `LGTM \u{202e}devorppa\u{202c}` reads "LGTM approved"
//! in a browser or a terminal; an incident title can borrow a change
//! ticket's number the same way.
//!
//! - [`check`] refuses them in free text before it is accepted (an access
//!   reason, an incident title, a deny, override or lock reason).
//! - [`marked`] shows text that cannot be refused because it was recorded
//!   (typed input, exec command labels, output shown as text, rows written
//!   before the check existed) with each of them as a visible marker: C0
//!   controls and DEL as their Unicode control pictures (`␛`, `␡`), the
//!   others by name in angle brackets (`⟨CSI⟩`, `⟨RLO⟩`, `⟨ZWSP⟩`).
//!
//! Never: let one of these characters through [`marked`]; give two of them
//! the same marker; grow beyond this one concern (it is no "common" crate,
//! and depends on nothing).

use std::borrow::Cow;
use std::fmt;

/// The kinds of character that can hide or disguise text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hazard {
    /// A C0 control character, U+0000 to U+001F (escape, carriage return,
    /// backspace, newline, tab, ...).
    Control,
    /// DEL, U+007F.
    Delete,
    /// A C1 control character, U+0080 to U+009F (U+009B is a one-byte CSI
    /// to many terminals).
    C1Control,
    /// A bidirectional control: embeddings and overrides U+202A to U+202E,
    /// isolates U+2066 to U+2069, the marks U+200E, U+200F and U+061C.
    Bidi,
    /// A zero-width character: U+200B to U+200D, U+2060, U+FEFF.
    ZeroWidth,
    /// The line and paragraph separators U+2028 and U+2029.
    Separator,
}

impl Hazard {
    /// The kind in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Hazard::Control => "a control character",
            Hazard::Delete => "the DEL control character",
            Hazard::C1Control => "a C1 control character",
            Hazard::Bidi => "a bidirectional control, which reorders the text around it",
            Hazard::ZeroWidth => "a zero-width character",
            Hazard::Separator => "a Unicode line separator",
        }
    }
}

/// Whether `c` is one of the characters this crate is about, and which kind.
pub fn hazard(c: char) -> Option<Hazard> {
    match c {
        '\u{0}'..='\u{1f}' => Some(Hazard::Control),
        '\u{7f}' => Some(Hazard::Delete),
        '\u{80}'..='\u{9f}' => Some(Hazard::C1Control),
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' => {
            Some(Hazard::Bidi)
        }
        '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' => Some(Hazard::ZeroWidth),
        '\u{2028}' | '\u{2029}' => Some(Hazard::Separator),
        _ => None,
    }
}

const C0_NAMES: [&str; 32] = [
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR",
    "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC",
    "FS", "GS", "RS", "US",
];
const C1_NAMES: [&str; 32] = [
    "PAD", "HOP", "BPH", "NBH", "IND", "NEL", "SSA", "ESA", "HTS", "HTJ", "VTS", "PLD", "PLU",
    "RI", "SS2", "SS3", "DCS", "PU1", "PU2", "STS", "CCH", "MW", "SPA", "EPA", "SOS", "SGC", "SCI",
    "CSI", "ST", "OSC", "PM", "APC",
];

/// The short name of one of these characters (`ESC`, `CSI`, `RLO`,
/// `ZWSP`); `None` for any other character.
pub fn name(c: char) -> Option<&'static str> {
    let code = c as u32;
    Some(match c {
        '\u{0}'..='\u{1f}' => C0_NAMES[code as usize],
        '\u{7f}' => "DEL",
        '\u{80}'..='\u{9f}' => C1_NAMES[(code - 0x80) as usize],
        '\u{61c}' => "ALM",
        '\u{200e}' => "LRM",
        '\u{200f}' => "RLM",
        '\u{202a}' => "LRE",
        '\u{202b}' => "RLE",
        '\u{202c}' => "PDF",
        '\u{202d}' => "LRO",
        '\u{202e}' => "RLO",
        '\u{2066}' => "LRI",
        '\u{2067}' => "RLI",
        '\u{2068}' => "FSI",
        '\u{2069}' => "PDI",
        '\u{200b}' => "ZWSP",
        '\u{200c}' => "ZWNJ",
        '\u{200d}' => "ZWJ",
        '\u{2060}' => "WJ",
        '\u{feff}' => "BOM",
        '\u{2028}' => "LSEP",
        '\u{2029}' => "PSEP",
        _ => return None,
    })
}

/// The visible marker that stands for `c`, if `c` is one of these
/// characters: a control picture for C0 controls and DEL (`␛`, `␍`, `␡`),
/// the name in angle brackets for the others (`⟨CSI⟩`, `⟨RLO⟩`).
pub fn marker(c: char) -> Option<Cow<'static, str>> {
    match hazard(c)? {
        // U+2400 CONTROL PICTURE FOR NULL onwards, in the C0 order.
        Hazard::Control => char::from_u32(0x2400 + c as u32).map(|p| Cow::Owned(p.to_string())),
        Hazard::Delete => Some(Cow::Borrowed("\u{2421}")),
        _ => name(c).map(|n| Cow::Owned(format!("\u{27e8}{n}\u{27e9}"))),
    }
}

/// `text` with every character [`hazard`] knows replaced by its
/// [`marker`]; borrowed when there is none.
pub fn marked(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(|c| hazard(c).is_some()) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        match marker(c) {
            Some(m) => out.push_str(&m),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The first character [`check`] refused, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The character.
    pub character: char,
    /// Its kind.
    pub hazard: Hazard,
    /// Its position, counted in characters from 1.
    pub position: usize,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "character {} at position {} is U+{:04X} {}, {}",
            marker(self.character).unwrap_or_default(),
            self.position,
            self.character as u32,
            name(self.character).unwrap_or("?"),
            self.hazard.describe()
        )
    }
}

impl std::error::Error for Refused {}

/// Refuses free text that holds any character [`hazard`] knows (one line
/// of text: newlines and tabs are refused too).
pub fn check(text: &str) -> Result<(), Refused> {
    match text
        .chars()
        .enumerate()
        .find_map(|(i, c)| hazard(c).map(|h| (i, c, h)))
    {
        None => Ok(()),
        Some((i, character, hazard)) => Err(Refused {
            character,
            hazard,
            position: i + 1,
        }),
    }
}

#[cfg(test)]
mod tests;
