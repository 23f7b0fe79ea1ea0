//! `shiftkey recordings`: what security reviewers run. List and search the
//! sessions the bastion recorded, play one in the terminal, follow a live
//! one, write a channel's exact bytes out, export a bundle and check a
//! bundle offline.
//!
//! Everything but `verify` asks the CA, which lets only reviewers in and
//! audits every read. `verify` trusts nothing in the bundle but the bytes it
//! checks: the CA key comes from `--ca-key` or the saved CA configuration.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use flate2::read::MultiGzDecoder;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use shiftkey_wire::{RecordingDetail, RecordingInfo, RecordingManifest, RecordingMatch};

use crate::access::{local_time, printable};
use crate::ca_client::CaClient;

/// How often `watch` asks for new bytes.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Recorded sessions, newest first.
    List {
        /// Whose sessions: an email, user:EMAIL or local:USER.
        #[arg(long)]
        user: Option<String>,
        /// Target host (with or without :PORT).
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        incident: Option<String>,
        #[arg(long)]
        role: Option<String>,
        /// live, ended, sealed, verification-failed or lost.
        #[arg(long)]
        status: Option<String>,
        /// Started within this long (1h, 2d) or since this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Typed lines, exec commands and sftp operations that contain TEXT.
    Search {
        text: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Replay a session's channel in this terminal, with its timing.
    Play {
        /// The session ID (s_...).
        id: String,
        /// The channel (default: the first one recorded).
        #[arg(long)]
        channel: Option<u32>,
        /// Playback speed factor; 0 prints everything at once.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Write a channel's exact bytes to stdout: what the target sent
    /// (stdout and stderr as they came), or with --input what the user
    /// typed. For a pipe or a file: it refuses a terminal, which the bytes
    /// could act on.
    Cat {
        /// The session ID (s_...).
        id: String,
        /// The channel (default: the first one recorded).
        #[arg(long)]
        channel: Option<u32>,
        /// The user's input instead of the target's output.
        #[arg(long)]
        input: bool,
    },
    /// Follow a live session's output read-only, until it ends.
    Watch {
        /// The session ID (s_...).
        session: String,
    },
    /// Write a bundle: the .gz files as recorded, their decompressed
    /// .cast/.jsonl, metadata.json (manifest, signature) and ca.pub.
    Export {
        /// The session ID (s_...).
        id: String,
        /// A new (or empty) directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check an exported bundle offline: every file against the manifest,
    /// the manifest against the CA's signature. Exit 1 on any failure.
    Verify {
        dir: PathBuf,
        /// The CA's user public key (default: the keys saved by `shiftkey
        /// login`). The bundle's own ca.pub is never trusted by itself.
        #[arg(long, value_name = "FILE")]
        ca_key: Option<PathBuf>,
    },
}

/// Runs every action but `verify`.
pub(crate) async fn run(client: &CaClient, action: Action) -> anyhow::Result<()> {
    match action {
        Action::List {
            user,
            host,
            incident,
            role,
            status,
            since,
            limit,
            json,
        } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in [
                ("user", user),
                ("host", host),
                ("incident", incident),
                ("role", role),
                ("status", status),
            ] {
                if let Some(value) = value {
                    query.append_pair(name, &value);
                }
            }
            if let Some(since) = since {
                query.append_pair("since", &parse_since(&since)?.to_string());
            }
            query.append_pair("limit", &limit.to_string());
            let list: Vec<RecordingInfo> =
                get_json(client, &format!("/v1/recordings?{}", query.finish())).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no recordings match");
            } else {
                print!("{}", list_table(&list));
            }
            Ok(())
        }
        Action::Search { text, limit, json } => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &text)
                .append_pair("limit", &limit.to_string())
                .finish();
            let found: Vec<RecordingMatch> =
                get_json(client, &format!("/v1/recordings/search?{query}")).await?;
            if json {
                println!("{}", serde_json::to_string(&found)?);
            } else if found.is_empty() {
                println!("nothing recorded contains {}", printable(&text));
            } else {
                print!("{}", search_table(&found));
            }
            Ok(())
        }
        Action::Play { id, channel, speed } => play(client, &id, channel, speed).await,
        Action::Cat { id, channel, input } => cat(client, &id, channel, input).await,
        Action::Watch { session } => watch(client, &session).await,
        Action::Export { id, out } => export(client, &id, &out).await,
        Action::Verify { .. } => bail!("verify runs offline; it needs no CA"),
    }
}

