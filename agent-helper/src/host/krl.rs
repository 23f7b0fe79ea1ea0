//! Checking a KRL (OpenSSH `PROTOCOL.krl`) before it replaces the one sshd
//! reads: the header, every section and every certificate subsection must
//! read as OpenSSH reads them, or the file is refused and the installed one
//! kept. sshd treats an unreadable `RevokedKeys` file as "every key
//! revoked", and an empty one as "none": neither may come from a bad
//! download. Framing alone is not enough: a section whose body OpenSSH
//! cannot read frames correctly and still locks everyone out.

/// `"SSHKRL\n\0"`.
const MAGIC: &[u8; 8] = b"SSHKRL\n\0";
const FORMAT_VERSION: u32 = 1;
/// Section types OpenSSH reads. Signatures (4) are refused by OpenSSH 9.4
/// and later, and the CA never writes them.
const SECTION_CERTIFICATES: u8 = 1;
const SECTION_EXPLICIT_KEY: u8 = 2;
const SECTION_FINGERPRINT_SHA1: u8 = 3;
const SECTION_FINGERPRINT_SHA256: u8 = 5;
/// Subsections of a certificates section.
const CERT_SERIAL_LIST: u8 = 0x20;
const CERT_SERIAL_RANGE: u8 = 0x21;
const CERT_SERIAL_BITMAP: u8 = 0x22;
const CERT_KEY_ID: u8 = 0x23;
/// OpenSSH's largest bignum (`SSHBUF_MAX_BIGNUM`), which bounds a serial
/// bitmap: 16,384 serials.
const MAX_BITMAP_BYTES: usize = 2048;
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
    #[error("it has a certificate subsection of unknown type {0:#04x}")]
    UnknownCertSubsection(u8),
    /// What OpenSSH refuses inside a section that frames correctly; sshd
    /// would then refuse every key.
    #[error("{0}, which OpenSSH refuses to load")]
    Invalid(&'static str),
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

/// Everything a KRL revokes, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revocations {
    pub(crate) info: KrlInfo,
    /// One entry per certificates section, in file order.
    pub(crate) certificates: Vec<RevokedCertificates>,
    /// Keys revoked by blob, SHA-1 or SHA-256 fingerprint (the CA writes
    /// none of these).
    pub(crate) keys: usize,
}

/// One certificates section: what it revokes among one CA's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevokedCertificates {
    /// `None` is OpenSSH's wildcard (an empty key): any CA.
    pub(crate) ca_key: Option<ssh_key::PublicKey>,
    /// Inclusive serial ranges in file order (a list entry is `(s, s)`, a
    /// bitmap its runs); never 0, `lo <= hi`.
    pub(crate) serials: Vec<(u64, u64)>,
    /// Key IDs in file order, without NUL bytes.
    pub(crate) key_ids: Vec<Vec<u8>>,
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
    fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        let bytes = self.take(1, what)?;
        bytes.first().copied().ok_or(Error::Truncated(what))
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
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses the header and every section, as strictly as OpenSSH loads it.
pub(crate) fn parse(bytes: &[u8]) -> Result<KrlInfo, Error> {
    decode(bytes).map(|revocations| revocations.info)
}

/// Reads the whole KRL. What it accepts, OpenSSH loads; what OpenSSH
/// refuses (and sshd would then take as "every key revoked"), it refuses.
/// Everything it keeps is bounded by the input's size.
pub(crate) fn decode(bytes: &[u8]) -> Result<Revocations, Error> {
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
    // OpenSSH reads the comment as bytes: a NUL in it is no error.
    r.string("the comment")?;
    let mut certificates = Vec::new();
    let mut keys = 0;
    let mut sections = 0;
    while !r.is_empty() {
        let kind = r.u8("a section type")?;
        let body = Reader(r.string("a section")?);
        match kind {
            SECTION_CERTIFICATES => certificates.push(certificates_section(body)?),
            SECTION_EXPLICIT_KEY => keys += blobs(body, None)?,
            SECTION_FINGERPRINT_SHA1 => keys += blobs(body, Some(20))?,
            SECTION_FINGERPRINT_SHA256 => keys += blobs(body, Some(32))?,
            other => return Err(Error::UnknownSection(other)),
        }
        sections += 1;
    }
    Ok(Revocations {
        info: KrlInfo {
            version,
            generated_at,
            sections,
        },
        certificates,
        keys,
    })
}

