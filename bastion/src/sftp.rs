//! Reads the SFTP protocol (draft-ietf-secsh-filexfer-02, what OpenSSH
//! speaks) passing through a channel, to record operations as structured
//! events: which file was opened, written, read, removed or renamed, and how
//! many bytes moved. Hand-written: no crate parses an SFTP stream passively
//! (the sftp crates are clients or servers), and only the request headers
//! matter here.
//!
//! A stream this reader cannot follow is an error, and the pump ends the
//! channel: the recording never stops while bytes go on passing.

use std::collections::HashMap;

use serde_json::{Value, json};

const MAX_PACKET: usize = 256 * 1024 + 1024;
/// Requests waiting for their reply, per kind; a client that keeps more
/// outstanding is not one this reader follows.
const MAX_OUTSTANDING: usize = 65_536;
/// Bytes of paths and handles kept for outstanding requests and open
/// handles, all told: each may be as long as a packet, so without this a
/// client could make the bastion hold gigabytes (65,536 requests of 256 KiB).
const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;

/// Why the reader cannot follow the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SftpError {
    #[error("SFTP packet length {0} out of range")]
    PacketLength(usize),
    #[error("more than {MAX_OUTSTANDING} SFTP requests outstanding")]
    Outstanding,
    #[error("more than {MAX_HELD_BYTES} bytes of paths and handles outstanding")]
    Held,
}

/// Both directions of one SFTP channel.
#[derive(Debug, Default)]
pub(crate) struct SftpParser {
    client: Vec<u8>,
    server: Vec<u8>,
    /// Request id → path, for OPEN/OPENDIR until the HANDLE reply.
    pending: HashMap<u32, (String, &'static str)>,
    /// Handle → (path, bytes written, bytes read).
    handles: HashMap<Vec<u8>, (String, u64, u64)>,
    /// Request id → handle, for READs until their DATA reply.
    reads: HashMap<u32, Vec<u8>>,
    /// Bytes of the paths and handles in the three maps.
    held: usize,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.0.get(..4)?;
        let v = u32::from_be_bytes(b.try_into().ok()?);
        self.0 = self.0.get(4..)?;
        Some(v)
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.0.get(..8)?;
        let v = u64::from_be_bytes(b.try_into().ok()?);
        self.0 = self.0.get(8..)?;
        Some(v)
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        let s = self.0.get(..n)?;
        self.0 = self.0.get(n..)?;
        Some(s)
    }
    fn text(&mut self) -> Option<String> {
        self.string()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
}

impl SftpParser {
    /// Bytes from the user; returns the events they complete.
    pub(crate) fn client_bytes(&mut self, data: &[u8]) -> Result<Vec<Value>, SftpError> {
        let mut buf = std::mem::take(&mut self.client);
        buf.extend_from_slice(data);
        let events = self.packets(&mut buf, true);
        self.client = buf;
        events
    }

    /// Bytes from the target.
    pub(crate) fn server_bytes(&mut self, data: &[u8]) -> Result<Vec<Value>, SftpError> {
        let mut buf = std::mem::take(&mut self.server);
        buf.extend_from_slice(data);
        let events = self.packets(&mut buf, false);
        self.server = buf;
        events
    }

    fn packets(&mut self, buf: &mut Vec<u8>, from_client: bool) -> Result<Vec<Value>, SftpError> {
        let mut events = Vec::new();
        while let Some(len) = buf
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
        {
            let len = len as usize;
            if len == 0 || len > MAX_PACKET {
                return Err(SftpError::PacketLength(len));
            }
            let Some(packet) = buf.get(4..4 + len) else {
                break;
            };
            let packet = packet.to_vec();
            buf.drain(..4 + len);
            let event = if from_client {
                self.request(&packet)
            } else {
                self.reply(&packet)
            };
            events.extend(event);
            if self.pending.len() > MAX_OUTSTANDING
                || self.handles.len() > MAX_OUTSTANDING
                || self.reads.len() > MAX_OUTSTANDING
            {
                return Err(SftpError::Outstanding);
            }
            if self.held > MAX_HELD_BYTES {
                return Err(SftpError::Held);
            }
        }
        Ok(events)
    }

