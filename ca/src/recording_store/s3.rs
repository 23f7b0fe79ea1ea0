//! Recordings in S3-compatible object storage, through `object_store`.
//!
//! S3 cannot append, so a file is a run of chunk objects:
//! `PREFIX/SESSION/NAME/OFFSET` (OFFSET zero-padded to 20 digits) holds the
//! file's bytes from OFFSET to the next chunk's. A chunk always starts where
//! the bytes held end and is created with `If-None-Match: *`, so two
//! writers of the same chunk cannot both land and no object is ever
//! replaced: bytes once held never change. Writers in this process take
//! the file's lock first; across replicas that guarantee is the server's
//! (AWS S3, MinIO, Ceph and R2 check `If-None-Match` atomically; a server
//! that checks and then writes, such as s3s-fs, leaves a window that the
//! read-back after each put narrows, and that the seal's SHA-256 check
//! turns into a failed verification, never a silent change). How much of a file counts is
//! the committed length in the store, as for the local directory; the seal
//! adds `PREFIX/SESSION/manifest.json` (the signed manifest and its
//! signature), so the bucket alone lets a reviewer check a recording.
//! Reads fetch one chunk at a time as the reader advances.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::settings::S3Settings;
use super::{Error, Reader, RecordingStore, SealedManifest, check_names};

/// Tries of one write when another writer creates the same chunk meanwhile.
const WRITE_TRIES: usize = 3;
/// Chunks fetched ahead of the reader (each at most one upload, 512 KiB).
const READ_AHEAD: usize = 4;
/// Files whose chunk lists are remembered; beyond it the memory starts over.
const MAX_KNOWN: usize = 4096;
/// Locks writers of one file take (a file maps to one of them).
const WRITE_LOCKS: usize = 64;
/// The object a seal writes beside the files.
const MANIFEST: &str = "manifest.json";

pub(crate) struct S3Store {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Chunks seen of each file. A chunk never changes once it exists, so
    /// only the ones after the last known are listed again.
    known: std::sync::Mutex<HashMap<(String, String), Vec<Chunk>>>,
    /// Writers of one file in this process go one at a time.
    writing: Vec<tokio::sync::Mutex<()>>,
    /// `s3://bucket/prefix`, for messages.
    shown: String,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("at", &self.shown)
            .finish_non_exhaustive()
    }
}

/// One chunk object: its bytes are the file's from `start` to `end`.
#[derive(Debug, Clone)]
struct Chunk {
    location: Path,
    start: u64,
    end: u64,
}

fn io(e: object_store::Error) -> Error {
    Error::Io(std::io::Error::other(e))
}

impl S3Store {
    pub(crate) fn open(settings: &S3Settings) -> Result<Self, String> {
        let credentials = settings.credentials()?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(credentials.secret_access_key.as_str())
            .with_http_connector(super::s3_http::Connector);
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token.as_str());
        }
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder
            .build()
            .map_err(|e| format!("cannot use S3 bucket {}: {e}", settings.bucket))?;
        let shown = if settings.prefix.is_empty() {
            format!("s3://{}", settings.bucket)
        } else {
            format!("s3://{}/{}", settings.bucket, settings.prefix)
        };
        Ok(Self {
            store: Arc::new(store),
            prefix: settings.prefix.clone(),
            known: std::sync::Mutex::new(HashMap::new()),
            writing: (0..WRITE_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            shown,
        })
    }

    /// The object store underneath (tests look at the objects).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    fn location(&self, parts: &[&str]) -> Path {
        let mut text = self.prefix.clone();
        for part in parts {
            if !text.is_empty() {
                text.push('/');
            }
            text.push_str(part);
        }
        Path::from(text)
    }

    /// The chunks of `session/name`, in order; only the run that starts at
    /// 0 and has no hole counts.
    async fn chunks(&self, session: &str, name: &str) -> Result<Vec<Chunk>, Error> {
        let key = (session.to_owned(), name.to_owned());
        let mut chunks = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let dir = self.location(&[session, name]);
        let mut listing = match chunks.last() {
            Some(last) => self.store.list_with_offset(Some(&dir), &last.location),
            None => self.store.list(Some(&dir)),
        };
        let mut found: Vec<(u64, u64, Path)> = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(io)?;
            let Some(start) = meta
                .location
                .filename()
                .filter(|f| f.len() == 20)
                .and_then(|f| f.parse::<u64>().ok())
            else {
                continue;
            };
            found.push((start, meta.size, meta.location));
        }
        found.sort_by_key(|(start, _, _)| *start);
        let mut held = chunks.last().map_or(0, |c| c.end);
        for (start, size, location) in found {
            if start != held || size == 0 {
                break;
            }
            held = start + size;
            chunks.push(Chunk {
                location,
                start,
                end: held,
            });
        }
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() >= MAX_KNOWN {
            known.clear();
        }
        known.insert(key, chunks.clone());
        Ok(chunks)
    }

    fn forget(&self, session: &str) {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(s, _), _| s != session);
    }

    /// The bytes `range` of a file made of `chunks`, one chunk at a time.
    fn stream(&self, chunks: Vec<Chunk>, range: Range<u64>) -> Reader {
        let store = Arc::clone(&self.store);
        let parts = chunks
            .into_iter()
            .filter(move |c| c.end > range.start && c.start < range.end)
            .map(move |c| {
                let from = range.start.max(c.start) - c.start;
                let to = range.end.min(c.end) - c.start;
                (c.location, from..to)
            });
        let bytes = futures_util::stream::iter(parts)
            .map(move |(location, within)| {
                let store = Arc::clone(&store);
                async move {
                    store
                        .get_opts(
                            &location,
                            object_store::GetOptions {
                                range: Some(within.into()),
                                ..Default::default()
                            },
                        )
                        .await
                        .map(|got| got.into_stream())
                }
            })
            .buffered(READ_AHEAD)
            .try_flatten()
            .map_err(std::io::Error::other);
        Box::new(tokio_util::io::StreamReader::new(Box::pin(bytes)))
    }

    /// Reads `range` of the file into memory (the overlap a write compares:
    /// at most one chunk's worth).
    async fn read_into(&self, chunks: &[Chunk], range: Range<u64>) -> Result<Vec<u8>, Error> {
        let mut reader = self.stream(chunks.to_vec(), range);
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out).await?;
        Ok(out)
    }
}