/// `s_` and hex: anything else is refused before it goes into a URL path.
fn check_session_id(id: &str) -> anyhow::Result<()> {
    let ok =
        id.len() == 18 && id.starts_with("s_") && id[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        bail!(
            "{:?} is not a session ID (s_ and 16 hex digits)\nhint: `shiftkey recordings list` shows them",
            printable(id)
        );
    }
    Ok(())
}

/// The names the bastion gives channel files; anything else (from a CA we
/// do not trust to name files in our directories) is refused.
fn is_file_name(name: &str) -> bool {
    let Some((digits, rest)) = name.split_once('.') else {
        return false;
    };
    (1..=4).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(rest, "cast.gz" | "sftp.jsonl.gz")
}

fn channel_of(name: &str) -> Option<u32> {
    name.split_once('.')?.0.parse().ok()
}

/// `1h` (that long ago) or an RFC 3339 time, as unix seconds.
fn parse_since(text: &str) -> anyhow::Result<i64> {
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago = i64::try_from(ago.as_secs()).unwrap_or(i64::MAX / 2);
        return Ok(chrono::Utc::now().timestamp() - ago);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .with_context(|| {
            format!("--since {text:?}: a duration such as 1h or 2d, or an RFC 3339 time")
        })
}

async fn get_json<T: DeserializeOwned>(client: &CaClient, path: &str) -> anyhow::Result<T> {
    let (_, bytes) = client.exchange_raw("GET", path, None, None).await?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("the CA's answer to {path} is not what this client expects"))
}

async fn detail(client: &CaClient, id: &str, purpose: &str) -> anyhow::Result<RecordingDetail> {
    check_session_id(id)?;
    get_json(client, &format!("/v1/recordings/{id}?purpose={purpose}")).await
}

/// Bytes of one file from `offset` (at most what one answer holds).
async fn read_chunk(
    client: &CaClient,
    id: &str,
    name: &str,
    offset: u64,
    purpose: &str,
) -> anyhow::Result<Vec<u8>> {
    if !is_file_name(name) {
        bail!("the CA names a file {:?}; refusing it", printable(name));
    }
    let path = format!("/v1/recordings/{id}/files/{name}?offset={offset}&purpose={purpose}");
    let (_, bytes) = client.exchange_raw("GET", &path, None, None).await?;
    Ok(bytes.to_vec())
}

/// A whole file into `sink`: until `length` bytes when known (a sealed
/// recording), else until the CA has no more.
async fn download(
    client: &CaClient,
    id: &str,
    name: &str,
    length: Option<u64>,
    purpose: &str,
    sink: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut offset = 0u64;
    loop {
        if length.is_some_and(|l| offset >= l) {
            break;
        }
        let chunk = read_chunk(client, id, name, offset, purpose).await?;
        if chunk.is_empty() {
            break;
        }
        sink.write_all(&chunk)?;
        offset += chunk.len() as u64;
    }
    if let Some(length) = length
        && offset != length
    {
        bail!("{name}: the CA sent {offset} bytes of {length}");
    }
    Ok(offset)
}

