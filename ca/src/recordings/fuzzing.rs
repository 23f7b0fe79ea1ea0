//! Fuzz entry point for what a bastion uploads (`crate::fuzzing::
//! recording_upload` calls it): a child of `recordings` so that it drives
//! the very functions the upload and seal handlers use.
//!
//! The input's first byte picks what the rest is:
//! - a recording file's bytes as the CA receives them (`N.cast.gz` or
//!   `N.sftp.jsonl.gz`, untrusted gzip), indexed as the seal indexes it;
//! - the text of a file the input writes, gzipped here, indexed whole and
//!   cut at a point the input picks (a bastion that died mid-upload);
//! - a seal request body (JSON), checked as the seal checks it.
//!
//! Properties:
//! - indexing never keeps more than it is allowed: at most the lines asked
//!   for, each of at most 2,000 characters with no control character
//!   besides tab, and `exec`/`input`/`sftp` sources only;
//! - a stream that ends early is not unreadable, and what it gives (but
//!   its last, unfinished line) is the start of what the whole file gives;
//! - a seal request is refused with a short message that holds no control,
//!   bidi or zero-width character, or it is accepted, and then the same
//!   claims measured against themselves reconcile with no problem, in
//!   channel order, and their digest does not depend on their order.

#![allow(clippy::panic, clippy::indexing_slicing)]

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use shiftkey_wire::SealRequest;

use super::index::{Indexed, index_file};
use super::upload::{Measured, check_seal, claims_digest, reconcile};
use super::{channel, file_order, is_file_name};
use crate::store::{Session, SessionStatus};

const NOW: i64 = 1_800_000_000;

pub(crate) fn recording_upload(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let sftp = selector & 0x04 != 0;
    let max_lines = usize::from(selector >> 4) * 4 + 1;
    match selector & 0x03 {
        0 => {
            let indexed = index_file(rest, 3, sftp, max_lines);
            check_indexed(&indexed, max_lines);
        }
        1 => {
            let Some((&cut, text)) = rest.split_first() else {
                return;
            };
            cut_short(text, cut, sftp, max_lines);
        }
        _ => seal(rest),
    }
}

fn check_indexed(indexed: &Indexed, max_lines: usize) {
    assert!(
        indexed.lines.len() <= max_lines,
        "{} lines",
        indexed.lines.len()
    );
    for line in &indexed.lines {
        assert!(
            line.line.chars().count() <= 2000,
            "a line of {} chars",
            line.line.len()
        );
        assert!(
            matches!(line.source, "input" | "sftp" | "exec"),
            "source {}",
            line.source
        );
        if line.source == "input" {
            assert!(
                !line.line.chars().any(|c| c.is_control() && c != '\t'),
                "typed line keeps a control character: {:?}",
                line.line
            );
        }
        assert!(line.seconds.is_finite(), "time {}", line.seconds);
    }
}

/// `text` as a gzip file; the recordings tests use it too.
pub(super) fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(text)
        .unwrap_or_else(|e| panic!("gzip: {e}"));
    encoder.finish().unwrap_or_else(|e| panic!("gzip: {e}"))
}

/// Our own gzip of `text`, whole and cut after `cut`/255 of its bytes.
fn cut_short(text: &[u8], cut: u8, sftp: bool, max_lines: usize) {
    let gz = gzip(text);
    let whole = index_file(gz.as_slice(), 1, sftp, max_lines);
    check_indexed(&whole, max_lines);
    assert!(
        whole.unreadable.is_none(),
        "our own gzip is unreadable: {:?}",
        whole.unreadable
    );
    let at = gz.len() * usize::from(cut) / 255;
    let part = index_file(&gz[..at], 1, sftp, max_lines);
    check_indexed(&part, max_lines);
    assert!(
        part.unreadable.is_none(),
        "a stream cut at {at} of {} is unreadable: {:?}",
        gz.len(),
        part.unreadable
    );
    if whole.lines.len() < max_lines {
        // The last line of the cut stream may be unfinished (typed input
        // continued after the cut).
        let settled = part.lines.len().saturating_sub(1);
        for (i, (a, b)) in part.lines[..settled].iter().zip(&whole.lines).enumerate() {
            assert!(
                a.line == b.line && a.source == b.source,
                "line {i} of the cut stream {a:?} is not the whole file's {b:?}"
            );
        }
        assert!(
            settled <= whole.lines.len(),
            "the cut stream gives more lines ({}) than the whole ({})",
            part.lines.len(),
            whole.lines.len()
        );
    }
}

fn session() -> Session {
    Session {
        id: "s_0123456789abcdef".into(),
        identity: "user:alice@example.com".into(),
        user_serial: 7,
        session_serial: 8,
        role: "db".into(),
        incident: None,
        principal: "postgres".into(),
        target: "db-1:22".into(),
        client_address: "192.0.2.10:50022".into(),
        bastion: "bastion-1".into(),
        started_at: NOW - 3600,
        ended_at: None,
        exit_status: None,
        end_reason: None,
        status: SessionStatus::Live,
        last_seen: Some(NOW - 5),
        recording_deleted_at: None,
        held: None,
    }
}