#[async_trait]
impl RecordingStore for S3Store {
    async fn write(
        &self,
        session: &str,
        name: &str,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<u64, Error> {
        check_names(session, name)?;
        let lock = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (session, name).hash(&mut h);
            usize::try_from(h.finish() % WRITE_LOCKS as u64).unwrap_or(0)
        };
        let _one_writer = self.writing[lock].lock().await;
        let bytes = Bytes::from(bytes);
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let mut tries = 0;
        loop {
            let chunks = self.chunks(session, name).await?;
            let held = chunks.last().map_or(0, |c| c.end);
            if offset > held {
                return Err(Error::Gap { offset, held });
            }
            let overlap_end = held.min(offset + len);
            if overlap_end > offset {
                let there = self.read_into(&chunks, offset..overlap_end).await?;
                let mine = &bytes[..usize::try_from(overlap_end - offset).unwrap_or(bytes.len())];
                if there != mine {
                    return Err(Error::Mismatch { offset, held });
                }
            }
            if offset + len <= held {
                return Ok(held);
            }
            let rest = bytes.slice(usize::try_from(held - offset).unwrap_or(0)..);
            let location = self.location(&[session, name, &format!("{held:020}")]);
            let put = self
                .store
                .put_opts(
                    &location,
                    PutPayload::from_bytes(rest.clone()),
                    PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    },
                )
                .await;
            match put {
                Ok(_) => {
                    // Read back: on a server whose conditional put is not
                    // atomic, another writer's bytes may be there instead.
                    let there = self
                        .store
                        .get(&location)
                        .await
                        .map_err(io)?
                        .bytes()
                        .await
                        .map_err(io)?;
                    if there != rest {
                        return Err(Error::Mismatch { offset, held });
                    }
                    return Ok(offset + len);
                }
                // Another writer put this chunk first: look again (its
                // bytes must be ours, or this write is a mismatch).
                Err(object_store::Error::AlreadyExists { .. }) if tries + 1 < WRITE_TRIES => {
                    tries += 1;
                }
                Err(e) => return Err(io(e)),
            }
        }
    }

    async fn read(&self, session: &str, name: &str, range: Range<u64>) -> Result<Reader, Error> {
        check_names(session, name)?;
        if range.end == 0 {
            return Ok(Box::new(tokio::io::empty()));
        }
        let mut chunks = self.chunks(session, name).await?;
        // Chunks this process saw may since have been deleted by another
        // (retention on another replica): the first one tells, and then
        // the file is looked up again from nothing.
        if let Some(first) = chunks.first() {
            match self.store.head(&first.location).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    self.forget(session);
                    chunks = self.chunks(session, name).await?;
                }
                Err(e) => return Err(io(e)),
            }
        }
        let held = chunks.last().map_or(0, |c| c.end);
        if held < range.end {
            return Err(Error::Short {
                session: session.to_owned(),
                name: name.to_owned(),
                held,
                wanted: range.end,
            });
        }
        Ok(self.stream(chunks, range))
    }

    async fn held(&self, session: &str, name: &str) -> Result<Option<u64>, Error> {
        check_names(session, name)?;
        // A bucket holds only what was written with upload state in the
        // store: nothing to adopt.
        Ok(None)
    }

    async fn seal(&self, session: &str, manifest: &SealedManifest) -> Result<(), Error> {
        check_names(session, MANIFEST)?;
        let body = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Io(e.into()))?;
        // A seal retried after its answer was lost writes the same
        // manifest again: plain overwrite, as the seal row decides.
        self.store
            .put(&self.location(&[session, MANIFEST]), PutPayload::from(body))
            .await
            .map_err(io)?;
        self.forget(session);
        Ok(())
    }

    async fn delete(&self, session: &str) -> Result<(), Error> {
        check_names(session, "x")?;
        let dir = self.location(&[session]);
        let locations = self
            .store
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .boxed();
        self.forget(session);
        let mut deleted = self.store.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }
}
