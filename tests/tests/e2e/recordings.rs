//! Session recordings at the CA, with real parts: an enrolled bastion (its
//! own host key, requests signed with `Shiftkey-Host`) ships gzip casts in
//! chunks and seals them; reviewers list, search, play, watch, export and
//! verify with the real `shiftkey` client; everyone else is refused and
//! audited.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::util::{binary, run};
use ssh_key::{Algorithm, Certificate, PrivateKey};

use crate::fixtures::{LOGIN_USER, policy};

const CLIENT_ID: &str = "shiftkey-e2e";
const REVIEWERS: &str = "reviewers = [\"group:security\", \"user:sec@example.com\"]\n";

fn new_key() -> anyhow::Result<PrivateKey> {
    Ok(PrivateKey::random(
        &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
        Algorithm::Ed25519,
    )?)
}

/// An enrolled bastion (or host): its key and the certificate the CA signed.
pub(super) struct Enrolled {
    key: PrivateKey,
    certificate: Certificate,
}

pub(super) struct World {
    provider: OidcProvider,
    pub(super) ca: TestCa,
    pub(super) bastion: Enrolled,
    /// The reviewer's client world: `shiftkey` with its own HOME.
    home: tempfile::TempDir,
}

impl World {
    pub(super) fn new() -> anyhow::Result<Self> {
        let provider = OidcProvider::start()?;
        let (text, _) = policy();
        let ca = TestCa::init(
            &format!("{REVIEWERS}{text}"),
            Some((provider.issuer(), CLIENT_ID)),
        )?
        .start()?;
        let bastion = enroll(&ca, "bastion-1", true)?;
        Ok(Self {
            provider,
            ca,
            bastion,
            home: tempfile::tempdir()?,
        })
    }

    /// A session through `bastion-1` for a certificate local:root got.
    pub(super) fn session(&self) -> anyhow::Result<String> {
        let user_key = new_key()?;
        let (status, issued) = self.ca.request_local(&json!({
            "public_key": user_key.public_key().to_openssh()?, "role": "shell",
        }))?;
        assert_eq!(status, 200, "{issued}");
        let (status, grant) = signed_json(
            &self.ca,
            &self.bastion,
            "/v1/sessions",
            &json!({
                "user_certificate": issued["certificate"],
                "principal": LOGIN_USER,
                "target_host": "127.0.0.1",
                "target_port": 22,
                "client_address": "127.0.0.1:40000",
                "session_key": new_key()?.public_key().to_openssh()?,
            }),
        )?;
        assert_eq!(status, 200, "{grant}\n{}", self.ca.log());
        Ok(grant["session_id"]
            .as_str()
            .context("no session_id")?
            .to_owned())
    }

    pub(super) fn upload(
        &self,
        by: &Enrolled,
        session: &str,
        name: &str,
        offset: usize,
        bytes: &[u8],
    ) -> anyhow::Result<(u16, Value)> {
        let (status, body) = signed(
            &self.ca,
            by,
            &format!("/v1/recordings/{session}/files/{name}?offset={offset}"),
            bytes,
        )?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    pub(super) fn seal(
        &self,
        session: &str,
        files: &[(&str, &str, &[u8])],
    ) -> anyhow::Result<(u16, Value)> {
        let files: Vec<Value> = files
            .iter()
            .map(|(name, kind, bytes)| {
                json!({ "name": name, "kind": kind, "command": null,
                        "bytes": bytes.len(), "sha256": hex::encode(Sha256::digest(bytes)) })
            })
            .collect();
        signed_json(
            &self.ca,
            &self.bastion,
            &format!("/v1/recordings/{session}/seal"),
            &json!({
                "ended_at": chrono::Utc::now().timestamp(),
                "exit_status": 0,
                "end_reason": "client closed",
                "files": files,
            }),
        )
    }

    /// `shiftkey ARGS` as local:root on the CA's socket.
    pub(super) fn shiftkey(&self, args: &[&str]) -> anyhow::Result<Output> {
        run(&mut self.command(args)?)
    }

    fn command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let socket = format!("unix:{}", self.ca.socket().display());
        let mut cmd = Command::new(binary("shiftkey")?);
        cmd.args(args)
            .args(["--ca", &socket])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        Ok(cmd)
    }

