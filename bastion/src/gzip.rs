//! The recorder's gzip writer: LZ77 where it pays, Huffman codes alone
//! where it does not.
//!
//! Deflate at level 2 spends most of its time looking for repeats. Terminal
//! text is full of them (a log compresses to a tenth, at about 3
//! CPU-seconds per GiB), but the base64 of binary output and text that is
//! already dense have none: there the search costs 30-40 CPU-seconds per
//! GiB and saves nothing over Huffman codes alone, which take a third of
//! that (measured with zlib-rs 0.6 on this project's 2-core VM; figures in
//! docs/benchmarks.md). zlib cannot change strategy in the middle of a
//! stream through any safe API that zlib-rs or flate2 offers, so the file is
//! a series of gzip members (RFC 1952 §2.2: a gzip file is members one
//! after another; `gzip -d`, `zcat`, Python's `gzip` and the CA's readers
//! decompress them as one stream) and a member ends where the mode changes.
//!
//! The choice is measured, not guessed: every [`SEGMENT`] of input in LZ
//! mode, the bytes it produced are compared with the bytes it took; when
//! LZ77 kept more than [`LZ_USELESS`] of them, the next member is Huffman
//! codes only (`Strategy::HuffmanOnly`; `Strategy::Rle` also shrinks runs
//! of one byte but cost a fifth more on the bastion benchmark's random
//! output, and runs compress well enough to stay in LZ mode). After
//! [`PROBE_AFTER`] bytes in that mode, one segment of LZ77 probes whether
//! repeats came back. Members end between two writes,
//! and the recorder writes whole lines, so a member holds whole lines.
//!
//! Written by hand because no crate decides between deflate strategies by
//! what the data does; the compression itself is zlib-rs.

use std::io::{self, Write};

use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Status, Strategy};

/// Input between two decisions.
pub(crate) const SEGMENT: u64 = 256 * 1024;
/// LZ77 is not worth its search when its output is more than this share
/// of its input (the base64 of random bytes gives 0.75, dense text 0.7-0.8,
/// a log 0.1-0.2).
pub(crate) const LZ_USELESS: f64 = 0.6;
/// Input in Huffman mode before one segment of LZ77 tries again.
pub(crate) const PROBE_AFTER: u64 = 16 * 1024 * 1024;
/// zlib's fastest level that still builds Huffman codes from the data
/// (level 1 in zlib-rs uses only the fixed codes, which leave base64 at
/// 1.33 times its size).
const LEVEL: i32 = 2;
/// `window_bits` for a gzip wrapper around a 32 KiB window.
const GZIP_WINDOW: i32 = 15 + 16;
/// Compressed bytes handed to the file per call.
const OUT_CHUNK: usize = 64 * 1024;

/// How the current member is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// LZ77 at [`LEVEL`].
    Lz,
    /// Huffman codes only.
    Huffman,
}

impl Mode {
    fn config(self) -> DeflateConfig {
        DeflateConfig {
            level: LEVEL,
            window_bits: GZIP_WINDOW,
            strategy: match self {
                Mode::Lz => Strategy::Default,
                Mode::Huffman => Strategy::HuffmanOnly,
            },
            ..DeflateConfig::default()
        }
    }
}

/// A gzip stream of members over `W`, choosing each member's mode.
pub(crate) struct GzWriter<W: Write> {
    inner: W,
    deflate: Deflate,
    mode: Mode,
    /// The member has taken input (an empty member is not written).
    started: bool,
    /// Input and output since the last decision (in Huffman mode, since
    /// the switch: when it reaches `PROBE_AFTER`, LZ77 probes).
    segment_in: u64,
    segment_out: u64,
    out: Vec<u8>,
    members: u64,
}

