//! The fuzz targets' inputs, replayed: every seed in `fuzz/corpus/TARGET/`
//! and every stored crash or regression in `fuzz/regressions/TARGET/` goes
//! through the same function the AFL binary calls (a failed property
//! panics), plus the library's own seeds. This is what CI runs; the long
//! fuzzing runs are `scripts/fuzz`. KRLs are also checked against the real
//! `ssh-keygen -Q` here, which is too slow for the fuzz loop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use shiftkey_tests::util::require_tool;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The stored inputs of one target: corpus and regressions, by path.
fn stored(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut inputs = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            inputs.push((path, bytes));
        }
    }
    inputs
}

/// Replays every stored input and library seed; returns how many.
fn replay(target: &str, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) -> usize {
    replay_with(target, shiftkey_ca::fuzzing::seeds(target), run)
}

/// [`replay`] with the seeds of another crate's fuzzing module.
fn replay_with(
    target: &str,
    seeds: Vec<Vec<u8>>,
    run: impl Fn(&[u8]) + std::panic::RefUnwindSafe,
) -> usize {
    let mut inputs = stored(target);
    inputs.extend(
        seeds
            .into_iter()
            .map(|s| (PathBuf::from("(library seed)"), s)),
    );
    for (path, bytes) in &inputs {
        if std::panic::catch_unwind(|| run(bytes)).is_err() {
            panic!("fuzz target {target} fails on {}", path.display());
        }
    }
    inputs.len()
}

/// Each target has a real corpus: at least `min` stored seeds.
fn assert_corpus(target: &str, min: usize) {
    let count = std::fs::read_dir(fuzz_dir().join("corpus").join(target))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert!(
        count >= min,
        "fuzz/corpus/{target} has {count} seeds, expected at least {min}"
    );
}

#[test]
fn krl_inputs_replay() {
    assert_corpus("krl", 8);
    replay("krl", |d| {
        shiftkey_ca::fuzzing::krl(d, shiftkey::fuzzing::krl_listing)
    });
}

#[test]
fn host_auth_inputs_replay() {
    assert_corpus("host_auth", 8);
    let seeds = shiftkey_wire::fuzzing::seeds();
    assert!(!seeds.is_empty());
    for seed in seeds {
        shiftkey_wire::fuzzing::host_auth(&seed);
    }
    replay("host_auth", shiftkey_wire::fuzzing::host_auth);
}

#[test]
fn oidc_token_inputs_replay() {
    assert_corpus("oidc_token", 10);
    replay("oidc_token", shiftkey_ca::fuzzing::oidc_token);
}

#[test]
fn oidc_jwks_inputs_replay() {
    assert_corpus("oidc_jwks", 5);
    replay("oidc_jwks", shiftkey_ca::fuzzing::oidc_jwks);
}

#[test]
fn ssh_key_inputs_replay() {
    assert_corpus("ssh_key", 20);
    replay("ssh_key", shiftkey_ca::fuzzing::ssh_key);
}

#[test]
fn join_token_inputs_replay() {
    assert_corpus("join_token", 3);
    replay("join_token", shiftkey_ca::fuzzing::join_token);
    shiftkey_ca::fuzzing::join_token_made_by_the_ca_reads_back();
}

#[test]
fn pkcs11_uri_inputs_replay() {
    assert_corpus("pkcs11_uri", 5);
    replay("pkcs11_uri", shiftkey_ca::fuzzing::pkcs11_uri);
}

#[test]
fn policy_inputs_replay() {
    assert_corpus("policy", 8);
    replay("policy", shiftkey_ca::fuzzing::policy);
}

#[test]
fn webhook_inputs_replay() {
    assert_corpus("webhook", 10);
    replay("webhook", shiftkey_ca::fuzzing::webhook);
}

#[test]
fn ical_inputs_replay() {
    assert_corpus("ical", 5);
    replay("ical", shiftkey_ca::fuzzing::ical);
}

#[test]
fn certificate_request_inputs_replay() {
    assert_corpus("certificate_request", 8);
    replay(
        "certificate_request",
        shiftkey_ca::fuzzing::certificate_request,
    );
}

#[test]
fn seal_manifest_inputs_replay() {
    assert_corpus("seal_manifest", 3);
    replay("seal_manifest", shiftkey_ca::fuzzing::seal_manifest);
}

#[test]
fn ui_cookie_inputs_replay() {
    assert_corpus("ui_cookie", 5);
    replay("ui_cookie", shiftkey_ca::fuzzing::ui_cookie);
}

/// The session cookie against a real SQLite store: ours finds its
/// session; every stored cookie input (forged, truncated, junk) finds none.
#[test]
fn ui_session_cookies_find_only_ours() {
    let dir = tempfile::tempdir().unwrap();
    let presented: Vec<Vec<u8>> = stored("ui_cookie")
        .into_iter()
        .map(|(_, bytes)| bytes.get(1..).unwrap_or_default().to_vec())
        .collect();
    assert!(!presented.is_empty());
    shiftkey_ca::fuzzing::ui_session_cookies(dir.path(), &presented);
}

#[test]
fn recording_upload_inputs_replay() {
    assert_corpus("recording_upload", 8);
    replay("recording_upload", shiftkey_ca::fuzzing::recording_upload);
}