fn seal(body: &[u8]) {
    let Ok(request) = serde_json::from_slice::<SealRequest>(body) else {
        return;
    };
    // A file name the upload accepts has one spelling: its channel number
    // written plainly and one of the two extensions.
    for file in &request.files {
        if let Some(n) = channel(&file.name) {
            let kind = if file.name.ends_with(".sftp.jsonl.gz") {
                "sftp.jsonl.gz"
            } else {
                "cast.gz"
            };
            assert_eq!(
                file.name,
                format!("{n}.{kind}"),
                "a second spelling of channel {n}"
            );
        }
    }
    if let Err(message) = check_seal(&request, &session(), NOW) {
        assert!(message.len() <= 512, "a refusal of {} bytes", message.len());
        if let Some(c) = message
            .chars()
            .find(|&c| shiftkey_safe_text::hazard(c).is_some())
        {
            panic!("the refusal {message:?} holds U+{:04X}", u32::from(c));
        }
        return;
    }
    let mut measured = Measured::default();
    for file in &request.files {
        assert!(
            is_file_name(&file.name),
            "accepted the name {:?}",
            file.name
        );
        measured
            .stored
            .insert(file.name.clone(), (file.bytes, file.sha256.clone()));
    }
    let (files, problems) = reconcile(&request.files, &measured);
    assert!(
        problems.is_empty(),
        "claims against themselves: {problems:?}"
    );
    assert_eq!(files.len(), request.files.len());
    for pair in files.windows(2) {
        assert_eq!(
            file_order(&pair[0].name, &pair[1].name),
            std::cmp::Ordering::Less,
            "files out of order"
        );
    }
    for file in &files {
        let claim = request.files.iter().find(|c| c.name == file.name);
        assert_eq!(
            claim,
            Some(file),
            "the manifest's file differs from the claim"
        );
    }
    let mut reversed = request.files.clone();
    reversed.reverse();
    assert_eq!(claims_digest(&request.files), claims_digest(&reversed));
}

/// A recording as the bastion writes it, a sftp log, seal requests good
/// and bad.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let cast = concat!(
        "{\"version\":2,\"width\":80,\"height\":24,\"shiftkey\":{\"kind\":\"exec\",\"command\":\"uptime\"}}\n",
        "[0.1,\"o\",\"$ \"]\n",
        "[0.5,\"i\",\"ls -l\\u007f\\u007fla\\r\"]\n",
        "[0.6,\"b\",\"AAAA\"]\n",
        "[1.0,\"i\",\"sudo \\u001b[Dsystemctl restart db\\r\"]\n",
        "[1.2,\"i\",\"echo half-typed\"]\n",
    );
    let sftp = concat!(
        "{\"t\":0.2,\"op\":\"open\",\"path\":\"/etc/ssh/sshd_config\",\"flags\":\"read\"}\n",
        "{\"t\":0.3,\"op\":\"remove\",\"path\":\"/tmp/x\"}\n",
    );
    let file = |name: &str, sha: char| {
        format!(
            r#"{{"name":"{name}","kind":"shell","bytes":120,"sha256":"{}"}}"#,
            sha.to_string().repeat(64)
        )
    };
    let seal = |files: &[String]| {
        format!(
            r#"{{"ended_at":{},"exit_status":0,"end_reason":"client closed","files":[{}]}}"#,
            NOW - 10,
            files.join(",")
        )
    };
    vec![
        [&[0x30u8][..], &gzip(cast.as_bytes())].concat(),
        [&[0x34u8][..], &gzip(sftp.as_bytes())].concat(),
        [&[0x30u8][..], b"not gzip at all"].concat(),
        [&[0xF1u8, 128][..], cast.as_bytes()].concat(),
        [&[0x15u8, 200][..], sftp.as_bytes()].concat(),
        [
            &[0x02u8][..],
            seal(&[
                file("0.cast.gz", 'a'),
                file("10.cast.gz", 'b'),
                file("2.sftp.jsonl.gz", 'c'),
            ])
            .as_bytes(),
        ]
        .concat(),
        [&[0x02u8][..], seal(&[file("00.cast.gz", 'a')]).as_bytes()].concat(),
        [
            &[0x02u8][..],
            seal(&[file("1.cast.gz", 'a'), file("1.cast.gz", 'a')]).as_bytes(),
        ]
        .concat(),
        [
            &[0x02u8][..],
            seal(&[file("1.cast.gz\u{202e}", 'a')]).as_bytes(),
        ]
        .concat(),
        [&[0x02u8][..], seal(&[file("1.cast.gz", 'A')]).as_bytes()].concat(),
    ]
}
