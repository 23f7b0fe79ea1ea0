//! Typed input as people read it: the keys, not the bytes. `⌫` for DEL and
//! backspace, `⏎` for Enter, `⇥` for Tab, `^C` for control keys, arrows and
//! the editing keys for their escape sequences, `⎋` for a lone Escape. Each
//! key is a `<kbd>` element, so a typed character that looks like a key
//! symbol (a literal `⌫`) reads differently from the key itself.
//!
//! Never: let a control, bidi or zero-width character through (what is no
//! key here is shown by its `shiftkey_safe_text` marker, through `esc`).

use std::fmt::Write as _;

use super::html::esc;

/// Escape sequences of keys, longest first where one is a prefix of another.
const SEQUENCES: [(&str, &str); 20] = [
    ("\x1b[A", "↑"),
    ("\x1b[B", "↓"),
    ("\x1b[C", "→"),
    ("\x1b[D", "←"),
    ("\x1bOA", "↑"),
    ("\x1bOB", "↓"),
    ("\x1bOC", "→"),
    ("\x1bOD", "←"),
    ("\x1b[H", "Home"),
    ("\x1b[F", "End"),
    ("\x1bOH", "Home"),
    ("\x1bOF", "End"),
    ("\x1b[1~", "Home"),
    ("\x1b[4~", "End"),
    ("\x1b[2~", "Ins"),
    ("\x1b[3~", "⌦"),
    ("\x1b[5~", "PgUp"),
    ("\x1b[6~", "PgDn"),
    ("\x1b[Z", "⇤"),
    ("\x1b", "⎋"),
];

/// The key a single character stands for, if it is one.
fn key(c: char) -> Option<String> {
    Some(match c {
        '\x7f' | '\x08' => "⌫".to_owned(),
        '\r' | '\n' => "⏎".to_owned(),
        '\t' => "⇥".to_owned(),
        '\0' => "^@".to_owned(),
        // Ctrl-A to Ctrl-Z and Ctrl-\ ] ^ _ (0x1b, Escape, is a sequence).
        '\x01'..='\x1a' | '\x1c'..='\x1f' => format!("^{}", char::from(c as u8 + 0x40)),
        _ => return None,
    })
}

/// One line of typed input as HTML: text escaped, keys as `<kbd>`.
pub(super) fn typed(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 16);
    let mut rest = input;
    while let Some(c) = rest.chars().next() {
        if let Some((seq, name)) = SEQUENCES.iter().find(|(seq, _)| rest.starts_with(seq)) {
            let _ = write!(out, r#"<kbd class="key">{name}</kbd>"#);
            rest = &rest[seq.len()..];
            continue;
        }
        match key(c) {
            Some(name) => {
                let _ = write!(out, r#"<kbd class="key">{}</kbd>"#, esc(&name));
            }
            None => out.push_str(&esc(c.encode_utf8(&mut [0; 4]))),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::typed;

    #[test]
    fn keys_read_as_keys() {
        let k = |name: &str| format!(r#"<kbd class="key">{name}</kbd>"#);
        assert_eq!(
            typed("ls\x7f\x7fpwd\r"),
            format!("ls{}{}pwd{}", k("⌫"), k("⌫"), k("⏎"))
        );
        assert_eq!(typed("\x03"), k("^C"));
        assert_eq!(typed("cd /tm\t"), format!("cd /tm{}", k("⇥")));
        assert_eq!(
            typed("\x1b[A\x1bOB\x1b[C\x1b[D\x1b[3~"),
            [k("↑"), k("↓"), k("→"), k("←"), k("⌦")].concat()
        );
        assert_eq!(typed("\x1b:wq"), format!("{}:wq", k("⎋")));
        // HTML and the characters that hide text: escaped and marked.
        assert_eq!(typed("<b>"), "&lt;b&gt;");
        assert_eq!(
            typed("LGTM \u{202e}devorppa\u{202c}\u{9b}"),
            "LGTM \u{27e8}RLO\u{27e9}devorppa\u{27e8}PDF\u{27e9}\u{27e8}CSI\u{27e9}"
        );
        // A typed key symbol is text, not a key.
        assert_eq!(typed("⌫"), "⌫");
    }
}
