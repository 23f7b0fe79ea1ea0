//! A minimal ssh-agent client: load an ed25519 key with its certificate under
//! a lifetime, list identities, remove one.
//!
//! It speaks the handful of messages of draft-miller-ssh-agent (OpenSSH
//! `PROTOCOL.agent`, certificate key formats from `PROTOCOL.certkeys`) on
//! ssh-key's encoding, because russh's agent client cannot add certificates.
//!
//! Owns: the wire format of those messages and the socket named by
//! `SSH_AUTH_SOCK`. Must never: write private key bytes anywhere but the agent
//! socket, or leave them in a buffer after a call returns (every buffer that
//! holds them is `Zeroizing`, sized up front so it never reallocates); trust a
//! length the agent sends without checking it against [`MAX_MESSAGE_LEN`].
//!
//! The client is blocking (`std::os::unix::net::UnixStream`, with read and
//! write timeouts): each call is one request and one reply on a local socket.
//! From async code, call it inside `tokio::task::spawn_blocking`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh_key::encoding::{self, CheckedSum, Decode, Encode, Reader};
use ssh_key::{Algorithm, Certificate, PrivateKey};
use zeroize::Zeroizing;

/// The environment variable naming the user's agent socket.
pub const SSH_AUTH_SOCK: &str = "SSH_AUTH_SOCK";

/// Largest agent message we accept, length prefix excluded. OpenSSH's agent
/// refuses the same (`AGENT_MAX_LEN`); a larger one is a broken or hostile
/// peer, and reading it would let it make us allocate without bound.
pub const MAX_MESSAGE_LEN: u32 = 256 * 1024;

/// How long one read or write on the agent socket may block. The agent answers
/// these requests at once; a peer that stalls is not an agent we can use.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// Message numbers, draft-miller-ssh-agent section 6.1.
const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENT_SUCCESS: u8 = 6;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_REMOVE_IDENTITY: u8 = 18;
const SSH_AGENTC_ADD_ID_CONSTRAINED: u8 = 25;
/// Constraint: the agent forgets the key after this many seconds (uint32).
const SSH_AGENT_CONSTRAIN_LIFETIME: u8 = 1;

/// Suffix of every OpenSSH certificate key type (`PROTOCOL.certkeys`).
const CERT_TYPE_SUFFIX: &str = "-cert-v01@openssh.com";