/// Decompresses a gzip stream into `out`. A stream that ends early (a
/// bastion that died between two flushes) gives what was flushed: returns
/// false then.
fn gunzip(gz: impl Read, out: &mut impl Write) -> std::io::Result<bool> {
    match std::io::copy(&mut MultiGzDecoder::new(gz), out) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Keeps terminal output from reaching past the screen: OSC, DCS, APC, PM
/// and SOS strings (clipboard writes, title changes, terminal queries) are
/// dropped; text and CSI sequences (colours, cursor) pass. A recorded
/// session is the reviewed person's output, and it should not be able to
/// act on the reviewer's terminal.
#[derive(Debug, Default)]
struct TerminalFilter {
    state: FilterState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FilterState {
    #[default]
    Text,
    Escape,
    Str,
    StrEscape,
}

impl TerminalFilter {
    fn filter(&mut self, data: &str) -> String {
        let mut out = String::with_capacity(data.len());
        for c in data.chars() {
            self.state = match (self.state, c) {
                (FilterState::Text, '\u{1b}') => FilterState::Escape,
                (FilterState::Text, '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}') => {
                    FilterState::Str
                }
                (FilterState::Text, c) => {
                    out.push(c);
                    FilterState::Text
                }
                (FilterState::Escape, ']' | 'P' | 'X' | '^' | '_') => FilterState::Str,
                (FilterState::Escape, '\u{1b}') => {
                    out.push('\u{1b}');
                    FilterState::Escape
                }
                (FilterState::Escape, c) => {
                    out.push('\u{1b}');
                    out.push(c);
                    FilterState::Text
                }
                (FilterState::Str, '\u{7}' | '\u{9c}') => FilterState::Text,
                (FilterState::Str, '\u{1b}') => FilterState::StrEscape,
                (FilterState::Str, _) => FilterState::Str,
                (FilterState::StrEscape, '\\') => FilterState::Text,
                (FilterState::StrEscape, _) => FilterState::Str,
            };
        }
        out
    }
}

/// One asciicast event: `[seconds, "o"|"i"|"r", data]`.
fn event(line: &str) -> Option<(f64, String, String)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let [t, kind, data] = value.as_array()?.as_slice() else {
        return None;
    };
    Some((
        t.as_f64()?,
        kind.as_str()?.to_owned(),
        data.as_str()?.to_owned(),
    ))
}

/// The file of `channel` (default: the first cast file), downloaded and
/// decompressed; false when it ends early.
async fn channel_file(
    client: &CaClient,
    id: &str,
    channel: Option<u32>,
    purpose: &str,
) -> anyhow::Result<(String, Vec<u8>, bool)> {
    let recording = detail(client, id, purpose).await?;
    let files = &recording.info.files;
    let file = match channel {
        Some(n) => files.iter().find(|f| channel_of(&f.name) == Some(n)),
        None => files
            .iter()
            .find(|f| f.name.ends_with(".cast.gz"))
            .or(files.first()),
    };
    let Some(file) = file else {
        let channels: Vec<String> = files.iter().map(|f| printable(&f.name)).collect();
        bail!(
            "session {id} has no such channel (it has {})",
            if channels.is_empty() {
                "none".to_owned()
            } else {
                channels.join(", ")
            }
        );
    };
    let length = recording.manifest.is_some().then_some(file.bytes);
    let mut gz = Vec::new();
    download(client, id, &file.name, length, purpose, &mut gz).await?;
    let mut text = Vec::new();
    let complete = gunzip(&gz[..], &mut text)?;
    Ok((file.name.clone(), text, complete))
}

async fn play(client: &CaClient, id: &str, channel: Option<u32>, speed: f64) -> anyhow::Result<()> {
    if !speed.is_finite() || speed < 0.0 {
        bail!("--speed is a factor such as 2 or 0.5 (0: no waiting)");
    }
    let (name, text, complete) = channel_file(client, id, channel, "play").await?;
    let text = String::from_utf8_lossy(&text);
    let mut stdout = std::io::stdout().lock();
    if name.ends_with(".sftp.jsonl.gz") {
        for line in text.lines() {
            writeln!(stdout, "{}", printable(line))?;
        }
    } else {
        let mut filter = TerminalFilter::default();
        let mut last = 0.0;
        for (t, kind, data) in text.lines().skip(1).filter_map(event) {
            if kind != "o" {
                continue;
            }
            if speed > 0.0 && t > last {
                stdout.flush()?;
                tokio::time::sleep(Duration::from_secs_f64((t - last) / speed)).await;
            }
            last = last.max(t);
            stdout.write_all(filter.filter(&data).as_bytes())?;
        }
    }
    stdout.flush()?;
    if !complete {
        eprintln!("\n(the recording ends early: the bastion stopped between two flushes)");
    }
    Ok(())
}

/// `shiftkey recordings cat`: the exact bytes of one stream of a channel.
async fn cat(client: &CaClient, id: &str, channel: Option<u32>, input: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let mut stdout = std::io::stdout().lock();
    if stdout.is_terminal() {
        bail!(
            "stdout is a terminal, and a recording's exact bytes could act on it\nhint: redirect or pipe it: `shiftkey recordings cat {id} > out.bin`, `| less -R`, `| sha256sum`; `shiftkey recordings play` shows a session safely"
        );
    }
    let (name, text, complete) = channel_file(client, id, channel, "export").await?;
    if name.ends_with(".sftp.jsonl.gz") {
        bail!(
            "{name} records sftp operations, not bytes\nhint: `shiftkey recordings play {id} --channel {}` lists them",
            channel_of(&name).unwrap_or(0)
        );
    }
    let stream = if input { "i" } else { "o" };
    exact_bytes(&text, stream, &mut stdout)?;
    stdout.flush()?;
    if !complete {
        eprintln!("(the recording ends early: the bastion stopped between two flushes)");
    }
    Ok(())
}

/// Rebuilds one stream (`o` or `i`) of a cast file: its text events as
/// UTF-8, and its `"b"` events (`"o:BASE64"`) decoded, in file order.
pub(crate) fn exact_bytes(cast: &[u8], stream: &str, out: &mut impl Write) -> anyhow::Result<()> {
    use base64::Engine;
    let prefix = format!("{stream}:");
    for (number, line) in cast.split(|b| *b == b'\n').enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
            bail!("line {} of the recording is not JSON", number + 1);
        };
        let (Some(kind), Some(data)) = (value[1].as_str(), value[2].as_str()) else {
            continue;
        };
        if kind == stream {
            out.write_all(data.as_bytes())?;
        } else if kind == "b"
            && let Some(encoded) = data.strip_prefix(&prefix)
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .with_context(|| format!("line {} of the recording: bad base64", number + 1))?;
            out.write_all(&bytes)?;
        }
    }
    Ok(())
}

