//! The bastion against hostile clients: asyncssh (tests/clients/hostile.py)
//! sends what OpenSSH never does — a second program on one channel, env
//! with a reply asked, requests out of order, floods of channels, logins
//! and half-open connections — through the real bastion to a real sshd.
//! Each test tries the attack first and checks what the target ran, what
//! the recording holds and what the CA audited.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shiftkey_tests::util::{run, run_ok, ssh_keygen};

use crate::bastion::{Setup, World, events, new_session_id, sha256_hex, stderr_of, wait_audit};
use crate::fixtures::{LOGIN_USER, policy, with_ports};

/// A secret word and a file the target would create if the typed command ran.
struct Probe {
    secret: String,
    marker: String,
}

impl Probe {
    fn new(tag: &str) -> Self {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let secret = format!("SECRET{tag}{nonce}");
        let marker = format!("/tmp/shiftkey-hostile-{tag}-{nonce}");
        let _ = std::fs::remove_file(&marker);
        Self { secret, marker }
    }

    /// What the attacker types: `echo SECRET > MARKER; id`.
    fn typed(&self) -> String {
        format!("type:echo {} > {}; id\\n", self.secret, self.marker)
    }

    fn ran(&self) -> bool {
        Path::new(&self.marker).exists()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.marker);
    }
}

