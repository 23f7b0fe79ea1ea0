//! Recordings in a local directory: `DIR/SESSION/NAME`, 0700 directories
//! and 0600 files, opened without following symlinks. A write takes the
//! file's own lock (`flock`) while it compares and appends, so concurrent
//! writers of one file (in this process or another) see each other's bytes.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;

use super::{Error, Reader, RecordingStore, SealedManifest};

/// The file a seal writes beside the recording's.
const MANIFEST: &str = "manifest.json";

#[derive(Debug)]
pub(crate) struct LocalDirectory {
    root: PathBuf,
}

impl LocalDirectory {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// `root/session/name`, refusing anything but one plain component each
    /// (the domain checks the shapes too; this is the second guard).
    fn path(&self, session: &str, name: &str) -> Result<(PathBuf, PathBuf), Error> {
        super::check_names(session, name)?;
        let dir = self.root.join(session);
        let file = dir.join(name);
        Ok((dir, file))
    }
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Opens a recording file without following a symlink planted in its place.
fn open_file(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

fn write(dir: &Path, path: &Path, offset: u64, bytes: &[u8]) -> Result<u64, Error> {
    create_dir(dir)?;
    let file = open_file(path, true)?;
    let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::Io(std::io::Error::from(errno)))?;
    let held = file.metadata()?.len();
    if offset > held {
        return Err(Error::Gap { offset, held });
    }
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let overlap = usize::try_from((held - offset).min(len)).unwrap_or(bytes.len());
    if overlap > 0 {
        let mut there = vec![0; overlap];
        file.read_exact_at(&mut there, offset)?;
        if there != bytes[..overlap] {
            return Err(Error::Mismatch { offset, held });
        }
    }
    let rest = &bytes[overlap..];
    if !rest.is_empty() {
        file.write_all_at(rest, held)?;
        file.sync_data()?;
    }
    Ok(held.max(offset + len))
}

#[async_trait]
impl RecordingStore for LocalDirectory {
    async fn write(
        &self,
        session: &str,
        name: &str,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<u64, Error> {
        let (dir, path) = self.path(session, name)?;
        // The parent too: `recordings/` is private to the CA.
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            create_dir(&root)?;
            write(&dir, &path, offset, &bytes)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }

    async fn read(&self, session: &str, name: &str, range: Range<u64>) -> Result<Reader, Error> {
        let (_, path) = self.path(session, name)?;
        let (session, name) = (session.to_owned(), name.to_owned());
        let file = tokio::task::spawn_blocking(move || -> Result<Option<File>, Error> {
            let mut file = match open_file(&path, false) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound && range.end == 0 => return Ok(None),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(Error::Short {
                        session,
                        name,
                        held: 0,
                        wanted: range.end,
                    });
                }
                Err(e) => return Err(e.into()),
            };
            let held = file.metadata()?.len();
            if held < range.end {
                return Err(Error::Short {
                    session,
                    name,
                    held,
                    wanted: range.end,
                });
            }
            file.seek(SeekFrom::Start(range.start))?;
            Ok(Some(file))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        let length = range.end.saturating_sub(range.start);
        Ok(match file {
            Some(file) => Box::new(tokio::fs::File::from_std(file).take(length)),
            None => Box::new(tokio::io::empty()),
        })
    }

    async fn held(&self, session: &str, name: &str) -> Result<Option<u64>, Error> {
        let (_, path) = self.path(session, name)?;
        tokio::task::spawn_blocking(move || match open_file(&path, false) {
            Ok(file) => Ok(Some(file.metadata()?.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Some(0)),
            Err(e) => Err(e.into()),
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }

    async fn seal(&self, session: &str, manifest: &SealedManifest) -> Result<(), Error> {
        let (dir, path) = self.path(session, MANIFEST)?;
        let body = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Io(e.into()))?;
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            create_dir(&dir)?;
            // Written whole under a temporary name, then renamed: a reader
            // never sees half a manifest, and a symlink in its place is
            // replaced, never followed.
            let temporary = dir.join(".manifest.json.tmp");
            let _ = std::fs::remove_file(&temporary);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&temporary)?;
            std::io::Write::write_all(&mut file, &body)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            Ok(())
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }

    async fn delete(&self, session: &str) -> Result<(), Error> {
        let (dir, _) = self.path(session, "x")?;
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}