const START_AGENT_HINT: &str =
    "hint: start one with `eval \"$(ssh-agent -s)\"` and run this command again";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SSH_AUTH_SOCK is not set, so there is no ssh-agent to talk to\n{START_AGENT_HINT}")]
    NoAuthSock,

    #[error(
        "no ssh-agent is listening on {} (SSH_AUTH_SOCK): {source}\n\
         hint: the agent is not running or SSH_AUTH_SOCK is stale; \
         start one with `eval \"$(ssh-agent -s)\"` and run this command again",
        path.display()
    )]
    NotRunning { path: PathBuf, source: io::Error },

    #[error(
        "cannot connect to ssh-agent at {} (SSH_AUTH_SOCK): {source}\n\
         hint: check that the socket belongs to you and is an ssh-agent socket",
        path.display()
    )]
    Connect { path: PathBuf, source: io::Error },

    #[error("lost the connection to ssh-agent: {0}\nhint: check that ssh-agent is still running")]
    Io(#[source] io::Error),

    #[error("ssh-agent sent a {len}-byte message, larger than the {MAX_MESSAGE_LEN}-byte limit")]
    MessageTooLarge { len: u32 },

    #[error("ssh-agent sent a malformed reply to {request}: {reason}")]
    Malformed {
        request: &'static str,
        reason: &'static str,
    },

    #[error("ssh-agent sent a malformed reply to {request}: {source}")]
    Decode {
        request: &'static str,
        #[source]
        source: encoding::Error,
    },

    #[error("ssh-agent answered {request} with message type {reply}")]
    UnexpectedReply { request: &'static str, reply: u8 },

    #[error("ssh-agent refused to {request}")]
    Refused { request: &'static str },

    #[error("only ed25519 keys can be loaded into the agent, not {algorithm}")]
    UnsupportedKey { algorithm: Algorithm },

    #[error("the certificate was issued for a different public key than the one being loaded")]
    CertificateKeyMismatch,

    #[error("agent key lifetime {0:?} is out of range (1 second to {max} seconds)", max = u32::MAX)]
    InvalidLifetime(Duration),

    #[error("cannot encode the request for ssh-agent: {0}")]
    Encode(#[source] encoding::Error),
}

/// One key the agent holds, as `SSH_AGENT_IDENTITIES_ANSWER` lists it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The public key blob, exactly as the agent sent it; pass it to
    /// [`Agent::remove`].
    pub key_blob: Vec<u8>,
    /// The parsed certificate, carrying the agent's comment (invalid UTF-8
    /// replaced), when the blob's type is an OpenSSH
    /// `*-cert-v01@openssh.com` one that ssh-key can decode (ed25519, ECDSA);
    /// `None` for plain keys and for certificates of other algorithms.
    pub certificate: Option<Certificate>,
}

/// A connection to the user's ssh-agent.
#[derive(Debug)]
pub struct Agent {
    stream: UnixStream,
}

impl Agent {
    /// Connect to the agent named by `$SSH_AUTH_SOCK`.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_env_value(std::env::var_os(SSH_AUTH_SOCK))
    }

    /// [`Agent::from_env`] with the variable's value passed in, so the unset
    /// case can be tested without mutating the process environment.
    pub fn from_env_value(value: Option<OsString>) -> Result<Self, Error> {
        match value {
            Some(path) if !path.is_empty() => Self::connect(Path::new(&path)),
            _ => Err(Error::NoAuthSock),
        }
    }

    /// Connect to the agent listening on `path`.
    pub fn connect(path: &Path) -> Result<Self, Error> {
        let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Error::NotRunning {
                path: path.to_path_buf(),
                source,
            },
            _ => Error::Connect {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let set_timeouts = stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
        set_timeouts.map_err(|source| Error::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self { stream })
    }

    /// Load `key` with its certificate `cert`; the agent forgets both after
    /// `lifetime` (whole seconds, rounded down; at least one second).
    pub fn add_certificate(
        &mut self,
        key: &PrivateKey,
        cert: &Certificate,
        lifetime: Duration,
        comment: &str,
    ) -> Result<(), Error> {
        const REQUEST: &str = "add the certificate";
        let message = encode_add_certificate(key, cert, lifetime, comment)?;
        let reply = self.request(&message)?;
        drop(message);
        expect_success(&reply, REQUEST)
    }

    /// The identities the agent holds.
    pub fn list(&mut self) -> Result<Vec<Identity>, Error> {
        let mut message = Vec::with_capacity(5);
        encode_into(&mut message, &1u32)?;
        encode_into(&mut message, &SSH_AGENTC_REQUEST_IDENTITIES)?;
        let reply = self.request(&message)?;
        decode_identities(&reply)
    }

    /// Remove the identity whose public key blob is `key_blob` (as
    /// [`Identity::key_blob`] or `Certificate::to_bytes` gives it).
    pub fn remove(&mut self, key_blob: &[u8]) -> Result<(), Error> {
        const REQUEST: &str = "remove the identity";
        let body_len = [1, key_blob.encoded_len().map_err(Error::Encode)?]
            .checked_sum()
            .map_err(Error::Encode)?;
        let mut message = Vec::with_capacity(body_len.saturating_add(4));
        encode_into(&mut message, &wire_len(body_len)?)?;
        encode_into(&mut message, &SSH_AGENTC_REMOVE_IDENTITY)?;
        encode_into(&mut message, key_blob)?;
        let reply = self.request(&message)?;
        expect_success(&reply, REQUEST)
    }

    /// Send one framed message and read the framed reply (returned without
    /// its length prefix, never empty).
    fn request(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.stream.write_all(message).map_err(Error::Io)?;
        self.stream.flush().map_err(Error::Io)?;
        read_message(&mut self.stream)
    }
}

/// Build `SSH_AGENTC_ADD_ID_CONSTRAINED` for an ed25519 certificate key:
///
/// ```text
/// uint32 length
/// byte   SSH_AGENTC_ADD_ID_CONSTRAINED
/// string "ssh-ed25519-cert-v01@openssh.com"
/// string certificate blob
/// string ENC(A)               ed25519 public key
/// string k || ENC(A)          64 bytes: private seed, public key
/// string comment
/// byte   SSH_AGENT_CONSTRAIN_LIFETIME
/// uint32 seconds
/// ```
fn encode_add_certificate(
    key: &PrivateKey,
    cert: &Certificate,
    lifetime: Duration,
    comment: &str,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let keypair = key
        .key_data()
        .ed25519()
        .ok_or_else(|| Error::UnsupportedKey {
            algorithm: key.algorithm(),
        })?;
    if cert.public_key() != key.public_key().key_data() {
        return Err(Error::CertificateKeyMismatch);
    }
    let seconds = lifetime_seconds(lifetime)?;
    let key_type = cert.algorithm().to_certificate_type();

    let body_len = [
        1,
        key_type.encoded_len().map_err(Error::Encode)?,
        cert.encoded_len_prefixed().map_err(Error::Encode)?,
        keypair.encoded_len().map_err(Error::Encode)?,
        comment.encoded_len().map_err(Error::Encode)?,
        1,
        4,
    ]
    .checked_sum()
    .map_err(Error::Encode)?;
    let total = body_len
        .checked_add(4)
        .ok_or(Error::Encode(encoding::Error::Length))?;

    // Sized exactly, so writing never reallocates and leaves a stray copy of
    // the private key in freed memory; zeroized when dropped.
    let mut message = Zeroizing::new(Vec::with_capacity(total));
    let buf: &mut Vec<u8> = &mut message;
    encode_into(buf, &wire_len(body_len)?)?;
    encode_into(buf, &SSH_AGENTC_ADD_ID_CONSTRAINED)?;
    encode_into(buf, key_type.as_str())?;
    cert.encode_prefixed(buf).map_err(Error::Encode)?;
    // Ed25519Keypair encodes as `string ENC(A), string k || ENC(A)`, going
    // through a zeroizing temporary.
    keypair.encode(buf).map_err(Error::Encode)?;
    encode_into(buf, comment)?;
    encode_into(buf, &SSH_AGENT_CONSTRAIN_LIFETIME)?;
    encode_into(buf, &seconds)?;
    // Capacity was at least `total` from the start, so ending at exactly
    // `total` proves no write outgrew it (and none reallocated).
    if message.len() != total {
        return Err(Error::Encode(encoding::Error::Length));
    }
    Ok(message)
}

/// Seconds for the lifetime constraint: rounded down so the agent never
/// keeps the key longer than asked; zero would expire it at once.
fn lifetime_seconds(lifetime: Duration) -> Result<u32, Error> {
    match u32::try_from(lifetime.as_secs()) {
        Ok(seconds) if seconds > 0 => Ok(seconds),
        _ => Err(Error::InvalidLifetime(lifetime)),
    }
}

fn encode_into<T: Encode + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.encode(buf).map_err(Error::Encode)
}

fn wire_len(len: usize) -> Result<u32, Error> {
    u32::try_from(len).map_err(|_| Error::Encode(encoding::Error::Length))
}

/// Read one length-prefixed agent message, refusing empty ones and ones over
/// [`MAX_MESSAGE_LEN`] before allocating.
fn read_message(stream: &mut impl Read) -> Result<Vec<u8>, Error> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).map_err(Error::Io)?;
    let len = u32::from_be_bytes(prefix);
    if len > MAX_MESSAGE_LEN {
        return Err(Error::MessageTooLarge { len });
    }
    if len == 0 {
        return Err(Error::Malformed {
            request: "a request",
            reason: "empty message",
        });
    }
    let len = usize::try_from(len).map_err(|_| Error::MessageTooLarge { len })?;
    let mut message = vec![0u8; len];
    stream.read_exact(&mut message).map_err(Error::Io)?;
    Ok(message)
}