/// `string ca_key, string reserved`, then subsections (`byte type, string
/// data`), each of which must be read to its end.
fn certificates_section(mut r: Reader<'_>) -> Result<RevokedCertificates, Error> {
    let blob = r.string("a CA key")?;
    let ca_key = if blob.is_empty() {
        None
    } else {
        Some(
            ssh_key::PublicKey::from_bytes(blob)
                .map_err(|_| Error::Invalid("a CA key is not a public key"))?,
        )
    };
    r.string("a certificates section's reserved field")?;
    let mut revoked = RevokedCertificates {
        ca_key,
        serials: Vec::new(),
        key_ids: Vec::new(),
    };
    while !r.is_empty() {
        let kind = r.u8("a certificate subsection type")?;
        let mut sub = Reader(r.string("a certificate subsection")?);
        match kind {
            CERT_SERIAL_LIST => {
                while !sub.is_empty() {
                    let serial = sub.u64("a serial list")?;
                    revoked.serials.push(serial_range(serial, serial)?);
                }
            }
            CERT_SERIAL_RANGE => {
                let lo = sub.u64("a serial range")?;
                let hi = sub.u64("a serial range")?;
                revoked.serials.push(serial_range(lo, hi)?);
            }
            CERT_SERIAL_BITMAP => {
                let offset = sub.u64("a serial bitmap")?;
                let bitmap = sub.string("a serial bitmap")?;
                bitmap_runs(offset, bitmap, &mut revoked.serials)?;
            }
            CERT_KEY_ID => {
                while !sub.is_empty() {
                    let key_id = sub.string("a key ID")?;
                    if key_id.contains(&0) {
                        return Err(Error::Invalid("a key ID contains a NUL byte"));
                    }
                    revoked.key_ids.push(key_id.to_vec());
                }
            }
            other => return Err(Error::UnknownCertSubsection(other)),
        }
        if !sub.is_empty() {
            return Err(Error::Invalid(
                "a certificate subsection has trailing bytes",
            ));
        }
    }
    Ok(revoked)
}

/// OpenSSH refuses serial 0 (no serial) and reversed ranges.
fn serial_range(lo: u64, hi: u64) -> Result<(u64, u64), Error> {
    if lo == 0 {
        return Err(Error::Invalid("it revokes serial 0"));
    }
    if lo > hi {
        return Err(Error::Invalid("a serial range ends before it starts"));
    }
    Ok((lo, hi))
}

/// A bitmap subsection: bit `i` of the (positive, big-endian) bignum
/// revokes serial `offset + i`. Appends its runs.
fn bitmap_runs(offset: u64, bitmap: &[u8], out: &mut Vec<(u64, u64)>) -> Result<(), Error> {
    if bitmap.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(Error::Invalid("a serial bitmap is a negative number"));
    }
    let first_nonzero = bitmap.iter().position(|&b| b != 0).unwrap_or(bitmap.len());
    let bitmap = bitmap.get(first_nonzero..).unwrap_or_default();
    if bitmap.len() > MAX_BITMAP_BYTES {
        return Err(Error::Invalid("a serial bitmap is larger than 2048 bytes"));
    }
    let bits = u64::try_from(bitmap.len() * 8).unwrap_or(u64::MAX);
    if offset.checked_add(bits).is_none() {
        return Err(Error::Invalid(
            "a serial bitmap runs past the largest serial",
        ));
    }
    let mut run: Option<(u64, u64)> = None;
    for (index, byte) in bitmap.iter().rev().enumerate() {
        for bit in 0..8u64 {
            let serial = offset + (index as u64) * 8 + bit;
            if byte & (1 << bit) == 0 {
                if let Some(done) = run.take() {
                    out.push(done);
                }
                continue;
            }
            run = Some(match run {
                Some((lo, _)) => (lo, serial),
                None => serial_range(serial, serial)?,
            });
        }
    }
    out.extend(run);
    Ok(())
}

/// A section of strings (key blobs or fingerprints of `len` bytes).
fn blobs(mut r: Reader<'_>, len: Option<usize>) -> Result<usize, Error> {
    let mut count = 0;
    while !r.is_empty() {
        let blob = r.string("a revoked key")?;
        if len.is_some_and(|len| blob.len() != len) {
            return Err(Error::Invalid("a key fingerprint has the wrong length"));
        }
        count += 1;
    }
    Ok(count)
}

/// True when two KRLs revoke the same (they differ at most in when they
/// were generated): the CA stamps each download with the time.
pub(crate) fn same_revocations(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.len() >= GENERATED_AT.end
        && a[..GENERATED_AT.start] == b[..GENERATED_AT.start]
        && a[GENERATED_AT.end..] == b[GENERATED_AT.end..]
}
