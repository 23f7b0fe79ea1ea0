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
//! does not become thousands of tiny events. A chunk in which more than one
//! byte in [`BINARY_DENSITY`] can never occur in UTF-8 (random or compressed
//! data: about one in twenty) is binary and one byte event whole, without
//! that search (which would stop every few bytes). A multi-byte character split
//! across two chunks is carried to the next one, so it stays text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Valid UTF-8 runs shorter than this, between invalid bytes, go into the
/// surrounding byte event.
pub(crate) const MIN_TEXT_RUN: usize = 16;

/// A chunk with more than one byte in this many that never occurs in
/// UTF-8 is one byte event.
pub(crate) const BINARY_DENSITY: usize = 32;

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
    let mut prefix = Prefix::new(elapsed, stream);
    let utf8 = std::str::from_utf8(body).ok();
    if let Some(text) = utf8
        && !has_control_run(body)
    {
        text_line(out, &mut prefix, text);
        return;
    }
    if utf8.is_none() && is_dense_binary(body) {
        bytes_line(out, &mut prefix, body);
        return;
    }
    let spans = spans(body, utf8.is_some());
    for span in spans {
        let piece = body.get(span.from..span.to).unwrap_or_default();
        // Spans marked text are whole UTF-8 (cut only at ASCII bytes).
        match std::str::from_utf8(piece) {
            Ok(text) if span.text => text_line(out, &mut prefix, text),
            _ => bytes_line(out, &mut prefix, piece),
        }
    }
}

/// Whether more than one byte in [`BINARY_DENSITY`] is one that UTF-8
/// never uses (RFC 3629 §1: C0, C1, F5-FF). Text that is not UTF-8
/// (Latin-1, say) has almost none; random bytes have one in twenty.
fn is_dense_binary(bytes: &[u8]) -> bool {
    // A plain count over the slice, which the compiler vectorises.
    let never = bytes
        .iter()
        .filter(|&&b| b == 0xc0 || b == 0xc1 || b >= 0xf5)
        .count();
    never * BINARY_DENSITY > bytes.len()
}

/// Bytes that JSON can only hold as a six-byte `\u00XX` escape.
fn needs_unicode_escape(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t')
}

/// A run of `MIN_TEXT_RUN` bytes or more that JSON would escape one by one
/// (a stream of NULs, say): cheaper and as exact in a byte event, and
/// nothing a player would show.
fn has_control_run(bytes: &[u8]) -> bool {
    let mut run = 0usize;
    let mut at = 0usize;
    while at < bytes.len() {
        // Eight bytes at a time while none of them is a control byte.
        if run == 0
            && let Some(x) = word_at(bytes, at)
            && !has_byte_below(x, 0x20)
        {
            at += 8;
            continue;
        }
        if bytes.get(at).copied().is_some_and(needs_unicode_escape) {
            run += 1;
            if run >= MIN_TEXT_RUN {
                return true;
            }
        } else {
            run = 0;
        }
        at += 1;
    }
    false
}

/// How many bytes at the start of `bytes` JSON would escape one by one:
/// eight at a time while all eight are (a run of NULs, say).
fn escape_run(bytes: &[u8]) -> usize {
    const HIGHS3: u64 = 0xe0e0_e0e0_e0e0_e0e0;
    let mut n = 0;
    while let Some(x) = word_at(bytes, n) {
        let all_controls = x & HIGHS3 == 0;
        if !all_controls || has_byte(x, b'\n') || has_byte(x, b'\r') || has_byte(x, b'\t') {
            break;
        }
        n += 8;
    }
    n + bytes
        .get(n..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| needs_unicode_escape(**b))
        .count()
}

/// The eight bytes at `at` as one word, if there are eight: the scans here
/// test them together with the bit tricks below.
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let word: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(word))
}

/// Whether a byte of `x` is below `n` (n <= 128).
const fn has_byte_below(x: u64, n: u8) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    (x.wrapping_sub(ONES * n as u64) & !x & HIGHS) != 0
}

/// Whether a byte of `x` equals `b`.
const fn has_byte(x: u64, b: u8) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    has_byte_below(x ^ (ONES * b as u64), 1)
}

/// A part of a chunk: text (an `"o"`/`"i"` event) or bytes (`"b"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    from: usize,
    to: usize,
    text: bool,
}