/// `SSH_AGENT_SUCCESS` → Ok, `SSH_AGENT_FAILURE` → [`Error::Refused`].
fn expect_success(reply: &[u8], request: &'static str) -> Result<(), Error> {
    match reply.first() {
        Some(&SSH_AGENT_SUCCESS) => Ok(()),
        Some(&SSH_AGENT_FAILURE) => Err(Error::Refused { request }),
        Some(&reply) => Err(Error::UnexpectedReply { request, reply }),
        None => Err(Error::Malformed {
            request,
            reason: "empty message",
        }),
    }
}

/// Parse `SSH_AGENT_IDENTITIES_ANSWER`:
/// `byte 12, uint32 nkeys, nkeys × (string key blob, string comment)`.
fn decode_identities(reply: &[u8]) -> Result<Vec<Identity>, Error> {
    const REQUEST: &str = "list identities";
    let decode_err = |source| Error::Decode {
        request: REQUEST,
        source,
    };
    let (&kind, mut reader) = reply.split_first().ok_or(Error::Malformed {
        request: REQUEST,
        reason: "empty message",
    })?;
    match kind {
        SSH_AGENT_IDENTITIES_ANSWER => {}
        SSH_AGENT_FAILURE => return Err(Error::Refused { request: REQUEST }),
        reply => {
            return Err(Error::UnexpectedReply {
                request: REQUEST,
                reply,
            });
        }
    }
    let count = u32::decode(&mut reader).map_err(decode_err)?;
    // Each identity takes at least two length prefixes: never trust `count`
    // for an allocation beyond what the message can hold.
    let bound = reader.remaining_len() / 8;
    let mut identities = Vec::with_capacity(usize::try_from(count).unwrap_or(bound).min(bound));
    for _ in 0..count {
        let key_blob = Vec::<u8>::decode(&mut reader).map_err(decode_err)?;
        let comment = Vec::<u8>::decode(&mut reader).map_err(decode_err)?;
        let comment = String::from_utf8_lossy(&comment).into_owned();
        let certificate = parse_certificate(&key_blob, &comment);
        identities.push(Identity {
            key_blob,
            certificate,
        });
    }
    if !reader.is_finished() {
        return Err(Error::Malformed {
            request: REQUEST,
            reason: "trailing bytes after the last identity",
        });
    }
    Ok(identities)
}

/// The certificate in `key_blob` when its type is `*-cert-v01@openssh.com`
/// and ssh-key can decode it.
fn parse_certificate(key_blob: &[u8], comment: &str) -> Option<Certificate> {
    let mut reader = key_blob;
    let key_type = String::decode(&mut reader).ok()?;
    if !key_type.ends_with(CERT_TYPE_SUFFIX) {
        return None;
    }
    let mut cert = Certificate::from_bytes(key_blob).ok()?;
    cert.set_comment(comment);
    Some(cert)
}

#[cfg(test)]
mod tests;
