//! What the search index holds of a recording: the lines a person typed
//! (rebuilt from `"i"` events, with backspace, ^U and ^W applied), exec
//! commands, and sftp operations on paths.
//!
//! The input is the bastion's gzip files (members one after another: the
//! bastion starts one where its compression changes mode, and every member
//! is read, as the player reads them), which the CA treats as untrusted:
//! decompressed output, line lengths and the number of lines are bounded,
//! and a stream that ends early (a bastion that died between two sync
//! flushes) yields what was complete.

use std::io::{BufRead, BufReader, ErrorKind, Read};

use flate2::read::MultiGzDecoder;
use serde_json::Value;

use crate::store::IndexLine;

/// Characters kept of one reconstructed line.
const MAX_LINE_CHARS: usize = 2000;
/// Bytes of one asciicast or sftp JSON line; longer ones (huge output
/// events) are skipped, not indexed.
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// Decompressed bytes read from one file for indexing.
const MAX_DECOMPRESSED: u64 = 1024 * 1024 * 1024;

/// What one file gave the index, and its header's exec command.
#[derive(Debug, Default)]
pub(crate) struct Indexed {
    pub(crate) lines: Vec<IndexLine>,
    /// `shiftkey.command` from an asciicast header.
    pub(crate) command: Option<String>,
    /// `shiftkey.kind` from an asciicast header.
    pub(crate) kind: Option<String>,
    /// Why reading stopped before the end, when the file is not a readable
    /// gzip stream (a stream that merely ends early is not an error).
    pub(crate) unreadable: Option<String>,
}

/// Indexes one channel's file (`N.cast.gz` or `N.sftp.jsonl.gz`), at most
/// `max_lines` lines.
pub(crate) fn index_file(gz: impl Read, channel: u32, sftp: bool, max_lines: usize) -> Indexed {
    let mut reader = BufReader::new(MultiGzDecoder::new(gz).take(MAX_DECOMPRESSED));
    let mut indexed = Indexed::default();
    let mut input = InputLines::default();
    let mut first = true;
    let mut buf = Vec::new();
    while indexed.lines.len() < max_lines {
        let complete = match next_line(&mut reader, &mut buf) {
            Ok(Some(complete)) => complete,
            Ok(None) => break,
            Err(e) => {
                indexed.unreadable = Some(e.to_string());
                break;
            }
        };
        if !complete {
            continue;
        }
        if !sftp && !first && not_input(&buf) {
            continue;
        }
        let Ok(value) = serde_json::from_slice::<Value>(&buf) else {
            first = false;
            continue;
        };
        if sftp {
            if let Some(line) = sftp_line(&value) {
                indexed.lines.push(IndexLine {
                    channel,
                    seconds: value["t"].as_f64().unwrap_or(0.0),
                    line,
                    source: "sftp",
                });
            }
        } else if first {
            let meta = &value["shiftkey"];
            indexed.command = meta["command"].as_str().map(clip);
            indexed.kind = meta["kind"].as_str().map(str::to_owned);
        } else if let Some([t, kind, data]) = value.as_array().map(Vec::as_slice)
            && kind == "i"
            && let (Some(t), Some(data)) = (t.as_f64(), data.as_str())
        {
            for (seconds, line) in input.feed(t, data) {
                indexed.lines.push(IndexLine {
                    channel,
                    seconds,
                    line,
                    source: "input",
                });
            }
        }
        first = false;
    }
    if let Some((seconds, line)) = input.finish() {
        indexed.lines.push(IndexLine {
            channel,
            seconds,
            line,
            source: "input",
        });
    }
    indexed.lines.truncate(max_lines);
    indexed
}

/// Reads one `\n`-terminated line into `buf` (without the newline). None at
/// the end of the stream; `Some(false)` for a line longer than
/// `MAX_EVENT_BYTES` (skipped) or an unterminated last line. A stream that
/// ends in the middle (truncated gzip) ends like a normal one.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => &[],
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if buf.is_empty() && !too_long {
                None
            } else {
                Some(false)
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], at + 1),
            None => (available, available.len()),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_EVENT_BYTES {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let newline = done > chunk.len();
        reader.consume(done);
        if newline {
            return Ok(Some(!too_long));
        }
    }
}