impl<W: Write> std::fmt::Debug for GzWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzWriter")
            .field("mode", &self.mode)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl<W: Write> GzWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            deflate: Deflate::new_with_config(Mode::Lz.config()),
            mode: Mode::Lz,
            started: false,
            segment_in: 0,
            segment_out: 0,
            out: vec![0; OUT_CHUNK],
            members: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// Members begun so far (each mode change begins one).
    #[cfg(test)]
    pub(crate) fn members(&self) -> u64 {
        self.members
    }

    #[cfg(test)]
    pub(crate) fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Compresses all of `data` (whole lines, so that a member ends at a
    /// line's end), then decides whether the next write starts a member in
    /// the other mode.
    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.started {
            self.started = true;
            self.members += 1;
        }
        let out = self.run(data, DeflateFlush::NoFlush)?;
        self.segment_in += data.len() as u64;
        self.segment_out += out;
        self.decide()
    }

    /// Everything written so far reaches `W` on a byte boundary (a sync
    /// flush): a reader gets every line up to here even if the process
    /// dies now.
    pub(crate) fn sync_flush(&mut self) -> io::Result<()> {
        if self.started {
            self.segment_out += self.run(&[], DeflateFlush::SyncFlush)?;
        }
        self.inner.flush()
    }

    /// Ends the last member and gives `W` back.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.started || self.members == 0 {
            // A file with no data still gets one (empty) member.
            self.run(&[], DeflateFlush::Finish)?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// At the end of a segment: keep the mode, or end the member and start
    /// one in the other.
    fn decide(&mut self) -> io::Result<()> {
        let next = match self.mode {
            Mode::Huffman if self.segment_in >= PROBE_AFTER => Some(Mode::Lz),
            Mode::Lz if self.segment_in >= SEGMENT => {
                let ratio = self.segment_out as f64 / self.segment_in as f64;
                self.segment_in = 0;
                self.segment_out = 0;
                (ratio > LZ_USELESS).then_some(Mode::Huffman)
            }
            _ => None,
        };
        let Some(mode) = next else {
            return Ok(());
        };
        if self.started {
            self.run(&[], DeflateFlush::Finish)?;
        }
        self.deflate = Deflate::new_with_config(mode.config());
        self.started = false;
        self.segment_in = 0;
        self.segment_out = 0;
        self.mode = mode;
        Ok(())
    }

    /// Feeds `input` with `flush`, writing what comes out; returns the
    /// bytes written.
    fn run(&mut self, mut input: &[u8], flush: DeflateFlush) -> io::Result<u64> {
        let mut written = 0u64;
        loop {
            let before_in = self.deflate.total_in();
            let before_out = self.deflate.total_out();
            let status = self
                .deflate
                .compress(input, &mut self.out, flush)
                .map_err(|e| io::Error::other(format!("deflate: {}", e.as_str())))?;
            let used = usize::try_from(self.deflate.total_in() - before_in).unwrap_or(usize::MAX);
            let made = usize::try_from(self.deflate.total_out() - before_out).unwrap_or(0);
            input = input.get(used..).unwrap_or_default();
            if made > 0 {
                self.inner
                    .write_all(self.out.get(..made).unwrap_or_default())?;
                written += made as u64;
            }
            let done = match flush {
                DeflateFlush::Finish => status == Status::StreamEnd,
                // Done when the input is taken and the output buffer was
                // not filled (nothing more is pending).
                _ => input.is_empty() && made < self.out.len(),
            };
            if done {
                return Ok(written);
            }
            if made == 0 && used == 0 && status == Status::BufError {
                return Err(io::Error::other("deflate made no progress"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use base64::Engine;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Lines of the base64 of random bytes, as a byte event would hold.
    fn dense_lines(n: usize) -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..n {
            let raw = crate::pseudo_random(24 * 1024, i as u64 + 1);
            text.extend_from_slice(b"[0.5,\"b\",\"o:");
            text.extend(
                base64::engine::general_purpose::STANDARD
                    .encode(raw)
                    .bytes(),
            );
            text.extend_from_slice(b"\"]\n");
        }
        text
    }

    fn log_lines(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| {
                format!("[0.5,\"o\",\"line {i}: request handled status=200 path=/v1/x\\r\\n\"]\n")
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn dense_data_moves_to_huffman_codes_and_text_comes_back_to_lz() {
        let mut gz = GzWriter::new(Vec::new());
        let mut whole = Vec::new();
        let dense = dense_lines(40);
        for line in dense.split_inclusive(|b| *b == b'\n') {
            gz.write_all(line).unwrap();
        }
        whole.extend_from_slice(&dense);
        assert_eq!(gz.mode(), Mode::Huffman);
        // Base64 of random bytes: about 3/4 of its size, as LZ77 gave.
        let size = gz.get_ref().len() as f64;
        assert!(
            size < dense.len() as f64 * 0.77,
            "{size} of {}",
            dense.len()
        );
        // Text with repeats, past the probe: LZ77 again.
        let log = log_lines(400_000);
        for piece in log.chunks(64 * 1024) {
            // Whole lines per write, as the recorder writes.
            gz.write_all(piece).unwrap();
        }
        whole.extend_from_slice(&log);
        assert_eq!(gz.mode(), Mode::Lz);
        let members = gz.members();
        assert!(members >= 3, "{members} members");
        gz.sync_flush().unwrap();
        let bytes = gz.finish().unwrap();
        assert_eq!(gunzip(&bytes), whole);
    }

    #[test]
    fn text_stays_in_one_member_and_sync_flushes_are_readable() {
        let mut gz = GzWriter::new(Vec::new());
        let log = log_lines(50_000);
        let (a, b) = log.split_at(log.len() / 2);
        gz.write_all(a).unwrap();
        gz.sync_flush().unwrap();
        // What a crash now leaves: a stream that ends early, readable up
        // to the flush.
        let mut partial = Vec::new();
        let _ = flate2::read::MultiGzDecoder::new(&gz.get_ref()[..]).read_to_end(&mut partial);
        assert_eq!(partial, a);
        gz.write_all(b).unwrap();
        assert_eq!(gz.members(), 1);
        let bytes = gz.finish().unwrap();
        assert!(
            bytes.len() < log.len() / 5,
            "{} of {}",
            bytes.len(),
            log.len()
        );
        assert_eq!(gunzip(&bytes), log);
    }

    #[test]
    fn an_empty_stream_is_one_empty_member() {
        let bytes = GzWriter::new(Vec::new()).finish().unwrap();
        assert!(gunzip(&bytes).is_empty());
        assert!(!bytes.is_empty());
    }
}