    fn request(&mut self, packet: &[u8]) -> Option<Value> {
        let mut c = Cursor(packet);
        let kind = c.u8()?;
        if kind == 1 {
            return Some(json!({ "op": "init", "version": c.u32()? }));
        }
        let id = c.u32()?;
        match kind {
            3 => {
                let path = c.text()?;
                let flags = c.u32()?;
                let mode = if flags & 0x02 != 0 { "write" } else { "read" };
                self.hold_pending(id, path.clone(), "open");
                Some(json!({ "op": "open", "path": path, "mode": mode }))
            }
            11 => {
                let path = c.text()?;
                self.hold_pending(id, path.clone(), "opendir");
                Some(json!({ "op": "opendir", "path": path }))
            }
            4 => {
                let handle = c.string()?.to_vec();
                let (path, written, read) = self.handles.remove(&handle)?;
                self.release(handle.len() + path.len());
                Some(
                    json!({ "op": "close", "path": path, "bytes_written": written, "bytes_read": read }),
                )
            }
            5 => {
                let handle = c.string()?.to_vec();
                self.held += handle.len();
                if let Some(old) = self.reads.insert(id, handle) {
                    self.release(old.len());
                }
                None
            }
            6 => {
                let handle = c.string()?.to_vec();
                let _offset = c.u64()?;
                let data = c.string()?;
                if let Some(entry) = self.handles.get_mut(&handle) {
                    entry.1 += data.len() as u64;
                }
                None
            }
            13 => Some(json!({ "op": "remove", "path": c.text()? })),
            14 => Some(json!({ "op": "mkdir", "path": c.text()? })),
            15 => Some(json!({ "op": "rmdir", "path": c.text()? })),
            18 => Some(json!({ "op": "rename", "path": c.text()?, "to": c.text()? })),
            9 => Some(json!({ "op": "setstat", "path": c.text()? })),
            20 => Some(json!({ "op": "symlink", "path": c.text()?, "to": c.text()? })),
            _ => None,
        }
    }

    /// Remembers the path of an OPEN/OPENDIR until its reply.
    fn hold_pending(&mut self, id: u32, path: String, op: &'static str) {
        self.held += path.len();
        if let Some((old, _)) = self.pending.insert(id, (path, op)) {
            self.release(old.len());
        }
    }

    fn release(&mut self, bytes: usize) {
        self.held = self.held.saturating_sub(bytes);
    }

    /// Bytes this reader keeps between packets: the incomplete packets of
    /// both directions and the paths and handles it follows.
    pub(crate) fn retained_bytes(&self) -> usize {
        self.client.len() + self.server.len() + self.held
    }

    fn reply(&mut self, packet: &[u8]) -> Option<Value> {
        let mut c = Cursor(packet);
        let kind = c.u8()?;
        if kind == 2 {
            return None; // VERSION
        }
        let id = c.u32()?;
        match kind {
            102 => {
                let handle = c.string()?.to_vec();
                let (path, _) = self.pending.remove(&id)?;
                // The path moves from the request to the handle.
                self.held += handle.len();
                let handle_len = handle.len();
                if let Some((old, _, _)) = self.handles.insert(handle, (path, 0, 0)) {
                    self.release(handle_len + old.len());
                }
                None
            }
            103 => {
                let handle = self.reads.remove(&id)?;
                self.release(handle.len());
                let data = c.string()?;
                if let Some(entry) = self.handles.get_mut(&handle) {
                    entry.2 += data.len() as u64;
                }
                None
            }
            101 => {
                if let Some(handle) = self.reads.remove(&id) {
                    self.release(handle.len());
                }
                let code = c.u32()?;
                let pending = self.pending.remove(&id);
                if let Some((path, _)) = &pending {
                    self.release(path.len());
                }
                match pending {
                    Some((path, op)) if code != 0 => {
                        Some(json!({ "op": format!("{op}-failed"), "path": path, "status": code }))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, body: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![kind];
        for b in body {
            p.extend_from_slice(b);
        }
        let mut out = (p.len() as u32).to_be_bytes().to_vec();
        out.extend(p);
        out
    }
    fn s(v: &[u8]) -> Vec<u8> {
        let mut out = (v.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn an_upload_is_recorded_as_open_and_close_with_its_size() {
        let mut p = SftpParser::default();
        let id = 7u32.to_be_bytes();
        let open = packet(
            3,
            &[
                &id,
                &s(b"/tmp/up.bin"),
                &0x1au32.to_be_bytes(),
                &0u32.to_be_bytes(),
            ],
        );
        // Split mid-packet, as the wire does.
        let (a, b) = open.split_at(5);
        assert!(p.client_bytes(a).unwrap().is_empty());
        let ev = p.client_bytes(b).unwrap();
        assert_eq!(ev[0]["op"], "open");
        assert_eq!(ev[0]["path"], "/tmp/up.bin");
        assert_eq!(ev[0]["mode"], "write");
        p.server_bytes(&packet(102, &[&id, &s(b"H1")])).unwrap();
        let w = packet(
            6,
            &[
                &8u32.to_be_bytes(),
                &s(b"H1"),
                &0u64.to_be_bytes(),
                &s(&[0u8; 1000]),
            ],
        );
        p.client_bytes(&w).unwrap();
        let close = p
            .client_bytes(&packet(4, &[&9u32.to_be_bytes(), &s(b"H1")]))
            .unwrap();
        assert_eq!(close[0]["op"], "close");
        assert_eq!(close[0]["bytes_written"], 1000);
    }

    #[test]
    fn a_stream_that_is_not_sftp_is_an_error_not_silence() {
        let mut p = SftpParser::default();
        // What a shell's typing looks like to an SFTP reader.
        assert_eq!(
            p.client_bytes(b"echo SECRET > /tmp/x; id\n"),
            Err(SftpError::PacketLength(0x6563_686f))
        );
        assert!(p.server_bytes(&[0, 0, 0, 0]).is_err());
    }
}