/// `shiftkey recordings search TEXT --json`: the sessions it is found in.
fn found_in(world: &World, text: &str) -> anyhow::Result<Vec<String>> {
    let out = world.shiftkey(&["recordings", "search", text, "--json"])?;
    anyhow::ensure!(out.status.success(), "{}", stderr_of(&out));
    let found: Value = serde_json::from_slice(&out.stdout)?;
    Ok(found
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["session_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The invariant: the typed command either never ran on the target, or
/// the sealed recording holds it and search finds it.
fn nothing_ran_unrecorded(world: &World, session: &str, probe: &Probe) -> anyhow::Result<()> {
    let sealed = world.wait_sealed(session)?;
    if !probe.ran() {
        return Ok(());
    }
    let found = found_in(world, &probe.secret)?;
    anyhow::ensure!(
        found.iter().any(|s| s == session),
        "the target ran `echo {} > {}` but no recording of session {session} holds it \
         (search found it in {found:?}); sealed: {sealed}\n{}",
        probe.secret,
        probe.marker,
        world.logs()
    );
    Ok(())
}

fn replies(result: &Value) -> Vec<(String, String)> {
    result["replies"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or_default().to_owned(),
                        r[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn reply_to(result: &Value, step: &str) -> String {
    replies(result)
        .into_iter()
        .find(|(s, _)| s == step)
        .map(|(_, r)| r)
        .unwrap_or_default()
}

/// Every variant of a second program request on one channel: after a pty
/// shell, after a plain shell, after exec, with and without a reply asked.
#[test]
fn a_second_program_request_on_a_channel_is_refused_and_closes_it() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let variants: [(&str, &[&str], &str); 5] = [
        ("a", &["pty", "shell"], "subsystem:sftp"),
        ("b", &["shell"], "subsystem:sftp!noreply"),
        ("c", &["exec:sh"], "subsystem:sftp"),
        ("d", &["exec:sh"], "exec:id"),
        ("e", &["pty", "shell"], "exec:id!noreply"),
    ];
    for (tag, first, second) in variants {
        let probe = Probe::new(tag);
        let before = world.session_ids();
        let typed = probe.typed();
        let mut steps = vec![];
        for s in first {
            steps.extend(["--step", s]);
        }
        steps.extend([
            "--step",
            "sleep:0.5",
            "--step",
            second,
            "--step",
            "sleep:0.5",
            "--step",
            &typed,
            "--step",
            "sleep:1",
        ]);
        let mut args = vec!["--timeout", "3", "sequence"];
        args.extend(steps);
        let result = world.hostile(&args)?;
        let session = new_session_id(&world, &before)?;
        nothing_ran_unrecorded(&world, &session, &probe)?;
        // And the way it holds: refused, told, closed, audited.
        let reply = reply_to(&result, second);
        if second.ends_with("!noreply") {
            assert_eq!(reply, "not-asked", "{result}");
        } else {
            assert_eq!(reply, "failure", "variant {tag}: {result}");
        }
        assert_eq!(result["closed_by_server"], true, "variant {tag}: {result}");
        assert!(
            result["stderr"]
                .as_str()
                .unwrap_or_default()
                .contains("one program per channel"),
            "variant {tag}: {result}"
        );
        assert!(!probe.ran(), "variant {tag}: the typed command ran");
        let request = second.split(['!', ':']).next().unwrap_or_default();
        let row = wait_audit(&world.ca, "session.request_refused", |r| {
            r["detail"]["session"] == session.as_str()
        })?;
        assert_eq!(row["detail"]["request"], request, "{row}");
        assert_eq!(row["actor"], "bastion:bastion-1", "{row}");
    }
    Ok(())
}

/// Small writes racing large ones on one channel (asyncssh sends each as
/// its own packet, back to back): the bastion writes short chunks to the
/// recording itself and hands long ones to its writer, so a short chunk
/// that overtook a long one would be recorded out of order. What was typed
/// and what came back must both replay byte-exact.
#[test]
fn small_writes_racing_large_ones_are_recorded_in_order() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let before = world.session_ids();
    let result = world.hostile(&[
        "--timeout",
        "10",
        "--linger",
        "120",
        "chunks",
        "--count",
        "96",
    ])?;
    assert_eq!(result["started"], "success", "{result}");
    assert_eq!(result["exit_status"], 0, "{result}\n{}", world.logs());
    let sent = result["sent_sha256"].as_str().unwrap_or_default();
    assert_eq!(
        result["received_sha256"].as_str(),
        Some(sent),
        "cat on the target did not echo what was sent: {result}"
    );
    let session = new_session_id(&world, &before)?;
    let sealed = world.wait_sealed(&session)?;
    assert_eq!(sealed["status"], "sealed", "{sealed}");
    let typed = world.shiftkey(&["recordings", "cat", &session, "--channel", "1", "--input"])?;
    assert!(typed.status.success(), "{}", stderr_of(&typed));
    assert_eq!(
        typed.stdout.len() as u64,
        result["sent_bytes"].as_u64().unwrap_or_default(),
        "recorded input length"
    );
    assert_eq!(
        sha256_hex(&typed.stdout),
        sent,
        "recorded input differs from what was sent"
    );
    let shown = world.shiftkey(&["recordings", "cat", &session, "--channel", "1"])?;
    assert!(shown.status.success(), "{}", stderr_of(&shown));
    assert_eq!(
        sha256_hex(&shown.stdout),
        sent,
        "recorded output differs from what came back"
    );
    Ok(())
}

/// A client that keeps writing while it does not read, then reads again:
/// its window adjust for the output reaches the bastion behind input still
/// in flight. A bastion that stops reading the user's connection while one
/// of its channels waits never sees that adjust, and the channel hangs
/// (russh 0.65.1 did: vendor/russh/SHIFTKEY.md).
#[test]
fn a_client_that_pauses_reading_while_it_writes_is_not_deadlocked() -> anyhow::Result<()> {
    let world = World::new(None)?;
    // 3 MiB in 2 KiB writes, then 3 s before reading: more output than
    // the client's 2 MiB window holds.
    echoed_and_recorded(
        &world,
        &["stall", "--count", "1536", "--size", "2048", "--pause", "3"],
    )
}

/// Bulk both ways at once, the client reading all along (rsync's shape):
/// a channel that waits for the target to take input while the target
/// waits for its output to be read, which that same wait keeps anyone from
/// reading, never moves again. Each direction waits only on itself.
#[test]
fn bulk_traffic_both_ways_at_once_is_not_deadlocked() -> anyhow::Result<()> {
    let world = World::new(None)?;
    // 16 MiB: more than the windows and pipes between the two ends hold.
    echoed_and_recorded(
        &world,
        &["stall", "--count", "8192", "--size", "2048", "--pause", "0"],
    )
}

/// A client that ignores flow control, sending data past the window the
/// bastion gave it, is cut off: the bastion gives window back only as it
/// forwards, so what such a client sends would otherwise pile up in the
/// bastion's memory. (Debian's sshd drops that data and logs "rcvd too much
/// data", which shows the client really does overrun.) The bastion counts
/// it and goes on serving.
#[test]
fn a_client_that_sends_past_its_window_is_cut_off() -> anyhow::Result<()> {
    let world = World::new(None)?;
    // 64 MiB of zeros to a command that reads nothing: windows and pipes
    // hold a few MiB.
    let overrun = ["overrun", "--bytes", "67108864"];
    // sshd keeps the connection: a second is enough to see its log line.
    let direct = shiftkey_tests::bastion::hostile(
        &[
            &["--port", &world.sshd.port.to_string(), "--user", LOGIN_USER][..],
            &["--key", &world.key.display().to_string()],
            &["--cert", &format!("{}-cert.pub", world.key.display())],
            &["--timeout", "10", "--linger", "1"],
            &overrun,
        ]
        .concat(),
    )?;
    assert_eq!(direct["started"], "success", "{direct}");
    assert!(
        world.sshd.log().contains("rcvd too much data"),
        "the client kept to the window after all: {direct}\n{}",
        world.sshd.log()
    );
    let result = world.hostile(&[&["--timeout", "10", "--linger", "30"][..], &overrun].concat())?;
    assert_eq!(result["started"], "success", "{result}");
    assert_eq!(result["connection_lost"], true, "{result}");
    let cut = world
        .bastion
        .metric("shiftkey_bastion_connections_refused_total{reason=\"window-exceeded\"}")?;
    assert_eq!(cut, 1.0, "{}", world.bastion.metrics()?);
    let after = world.hostile(&[
        "--timeout",
        "5",
        "sequence",
        "--step",
        "exec:echo still serving",
    ])?;
    assert_eq!(after["stdout"], "still serving\n", "{after}");
    Ok(())
}

/// An upload whose client sends everything, then EOF and close at once:
/// the bastion holds data, EOF and close for the channel before it has
/// forwarded the data (what its reader has not taken waits in a backlog
/// that outlives the channel's entry in russh), and every byte still
/// reaches the target and the recording.
#[test]
fn an_upload_closed_as_soon_as_it_is_sent_arrives_whole() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new(None)?;
    let dir = tempfile::tempdir()?;
    // The target's sshd runs the command as the login user.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777))?;
    let file = dir.path().join("upload.bin");
    let command = format!("cat > {}", file.display());
    let before = world.session_ids();
    // 16 MiB in 2 KiB writes: small packets, so that more of them are in
    // flight than the channel's queue (100 messages) takes.
    let result = world.hostile(&[
        "--timeout",
        "10",
        "--linger",
        "60",
        "upload",
        "--count",
        "8192",
        "--size",
        "2048",
        "--command",
        &command,
    ])?;
    assert_eq!(result["started"], "success", "{result}");
    let sent = result["sent_sha256"].as_str().unwrap_or_default();
    let size = result["sent_bytes"].as_u64().unwrap_or_default();
    // cat may still be writing when the channel has closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) < size && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stored = std::fs::read(&file)?;
    assert_eq!(
        (stored.len() as u64, sha256_hex(&stored).as_str()),
        (size, sent),
        "the target did not get every byte: {result}\n{}",
        world.logs()
    );
    let session = new_session_id(&world, &before)?;
    let sealed = world.wait_sealed(&session)?;
    assert_eq!(sealed["status"], "sealed", "{sealed}");
    let typed = world.shiftkey(&["recordings", "cat", &session, "--channel", "1", "--input"])?;
    assert!(typed.status.success(), "{}", stderr_of(&typed));
    assert_eq!(sha256_hex(&typed.stdout), sent, "recorded input");
    Ok(())
}

/// Runs `cat` on the target with hostile.py `scenario`, straight to the
/// target first (the control: the client itself is sound) and then through
/// the bastion; everything must come back, and be recorded byte-exact both
/// ways.
fn echoed_and_recorded(world: &World, scenario: &[&str]) -> anyhow::Result<()> {
    let args = [&["--timeout", "10", "--linger", "60"][..], scenario].concat();
    let direct = shiftkey_tests::bastion::hostile(
        &[
            &["--port", &world.sshd.port.to_string(), "--user", LOGIN_USER][..],
            &["--key", &world.key.display().to_string()],
            &["--cert", &format!("{}-cert.pub", world.key.display())],
            &args,
        ]
        .concat(),
    )?;
    assert_eq!(
        direct["received_sha256"], direct["sent_sha256"],
        "straight to the target: {direct}"
    );
    let before = world.session_ids();
    let result = world.hostile(&args)?;
    assert_eq!(result["started"], "success", "{result}");
    let sent = result["sent_sha256"].as_str().unwrap_or_default();
    assert_eq!(
        result["received_sha256"].as_str(),
        Some(sent),
        "the echo did not all come back (a deadlocked channel stops short): {result}\n{}",
        world.logs()
    );
    assert_eq!(result["exit_status"], 0, "{result}");
    let session = new_session_id(world, &before)?;
    let sealed = world.wait_sealed(&session)?;
    assert_eq!(sealed["status"], "sealed", "{sealed}");
    for flag in [&["--input"][..], &[][..]] {
        let cat = [&["recordings", "cat", &session, "--channel", "1"][..], flag].concat();
        let out = world.shiftkey(&cat)?;
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert_eq!(
            sha256_hex(&out.stdout),
            sent,
            "recorded {cat:?} differs from what was sent"
        );
    }
    Ok(())
}

/// env with a reply asked is answered; only LANG, LC_* and TERM reach the
/// target (whose sshd would take any name), the rest is refused and recorded.
#[test]
fn env_requests_are_answered_and_only_allowed_names_reach_the_target() -> anyhow::Result<()> {
    let world = World::build(Setup {
        sshd_extra: "AcceptEnv *\n",
        ..Setup::default()
    })?;
    let result = world.hostile(&[
        "--timeout",
        "3",
        "sequence",
        "--step",
        "env:FOO=bar",
        "--step",
        "env:LANG=C.UTF-8",
        "--step",
        "env:LC_ALL=C",
        "--step",
        "exec:echo \"[$FOO][$LANG][$LC_ALL]\"; sleep 2",
        "--step",
        "sleep:0.5",
        "--step",
        "env:TERM=dumb",
    ])?;
    for (step, reply) in replies(&result) {
        assert_ne!(reply, "no-answer", "{step} was never answered: {result}");
    }
    assert_eq!(reply_to(&result, "env:FOO=bar"), "failure", "{result}");
    assert_eq!(reply_to(&result, "env:LANG=C.UTF-8"), "success", "{result}");
    assert_eq!(reply_to(&result, "env:LC_ALL=C"), "success", "{result}");
    assert_eq!(
        reply_to(&result, "exec:echo \"[$FOO][$LANG][$LC_ALL]\"; sleep 2"),
        "success",
        "{result}"
    );
    assert_eq!(reply_to(&result, "env:TERM=dumb"), "failure", "{result}");
    assert_eq!(result["stdout"], "[][C.UTF-8][C]\n", "{result}");
    let (_, lines) = world.wait_recording(|l| events(l, "o").contains("[C.UTF-8]"))?;
    let notes = events(&lines, "m");
    assert!(
        notes.contains("FOO") && notes.contains("refused") && notes.contains("LANG"),
        "{lines:?}"
    );
    Ok(())
}

/// Requests in orders OpenSSH never uses: each answered or dropped as the
/// channel's state says, and what changes the target recorded.
#[test]
fn requests_out_of_order_are_refused_and_what_passes_is_recorded() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let result = world.hostile(&[
        "--timeout",
        "3",
        "sequence",
        "--step",
        "window-change:90x20",
        "--step",
        "pty",
        "--step",
        "shell",
        "--step",
        "sleep:0.3",
        "--step",
        "window-change:120x40",
        "--step",
        "signal:INT",
        "--step",
        "pty",
        "--step",
        "env:LANG=C",
        "--step",
        "x11",
        "--step",
        "agent",
        "--step",
        "break",
        "--step",
        "window-change:130x50!reply",
        "--step",
        "type:echo done-$((6*7))\\n",
        "--step",
        "sleep:0.5",
        "--step",
        "type:exit\\n",
    ])?;
    let r = replies(&result);
    // pty and shell succeed; the second pty (after the shell), env after
    // the shell, x11, agent and break are refused; a window change that
    // asks for a reply gets one.
    let answers: Vec<&str> = r.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        answers,
        [
            "not-asked",
            "success",
            "success",
            "not-asked",
            "not-asked",
            "failure",
            "failure",
            "failure",
            "failure",
            "failure",
            "success",
            "sent",
            "sent"
        ],
        "{result}"
    );
    assert!(
        result["stdout"]
            .as_str()
            .unwrap_or_default()
            .contains("done-42"),
        "{result}"
    );
    let (_, lines) = world.wait_recording(|l| events(l, "o").contains("done-42"))?;
    let resizes = events(&lines, "r");
    assert!(
        resizes.contains("120x40") && resizes.contains("130x50"),
        "{lines:?}"
    );
    assert!(
        !resizes.contains("90x20"),
        "a window change before the pty passed: {lines:?}"
    );
    let notes = events(&lines, "m");
    assert!(
        notes.contains("INT"),
        "the signal is not recorded: {lines:?}"
    );
    assert!(
        notes.contains("pty-req"),
        "the refused pty-req is not recorded: {lines:?}"
    );
    Ok(())
}

/// OpenSSH's MaxSessions: at most 10 session channels open at once on one
/// connection; the rest are refused at open and counted.
#[test]
fn one_connection_holds_at_most_max_sessions_channels() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let result = world.hostile(&["sessions", "--count", "30"])?;
    assert_eq!(result["opened"], 10, "{result}");
    assert_eq!(result["refused"], 20, "{result}");
    let refused = world
        .bastion
        .metric("shiftkey_bastion_channels_refused_total{reason=\"max-sessions\"}")?;
    assert!(refused >= 20.0, "{}", world.bastion.metrics()?);
    // The connection still works for the channels it holds.
    let out = run(&mut world.single_hop("127.0.0.1", &["echo", "still-fine"]))?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("still-fine"),
        "{}",
        stderr_of(&out)
    );
    Ok(())
}