    /// `GET path` over HTTPS with an ID token for `email` in `groups`.
    fn get_as(&self, email: &str, groups: &[&str], path: &str) -> anyhow::Result<(u16, Value)> {
        let token = self.provider.mint(json!({
            "aud": CLIENT_ID, "sub": email, "email": email, "groups": groups,
        }))?;
        let response = self
            .ca
            .client()
            .get(self.ca.url(path))
            .bearer_auth(token)
            .send()?;
        let status = response.status().as_u16();
        Ok((status, response.json().unwrap_or(Value::Null)))
    }
}

/// `shiftkey-ca hosts token`, then `POST /v1/hosts/enroll` with a new key.
fn enroll(ca: &TestCa, name: &str, bastion: bool) -> anyhow::Result<Enrolled> {
    let dir = ca.data_dir().to_string_lossy().into_owned();
    let principals = format!("{name}.example.com");
    let mut args = vec![
        "hosts",
        "token",
        "--data-dir",
        &dir,
        "--name",
        name,
        "--principals",
        &principals,
        "--json",
    ];
    if bastion {
        args.push("--bastion");
    }
    let out = ca.cli(&args)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token: Value = serde_json::from_slice(&out.stdout)?;
    let key = new_key()?;
    let response = ca
        .client()
        .post(ca.url("/v1/hosts/enroll"))
        .json(&json!({ "token": token["token"], "host_key": key.public_key().to_openssh()? }))
        .send()?;
    let status = response.status().as_u16();
    let answer: Value = response.json()?;
    assert_eq!(status, 200, "{answer}");
    let certificate =
        Certificate::from_openssh(answer["certificate"].as_str().context("no certificate")?)?;
    Ok(Enrolled { key, certificate })
}

/// A POST signed like an enrolled host signs it.
fn signed(ca: &TestCa, by: &Enrolled, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let ts = u64::try_from(chrono::Utc::now().timestamp())?;
    let authorization =
        shiftkey_wire::host_auth::authorization(&by.key, &by.certificate, "POST", path, ts, body)?;
    let response = ca
        .client()
        .post(ca.url(path))
        .header("authorization", authorization)
        .body(body.to_vec())
        .send()?;
    let status = response.status().as_u16();
    Ok((status, response.bytes()?.to_vec()))
}

fn signed_json(
    ca: &TestCa,
    by: &Enrolled,
    path: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let (status, bytes) = signed(ca, by, path, body.to_string().as_bytes())?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// The cast the bastion would write for a shell: typed `echo helo`, a
/// backspace, `lo`, Enter; then output. Returns the gzip bytes and the
/// offset of the first sync flush (everything before it is readable alone).
pub(super) fn shell_cast(session: &str) -> anyhow::Result<(Vec<u8>, usize, String)> {
    let header = json!({
        "version": 2, "width": 80, "height": 24, "timestamp": 1_790_000_000,
        "env": { "TERM": "xterm-256color", "SHELL": "/bin/sh" }, "title": "db",
        "shiftkey": { "session": session, "channel": 0, "kind": "shell", "command": null,
                      "identity": "local:root", "principal": LOGIN_USER, "target": "127.0.0.1:22" },
    });
    let first = format!(
        "{header}\n{}\n{}\n{}\n",
        json!([0.1, "o", "$ "]),
        json!([0.5, "i", "echo helo"]),
        json!([0.8, "i", "\u{7f}lo\r"]),
    );
    let second = format!(
        "{}\n{}\n{}\n{}\n",
        json!([0.81, "o", "echo hello\r\nhello\r\n$ "]),
        json!([1.2, "r", "100x30"]),
        json!([2.0, "i", "exit\r"]),
        json!([2.1, "o", "exit\r\n\u{1b}]52;c;c3RvbGVu\u{7}bye\r\n"]),
    );
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(first.as_bytes())?;
    gz.flush()?;
    let flushed = gz.get_ref().len();
    gz.write_all(second.as_bytes())?;
    Ok((gz.finish()?, flushed, format!("{first}{second}")))
}

fn sftp_log() -> anyhow::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    for event in [
        json!({ "t": 0.2, "op": "open", "path": "/tmp/upload.bin", "bytes": 0 }),
        json!({ "t": 0.3, "op": "write", "path": "/tmp/upload.bin", "bytes": 4096 }),
        json!({ "t": 0.4, "op": "close", "path": "/tmp/upload.bin", "bytes": 4096 }),
    ] {
        writeln!(gz, "{event}")?;
    }
    Ok(gz.finish()?)
}

