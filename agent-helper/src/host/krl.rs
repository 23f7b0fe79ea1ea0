//! Checking a KRL (OpenSSH `PROTOCOL.krl`) before it replaces the one sshd
//! reads: the header and the section framing must parse, or the file is
//! refused and the installed one kept. sshd treats an unreadable
//! `RevokedKeys` file as "every key revoked", and an empty one as "none":
//! neither may come from a bad download.

/// `"SSHKRL\n\0"`.
const MAGIC: &[u8; 8] = b"SSHKRL\n\0";
const FORMAT_VERSION: u32 = 1;
/// The section types OpenSSH reads: certificates, explicit keys, SHA-1 and
/// SHA-256 fingerprints. Signatures (4) are refused by OpenSSH 9.4 and
/// later, and the CA never writes them.
const KNOWN_SECTIONS: [u8; 4] = [1, 2, 3, 5];
/// Where `generated_date` sits: after magic (8), format version (4) and
/// krl_version (8).
const GENERATED_AT: std::ops::Range<usize> = 20..28;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Error {
    #[error("it does not start with the KRL magic `SSHKRL\\n\\0` (is it an error page?)")]
    Magic,
    #[error("KRL format version {0}, this client reads version 1")]
    Version(u32),
    #[error("it ends in the middle of {0}")]
    Truncated(&'static str),
    #[error("it has a section of unknown type {0}")]
    UnknownSection(u8),
}

/// What the header says, once the whole file parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KrlInfo {
    /// Grows whenever the CA's revocations change.
    pub(crate) version: u64,
    /// When the CA generated it (unix seconds).
    pub(crate) generated_at: u64,
    pub(crate) sections: usize,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes(
            bytes.try_into().map_err(|_| Error::Truncated(what))?,
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        let bytes = self.take(8, what)?;
        Ok(u64::from_be_bytes(
            bytes.try_into().map_err(|_| Error::Truncated(what))?,
        ))
    }
    fn string(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let len = self.u32(what)?;
        self.take(usize::try_from(len).unwrap_or(usize::MAX), what)
    }
}

/// Parses the header and walks every section.
pub(crate) fn parse(bytes: &[u8]) -> Result<KrlInfo, Error> {
    let mut r = Reader(bytes);
    if r.take(8, "the magic").map_err(|_| Error::Magic)? != MAGIC {
        return Err(Error::Magic);
    }
    let format = r.u32("the format version")?;
    if format != FORMAT_VERSION {
        return Err(Error::Version(format));
    }
    let version = r.u64("the KRL version")?;
    let generated_at = r.u64("the generation date")?;
    r.u64("the flags")?;
    r.string("the reserved field")?;
    r.string("the comment")?;
    let mut sections = 0;
    while !r.0.is_empty() {
        let kind = r.take(1, "a section type")?[0];
        if !KNOWN_SECTIONS.contains(&kind) {
            return Err(Error::UnknownSection(kind));
        }
        r.string("a section")?;
        sections += 1;
    }
    Ok(KrlInfo {
        version,
        generated_at,
        sections,
    })
}

/// True when two KRLs revoke the same (they differ at most in when they
/// were generated): the CA stamps each download with the time.
pub(crate) fn same_revocations(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.len() >= GENERATED_AT.end
        && a[..GENERATED_AT.start] == b[..GENERATED_AT.start]
        && a[GENERATED_AT.end..] == b[GENERATED_AT.end..]
}
