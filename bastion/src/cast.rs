//! asciicast v2 event lines that lose no byte.
//!
//! asciicast holds text: an `"o"` or `"i"` event's data is a JSON string.
//! Bytes that are UTF-8 go there as they are (JSON escapes only what it
//! must), so `asciinema play` and asciinema-player show them. Bytes that
//! are not UTF-8 go, in order, into an extra event type players skip:
//! `[t, "b", "o:BASE64"]` (output) or `[t, "b", "i:BASE64"]` (input).
//! The exact bytes of a stream are the concatenation, in file order, of its
//! text events (as UTF-8) and its byte events (decoded); `shiftkey
//! recordings cat` does that. Binary output is stored once (base64 of
//! random bytes gzips back to about its raw size), never beside a lossy
//! text copy.
//!
//! A chunk that is all UTF-8 (nearly all terminal output) is one text
//! event. Otherwise runs of at least [`MIN_TEXT_RUN`] valid bytes stay
//! text and everything between them is one byte event, so random output
//! does not become thousands of tiny events. A multi-byte character split
//! across two chunks is carried to the next one, so it stays text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Valid UTF-8 runs shorter than this, between invalid bytes, go into the
/// surrounding byte event.
pub(crate) const MIN_TEXT_RUN: usize = 16;

/// The event code for bytes that are not UTF-8.
pub(crate) const BYTES_CODE: &str = "b";

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// From the target (`"o"`).
    Output,
    /// From the user (`"i"`).
    Input,
}

impl Stream {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Stream::Output => "o",
            Stream::Input => "i",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Output => 0,
            Stream::Input => 1,
        }
    }
}

/// Appends the event lines for `data` (after what `carry` held) to `out`,
/// leaving an incomplete UTF-8 sequence at the end in `carry`.
pub(crate) fn encode(
    elapsed: f64,
    stream: Stream,
    carry: &mut Vec<u8>,
    data: &[u8],
    out: &mut Vec<u8>,
) {
    let joined;
    let bytes: &[u8] = if carry.is_empty() {
        data
    } else {
        carry.extend_from_slice(data);
        joined = std::mem::take(carry);
        &joined
    };
    let keep = incomplete_tail(bytes);
    let (body, tail) = bytes.split_at(bytes.len() - keep);
    carry.extend_from_slice(tail);
    if body.is_empty() {
        return;
    }
    if let Ok(text) = std::str::from_utf8(body) {
        text_line(out, elapsed, stream, text);
        return;
    }
    let mut binary_from: Option<usize> = None;
    let mut at = 0;
    for chunk in body.utf8_chunks() {
        let (valid, invalid) = (chunk.valid(), chunk.invalid());
        if valid.len() >= MIN_TEXT_RUN {
            if let Some(from) = binary_from.take() {
                bytes_line(out, elapsed, stream, body.get(from..at).unwrap_or_default());
            }
            text_line(out, elapsed, stream, valid);
            at += valid.len();
            if !invalid.is_empty() {
                binary_from = Some(at);
            }
        } else if binary_from.is_none() {
            binary_from = Some(at);
            at += valid.len();
        } else {
            at += valid.len();
        }
        at += invalid.len();
    }
    if let Some(from) = binary_from {
        bytes_line(out, elapsed, stream, body.get(from..at).unwrap_or_default());
    }
}

/// Appends what `carry` still holds (the end of a stream) as a byte event.
pub(crate) fn encode_rest(elapsed: f64, stream: Stream, carry: &mut Vec<u8>, out: &mut Vec<u8>) {
    if !carry.is_empty() {
        bytes_line(out, elapsed, stream, carry);
        carry.clear();
    }
}

/// How many bytes at the end start a UTF-8 character not complete yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    (1..=3usize.min(bytes.len()))
        .rev()
        .find(|&k| {
            let tail = bytes.get(bytes.len() - k..).unwrap_or_default();
            matches!(std::str::from_utf8(tail), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
        })
        .unwrap_or(0)
}

fn text_line(out: &mut Vec<u8>, elapsed: f64, stream: Stream, text: &str) {
    out.extend_from_slice(format!("[{elapsed},\"{}\",\"", stream.code()).as_bytes());
    escape_str_into(text, out);
    out.extend_from_slice(b"\"]\n");
}