/// Bytes that do not compress and are no gzip stream.
fn noise(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(b"noise");
    while bytes.len() < len {
        bytes.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    bytes.truncate(len);
    bytes
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn audit_kinds(ca: &TestCa, kind: &str) -> anyhow::Result<Vec<Value>> {
    Ok(ca
        .audit_rows()?
        .into_iter()
        .filter(|r| r["kind"] == kind)
        .collect())
}

#[test]
fn a_recording_is_uploaded_sealed_found_exported_and_verified() -> anyhow::Result<()> {
    let w = World::new()?;
    let session = w.session()?;
    let (cast, flushed, text) = shell_cast(&session)?;
    let sftp = sftp_log()?;

    // Two chunks, the first ending at the sync flush.
    let (status, ack) = w.upload(&w.bastion, &session, "0.cast.gz", 0, &cast[..flushed])?;
    assert_eq!(
        (status, ack["bytes"].as_u64()),
        (200, Some(flushed as u64)),
        "{ack}"
    );
    // A gap is refused; a retry of what the CA has is answered again.
    let (status, refused) = w.upload(
        &w.bastion,
        &session,
        "0.cast.gz",
        flushed + 10,
        &cast[flushed..],
    )?;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("send from offset {flushed}")),
        "{refused}"
    );
    let (status, _) = w.upload(&w.bastion, &session, "0.cast.gz", 0, &cast[..flushed])?;
    assert_eq!(status, 200, "an idempotent retry");
    let (status, _) = w.upload(&w.bastion, &session, "0.cast.gz", 0, b"other bytes")?;
    assert_eq!(status, 409, "recordings are append-only");
    let (status, ack) = w.upload(&w.bastion, &session, "0.cast.gz", flushed, &cast[flushed..])?;
    assert_eq!(
        (status, ack["bytes"].as_u64()),
        (200, Some(cast.len() as u64))
    );
    let (status, _) = w.upload(&w.bastion, &session, "1.sftp.jsonl.gz", 0, &sftp)?;
    assert_eq!(status, 200);
    let (status, _) = w.upload(&w.bastion, &session, "../0.cast.gz", 0, b"x")?;
    assert_eq!(status, 404, "only channel file names");

    // The files sit under the data directory, private to the CA.
    let dir = w.ca.data_dir().join("recordings").join(&session);
    assert_eq!(std::fs::read(dir.join("0.cast.gz"))?, cast);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dir)?.permissions().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(dir.join("0.cast.gz"))?
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Another bastion may not write to this session; a plain host neither.
    let other = enroll(&w.ca, "bastion-2", true)?;
    let (status, refused) = w.upload(&other, &session, "0.cast.gz", cast.len(), b"evil")?;
    assert_eq!(status, 403, "{refused}");
    let row = w.ca.last_audit("recording.upload_refused")?;
    assert_eq!(row["actor"], "bastion:bastion-2", "{row}");
    assert_eq!(row["detail"]["session"], session.as_str());
    let host = enroll(&w.ca, "db-1", false)?;
    let (status, _) = w.upload(&host, &session, "0.cast.gz", cast.len(), b"evil")?;
    assert_eq!(status, 403);

    // Listed live while it runs, then sealed.
    let (status, live) =
        w.ca.local("GET", &format!("/v1/recordings/{session}"), &Value::Null)?;
    assert_eq!(
        (status, live["status"].as_str()),
        (200, Some("live")),
        "{live}"
    );
    let (status, sealed) = w.seal(
        &session,
        &[
            ("0.cast.gz", "shell", &cast),
            ("1.sftp.jsonl.gz", "sftp", &sftp),
        ],
    )?;
    assert_eq!(status, 200, "{sealed}\n{}", w.ca.log());
    assert_eq!(sealed["status"], "sealed", "{sealed}");
    assert_eq!(sealed["files"].as_array().map(Vec::len), Some(2));
    let manifest: Value = serde_json::from_str(sealed["manifest"].as_str().context("manifest")?)?;
    assert_eq!(manifest["session_id"], session.as_str());
    assert_eq!(manifest["identity"], "local:root");
    assert_eq!(
        sealed["digest"].as_str(),
        Some(
            hex::encode(Sha256::digest(
                sealed["manifest"].as_str().unwrap_or_default()
            ))
            .as_str()
        )
    );
    let row = w.ca.last_audit("recording.sealed")?;
    assert_eq!(row["actor"], "bastion:bastion-1");
    assert_eq!(row["detail"]["digest"], sealed["digest"]);
    // The same seal again (a lost answer) gets the same answer; no chunk
    // lands after the seal.
    let (status, again) = w.seal(
        &session,
        &[
            ("0.cast.gz", "shell", &cast),
            ("1.sftp.jsonl.gz", "sftp", &sftp),
        ],
    )?;
    assert_eq!((status, &again["digest"]), (200, &sealed["digest"]));
    let (status, _) = w.upload(&w.bastion, &session, "0.cast.gz", cast.len(), b"late")?;
    assert_eq!(status, 409);

    // The signature is a plain SSHSIG: ssh-keygen checks it too.
    let work = tempfile::tempdir()?;
    let user_ca =
        w.ca.client()
            .get(w.ca.url("/v1/ca/user.pub"))
            .send()?
            .text()?;
    std::fs::write(
        work.path().join("allowed"),
        format!("shiftkey-ca {user_ca}"),
    )?;
    std::fs::write(
        work.path().join("manifest.sig"),
        sealed["signature"].as_str().unwrap_or_default(),
    )?;
    let mut keygen = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(work.path().join("allowed"))
        .args([
            "-I",
            "shiftkey-ca",
            "-n",
            "shiftkey-recording@shiftkey",
            "-s",
        ])
        .arg(work.path().join("manifest.sig"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    keygen
        .stdin
        .take()
        .context("stdin")?
        .write_all(sealed["manifest"].as_str().unwrap_or_default().as_bytes())?;
    let verified = keygen.wait_with_output()?;
    assert!(verified.status.success(), "{}", stderr(&verified));

    // list and search, through the client (local:root on the socket).
    let out = w.shiftkey(&[
        "recordings",
        "list",
        "--user",
        "local:root",
        "--host",
        "127.0.0.1",
        "--since",
        "1h",
        "--json",
    ])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(listed[0]["session_id"], session.as_str(), "{listed}");
    assert_eq!(listed[0]["status"], "sealed");
    let out = w.shiftkey(&["recordings", "list", "--user", "bob@example.com", "--json"])?;
    assert_eq!(stdout(&out).trim(), "[]");
    let out = w.shiftkey(&["recordings", "search", "echo hello", "--json"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let found: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["session_id"], session.as_str());
    assert_eq!(found[0]["line"], "echo hello", "the backspace is applied");
    assert_eq!(found[0]["channel"], 0);
    assert_eq!(found[0]["source"], "input");
    assert_eq!(
        found[0]["offset_seconds"], 0.5,
        "the line's first keystroke"
    );
    let out = w.shiftkey(&["recordings", "search", "/tmp/upload"])?;
    assert!(
        stdout(&out).contains("open /tmp/upload.bin"),
        "{}",
        stdout(&out)
    );
    let searches = audit_kinds(&w.ca, "recording.searched")?;
    assert_eq!(searches.len(), 2, "{searches:?}");
    assert_eq!(searches[0]["detail"]["query"], "echo hello");

    // play, all at once: output only, the clipboard write dropped.
    let out = w.shiftkey(&["recordings", "play", &session, "--speed", "0"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "$ echo hello\r\nhello\r\n$ exit\r\nbye\r\n");
    let row = w.ca.last_audit("recording.viewed")?;
    assert_eq!(row["actor"], "local:root");
    assert_eq!(row["detail"]["purpose"], "play");

    // export, then verify offline with the CA key from a trusted source.
    let bundle = work.path().join("bundle");
    let bundle_arg = bundle.to_string_lossy().into_owned();
    let out = w.shiftkey(&["recordings", "export", &session, "--out", &bundle_arg])?;
    assert!(out.status.success(), "{}", stderr(&out));
    for name in [
        "0.cast.gz",
        "0.cast",
        "1.sftp.jsonl.gz",
        "1.sftp.jsonl",
        "metadata.json",
        "ca.pub",
    ] {
        assert!(bundle.join(name).is_file(), "{name} missing");
    }
    assert_eq!(std::fs::read_to_string(bundle.join("0.cast"))?, text);
    assert_eq!(std::fs::read(bundle.join("0.cast.gz"))?, cast);
    // ca.pub: every key the CA signed with, its state as the comment.
    let exported_keys: Vec<String> = std::fs::read_to_string(bundle.join("ca.pub"))?
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(exported_keys.join("\n"), user_ca.trim());
    let row = w.ca.last_audit("recording.exported")?;
    assert_eq!(
        (row["actor"].as_str(), row["detail"]["session"].as_str()),
        (Some("local:root"), Some(session.as_str()))
    );
    let ca_key = work.path().join("user_ca.pub");
    std::fs::write(&ca_key, &user_ca)?;
    let ca_key_arg = ca_key.to_string_lossy().into_owned();
    let out = w.shiftkey(&["recordings", "verify", &bundle_arg, "--ca-key", &ca_key_arg])?;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).trim_end().ends_with("OK"), "{}", stdout(&out));

    // Without --ca-key: only once `shiftkey login` saved the CA's keys.
    let out = w.shiftkey(&["recordings", "verify", &bundle_arg])?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no CA key to check the signature with"),
        "{}",
        stderr(&out)
    );
    let out = w.shiftkey(&["login"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.shiftkey(&["recordings", "verify", &bundle_arg])?;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // One byte changed in a recorded file: refused, and which file is said.
    let tampered = work.path().join("tampered");
    copy_dir(&bundle, &tampered)?;
    let mut bytes = std::fs::read(tampered.join("0.cast.gz"))?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(tampered.join("0.cast.gz"), bytes)?;
    let out = w.shiftkey(&[
        "recordings",
        "verify",
        &tampered.to_string_lossy(),
        "--ca-key",
        &ca_key_arg,
    ])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("FAIL 0.cast.gz: its SHA-256 is not the manifest's"),
        "{}",
        stdout(&out)
    );

    // The manifest edited (say, another identity): the signature fails.
    let forged = work.path().join("forged");
    copy_dir(&bundle, &forged)?;
    let metadata = std::fs::read_to_string(forged.join("metadata.json"))?;
    std::fs::write(
        forged.join("metadata.json"),
        metadata.replace("local:root", "local:nobody"),
    )?;
    let out = w.shiftkey(&[
        "recordings",
        "verify",
        &forged.to_string_lossy(),
        "--ca-key",
        &ca_key_arg,
    ])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("signature does not verify"),
        "{}",
        stdout(&out)
    );

    // Another CA's key: the signature is not that CA's.
    let wrong = work.path().join("wrong.pub");
    std::fs::write(&wrong, new_key()?.public_key().to_openssh()?)?;
    let out = w.shiftkey(&[
        "recordings",
        "verify",
        &bundle_arg,
        "--ca-key",
        &wrong.to_string_lossy(),
    ])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("FAIL the manifest's signature does not verify"),
        "{}",
        stdout(&out)
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

#[test]
fn only_reviewers_read_recordings_and_refusals_are_audited() -> anyhow::Result<()> {
    let w = World::new()?;
    let session = w.session()?;
    let paths = [
        "/v1/recordings".to_owned(),
        "/v1/recordings/search?q=echo".to_owned(),
        format!("/v1/recordings/{session}"),
        format!("/v1/recordings/{session}/files/0.cast.gz?offset=0"),
    ];
    for path in &paths {
        let (status, answer) = w.get_as("bob@example.com", &["sre"], path)?;
        assert_eq!(status, 403, "{path}: {answer}");
        assert_eq!(answer["error"], "forbidden");
        let row = w.ca.last_audit("recording.denied")?;
        assert_eq!(row["actor"], "user:bob@example.com", "{row}");
        assert_eq!(row["outcome"], "deny");
    }
    assert_eq!(audit_kinds(&w.ca, "recording.denied")?.len(), paths.len());
    let (status, _) = w.get_as("sec@example.com", &[], "/v1/recordings")?;
    assert_eq!(status, 200, "named in reviewers");
    let (status, listed) = w.get_as("carol@example.com", &["security"], "/v1/recordings")?;
    assert_eq!(status, 200, "through the group: {listed}");
    assert_eq!(listed[0]["session_id"], session.as_str());
    let response = w.ca.client().get(w.ca.url("/v1/recordings")).send()?;
    assert_eq!(response.status().as_u16(), 401, "no token at all");
    Ok(())
}

#[test]
fn a_seal_whose_claims_differ_is_marked_verification_failed() -> anyhow::Result<()> {
    let w = World::new()?;
    let session = w.session()?;
    let (cast, _, _) = shell_cast(&session)?;
    let (status, _) = w.upload(&w.bastion, &session, "0.cast.gz", 0, &cast)?;
    assert_eq!(status, 200);
    // Chunks up to 1 MiB pass (the API's other bodies stop at 64 KiB);
    // this one is no gzip stream.
    let garbage = noise(300 * 1024);
    let (status, ack) = w.upload(&w.bastion, &session, "2.cast.gz", 0, &garbage)?;
    assert_eq!(status, 200, "{ack}");
    let (status, _) = w.upload(
        &w.bastion,
        &session,
        "3.cast.gz",
        0,
        &noise(1024 * 1024 + 1),
    )?;
    assert_eq!(status, 413);
    // The bastion claims other bytes than the CA received.
    let (status, sealed) = w.seal(
        &session,
        &[
            ("0.cast.gz", "shell", b"not what was sent"),
            ("2.cast.gz", "shell", &garbage),
        ],
    )?;
    assert_eq!(status, 200, "{sealed}");
    assert_eq!(sealed["status"], "verification-failed", "{sealed}");
    let problems = sealed["problems"].to_string();
    assert!(
        problems.contains("0.cast.gz: the bastion claims 17 bytes"),
        "{problems}"
    );
    assert!(
        problems.contains("2.cast.gz: not a readable gzip stream"),
        "{problems}"
    );
    let row = w.ca.last_audit("recording.verification_failed")?;
    assert_eq!(row["outcome"], "error");
    assert_eq!(row["detail"]["session"], session.as_str());
    // A bastion other than the session's may not seal it either.
    let other = enroll(&w.ca, "bastion-2", true)?;
    let (status, _) = signed_json(
        &w.ca,
        &other,
        &format!("/v1/recordings/{session}/seal"),
        &json!({ "ended_at": chrono::Utc::now().timestamp(), "end_reason": "x", "files": [] }),
    )?;
    assert_eq!(status, 403);

    // The export says so, and verify fails on it though every file is intact.
    let work = tempfile::tempdir()?;
    let bundle = work.path().join("bundle");
    let bundle_arg = bundle.to_string_lossy().into_owned();
    let out = w.shiftkey(&["recordings", "export", &session, "--out", &bundle_arg])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.shiftkey(&[
        "recordings",
        "verify",
        &bundle_arg,
        "--ca-key",
        &bundle.join("ca.pub").to_string_lossy(),
    ])?;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("ok   0.cast.gz"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("FAIL the CA sealed this recording as verification-failed"),
        "{}",
        stdout(&out)
    );
    Ok(())
}

#[test]
fn a_live_session_plays_up_to_the_last_flush_and_can_be_watched() -> anyhow::Result<()> {
    let w = World::new()?;
    let session = w.session()?;
    let (cast, flushed, _) = shell_cast(&session)?;
    // Only what the bastion flushed so far: a gzip stream cut short.
    let (status, _) = w.upload(&w.bastion, &session, "0.cast.gz", 0, &cast[..flushed])?;
    assert_eq!(status, 200);
    let out = w.shiftkey(&["recordings", "play", &session, "--speed", "0"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "$ ");
    assert!(stderr(&out).contains("ends early"), "{}", stderr(&out));

    let mut watcher = w
        .command(&["recordings", "watch", &session])?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _) = w.upload(&w.bastion, &session, "0.cast.gz", flushed, &cast[flushed..])?;
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(1000));
    let (status, sealed) = w.seal(&session, &[("0.cast.gz", "shell", &cast)])?;
    assert_eq!(
        (status, sealed["status"].as_str()),
        (200, Some("sealed")),
        "{sealed}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.try_wait()?.is_none() {
        if Instant::now() > deadline {
            watcher.kill()?;
            bail!("watch did not end after the seal");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut seen = String::new();
    watcher
        .stdout
        .take()
        .context("stdout")?
        .read_to_string(&mut seen)?;
    let mut said = String::new();
    watcher
        .stderr
        .take()
        .context("stderr")?
        .read_to_string(&mut said)?;
    assert!(watcher.wait()?.success(), "{said}");
    assert_eq!(seen, "$ echo hello\r\nhello\r\n$ exit\r\nbye\r\n", "{said}");
    assert!(
        said.contains(&format!("session {session} is sealed")),
        "{said}"
    );
    // Watching is a read: audited once, however often it polled.
    let watched: Vec<Value> = audit_kinds(&w.ca, "recording.viewed")?
        .into_iter()
        .filter(|r| r["detail"]["purpose"] == "watch")
        .collect();
    assert_eq!(
        watched.len(),
        2,
        "the metadata and the one file: {watched:?}"
    );
    Ok(())
}
