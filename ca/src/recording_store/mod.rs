//! The recording store: the bytes of session recordings. How much of each
//! file is committed (and so part of the recording) lives in the store
//! (`store::SessionStore::uploads`); this holds the bytes.
//!
//! The layer beside `store`, below the domain modules. Chunk-friendly, so
//! that a store that cannot append (S3) fits: a write puts a chunk at an
//! offset and never changes a byte already held — bytes that overlap what
//! is held must be the same bytes — so two writers of the same chunk need
//! no lock between them, and the committed length decides what counts.
//! Reads stream (never a whole recording in memory).
//!
//! Never: change a byte once it is held; follow a symlink planted in the
//! directory; read or write outside a session's own place.

mod local;
mod s3;
mod s3_http;
mod settings;

use std::fmt;
use std::io::ErrorKind;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;

pub(crate) use local::LocalDirectory;
#[cfg(test)]
pub(crate) use settings::S3Settings;
pub(crate) use settings::{RawSettings, Settings};

/// A file's bytes, streamed.
pub(crate) type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The chunk starts past the end of what is held.
    #[error("the chunk starts at {offset}, past the {held} bytes held")]
    Gap { offset: u64, held: u64 },
    /// The chunk's bytes differ from the bytes held at its offset.
    #[error("the bytes at offset {offset} differ from the {held} bytes held")]
    Mismatch { offset: u64, held: u64 },
    /// Less is held than the store committed: bytes were lost.
    #[error("{held} bytes are held of {session}/{name}, fewer than the {wanted} committed")]
    Short {
        session: String,
        name: String,
        held: u64,
        wanted: u64,
    },
    #[error("recording store: {0}")]
    Io(#[from] std::io::Error),
}

/// Where recordings' bytes live.
#[async_trait]
pub(crate) trait RecordingStore: fmt::Debug + Send + Sync {
    /// Puts `bytes` at `offset` of `session/name`: bytes already held there
    /// must be the same (`Mismatch` otherwise, nothing written), new ones are
    /// added after them; `Gap` if `offset` is past what is held. Durable on
    /// return. Returns how many bytes are held now.
    async fn write(
        &self,
        session: &str,
        name: &str,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<u64, Error>;

    /// The bytes of `session/name` in `range` (`Short` if fewer are held).
    async fn read(&self, session: &str, name: &str, range: Range<u64>) -> Result<Reader, Error>;

    /// How many bytes are held of `session/name`, when the backend can tell
    /// cheaply (a file written before upload state lived in the store has
    /// no committed length there yet); `None` otherwise.
    async fn held(&self, session: &str, name: &str) -> Result<Option<u64>, Error>;

    /// Puts the seal's signed manifest beside the files, so that the
    /// recording can be checked from the recording store alone. Called
    /// after the seal committed; a seal retried writes the same again.
    async fn seal(&self, session: &str, manifest: &SealedManifest) -> Result<(), Error>;

    /// Deletes everything held for `session` (retention, issue 14 §3:
    /// object stores expire recordings by deleting them; only the tests
    /// call it until retention is configurable).
    #[cfg_attr(not(test), allow(dead_code))]
    async fn delete(&self, session: &str) -> Result<(), Error>;
}

/// What the seal signed, as `SESSION/manifest.json` holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SealedManifest {
    /// The manifest, exactly the bytes signed (JSON).
    pub(crate) manifest: String,
    /// Hex SHA-256 of `manifest`.
    pub(crate) digest: String,
    /// Armored SSHSIG by the user CA key (namespace `shiftkey-recording@shiftkey`).
    pub(crate) signature: String,
}

/// Refuses anything but one plain name each for the session and the file
/// (the domain checks the shapes too; this is the second guard).
pub(crate) fn check_names(session: &str, name: &str) -> Result<(), Error> {
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && !s.contains(['/', '\\', '\0'])
            && !s.starts_with('.')
    };
    if plain(session) && plain(name) {
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::new(
            ErrorKind::InvalidInput,
            format!("{session:?}/{name:?} is not a recording file"),
        )))
    }
}

/// Opens the recording store `settings` name (S3: reads the credentials).
pub(crate) fn open(settings: &Settings) -> Result<Arc<dyn RecordingStore>, String> {
    match settings {
        Settings::Local { dir } => Ok(Arc::new(LocalDirectory::new(dir.clone()))),
        Settings::S3(s3) => Ok(Arc::new(s3::S3Store::open(s3)?)),
    }
}

#[cfg(test)]
mod tests;