/// 10,000 channels opened and closed one after the other, then commands
/// typed into one more: either refused, or recorded and sealed — never run
/// unrecorded, and the session ends sealed, not live forever.
#[test]
fn a_flood_of_channels_then_one_more_runs_nothing_unrecorded() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let probe = Probe::new("flood");
    let before = world.session_ids();
    let typed = probe.typed();
    let typed = typed.trim_start_matches("type:");
    let result = world.hostile(&[
        "--linger", "3", "flood", "--count", "10000", "--type", typed,
    ])?;
    eprintln!("flood: {result}");
    let session = new_session_id(&world, &before)?;
    nothing_ran_unrecorded(&world, &session, &probe)?;
    let sealed = world.wait_sealed(&session)?;
    assert_eq!(sealed["status"], "sealed", "{sealed}");
    let refused = world
        .bastion
        .metric("shiftkey_bastion_channels_refused_total{reason=\"channels-per-connection\"}")?;
    assert!(refused > 0.0, "{result}\n{}", world.bastion.metrics()?);
    assert!(!probe.ran(), "{result}");
    Ok(())
}

/// 2,007 logins (223 connections, 9 attempts each: russh allows 10, and
/// asyncssh's first is `none`) with certificates from
/// a CA the bastion does not trust: counted in metrics, logged locally
/// (rate-limited), and at most a handful of audit rows at the CA, whose
/// issuance keeps answering.
#[test]
fn logins_with_another_cas_certificates_are_counted_not_audited() -> anyhow::Result<()> {
    let world = World::build(Setup {
        bastion_extra: &|_| "[limits]\nmax_startups_per_source = 64\n".to_owned(),
        ..Setup::default()
    })?;
    let other = world.work.path().join("other-ca");
    std::fs::create_dir_all(&other)?;
    let other_ca = ssh_keygen(&other, "ca", &["-t", "ed25519"])?;
    let stranger = ssh_keygen(&other, "id_ed25519", &["-t", "ed25519"])?;
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&other_ca)
            .args(["-I", "stranger", "-n", LOGIN_USER, "-V", "-5m:+1h"])
            .arg(stranger.with_extension("pub")),
    )?;
    // Issuance before the flood, for comparison (figures, not a threshold).
    let mut quiet = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        world.certify("5m")?;
        quiet.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let rows_before = world.ca.audit_rows()?.len();
    let port = world.bastion.port.to_string();
    let key = stranger.display().to_string();
    let cert = format!("{key}-cert.pub");
    // Issuance while the flood runs: it keeps answering.
    let issuing = std::thread::scope(|scope| -> anyhow::Result<(Value, Vec<f64>)> {
        let flood = scope.spawn(|| {
            shiftkey_tests::bastion::hostile(&[
                "--port",
                &port,
                "--user",
                LOGIN_USER,
                "--key",
                &key,
                "--cert",
                &cert,
                "logins",
                "--count",
                "223",
                "--attempts",
                "9",
                "--concurrency",
                "40",
            ])
        });
        let mut latencies = Vec::new();
        while !flood.is_finished() {
            let started = Instant::now();
            world.certify("5m")?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_millis(500));
        }
        let result = flood
            .join()
            .map_err(|_| anyhow::anyhow!("the login flood panicked"))??;
        Ok((result, latencies))
    })?;
    let (result, latencies) = issuing;
    let summary = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        format!("n={} p50={:.1} ms max={:.1} ms", v.len(), at(0.5), at(1.0))
    };
    eprintln!(
        "logins: {result}; issuance before: {}; during the flood: {}",
        summary(&quiet),
        summary(&latencies)
    );
    assert_eq!(result["refused"], 223, "{result}");
    let result_seconds = result["seconds"].as_f64().unwrap_or(0.0);
    assert!(
        !latencies.is_empty(),
        "no certificate was issued during the flood"
    );
    // A plain key (no certificate) too.
    let plain = ssh_keygen(&other, "plain", &["-t", "ed25519"])?;
    let plain = plain.display().to_string();
    let result = shiftkey_tests::bastion::hostile(&[
        "--port", &port, "--user", LOGIN_USER, "--key", &plain, "logins", "--count", "50",
    ])?;
    assert_eq!(result["refused"], 50, "{result}");
    let plain_seconds = result["seconds"].as_f64().unwrap_or(0.0);
    // The certificates issued meanwhile write their own rows; nothing else
    // may come of the logins.
    let rows = world.ca.audit_rows()?;
    let grown: Vec<&Value> = rows
        .iter()
        .skip(rows_before)
        .filter(|r| r["kind"] != "certificate.issued" && r["kind"] != "request.created")
        .collect();
    assert!(
        grown.len() <= 5,
        "2,050 refused logins added {} audit rows: {grown:?}",
        grown.len()
    );
    let counted = world
        .bastion
        .metric("shiftkey_bastion_logins_refused_total{reason=\"unknown-ca\"}")?;
    assert!(counted >= 2000.0, "{}", world.bastion.metrics()?);
    let plain_counted = world
        .bastion
        .metric("shiftkey_bastion_logins_refused_total{reason=\"plain-key\"}")?;
    assert!(plain_counted >= 50.0, "{}", world.bastion.metrics()?);
    let warned = world
        .bastion
        .log()
        .lines()
        .filter(|l| l.contains("login refused"))
        .count();
    // At most 10 lines per 10 s window (the bastion's limit): what the
    // flood's own duration allows, far below one line per login.
    let seconds = result_seconds + plain_seconds;
    let windows = (seconds / 10.0).ceil() as usize + 2;
    assert!(
        warned <= 10 * windows && warned < 2050 / 4,
        "{warned} log lines for 2,050 refused logins in {seconds} s: not rate-limited"
    );
    Ok(())
}