fn bytes_line(out: &mut Vec<u8>, elapsed: f64, stream: Stream, bytes: &[u8]) {
    out.extend_from_slice(format!("[{elapsed},\"{BYTES_CODE}\",\"{}:", stream.code()).as_bytes());
    let start = out.len();
    out.resize(
        start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
        0,
    );
    let written = STANDARD
        .encode_slice(bytes, out.get_mut(start..).unwrap_or_default())
        .unwrap_or(0);
    out.truncate(start + written);
    out.extend_from_slice(b"\"]\n");
}

/// Appends `text` as the inside of a JSON string: only `"`, `\` and
/// control characters are escaped; runs of ordinary text are copied whole.
pub(crate) fn escape_str_into(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(plain..i).unwrap_or_default());
        plain = i + 1;
        if escaped.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escaped);
        }
    }
    out.extend_from_slice(bytes.get(plain..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of `stream` in event lines, as `recordings cat` rebuilds them.
    fn decode(lines: &[u8], stream: Stream) -> Vec<u8> {
        let mut bytes = Vec::new();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let event: serde_json::Value = serde_json::from_slice(line).unwrap();
            let data = event[2].as_str().unwrap();
            if event[1] == stream.code() {
                bytes.extend_from_slice(data.as_bytes());
            } else if event[1] == BYTES_CODE
                && let Some(b64) = data.strip_prefix(&format!("{}:", stream.code()))
            {
                bytes.extend(STANDARD.decode(b64).unwrap());
            }
        }
        bytes
    }

    fn roundtrip(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut out = Vec::new();
        let mut carry = Vec::new();
        for c in chunks {
            encode(0.5, Stream::Output, &mut carry, c, &mut out);
        }
        encode_rest(1.0, Stream::Output, &mut carry, &mut out);
        (decode(&out, Stream::Output), out)
    }

    #[test]
    fn text_is_one_text_event_that_players_show() {
        let (bytes, lines) = roundtrip(&["héllo \"q\" \\ \x1b[0m\r\n".as_bytes()]);
        assert_eq!(bytes, "héllo \"q\" \\ \x1b[0m\r\n".as_bytes());
        let text = String::from_utf8(lines).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let event: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(event[1], "o");
        assert_eq!(event[2], "héllo \"q\" \\ \u{1b}[0m\r\n");
    }

    #[test]
    fn a_character_split_across_chunks_stays_text() {
        let e = "é".as_bytes();
        let (bytes, lines) = roundtrip(&[&[b'a', e[0]], &[e[1], b'b']]);
        assert_eq!(bytes, "aéb".as_bytes());
        assert!(!String::from_utf8(lines).unwrap().contains("\"b\""));
        // Cut at the very end of the stream: kept as bytes.
        let (bytes, _) = roundtrip(&[&[b'a', 0xe2, 0x82]]);
        assert_eq!(bytes, [b'a', 0xe2, 0x82]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_exactly_beside_the_text() {
        let mut latin1 =
            b"caf\xe9 au lait avec du sucre, tr\xe8s bien, merci beaucoup\r\n".to_vec();
        latin1.extend_from_slice(b"\xff\xfe\x00binary\x80 then a long line of plain text\n");
        let (bytes, lines) = roundtrip(&[&latin1]);
        assert_eq!(bytes, latin1);
        let text = String::from_utf8(lines).unwrap();
        assert!(
            text.contains("au lait avec du sucre, tr"),
            "long runs stay text: {text}"
        );
        assert!(!text.contains('\u{FFFD}'));
    }

    #[test]
    fn random_bytes_roundtrip_in_few_events_and_input_is_separate() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<u8> = (0..100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let chunks: Vec<&[u8]> = random.chunks(32 * 1024).collect();
        let (bytes, lines) = roundtrip(&chunks);
        assert_eq!(bytes, random);
        let events = lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        assert!(events < 40, "{events} events for 4 chunks");
        // Base64 costs a third before compression, nothing more.
        assert!(lines.len() < random.len() * 4 / 3 + 2000, "{}", lines.len());
        let mut out = Vec::new();
        encode(0.1, Stream::Input, &mut Vec::new(), b"ls\r\xff", &mut out);
        assert_eq!(decode(&out, Stream::Input), b"ls\r\xff");
        assert!(decode(&out, Stream::Output).is_empty());
    }

    #[test]
    fn json_escapes_parse_back() {
        let mut out = Vec::new();
        escape_str_into("q\"b\\n\n\r\t\u{0}\u{1b}[0m\u{7f}", &mut out);
        let parsed: String =
            serde_json::from_str(&format!("\"{}\"", String::from_utf8(out).unwrap())).unwrap();
        assert_eq!(parsed, "q\"b\\n\n\r\t\u{0}\u{1b}[0m\u{7f}");
    }
}