/// One channel file followed by `watch`: its offset at the CA and a
/// decoder fed as bytes arrive.
struct Followed {
    offset: u64,
    decoder: flate2::write::MultiGzDecoder<Vec<u8>>,
    /// Decompressed bytes not yet ending in a newline.
    pending: Vec<u8>,
    header_seen: bool,
    filter: TerminalFilter,
}

impl Followed {
    fn new() -> Self {
        Self {
            offset: 0,
            decoder: flate2::write::MultiGzDecoder::new(Vec::new()),
            pending: Vec::new(),
            header_seen: false,
            filter: TerminalFilter::default(),
        }
    }

    /// Feeds compressed bytes; returns the output events' data that became
    /// complete.
    fn feed(&mut self, gz: &[u8]) -> std::io::Result<String> {
        self.decoder.write_all(gz)?;
        self.decoder.flush()?;
        self.pending.append(self.decoder.get_mut());
        let mut out = String::new();
        while let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=at).collect();
            if !self.header_seen {
                self.header_seen = true;
                continue;
            }
            if let Some((_, kind, data)) = event(&String::from_utf8_lossy(&line))
                && kind == "o"
            {
                out.push_str(&self.filter.filter(&data));
            }
        }
        Ok(out)
    }
}

async fn watch(client: &CaClient, id: &str) -> anyhow::Result<()> {
    let mut followed: std::collections::BTreeMap<String, Followed> = Default::default();
    let mut stdout = std::io::stdout();
    let mut announced = false;
    loop {
        let recording = detail(client, id, "watch").await?;
        let live = recording.info.status == "live";
        if !announced {
            eprintln!(
                "watching {id}: {} as {}@{} ({}); Ctrl-C stops watching, not the session",
                printable(&recording.info.identity),
                printable(&recording.info.principal),
                printable(&recording.info.target),
                recording.info.status
            );
            announced = true;
        }
        for file in recording
            .info
            .files
            .iter()
            .filter(|f| f.name.ends_with(".cast.gz"))
        {
            let state = followed
                .entry(file.name.clone())
                .or_insert_with(Followed::new);
            loop {
                let chunk = read_chunk(client, id, &file.name, state.offset, "watch").await?;
                if chunk.is_empty() {
                    break;
                }
                state.offset += chunk.len() as u64;
                let out = state
                    .feed(&chunk)
                    .with_context(|| format!("{}: not a gzip stream", file.name))?;
                stdout.write_all(out.as_bytes())?;
                stdout.flush()?;
            }
        }
        if !live {
            eprintln!(
                "\nsession {id} is {}{}",
                recording.info.status,
                recording
                    .info
                    .end_reason
                    .as_deref()
                    .map(|r| format!(" ({})", printable(r)))
                    .unwrap_or_default()
            );
            return Ok(());
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}

/// Creates `dir` (0700), which must not exist or be empty.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("{}: cannot read it", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty; export into a new directory",
                dir.display()
            );
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("{}: cannot create it", dir.display()))
}