/// Form posts to the review UI through its router, signed in, over a real
/// SQLite store: one CA for every input, as in the fuzzer's loop.
#[test]
fn ui_form_inputs_replay() {
    assert_corpus("ui_form", 10);
    let dir = tempfile::tempdir().unwrap();
    let forms = shiftkey_ca::fuzzing::UiForms::new(dir.path());
    let mut inputs = stored("ui_form");
    inputs.extend(
        shiftkey_ca::fuzzing::seeds("ui_form")
            .into_iter()
            .map(|s| (PathBuf::from("(library seed)"), s)),
    );
    for (path, bytes) in &inputs {
        let posted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| forms.post(bytes)));
        assert!(
            posted.is_ok(),
            "fuzz target ui_form fails on {}",
            path.display()
        );
    }
}

#[test]
fn bastion_channel_inputs_replay() {
    assert_corpus("bastion_channel", 3);
    replay_with(
        "bastion_channel",
        shiftkey_bastion::fuzzing::seeds("bastion_channel"),
        shiftkey_bastion::fuzzing::channel,
    );
}

#[test]
fn sftp_inputs_replay() {
    assert_corpus("sftp", 4);
    replay_with(
        "sftp",
        shiftkey_bastion::fuzzing::seeds("sftp"),
        shiftkey_bastion::fuzzing::sftp,
    );
}

/// A client that floods OPENs with the longest paths and never waits for
/// a reply: the SFTP reader gives up before it holds more than its limit
/// (before the fix it held every path: 65,536 of 256 KiB).
#[test]
fn sftp_reader_memory_is_bounded_under_an_open_flood() {
    shiftkey_bastion::fuzzing::sftp_flood();
}

#[test]
fn cast_inputs_replay() {
    assert_corpus("cast", 3);
    replay_with("cast", shiftkey_bastion::fuzzing::seeds("cast"), |d| {
        shiftkey_bastion::fuzzing::cast(d, shiftkey::fuzzing::cast_bytes)
    });
}

/// `ssh-keygen -Q -l -f KRL` in the host listing's form, without the
/// header line: `ca FP`, `serial N` / `serial A-B`, `id HEX` per CA.
fn ssh_keygen_listing(krl: &Path) -> Option<BTreeSet<String>> {
    let out = Command::new("ssh-keygen")
        .args(["-Q", "-l", "-f"])
        .arg(krl)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen: {e}"));
    if !out.status.success() {
        return None;
    }
    let mut blocks = BTreeSet::new();
    let mut block = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(ca) = line.strip_prefix("# CA key ") {
            if !block.is_empty() {
                blocks.insert(std::mem::take(&mut block));
            }
            let fingerprint = ca.split_whitespace().nth(1).unwrap_or("*");
            block = format!("ca {fingerprint}\n");
        } else if let Some(serial) = line.strip_prefix("serial: ") {
            block.push_str(&format!("serial {serial}\n"));
        } else if let Some(id) = line.strip_prefix("id: ") {
            block.push_str(&format!("id {}\n", shiftkey::fuzzing::hex(id.as_bytes())));
        }
    }
    if !block.is_empty() {
        blocks.insert(block);
    }
    Some(blocks)
}

/// The certificate blocks of a host listing (see `krl_listing`).
fn host_blocks(listing: &str) -> BTreeSet<String> {
    let mut blocks = BTreeSet::new();
    let mut block = String::new();
    for line in listing.lines().skip(1) {
        if line.starts_with("ca ") && !block.is_empty() {
            blocks.insert(std::mem::take(&mut block));
        }
        if line.starts_with("ca ") || line.starts_with("serial ") || line.starts_with("id ") {
            block.push_str(line);
            block.push('\n');
        }
    }
    if !block.is_empty() {
        blocks.insert(block);
    }
    blocks
}

/// What the CA writes, the host reads and `ssh-keygen -Q -l` lists agree;
/// and for the stored KRL files (OpenSSH's own, and regressions), the host
/// accepts exactly what OpenSSH loads and lists the same certificates.
#[test]
fn krl_listings_agree_with_ssh_keygen() {
    require_tool("ssh-keygen", "openssh-client").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("krl");
    let mut compared = 0;
    let mut inputs = stored("krl");
    inputs.extend(
        shiftkey_ca::fuzzing::seeds("krl")
            .into_iter()
            .map(|s| (PathBuf::from("(library seed)"), s)),
    );
    for (name, input) in &inputs {
        let (bytes, expected) = match shiftkey_ca::fuzzing::krl_written(input) {
            Some((bytes, expected)) => (bytes, Some(expected)),
            None if input.first().is_some_and(|s| s & 1 == 0) => (input[1..].to_vec(), None),
            None => continue,
        };
        std::fs::write(&path, &bytes).unwrap();
        let host = shiftkey::fuzzing::krl_listing(&bytes);
        let openssh = ssh_keygen_listing(&path);
        if let Some(expected) = &expected {
            assert_eq!(host.as_ref(), Ok(expected), "{}", name.display());
        }
        match (&host, &openssh) {
            (Ok(listing), Some(blocks)) => {
                assert_eq!(&host_blocks(listing), blocks, "{}", name.display());
            }
            (Err(_), None) => {}
            (host, openssh) => panic!(
                "{}: the host says {host:?}, ssh-keygen -Q {}",
                name.display(),
                if openssh.is_some() {
                    "loads it"
                } else {
                    "refuses it"
                }
            ),
        }
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} KRLs compared");
}