/// Connections that never authenticate: at most `max_startups_per_source`
/// at once from one address (default 10); the next one is dropped.
#[test]
fn unauthenticated_connections_per_source_address_are_limited() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let port = world.bastion.port.to_string();
    let result = shiftkey_tests::bastion::hostile(&["--port", &port, "preauth", "--count", "10"])?;
    assert_eq!(result["extra_closed"], true, "{result}");
    let refused = world
        .bastion
        .metric("shiftkey_bastion_connections_refused_total{reason=\"startups-per-source\"}")?;
    assert!(refused >= 1.0, "{}", world.bastion.metrics()?);
    Ok(())
}

/// A connection that does not authenticate within `login_grace_time` is
/// dropped (OpenSSH's LoginGraceTime).
#[test]
fn a_connection_that_never_authenticates_is_dropped_after_the_grace_time() -> anyhow::Result<()> {
    let world = World::build(Setup {
        bastion_extra: &|_| "[limits]\nlogin_grace_time = \"2s\"\n".to_owned(),
        ..Setup::default()
    })?;
    let port = world.bastion.port.to_string();
    let result = shiftkey_tests::bastion::hostile(&["--port", &port, "preauth", "--count", "2"])?;
    assert_eq!(result["first_closed"], true, "{result}");
    Ok(())
}