fn create_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot create it", path.display()))
}

async fn export(client: &CaClient, id: &str, out: &Path) -> anyhow::Result<()> {
    let recording = detail(client, id, "export").await?;
    for file in &recording.info.files {
        if !is_file_name(&file.name) {
            bail!(
                "the CA names a file {:?}; refusing it",
                printable(&file.name)
            );
        }
    }
    // Every key the CA has signed with, with its state: a recording sealed
    // before a rotation verifies with the key retired since.
    let ca_keys: Vec<String> = client
        .seal_keys()
        .await?
        .keys
        .iter()
        .map(shiftkey_wire::SealKey::line)
        .collect();
    fresh_dir(out)?;
    let sealed = recording.manifest.is_some();
    for file in &recording.info.files {
        let gz_path = out.join(&file.name);
        let mut gz = std::io::BufWriter::new(create_file(&gz_path)?);
        let length = sealed.then_some(file.bytes);
        download(client, id, &file.name, length, "export", &mut gz).await?;
        gz.into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .with_context(|| format!("{}: cannot write it", gz_path.display()))?;
        let plain = out.join(file.name.trim_end_matches(".gz"));
        let mut writer = std::io::BufWriter::new(create_file(&plain)?);
        // The .gz is the evidence; its decompressed copy is a convenience
        // that a damaged stream must not prevent.
        match gunzip(std::fs::File::open(&gz_path)?, &mut writer) {
            Ok(true) => {}
            Ok(false) => eprintln!(
                "warning: {} ends early (the bastion stopped between two flushes)",
                file.name
            ),
            Err(e) => eprintln!(
                "warning: {} cannot be decompressed to its end: {e}",
                file.name
            ),
        }
        writer.flush()?;
    }
    let mut metadata = create_file(&out.join("metadata.json"))?;
    metadata.write_all(serde_json::to_string_pretty(&recording)?.as_bytes())?;
    metadata.write_all(b"\n")?;
    let mut ca_pub = create_file(&out.join("ca.pub"))?;
    for key in &ca_keys {
        writeln!(ca_pub, "{key}")?;
    }
    println!(
        "exported {id} ({} file(s), {}) to {}",
        recording.info.files.len(),
        recording.info.status,
        out.display()
    );
    if sealed {
        eprintln!(
            "check it offline with: shiftkey recordings verify {}",
            out.display()
        );
    } else {
        eprintln!(
            "warning: the session is not sealed yet, so the bundle has no signature to verify"
        );
    }
    Ok(())
}

/// How long `verify` waits for the CA's seal keys before using the saved
/// ones.
const SEAL_KEYS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The keys `verify` trusts without `--ca-key`: once `shiftkey login` saved
/// this CA's keys, every key the CA has signed with and its state when the
/// CA answers (a history that lacks a saved key is not believed);
/// otherwise the saved keys.
pub(crate) async fn seal_keys_or_saved(session: &crate::session::Session) -> Vec<String> {
    let saved = &session.config.user_ca_keys;
    if saved.is_empty() {
        return Vec::new();
    }
    let fetched = match session.client() {
        Ok(client) => tokio::time::timeout(SEAL_KEYS_TIMEOUT, client.seal_keys())
            .await
            .ok()
            .and_then(Result::ok),
        Err(_) => None,
    };
    match fetched {
        Some(answer)
            if saved
                .iter()
                .all(|line| answer.keys.iter().any(|k| k.key == line.trim())) =>
        {
            answer
                .keys
                .iter()
                .map(shiftkey_wire::SealKey::line)
                .collect()
        }
        _ => saved.clone(),
    }
}

