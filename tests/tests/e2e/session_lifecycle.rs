//! A session's life at the CA after it starts, through the real bastion:
//! a bastion killed mid-session (the CA seals the session as lost with what
//! reached it), the CA's per-session size limit, retention and legal holds.

use std::time::{Duration, Instant};

use serde_json::Value;
use shiftkey_tests::util::run;

use crate::bastion::{
    Setup, World, interactive, new_session_id, stderr_of, type_slowly, wait_with_timeout,
};
use crate::fixtures::LOGIN_USER;

/// Polls the CA's view of session `id` until `done` holds.
fn wait_session(
    world: &World,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let session = world.session(id)?;
        if done(&session) {
            return Ok(session);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "session {id} did not get there:\n{session}\n{}",
            world.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bastion is SIGKILLed mid-session: within a minute the CA reads the
/// session `lost`, its recording holds what was typed and printed up to the
/// last shipment before the kill (the bastion flushes and ships every
/// second), the seal verifies as a truncated recording, and the audit log
/// says so.
#[test]
fn a_session_whose_bastion_is_killed_is_sealed_as_lost() -> anyhow::Result<()> {
    let mut world = World::build(Setup {
        ca_extra: "[recordings]\nlost_after = \"3s\"\n",
        bastion_extra: &|_| "heartbeat_interval = \"1s\"\n".into(),
        ..Setup::default()
    })?;
    let before = world.session_ids();
    let mut ssh = interactive(&world)?;
    std::thread::sleep(Duration::from_millis(1500));
    type_slowly(&mut ssh, b"echo before-the-$((6*7))-kill\r")?;
    let session = new_session_id(&world, &before)?;
    // Markers typed every quarter second for four seconds (longer than the
    // 3 s of silence: the heartbeats keep the session live), then the kill.
    let mut typed = Vec::new();
    let typing = Instant::now();
    let mut n = 0;
    while typing.elapsed() < Duration::from_secs(4) {
        n += 1;
        type_slowly(&mut ssh, format!("echo m-{n}-m\r").as_bytes())?;
        typed.push((n, Instant::now()));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(world.session(&session)?["status"], "live");
    world.bastion.kill9()?;
    let killed = Instant::now();
    let _ = wait_with_timeout(&mut ssh, Duration::from_secs(10))?;
    let lost = wait_session(&world, &session, Duration::from_secs(60), |s| {
        s["status"] != "live"
    })?;
    println!(
        "session read {} {} ms after the bastion was killed",
        lost["status"],
        killed.elapsed().as_millis()
    );
    assert_eq!(lost["status"], "lost", "{lost}");
    // How close to the kill the CA's copy reaches: the last marker it holds.
    let input = world.shiftkey(&["recordings", "cat", &session, "--input"])?;
    assert!(input.status.success(), "{}", stderr_of(&input));
    let held = stdout_of(&input);
    let last = typed
        .iter()
        .rev()
        .find(|(n, _)| held.contains(&format!("echo m-{n}-m")))
        .map(|(n, at)| (*n, killed.duration_since(*at)));
    let (last, gap) = last.ok_or_else(|| anyhow::anyhow!("no marker reached the CA:\n{held}"))?;
    println!(
        "the CA holds input up to {} ms before the kill (marker {last} of {})",
        gap.as_millis(),
        typed.len()
    );
    // Everything typed before the last flush and shipment (one second each
    // way, with room for a loaded machine) is there.
    for (n, at) in &typed {
        if killed.duration_since(*at) > Duration::from_millis(2500) {
            assert!(
                held.contains(&format!("echo m-{n}-m")),
                "marker {n} missing"
            );
        }
    }
    let problems = lost["problems"].to_string();
    assert!(problems.contains("truncated"), "{problems}");
    assert!(
        lost["end_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("lost")),
        "{lost}"
    );
    // What the shell printed, too.
    assert!(held.contains("echo before-the-$((6*7))-kill"), "{held}");
    let output = world.shiftkey(&["recordings", "cat", &session])?;
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("before-the-42-kill"),
        "{}",
        stdout_of(&output)
    );
    // Searchable and listed as lost.
    let found = world.shiftkey(&["recordings", "search", "before-the", "--json"])?;
    assert!(
        stdout_of(&found).contains(&session),
        "{}",
        stdout_of(&found)
    );
    let listed = world.shiftkey(&["recordings", "list", "--status", "lost", "--json"])?;
    assert!(
        stdout_of(&listed).contains(&session),
        "{}{}",
        stdout_of(&listed),
        stderr_of(&listed)
    );
    // The export verifies, as the truncated recording it is.
    let bundle = world.work.path().join("lost-bundle");
    let bundle_arg = bundle.to_string_lossy().into_owned();
    let out = world.shiftkey(&["recordings", "export", &session, "--out", &bundle_arg])?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let ca_key = world.work.path().join("user_ca.pub");
    std::fs::write(
        &ca_key,
        world
            .ca
            .client()
            .get(world.ca.url("/v1/ca/user.pub"))
            .send()?
            .text()?,
    )?;
    let out = world.shiftkey(&[
        "recordings",
        "verify",
        &bundle_arg,
        "--ca-key",
        &ca_key.to_string_lossy(),
    ])?;
    assert!(
        out.status.success(),
        "{}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    assert!(stdout_of(&out).contains("TRUNCATED"), "{}", stdout_of(&out));
    let row = world.ca.last_audit("recording.lost")?;
    assert_eq!(row["detail"]["session"], session.as_str());
    Ok(())
}

/// The CA's `[recordings] max_session_size` refuses uploads past it, and
/// the bastion ends the session with the reason, which the user sees.
#[test]
fn the_cas_size_limit_ends_the_session_with_a_clear_message() -> anyhow::Result<()> {
    let world = World::build(Setup {
        ca_extra: "[recordings]\nmax_session_size = \"256KiB\"\n",
        ..Setup::default()
    })?;
    let before = world.session_ids();
    let mut ssh = world
        .ssh(
            LOGIN_USER,
            &[
                "sh",
                "-c",
                "'while :; do head -c 20000 /dev/urandom | base64; sleep 0.2; done'",
            ],
        )
        .stdin(std::process::Stdio::null())
        // Not read while it runs: a pipe would fill and stall ssh.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let (exited, _, stderr) = wait_with_timeout(&mut ssh, Duration::from_secs(60))?;
    assert!(exited, "the session outlived the limit\n{}", world.logs());
    assert!(
        stderr.contains("max_session_size"),
        "{stderr}\n{}",
        world.logs()
    );
    let session = new_session_id(&world, &before)?;
    let sealed = world.wait_sealed(&session)?;
    assert!(
        sealed["end_reason"]
            .as_str()
            .is_some_and(|r| r.contains("max_session_size")),
        "{sealed}"
    );
    let held: u64 = sealed["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["bytes"].as_u64())
        .sum();
    assert!(held <= 256 * 1024, "{held} bytes held");
    let row = world.ca.last_audit("recording.upload_refused")?;
    assert_eq!(row["detail"]["session"], session.as_str());
    assert!(
        row["detail"]["message"]
            .to_string()
            .contains("max_session_size"),
        "{row}"
    );
    Ok(())
}

/// Retention deletes sealed recordings (each audited); a legal hold keeps
/// one until it is released.
#[test]
fn retention_deletes_old_recordings_and_a_legal_hold_keeps_one() -> anyhow::Result<()> {
    let world = World::build(Setup {
        ca_extra: "[recordings]\nretention = \"2s\"\n",
        ..Setup::default()
    })?;
    let data_dir = world.ca.data_dir().display().to_string();
    let run_session = |text: &str| -> anyhow::Result<String> {
        let before = world.session_ids();
        let out = run(&mut world.ssh(LOGIN_USER, &["echo", text]))?;
        assert!(
            out.status.success() && stdout_of(&out).contains(text),
            "{}\n{}",
            stderr_of(&out),
            world.logs()
        );
        let id = new_session_id(&world, &before)?;
        Ok(id)
    };
    // Held while still live: retention never sees it unheld.
    let before = world.session_ids();
    let mut ssh = interactive(&world)?;
    let kept = new_session_id(&world, &before)?;
    let out = world.ca.cli(&[
        "recordings",
        "hold",
        &kept,
        "--reason",
        "case 12",
        "--data-dir",
        &data_dir,
    ])?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    std::thread::sleep(Duration::from_millis(1500));
    type_slowly(&mut ssh, b"echo kept-by-hold; exit\r")?;
    let _ = wait_with_timeout(&mut ssh, Duration::from_secs(10))?;
    world.wait_sealed(&kept)?;
    let gone = run_session("gone-by-retention")?;
    world.wait_sealed(&gone)?;
    let deleted = wait_session(&world, &gone, Duration::from_secs(30), |s| {
        s["deleted_at"].is_i64()
    })?;
    assert!(
        deleted["signature"].is_string(),
        "the seal stays: {deleted}"
    );
    let cat = world.shiftkey(&["recordings", "cat", &gone])?;
    assert!(!cat.status.success());
    assert!(
        stderr_of(&cat).contains("deleted by retention"),
        "{}",
        stderr_of(&cat)
    );
    // The held one is still there, whole, past its retention.
    let held = world.session(&kept)?;
    assert_eq!(held["held"], "case 12", "{held}");
    assert!(held["deleted_at"].is_null(), "{held}");
    let cat = world.shiftkey(&["recordings", "cat", &kept])?;
    assert!(cat.status.success(), "{}", stderr_of(&cat));
    assert!(stdout_of(&cat).contains("kept-by-hold"));
    // Released: retention takes it too.
    let out = world.ca.cli(&[
        "recordings",
        "release",
        &kept,
        "--reason",
        "case 12 closed",
        "--data-dir",
        &data_dir,
    ])?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    wait_session(&world, &kept, Duration::from_secs(30), |s| {
        s["deleted_at"].is_i64()
    })?;
    let rows = world.ca.audit_rows()?;
    let kinds: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| {
            matches!(
                r["kind"].as_str(),
                Some("recording.held" | "recording.released" | "recording.deleted")
            )
        })
        .filter_map(|r| Some((r["kind"].as_str()?, r["detail"]["session"].as_str()?)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("recording.held", kept.as_str()),
            ("recording.deleted", gone.as_str()),
            ("recording.released", kept.as_str()),
            ("recording.deleted", kept.as_str()),
        ]
    );
    // A hold on what is gone says so.
    let out = world.ca.cli(&[
        "recordings",
        "hold",
        &gone,
        "--reason",
        "too late",
        "--data-dir",
        &data_dir,
    ])?;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("retention deleted it"),
        "{}",
        stderr_of(&out)
    );
    Ok(())
}
