//! Writing sshd's files so that a reader never sees half of one, and so
//! that a set of changes can be undone: each file is written to a temporary
//! file beside it, synced, then renamed over the old one; what was there
//! before (content and mode, a symlink, or nothing) is remembered until the
//! change is committed or rolled back.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a path held before this set of changes touched it.
#[derive(Debug)]
enum Before {
    File {
        bytes: Vec<u8>,
        mode: u32,
    },
    Symlink(PathBuf),
    Nothing,
    /// A directory this set of changes created.
    NoDirectory,
}

/// A set of file changes that can be rolled back until committed.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// In the order the paths were first touched; undone in reverse.
    before: Vec<(PathBuf, Before)>,
    /// Paths whose content actually changed.
    changed: Vec<PathBuf>,
}

impl Changes {
    /// True when no file's content changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }

    /// The paths whose content changed, in order.
    #[cfg(test)]
    pub(crate) fn changed(&self) -> &[PathBuf] {
        &self.changed
    }

    /// Creates `dir` (0755) if it is missing; rollback removes it again.
    pub(crate) fn ensure_dir(&mut self, dir: &Path) -> io::Result<()> {
        if fs::symlink_metadata(dir).is_ok() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.ensure_dir(parent)?;
        }
        fs::create_dir(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(super::DIR_MODE))?;
        self.before.push((dir.to_path_buf(), Before::NoDirectory));
        Ok(())
    }

    /// Writes `bytes` to `path` with `mode`, atomically. Returns false (and
    /// touches nothing) when the file already holds exactly that.
    pub(crate) fn write(&mut self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
        if let Ok(meta) = fs::symlink_metadata(path)
            && meta.is_file()
            && meta.permissions().mode() & 0o7777 == mode
            && fs::read(path).is_ok_and(|old| old == bytes)
        {
            return Ok(false);
        }
        self.remember(path)?;
        write_atomic(path, bytes, mode)?;
        self.changed.push(path.to_path_buf());
        Ok(true)
    }

    /// Removes the file at `path`, if there is one.
    pub(crate) fn remove(&mut self, path: &Path) -> io::Result<bool> {
        if fs::symlink_metadata(path).is_err() {
            return Ok(false);
        }
        self.remember(path)?;
        fs::remove_file(path)?;
        sync_parent(path)?;
        self.changed.push(path.to_path_buf());
        Ok(true)
    }

    fn remember(&mut self, path: &Path) -> io::Result<()> {
        if self.before.iter().any(|(p, _)| p == path) {
            return Ok(());
        }
        let before = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Before::Nothing,
            Err(e) => return Err(e),
            Ok(meta) if meta.file_type().is_symlink() => Before::Symlink(fs::read_link(path)?),
            Ok(meta) if meta.is_file() => Before::File {
                bytes: fs::read(path)?,
                mode: meta.permissions().mode() & 0o7777,
            },
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a regular file; move it away first",
                    path.display()
                )));
            }
        };
        self.before.push((path.to_path_buf(), before));
        Ok(())
    }

    /// Keeps every change.
    pub(crate) fn commit(self) -> Vec<PathBuf> {
        self.changed
    }

    /// Puts every path back as it was, newest change first. Returns what
    /// could not be restored (empty when all went well).
    pub(crate) fn rollback(self) -> Vec<String> {
        let mut failures = Vec::new();
        for (path, before) in self.before.into_iter().rev() {
            let result = match before {
                Before::File { bytes, mode } => write_atomic(&path, &bytes, mode),
                Before::Symlink(target) => restore_symlink(&path, &target),
                Before::Nothing => match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
                Before::NoDirectory => fs::remove_dir(&path),
            };
            if let Err(e) = result {
                failures.push(format!("{}: {e}", path.display()));
            }
        }
        failures
    }
}

fn restore_symlink(path: &Path, target: &Path) -> io::Result<()> {
    let temporary = temporary_path(path);
    let _ = fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)?;
    fs::rename(&temporary, path)?;
    sync_parent(path)
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.shiftkey-{}", std::process::id()))
}

/// Writes a temporary file beside `path`, syncs it, renames it over `path`
/// and syncs the directory: readers see the old file or the new one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let temporary = temporary_path(path);
    let _ = fs::remove_file(&temporary);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        // The umask may have taken bits away.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