/// The CA keys `verify` trusts: `--ca-key`, else those `shiftkey login` saved.
pub(crate) fn trusted_keys(
    ca_key: Option<&Path>,
    saved: &[String],
) -> anyhow::Result<Vec<ssh_key::PublicKey>> {
    let (lines, source): (Vec<String>, String) = match ca_key {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("--ca-key {}: cannot read it", path.display()))?
                .lines()
                .map(str::to_owned)
                .collect(),
            format!("--ca-key {}", path.display()),
        ),
        None => (saved.to_vec(), "the saved CA configuration".to_owned()),
    };
    let keys: Vec<ssh_key::PublicKey> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(ssh_key::PublicKey::from_openssh)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{source}: not OpenSSH public keys"))?;
    if keys.is_empty() {
        bail!(
            "no CA key to check the signature with\nhint: pass --ca-key FILE (the CA's /v1/ca/user.pub, obtained from a source you trust), or run `shiftkey login` once so its keys are saved"
        );
    }
    Ok(keys)
}

/// `shiftkey recordings verify DIR`: prints what holds; fails on anything
/// that does not.
pub(crate) fn verify(dir: &Path, keys: &[ssh_key::PublicKey]) -> anyhow::Result<()> {
    let metadata_path = dir.join("metadata.json");
    let text = std::fs::read_to_string(&metadata_path).with_context(|| {
        format!(
            "{}: cannot read it; is this an export?",
            metadata_path.display()
        )
    })?;
    let recording: RecordingDetail = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a recording's metadata", metadata_path.display()))?;
    let (Some(manifest_text), Some(signature)) = (&recording.manifest, &recording.info.signature)
    else {
        bail!(
            "{}: the recording was not sealed when it was exported: there is no signed manifest to check",
            recording.info.session_id
        );
    };
    let mut failures = Vec::new();
    let signature = ssh_key::SshSig::from_pem(signature)
        .context("metadata.json: the signature is not an SSHSIG")?;
    let signed_by = keys.iter().find(|key| {
        key.verify(
            shiftkey_wire::RECORDING_NAMESPACE,
            manifest_text.as_bytes(),
            &signature,
        )
        .is_ok()
    });
    let standing =
        signed_by.map(|key| shiftkey_wire::SealKeyStanding::of(key.comment().as_str_lossy()));
    match (signed_by, standing) {
        (Some(key), Some(standing)) => println!(
            "ok   manifest signed by the CA key {} ({})",
            key.fingerprint(ssh_key::HashAlg::Sha256),
            standing.describe()
        ),
        _ => failures
            .push("the manifest's signature does not verify with the trusted CA key(s)".to_owned()),
    }
    let manifest: RecordingManifest =
        serde_json::from_str(manifest_text).context("metadata.json: the manifest is not JSON")?;
    // A key retired in an emergency may be in an attacker's hands: what it
    // signed after its retirement is refused; before, shown with a warning
    // (the seal's date is the signer's word). Both are dated to the second:
    // a seal in the very second of the retirement is refused.
    if let Some(shiftkey_wire::SealKeyStanding::Emergency(at)) = standing {
        if manifest.sealed_at >= at {
            failures.push(format!(
                "the manifest is dated {} (unix time), after its key was retired in an emergency at {at}: it may be forged with a leaked key",
                manifest.sealed_at
            ));
        } else {
            println!(
                "WARNING the key that sealed this recording was retired in an emergency at unix time {at} (it may be in an attacker's hands); the seal is dated {}, before that, but its date is the signer's word",
                manifest.sealed_at
            );
        }
    }
    if manifest.session_id != recording.info.session_id {
        failures.push(format!(
            "metadata.json names session {}, the manifest {}",
            recording.info.session_id, manifest.session_id
        ));
    }
    let digest = hex::encode(Sha256::digest(manifest_text.as_bytes()));
    if recording
        .info
        .digest
        .as_deref()
        .is_some_and(|d| d != digest)
    {
        failures.push("metadata.json's digest is not the manifest's SHA-256".to_owned());
    }
    for file in &manifest.files {
        if !is_file_name(&file.name) {
            failures.push(format!(
                "the manifest names a file {:?}",
                printable(&file.name)
            ));
            continue;
        }
        match measure(&dir.join(&file.name)) {
            Ok((bytes, sha256)) if bytes == file.bytes && sha256 == file.sha256 => {
                println!("ok   {} ({bytes} bytes, sha256 {sha256})", file.name);
            }
            Ok((bytes, _)) if bytes != file.bytes => failures.push(format!(
                "{}: {bytes} bytes, the manifest says {}",
                file.name, file.bytes
            )),
            Ok(_) => failures.push(format!("{}: its SHA-256 is not the manifest's", file.name)),
            Err(e) => failures.push(format!("{}: {e}", file.name)),
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".gz") && !manifest.files.iter().any(|f| f.name == name) {
            failures.push(format!("{}: not in the manifest", printable(&name)));
        }
    }
    // A lost session's seal is what it says: the CA signed what reached it
    // before the bastion went silent, and says the recording is truncated.
    let truncated = manifest.status == "lost";
    if truncated {
        println!(
            "note TRUNCATED: the CA sealed this session as lost: {}",
            printable(&manifest.problems.join("; "))
        );
    } else if manifest.status != "sealed" {
        failures.push(format!(
            "the CA sealed this recording as {}: {}",
            manifest.status,
            manifest.problems.join("; ")
        ));
    }
    println!(
        "     session {}: {} as {}@{}, {} to {}",
        manifest.session_id,
        printable(&manifest.identity),
        printable(&manifest.principal),
        printable(&manifest.target),
        local_time(manifest.started_at),
        local_time(manifest.ended_at),
    );
    if failures.is_empty() {
        if truncated {
            println!("OK (a truncated recording: the session was lost)");
        } else {
            println!("OK");
        }
        return Ok(());
    }
    for failure in &failures {
        println!("FAIL {failure}");
    }
    bail!("the bundle in {} does not verify", dir.display())
}