/// Splits a chunk that is not all plain text: valid UTF-8 runs of at least
/// `MIN_TEXT_RUN` bytes stay text; bytes that are not UTF-8, shorter runs
/// between them, and long runs of control bytes go into byte events.
fn spans(body: &[u8], all_utf8: bool) -> Vec<Span> {
    // Valid bytes, then how many invalid ones follow: the whole body when
    // it is known to be UTF-8 (std's check is fast; `utf8_chunks` walks
    // byte by byte).
    let pieces: Vec<(&[u8], usize)> = if all_utf8 {
        vec![(body, 0)]
    } else {
        body.utf8_chunks()
            .map(|c| (c.valid().as_bytes(), c.invalid().len()))
            .collect()
    };
    let mut raw: Vec<Span> = Vec::new();
    let mut push = |from: usize, to: usize, text: bool| {
        if from < to {
            raw.push(Span { from, to, text });
        }
    };
    let mut at = 0;
    for (valid, invalid) in pieces {
        let mut text_from = 0;
        let mut i = 0;
        while i < valid.len() {
            // Eight bytes at a time while none of them is a control byte.
            if let Some(x) = word_at(valid, i)
                && !has_byte_below(x, 0x20)
            {
                i += 8;
                continue;
            }
            if valid.get(i).copied().is_some_and(needs_unicode_escape) {
                let run = escape_run(valid.get(i..).unwrap_or_default());
                if run >= MIN_TEXT_RUN {
                    push(at + text_from, at + i, true);
                    push(at + i, at + i + run, false);
                    text_from = i + run;
                }
                i += run;
            } else {
                i += 1;
            }
        }
        push(at + text_from, at + valid.len(), true);
        at += valid.len();
        push(at, at + invalid, false);
        at += invalid;
    }
    // Short text among bytes joins them; neighbours of a kind merge.
    let mut spans: Vec<Span> = Vec::with_capacity(raw.len().min(64));
    for mut span in raw {
        if span.text && span.to - span.from < MIN_TEXT_RUN {
            span.text = false;
        }
        match spans.last_mut() {
            Some(last) if last.text == span.text && last.to == span.from => last.to = span.to,
            _ => spans.push(span),
        }
    }
    spans
}

/// Appends what `carry` still holds (the end of a stream) as a byte event.
pub(crate) fn encode_rest(elapsed: f64, stream: Stream, carry: &mut Vec<u8>, out: &mut Vec<u8>) {
    if !carry.is_empty() {
        bytes_line(out, &mut Prefix::new(elapsed, stream), carry);
        carry.clear();
    }
}

/// `[elapsed,"`, formatted once per chunk.
struct Prefix {
    elapsed: f64,
    stream: Stream,
    time: Option<String>,
}

impl Prefix {
    fn new(elapsed: f64, stream: Stream) -> Self {
        Self {
            elapsed,
            stream,
            time: None,
        }
    }