/// The CA authorized the session but the target cannot be reached: the
/// session is ended and sealed at once, not left live.
#[test]
fn a_session_whose_target_cannot_be_reached_is_ended_and_sealed() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let closed = shiftkey_tests::util::free_port();
    // The role allows the port, so the CA says yes and the bastion tries.
    world.reload_policy(&with_ports(
        &policy().0,
        "shell",
        &[world.sshd.port, closed],
    ))?;
    let out = run(Command::new("ssh")
        .arg("-F")
        .arg(&world.config)
        .arg("-p")
        .arg(world.bastion.port.to_string())
        .arg(format!("{LOGIN_USER}%127.0.0.1:{closed}@127.0.0.1"))
        .arg("true"))?;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("cannot reach"),
        "{}",
        stderr_of(&out)
    );
    let row = wait_audit(&world.ca, "session.authorized", |r| {
        r["detail"]["target"] == format!("127.0.0.1:{closed}")
    })?;
    let session = row["detail"]["session"].as_str().unwrap_or_default();
    let sealed = world.wait_sealed(session)?;
    assert_eq!(sealed["status"], "sealed", "{sealed}");
    assert!(
        sealed["end_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot reach"),
        "{sealed}"
    );
    Ok(())
}

/// A target that presents a certificate the CA minted for the bastion to
/// present (here: the bastion's own key, certified under the target's
/// name) is not the target: the bastion refuses it.
#[test]
fn a_certificate_minted_for_the_bastion_to_present_is_not_a_targets_identity() -> anyhow::Result<()>
{
    let world = World::new(None)?;
    let present = world.bastion.present_certificate(&world.ca, "127.0.0.1")?;
    let dir = world.work.path().join("impostor");
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("host_key");
    std::fs::copy(world.bastion.dir.path().join("data/host_key"), &key)?;
    let cert = dir.join("host_key-cert.pub");
    std::fs::write(&cert, format!("{present}\n"))?;
    let user_ca = world
        .ca
        .client()
        .get(world.ca.url("/v1/ca/user.pub"))
        .send()?
        .text()?;
    let ca_file = dir.join("user_ca.pub");
    std::fs::write(&ca_file, user_ca)?;
    let impostor = shiftkey_tests::sshd::Sshd::start_with_config(&dir, |port| {
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nHostCertificate {}\nPidFile none\nUsePAM no\n\
             AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             TrustedUserCAKeys {}\nStrictModes no\nLogLevel VERBOSE\n",
            key.display(),
            cert.display(),
            ca_file.display()
        )
    })?;
    // The role allows the impostor's port: only its identity is wrong.
    world.reload_policy(&with_ports(
        &policy().0,
        "shell",
        &[world.sshd.port, impostor.port],
    ))?;
    let out = run(Command::new("ssh")
        .arg("-F")
        .arg(&world.config)
        .arg("-p")
        .arg(world.bastion.port.to_string())
        .arg(format!(
            "{LOGIN_USER}%127.0.0.1:{}@127.0.0.1",
            impostor.port
        ))
        .args(["echo", "impostor-reached"]))?;
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("impostor-reached"),
        "the bastion took a presented certificate as the target's identity"
    );
    assert!(
        stderr_of(&out).contains("minted for a bastion"),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    Ok(())
}