fn measure(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let buf = file.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        hasher.update(buf);
        let n = buf.len();
        total += n as u64;
        file.consume(n);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Columns aligned, the last one as long as it is.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut widths = vec![0; header.len()];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

fn list_table(list: &[RecordingInfo]) -> String {
    let rows = list
        .iter()
        .map(|r| {
            vec![
                printable(&r.session_id),
                local_time(r.started_at),
                r.ended_at
                    .map_or_else(|| "-".to_owned(), |e| duration(e - r.started_at)),
                printable(&r.status),
                printable(&r.identity),
                printable(&r.role),
                printable(r.incident.as_deref().unwrap_or("-")),
                format!("{}@{}", printable(&r.principal), printable(&r.target)),
            ]
        })
        .collect();
    table(
        &[
            "SESSION",
            "STARTED",
            "LENGTH",
            "STATUS",
            "IDENTITY",
            "ROLE",
            "INCIDENT",
            "LOGIN@TARGET",
        ],
        rows,
    )
}

fn search_table(found: &[RecordingMatch]) -> String {
    let rows = found
        .iter()
        .map(|m| {
            vec![
                printable(&m.session_id),
                m.channel.to_string(),
                format!("{:.1}s", m.offset_seconds),
                printable(&m.identity),
                printable(&m.target),
                printable(&m.source),
                printable(&m.line),
            ]
        })
        .collect();
    table(
        &[
            "SESSION", "CH", "AT", "IDENTITY", "TARGET", "SOURCE", "LINE",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    #[test]
    fn cat_rebuilds_the_exact_bytes_of_one_stream() {
        let cast = concat!(
            "{\"version\":2,\"width\":80,\"height\":24}\n",
            "[0.1,\"i\",\"ls\\r\"]\n",
            "[0.2,\"o\",\"caf\"]\n",
            "[0.2,\"b\",\"o:6Q==\"]\n",
            "[0.3,\"m\",\"{\\\"exit_status\\\":0}\"]\n",
            "[0.4,\"b\",\"i:/w==\"]\n",
            "[0.5,\"o\",\" \\u001b[0m\\n\"]\n",
        );
        let mut out = Vec::new();
        exact_bytes(cast.as_bytes(), "o", &mut out).unwrap();
        assert_eq!(out, b"caf\xe9 \x1b[0m\n");
        let mut input = Vec::new();
        exact_bytes(cast.as_bytes(), "i", &mut input).unwrap();
        assert_eq!(input, b"ls\r\xff");
        assert!(exact_bytes(b"{}\nnot json\n", "o", &mut Vec::new()).is_err());
    }

    #[test]
    fn terminal_strings_are_dropped_and_the_rest_passes() {
        let mut f = TerminalFilter::default();
        assert_eq!(
            f.filter("a\u{1b}[31mred\u{1b}[0m\u{1b}]52;c;ZXZpbA==\u{7}b"),
            "a\u{1b}[31mred\u{1b}[0mb"
        );
        // Split across events, ended by ST.
        assert_eq!(f.filter("x\u{1b}]0;ti"), "x");
        assert_eq!(f.filter("tle\u{1b}\\y\u{1b}Pq\u{1b}\\z"), "yz");
        assert_eq!(f.filter("\u{9d}8;;http://x\u{9c}ok"), "ok");
    }

    #[test]
    fn file_names_from_the_ca_are_checked() {
        assert!(is_file_name("0.cast.gz") && is_file_name("12.sftp.jsonl.gz"));
        for bad in [
            "../0.cast.gz",
            "metadata.json",
            "0.cast",
            "12345.cast.gz",
            "/etc/x.cast.gz",
        ] {
            assert!(!is_file_name(bad), "{bad}");
        }
        assert!(check_session_id("s_0123456789abcdef").is_ok());
        assert!(check_session_id("s_0123/../../x").is_err());
    }

    const CAST: &str =
        "{\"version\":2}\n[0.1,\"o\",\"$ \"]\n[0.2,\"i\",\"l\"]\n[0.3,\"o\",\"l\"]\n";

    #[test]
    fn a_truncated_stream_gives_what_was_flushed() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(CAST.as_bytes()).unwrap();
        gz.flush().unwrap();
        let flushed = gz.get_ref().len();
        gz.write_all(b"[0.4,\"o\",\"never flushed\"]\n").unwrap();
        let mut bytes = gz.finish().unwrap();
        bytes.truncate(flushed);
        let mut out = Vec::new();
        assert!(!gunzip(&bytes[..], &mut out).unwrap());
        assert_eq!(String::from_utf8(out).unwrap(), CAST);
    }

    #[test]
    fn watch_decodes_output_as_chunks_arrive() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(CAST.as_bytes()).unwrap();
        gz.flush().unwrap();
        let bytes = gz.get_ref().clone();
        let mut followed = Followed::new();
        let (a, b) = bytes.split_at(7);
        assert_eq!(followed.feed(a).unwrap(), "");
        assert_eq!(followed.feed(b).unwrap(), "$ l");
        gz.write_all(b"[0.5,\"o\",\"s\\r\\n\"]\n").unwrap();
        let all = gz.finish().unwrap();
        assert_eq!(followed.feed(&all[bytes.len()..]).unwrap(), "s\r\n");
    }

    #[test]
    fn since_takes_durations_and_times() {
        let now = chrono::Utc::now().timestamp();
        assert!((parse_since("1h").unwrap() - (now - 3600)).abs() < 5);
        assert_eq!(parse_since("2026-11-25T20:00:00Z").unwrap(), 1795636800);
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn tables_are_aligned() {
        let text = table(
            &["A", "LONGER"],
            vec![vec!["xyz".into(), "1".into()], vec!["q".into(), "2".into()]],
        );
        assert_eq!(text, "A    LONGER\nxyz  1\nq    2\n");
        assert_eq!(duration(75), "1m15s");
        assert_eq!(duration(3 * 3600 + 120), "3h02m");
    }
}