/// Whether a cast line is, as written by the bastion, an event other than
/// `"i"` (`[TIME,"o",...`, `"b"`, `"r"`, `"m"`): skipped without parsing
/// the JSON, which for bulk output was most of the CA's work at seal. Any
/// other spelling is parsed and judged as before.
fn not_input(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"[") else {
        return false;
    };
    let time = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        .count();
    time > 0
        && matches!(
            rest.get(time..time + 5),
            Some(b",\"o\"," | b",\"b\"," | b",\"r\"," | b",\"m\",")
        )
}

/// An sftp event worth finding: an operation on a path (reads and writes
/// are many per file and say nothing new).
fn sftp_line(event: &Value) -> Option<String> {
    let op = event["op"].as_str()?;
    if matches!(op, "read" | "write" | "close") {
        return None;
    }
    let path = event["path"].as_str()?;
    let mut line = format!("{op} {path}");
    if let Some(to) = event["to"].as_str().or(event["target"].as_str()) {
        line.push_str(" -> ");
        line.push_str(to);
    }
    Some(clip(&line))
}

fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .take(MAX_LINE_CHARS)
        .collect()
}

/// Rebuilds typed lines from keystrokes, as a line editor would show them
/// before Enter. Escape sequences (arrows, function keys, bracketed-paste
/// markers) are dropped, so edits made with the cursor keys are not
/// followed: the line shows what was typed, in order.
#[derive(Debug, Default)]
pub(crate) struct InputLines {
    line: String,
    /// When the current line's first keystroke came.
    started: Option<f64>,
    escape: Escape,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [ ...` until its final byte.
    Csi,
    /// After `ESC O`: one more character.
    Ss3,
    /// Inside `ESC ] ...` until BEL or ESC \.
    String,
}

impl InputLines {
    /// Feeds one `"i"` event; returns the lines it completed, each with the
    /// time of its first keystroke.
    pub(crate) fn feed(&mut self, t: f64, data: &str) -> Vec<(f64, String)> {
        let mut done = Vec::new();
        for c in data.chars() {
            match self.escape {
                Escape::Start => {
                    self.escape = match c {
                        '[' => Escape::Csi,
                        'O' => Escape::Ss3,
                        ']' | 'P' | '_' | '^' => Escape::String,
                        _ => Escape::None,
                    };
                    continue;
                }
                Escape::Csi => {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        self.escape = Escape::None;
                    }
                    continue;
                }
                Escape::Ss3 => {
                    self.escape = Escape::None;
                    continue;
                }
                Escape::String => {
                    match c {
                        '\u{7}' => self.escape = Escape::None,
                        // ESC \ ends it; Start then drops the backslash.
                        '\u{1b}' => self.escape = Escape::Start,
                        _ => {}
                    }
                    continue;
                }
                Escape::None => {}
            }
            if self.started.is_none() {
                self.started = Some(t);
            }
            match c {
                '\u{1b}' => self.escape = Escape::Start,
                // Enter, and ^C / ^D, which end what was typed too.
                '\r' | '\n' | '\u{3}' | '\u{4}' => {
                    if let Some(line) = self.take() {
                        done.push(line);
                    }
                }
                '\u{7f}' | '\u{8}' => {
                    self.line.pop();
                }
                // ^U: the whole line.
                '\u{15}' => self.line.clear(),
                // ^W: the word before the cursor, and the blanks after it.
                '\u{17}' => {
                    let kept = self.line.trim_end().len();
                    self.line.truncate(kept);
                    let word = self.line.rfind(char::is_whitespace).map_or(0, |at| at + 1);
                    self.line.truncate(word);
                }
                '\t' => self.push('\t'),
                c if c.is_control() => {}
                c => self.push(c),
            }
        }
        done
    }

    fn push(&mut self, c: char) {
        if self.line.chars().count() < MAX_LINE_CHARS {
            self.line.push(c);
        }
    }

    fn take(&mut self) -> Option<(f64, String)> {
        let started = self.started.take().unwrap_or(0.0);
        let line = std::mem::take(&mut self.line);
        let trimmed = line.trim();
        (!trimmed.is_empty()).then(|| (started, trimmed.to_owned()))
    }

    /// What was typed after the last Enter.
    pub(crate) fn finish(&mut self) -> Option<(f64, String)> {
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn lines(events: &[(f64, &str)]) -> Vec<(f64, String)> {
        let mut input = InputLines::default();
        let mut out = Vec::new();
        for (t, data) in events {
            out.extend(input.feed(*t, data));
        }
        out.extend(input.finish());
        out
    }

    #[test]
    fn edits_are_applied_and_times_are_first_keystrokes() {
        assert_eq!(
            lines(&[
                (1.0, "e"),
                (1.1, "chp"),
                (1.2, "\u{7f}o hello"),
                (1.5, "\r"),
                (2.0, "rm -rf /tmp/x\u{15}ls -l /etc\u{17}/var\r"),
                (3.0, "sudo  su  \u{17}\u{17}whoami\r\r"),
                (4.0, "\u{1b}[A\u{1b}OB\u{1b}[200~paste\u{1b}[201~d\u{8}\n"),
                (5.0, "half typed"),
            ]),
            [
                (1.0, "echo hello".to_owned()),
                (2.0, "ls -l /var".to_owned()),
                (3.0, "whoami".to_owned()),
                (4.0, "paste".to_owned()),
                (5.0, "half typed".to_owned()),
            ]
        );
    }

    #[test]
    fn control_keys_end_or_vanish() {
        assert_eq!(
            lines(&[(0.0, "sleep 100\u{3}"), (1.0, "\u{7}x\u{0}y\n")]),
            [(0.0, "sleep 100".to_owned()), (1.0, "xy".to_owned())]
        );
        assert!(lines(&[(0.0, "\r\n  \r\u{7f}\u{7f}")]).is_empty());
    }

    fn gzip(text: &str) -> Vec<u8> {
        crate::recordings::fuzzing::gzip(text.as_bytes())
    }

    const CAST: &str = concat!(
        r#"{"version":2,"width":80,"height":24,"shiftkey":{"session":"s_1","channel":1,"kind":"exec","command":"uptime"}}"#,
        "\n",
        r#"[0.1,"o","$ "]"#,
        "\n",
        r#"[0.5,"i","ls\r"]"#,
        "\n",
        r#"[0.6,"r","100x30"]"#,
        "\n",
        "not json\n",
        r#"[0.9,"i","exit\r"]"#,
        "\n",
    );

    #[test]
    fn casts_give_input_lines_and_the_command() {
        let indexed = index_file(&gzip(CAST)[..], 1, false, 100);
        assert_eq!(indexed.command.as_deref(), Some("uptime"));
        assert_eq!(indexed.kind.as_deref(), Some("exec"));
        let got: Vec<_> = indexed
            .lines
            .iter()
            .map(|l| (l.channel, l.seconds, l.line.as_str(), l.source))
            .collect();
        assert_eq!(got, [(1, 0.5, "ls", "input"), (1, 0.9, "exit", "input")]);
        assert_eq!(index_file(&gzip(CAST)[..], 1, false, 1).lines.len(), 1);
    }

    #[test]
    fn a_truncated_sync_flushed_stream_indexes_up_to_the_flush() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(
            CAST.split_inclusive('\n')
                .take(3)
                .collect::<String>()
                .as_bytes(),
        )
        .unwrap();
        gz.flush().unwrap();
        let flushed = gz.get_ref().len();
        gz.write_all(br#"[0.9,"i","exit\r"]"#).unwrap();
        let mut bytes = gz.finish().unwrap();
        bytes.truncate(flushed + 3);
        let indexed = index_file(&bytes[..], 0, false, 100);
        let got: Vec<_> = indexed.lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(got, ["ls"]);
        assert_eq!(indexed.unreadable, None, "ending early is no error");
    }

    /// The player shows every member; the index must not stop at the
    /// first, or a session could hide what it typed from search.
    #[test]
    fn lines_in_later_gzip_members_are_indexed() {
        let (head, tail) = CAST.split_at(CAST.find("[0.9").unwrap());
        let mut file = gzip(head);
        file.extend(gzip(tail));
        let one = index_file(&gzip(CAST)[..], 1, false, 100);
        let two = index_file(&file[..], 1, false, 100);
        assert!(!one.lines.is_empty());
        assert_eq!(two.lines, one.lines);
        assert_eq!(two.unreadable, None);
    }

    #[test]
    fn a_file_that_is_not_gzip_is_named_unreadable() {
        let indexed = index_file(&b"this is not a gzip stream at all"[..], 0, false, 100);
        assert!(indexed.lines.is_empty());
        assert!(indexed.unreadable.is_some());
        let mut corrupt = gzip(CAST);
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0xff;
        assert!(index_file(&corrupt[..], 0, false, 100).unreadable.is_some());
    }

    #[test]
    fn sftp_operations_on_paths_are_indexed() {
        let text = concat!(
            r#"{"t":0.1,"op":"open","path":"/etc/passwd","bytes":0}"#,
            "\n",
            r#"{"t":0.2,"op":"write","path":"/etc/passwd","bytes":100}"#,
            "\n",
            r#"{"t":0.3,"op":"rename","path":"/tmp/a","to":"/tmp/b"}"#,
            "\n",
        );
        let indexed = index_file(&gzip(text)[..], 2, true, 100);
        let got: Vec<_> = indexed
            .lines
            .iter()
            .map(|l| (l.seconds, l.line.as_str(), l.source))
            .collect();
        assert_eq!(
            got,
            [
                (0.1, "open /etc/passwd", "sftp"),
                (0.3, "rename /tmp/a -> /tmp/b", "sftp")
            ]
        );
    }

    #[test]
    fn overlong_lines_are_skipped_not_buffered() {
        let long = format!("[1.0,\"i\",\"{}\"]\n", "x".repeat(MAX_EVENT_BYTES + 10));
        let text = format!("{{\"version\":2}}\n{long}[2.0,\"i\",\"ok\\r\"]\n");
        let indexed = index_file(&gzip(&text)[..], 0, false, 100);
        let got: Vec<_> = indexed.lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(got, ["ok"]);
    }

    #[test]
    fn only_literal_non_input_events_are_skipped_unparsed() {
        assert!(not_input(br#"[0.25,"o","hello"]"#));
        assert!(not_input(br#"[12,"b","o:AAAA"]"#));
        assert!(not_input(br#"[1e-6,"r","80x24"]"#));
        assert!(not_input(br#"[3.5,"m","{}"]"#));
        assert!(!not_input(br#"[0.25,"i","ls\r"]"#));
        assert!(!not_input(br#"[0.25, "o", "spaced"]"#));
        assert!(!not_input(br#"[0.25,"\u006f","escaped"]"#));
        assert!(!not_input(br#"{"version":2}"#));
        assert!(!not_input(br#"[,"o","no time"]"#));
        // Input spelled another way is still indexed.
        let cast = concat!(
            r#"{"version":2,"shiftkey":{"kind":"shell"}}"#,
            "\n",
            r#"[0.1,"o","$ "]"#,
            "\n",
            r#"[0.2, "i", "whoami\r"]"#,
            "\n",
        );
        let found = index_file(&gzip(cast)[..], 0, false, 10);
        assert_eq!(found.lines.len(), 1, "{:?}", found.lines);
        assert_eq!(found.lines[0].line, "whoami");
    }
}
