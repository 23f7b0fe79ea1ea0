//! The recording files on disk: `recordings/SESSION/NAME` under the data
//! directory, 0700 directories and 0600 files, opened without following
//! symlinks, appended to only at their end.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{
    MAX_INDEX_LINES, MAX_READ, SEALING_MARKER, channel, file_order, index, is_file_name, is_sftp,
};

/// Uploads and seals of one session take the same lock (by a hash of the
/// session ID); different sessions rarely share one.
static SESSION_LOCKS: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];

fn session_lock(session: &str) -> std::sync::MutexGuard<'static, ()> {
    let hash = session.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let slot = usize::try_from(hash % 64).unwrap_or(0);
    SESSION_LOCKS[slot]
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why an append was refused.
#[derive(Debug)]
pub(super) enum AppendError {
    /// The session is being sealed.
    Sealing,
    /// `offset` is past the end; the file holds `stored` bytes.
    Gap {
        stored: u64,
    },
    /// The bytes at `offset` differ from the chunk's.
    Mismatch {
        stored: u64,
    },
    Io(std::io::Error),
}

pub(super) fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Opens a recording file without following a symlink planted in its place.
pub(super) fn open_file(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

/// Appends `chunk` at `offset` of `dir/name`. A chunk that overlaps the end
/// (a retry after a lost answer, or after a partial write) must match the
/// bytes already there; only its new tail is written. Returns the length.
pub(super) fn append(
    dir: &Path,
    name: &str,
    offset: u64,
    chunk: &[u8],
) -> Result<u64, AppendError> {
    let _guard = session_lock(&dir.to_string_lossy());
    if dir.join(SEALING_MARKER).exists() {
        return Err(AppendError::Sealing);
    }
    create_dir(dir).map_err(AppendError::Io)?;
    let mut file = open_file(&dir.join(name), true).map_err(AppendError::Io)?;
    let stored = file.metadata().map_err(AppendError::Io)?.len();
    if offset > stored {
        return Err(AppendError::Gap { stored });
    }
    let chunk_len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
    let overlap = usize::try_from((stored - offset).min(chunk_len)).unwrap_or(chunk.len());
    if overlap > 0 {
        let mut there = vec![0; overlap];
        file.seek(SeekFrom::Start(offset))
            .map_err(AppendError::Io)?;
        file.read_exact(&mut there).map_err(AppendError::Io)?;
        if there != chunk[..overlap] {
            return Err(AppendError::Mismatch { stored });
        }
    }
    let rest = &chunk[overlap..];
    if !rest.is_empty() {
        file.seek(SeekFrom::End(0)).map_err(AppendError::Io)?;
        file.write_all(rest).map_err(AppendError::Io)?;
        file.sync_data().map_err(AppendError::Io)?;
    }
    Ok(stored.max(offset + chunk_len))
}

/// Length and hex SHA-256 of a file; None when it does not exist.
pub(super) fn measure(path: &Path) -> std::io::Result<Option<(u64, String)>> {
    let mut file = match open_file(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += u64::try_from(n).unwrap_or(0);
    }
    Ok(Some((total, hex::encode(hasher.finalize()))))
}

/// The valid file names in a session's directory, with their lengths.
pub(super) fn stored_files(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if is_file_name(&name) && entry.file_type()?.is_file() {
            files.push((name, entry.metadata()?.len()));
        }
    }
    files.sort_by(|a, b| file_order(&a.0, &b.0));
    Ok(files)
}

/// Up to `MAX_READ` bytes of a file from `offset`, and its length; None
/// when it does not exist.
pub(super) fn read_at(path: &Path, offset: u64) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    let mut file = match open_file(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let length = file.metadata()?.len();
    let mut bytes = Vec::new();
    if offset < length {
        file.seek(SeekFrom::Start(offset))?;
        file.take(MAX_READ as u64).read_to_end(&mut bytes)?;
    }
    Ok(Some((bytes, length)))
}

/// What the CA holds of a session at its seal.
pub(super) struct Measured {
    /// Name → (bytes, sha256), for every file on disk.
    pub(super) stored: BTreeMap<String, (u64, String)>,
    /// Name → what the index found in it.
    pub(super) indexed: BTreeMap<String, index::Indexed>,
}

/// Stops further appends, then measures and indexes every stored file.
pub(super) fn measure_session(dir: &Path) -> std::io::Result<Measured> {
    {
        let _guard = session_lock(&dir.to_string_lossy());
        create_dir(dir)?;
        File::create(dir.join(SEALING_MARKER))?;
    }
    let mut stored = BTreeMap::new();
    let mut indexed = BTreeMap::new();
    let mut budget = MAX_INDEX_LINES;
    for (name, _) in stored_files(dir)? {
        let path = dir.join(&name);
        let Some(measured) = measure(&path)? else {
            continue;
        };
        let found = index::index_file(
            open_file(&path, false)?,
            channel(&name).unwrap_or(0),
            is_sftp(&name),
            budget,
        );
        budget = budget.saturating_sub(found.lines.len());
        stored.insert(name.clone(), measured);
        indexed.insert(name, found);
    }
    Ok(Measured { stored, indexed })
}
