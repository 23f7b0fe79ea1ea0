//! Recordings on their way to the browser, streamed: decompressed as they
//! are read (the player, the input list, the live follow), or bundled into
//! a tar as they are read (the export). Never a whole recording in memory.

use std::io::BufRead as _;

use axum::body::{Body, Bytes};
use futures_util::stream::{self, StreamExt};

use super::UiError;
use crate::http::error::ApiError;
use crate::recordings::{Purpose, Reader, Recordings, Reviewer};

/// Most decompressed bytes one recording file is given to the browser.
const MAX_CAST: u64 = 64 * 1024 * 1024;
/// Decompressed bytes handed to the browser per chunk.
const CHUNK: usize = 64 * 1024;

/// Decompresses a recording file as it is read (gzip members one after
/// another, as the bastion flushes them; a live file ends mid-stream), at
/// most `MAX_CAST` bytes, and hands each line to `each` until it says stop.
/// Runs on a blocking thread; `state` comes back.
pub(super) async fn scan_lines<T: Send + 'static>(
    reader: Reader,
    state: T,
    mut each: impl FnMut(&mut T, &str) -> bool + Send + 'static,
) -> Result<T, UiError> {
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || {
        let mut state = state;
        let gz = flate2::read::MultiGzDecoder::new(bridge);
        let mut lines = std::io::BufReader::new(std::io::Read::take(gz, MAX_CAST));
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    if !each(&mut state, text.trim_end_matches('\n')) {
                        break;
                    }
                }
            }
        }
        state
    })
    .await
    .map_err(|e| {
        UiError::Api(ApiError::Internal(format!(
            "reading the recording failed: {e}"
        )))
    })
}

/// A recording file decompressed as the body is sent (at most `MAX_CAST`
/// bytes), never whole in memory.
pub(super) fn gunzip_body(reader: Reader) -> Body {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || {
        let gz = flate2::read::MultiGzDecoder::new(bridge);
        let mut out = std::io::Read::take(gz, MAX_CAST);
        let mut buf = vec![0u8; CHUNK];
        loop {
            match std::io::Read::read(&mut out, &mut buf) {
                // A stream that ends mid-member (a live file) ends here.
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    Body::from_stream(stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

type Chunks = stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

/// One file of the bundle: its tar header, its bytes as they are read, the
/// padding to the next block.
pub(super) async fn file_entry(
    recordings: &Recordings,
    reviewer: &Reviewer,
    session: &str,
    name: &str,
) -> Chunks {
    let opened = match recordings
        .read_file(reviewer, session, name, 0, None, Purpose::Export)
        .await
    {
        Ok(opened) => opened,
        Err(e) => {
            tracing::error!(error = %e, session, file = name, "export: cannot read a recording file");
            return stream::once(async move { Err(std::io::Error::other(e.to_string())) }).boxed();
        }
    };
    let header = tar_header(&format!("{session}/{name}"), opened.bytes);
    let pad = vec![0u8; usize::try_from((512 - opened.bytes % 512) % 512).unwrap_or(0)];
    stream::once(async move { Ok(Bytes::from(header.to_vec())) })
        .chain(tokio_util::io::ReaderStream::new(opened.reader))
        .chain(stream::once(async move { Ok(Bytes::from(pad)) }))
        .boxed()
}

/// One ustar header (names here are short, ASCII and checked).
fn tar_header(name: &str, size: u64) -> [u8; 512] {
    let mut header = [0u8; 512];
    let name = name.as_bytes();
    header[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o600);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], size);
    octal(
        &mut header[136..148],
        u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0),
    );
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    header
}

/// One ustar entry held in memory (the bundle's small files).
pub(super) fn tar_entry(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(&tar_header(name, data.len() as u64));
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_entries_are_padded_blocks() {
        let mut tar = Vec::new();
        tar_entry(&mut tar, "s_1/ca.pub", b"key\n");
        assert_eq!(tar.len(), 1024);
        assert_eq!(&tar[257..262], b"ustar");
    }
}