    fn write(&mut self, out: &mut Vec<u8>) {
        let elapsed = self.elapsed;
        let time = self.time.get_or_insert_with(|| format!("[{elapsed},\""));
        out.extend_from_slice(time.as_bytes());
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

fn text_line(out: &mut Vec<u8>, prefix: &mut Prefix, text: &str) {
    prefix.write(out);
    out.extend_from_slice(prefix.stream.code().as_bytes());
    out.extend_from_slice(b"\",\"");
    escape_str_into(text, out);
    out.extend_from_slice(b"\"]\n");
}

fn bytes_line(out: &mut Vec<u8>, prefix: &mut Prefix, bytes: &[u8]) {
    prefix.write(out);
    out.extend_from_slice(BYTES_CODE.as_bytes());
    out.extend_from_slice(b"\",\"");
    out.extend_from_slice(prefix.stream.code().as_bytes());
    out.push(b':');
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
/// control characters are escaped; runs of ordinary text are copied whole,
/// found eight bytes at a time.
pub(crate) fn escape_str_into(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(x) = word_at(bytes, i)
            && !has_byte_below(x, 0x20)
            && !has_byte(x, b'"')
            && !has_byte(x, b'\\')
        {
            i += 8;
            continue;
        }
        let b = bytes.get(i).copied().unwrap_or(b' ');
        i += 1;
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(plain..i - 1).unwrap_or_default());
        plain = i;
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
        let random = crate::pseudo_random(100_000, 0x2545_f491_4f6c_dd1d);
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
    fn a_dense_binary_chunk_is_one_byte_event_and_latin1_keeps_its_text() {
        // The incomplete tail a chunk may end with is carried, so the
        // chunk ends in a plain byte here.
        let mut chunk = crate::pseudo_random(32 * 1024, 0x9e37_79b9_7f4a_7c15);
        chunk.push(b'.');
        let mut out = Vec::new();
        encode(0.5, Stream::Output, &mut Vec::new(), &chunk, &mut out);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(decode(&out, Stream::Output), chunk);
        // One byte in 32 that is never UTF-8 is not yet dense: the
        // long text runs between them stay text.
        let mut sparse = Vec::new();
        for _ in 0..10 {
            sparse.extend_from_slice(&[b'a'; 31]);
            sparse.push(0xff);
        }
        let (bytes, lines) = roundtrip(&[&sparse]);
        assert_eq!(bytes, sparse);
        assert!(String::from_utf8(lines).unwrap().contains("\"o\",\"aaaa"));
    }

    #[test]
    fn escape_runs_end_at_the_first_byte_json_keeps_whatever_its_place() {
        for len in 0..40 {
            for at in 0..=len {
                for stop in [b'\n', b'\r', b'\t', b' ', 0x20, 0x7f, 0xc3] {
                    let mut bytes = vec![0u8; len];
                    if at < len {
                        bytes[at] = stop;
                    }
                    bytes.iter_mut().skip(1).step_by(3).for_each(|b| {
                        if *b == 0 {
                            *b = 0x1b;
                        }
                    });
                    let expected = bytes
                        .iter()
                        .take_while(|b| needs_unicode_escape(**b))
                        .count();
                    assert_eq!(escape_run(&bytes), expected, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn json_escapes_parse_back() {
        let mut out = Vec::new();
        escape_str_into("q\"b\\n\n\r\t\u{0}\u{1b}[0m\u{7f}", &mut out);
        let parsed: String =
            serde_json::from_str(&format!("\"{}\"", String::from_utf8(out).unwrap())).unwrap();
        assert_eq!(parsed, "q\"b\\n\n\r\t\u{0}\u{1b}[0m\u{7f}");
    }

    #[test]
    fn a_run_of_nuls_is_one_byte_event_and_short_controls_stay_text() {
        let mut data = b"before the zeros\r\n".to_vec();
        // The escape right after the NULs joins their run.
        data.extend_from_slice(&[0u8; 4096]);
        data.extend_from_slice(b"\x1b[0m and after the zeros, some text\x00\x07\r\n");
        let (bytes, lines) = roundtrip(&[&data]);
        assert_eq!(bytes, data);
        let text = String::from_utf8(lines).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains("\\u0000\\u0000"), "NULs one by one: {text}");
        assert!(
            text.contains("\"[0m and after the zeros, some text\\u0000\\u0007"),
            "{text}"
        );
        // All NULs: one byte event, a third over raw before compression.
        let zeros = vec![0u8; 32 * 1024];
        let (bytes, lines) = roundtrip(&[&zeros]);
        assert_eq!(bytes, zeros);
        assert!(lines.len() < zeros.len() * 4 / 3 + 64, "{}", lines.len());
        // Fifteen in a row stay text.
        let short = b"a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00b";
        let (bytes, lines) = roundtrip(&[short]);
        assert_eq!(bytes, short);
        assert!(!String::from_utf8(lines).unwrap().contains("\"b\""));
    }

    #[test]
    fn escaping_word_by_word_misses_no_special_byte_at_any_position() {
        for len in 0..40 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{7f}', 'é'] {
                    let mut text: String = "x".repeat(len);
                    text.replace_range(at..=at, &special.to_string());
                    let mut out = Vec::new();
                    escape_str_into(&text, &mut out);
                    let parsed: String =
                        serde_json::from_str(&format!("\"{}\"", String::from_utf8(out).unwrap()))
                            .unwrap();
                    assert_eq!(parsed, text);
                }
            }
        }
    }
}