/// Target names are compared in one form (lowercase, no trailing dot) in
/// `[targets]` and everything sent to the CA; a port other than the one
/// `[targets]` names is refused, not silently replaced.
#[test]
fn target_names_are_canonical_and_a_replaced_port_is_refused() -> anyhow::Result<()> {
    let (base, _) = policy();
    let policy = format!(
        "{base}\n[[role]]\nname = \"web\"\nprincipals = [\"{LOGIN_USER}\"]\nhosts = [\"web-1.test\"]\nmax_ttl = \"10m\"\n\n[[grant]]\nidentities = [\"local:root\"]\nroles = [\"web\"]\n"
    );
    let mut world = World::build(Setup {
        policy: policy.clone(),
        bastion_extra: &|port| format!("[targets]\n\"Web-1.Test\" = \"127.0.0.1:{port}\"\n"),
        ..Setup::default()
    })?;
    // Role `web` reaches the target sshd's port.
    world.reload_policy(&with_ports(
        &with_ports(&policy, "shell", &[world.sshd.port]),
        "web",
        &[world.sshd.port],
    ))?;
    // The target's host certificate names web-1.test too, and it lets the
    // web role's login in (as an enrolled web host would).
    let sshd_dir = world.work.path().join("sshd");
    shiftkey_tests::sshd::principals_config(
        &sshd_dir,
        LOGIN_USER,
        &[&format!("{LOGIN_USER}@shell"), &format!("{LOGIN_USER}@web")],
    )?;
    run_ok(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-h",
                "-I",
                "web-1",
                "-n",
                "127.0.0.1,web-1.test",
                "-V",
                "-5m:+1h",
                "-s",
            ])
            .arg(world.ca.data_dir().join("keys/host_ca"))
            .arg(sshd_dir.join("ssh_host_ed25519_key.pub")),
    )?;
    let public = std::fs::read_to_string(world.key.with_extension("pub"))?;
    let (status, body) = world.ca.request_local(&json!({
        "public_key": public.trim(), "role": "web", "reason": "names", "ttl": "5m",
    }))?;
    anyhow::ensure!(status == 200, "{body}");
    std::fs::write(
        world.work.path().join("id_ed25519-cert.pub"),
        format!("{}\n", body["certificate"].as_str().unwrap_or_default()),
    )?;
    // sshd reads its host certificate at start: restart it by SIGHUP.
    run_ok(Command::new("kill").args(["-HUP", &world.sshd.pid().to_string()]))?;
    anyhow::ensure!(world.sshd.wait_listening(2)?, "sshd did not come back");
    let ssh = |user: &str| {
        run(Command::new("ssh")
            .arg("-F")
            .arg(&world.config)
            .arg("-p")
            .arg(world.bastion.port.to_string())
            .arg(format!("{user}@127.0.0.1"))
            .args(["echo", "reached-web-1"]))
    };
    let out = ssh(&format!("{LOGIN_USER}%WEB-1.Test."))?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reached-web-1"),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    let row = world.ca.last_audit("session.authorized")?;
    // No port given: the one `[targets]` names.
    assert_eq!(
        row["detail"]["target"],
        format!("web-1.test:{}", world.sshd.port),
        "{row}"
    );
    let out = ssh(&format!("{LOGIN_USER}%web-1.test:2222"))?;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("reached-web-1"));
    assert!(stderr_of(&out).contains("[targets]"), "{}", stderr_of(&out));
    Ok(())
}
