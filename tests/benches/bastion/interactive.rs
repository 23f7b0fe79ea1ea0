//! Interactive sessions: many idle shells through the bastion for its
//! memory, and keystroke round trips through every route.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::measure::{Cpu, Latencies, Watchdog};
use crate::report::{IdleCycle, Memory};
use crate::world::Bench;
use crate::{IDLE_BATCH, IDLE_CYCLES, IDLE_RETURN, IDLE_SETTLE, KEY_GAP, KEYS_WARMUP, Route};

impl Bench {
    /// The bastion's resident memory before and with `n` idle recorded
    /// interactive sessions.
    pub(crate) fn memory(&self, n: usize) -> anyhow::Result<Memory> {
        // One session first, so that one-time set-up (the presented host
        // certificate, TLS to the CA, lazy statics) is in the baseline.
        eprintln!("memory: one warm-up session...");
        let finished = self.finished();
        let out = self
            .ssh(Route::Bastion, &[], Some("true"))
            .stdin(Stdio::null())
            .output()?;
        ensure!(
            out.status.success(),
            "a session through the bastion failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        self.wait_finished(finished, 1, Duration::from_secs(30))?;
        std::thread::sleep(Duration::from_secs(2));
        let before = self.bastion_status();

        let mut cycles = Vec::with_capacity(IDLE_CYCLES);
        for cycle in 1..=IDLE_CYCLES {
            cycles.push(self.idle_cycle(cycle, n)?);
        }
        Ok(Memory { n, before, cycles })
    }

    /// Opens `n` idle sessions, measures, closes them.
    pub(crate) fn idle_cycle(&self, cycle: usize, n: usize) -> anyhow::Result<IdleCycle> {
        eprintln!(
            "memory, cycle {cycle}: opening {n} idle interactive sessions through the bastion..."
        );
        let dirs_before = self.session_dirs();
        let started = Instant::now();
        let sessions = self.open_idle(n)?;
        let open_seconds = started.elapsed().as_secs_f64();
        let dirs_idle: BTreeSet<PathBuf> = self
            .session_dirs()
            .difference(&dirs_before)
            .cloned()
            .collect();
        let recorded_at_up = Self::recording_bytes(&dirs_idle);
        let cpu_before = Cpu::now();
        std::thread::sleep(IDLE_SETTLE);
        let idle_cpu = Cpu::now().since(&cpu_before);
        let with = self.bastion_status();
        let recorded_after = Self::recording_bytes(&dirs_idle);

        eprintln!("memory, cycle {cycle}: closing the idle sessions...");
        let finished = self.finished();
        for mut s in sessions {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        let unsealed = self.wait_finished(finished, n, Duration::from_secs(300))?;
        std::thread::sleep(IDLE_RETURN);
        let after = self.bastion_status();
        Ok(IdleCycle {
            recorded_sessions: dirs_idle.len(),
            open_seconds,
            with,
            after,
            idle_growth: recorded_after.saturating_sub(recorded_at_up),
            idle_cpu,
            unsealed,
        })
    }

    /// `n` interactive shells through the bastion, opened `IDLE_BATCH` at a
    /// time, each at its prompt.
    pub(crate) fn open_idle(&self, n: usize) -> anyhow::Result<Vec<IdleSession>> {
        let mut sessions: Vec<IdleSession> = Vec::with_capacity(n);
        while sessions.len() < n {
            let batch = IDLE_BATCH.min(n - sessions.len());
            let (tx, rx) = mpsc::channel();
            let mut children = Vec::with_capacity(batch);
            for i in 0..batch {
                let number = sessions.len() + i;
                let stderr =
                    std::fs::File::create(self.work.path().join(format!("idle-{number}.stderr")))?;
                let mut child = self
                    .ssh(Route::Bastion, &["-tt"], None)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(stderr)
                    .spawn()
                    .context("starting ssh")?;
                // A real shell at its prompt. The typed line holds U''P, so
                // only the shell's output can read "UP".
                if let Some(stdin) = child.stdin.as_mut() {
                    stdin.write_all(b"echo U''P\r")?;
                    stdin.flush()?;
                }
                let stdout = child.stdout.take().context("piped stdout")?;
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = tx.send((i, wait_for(stdout, b"UP\r\n")));
                });
                children.push(Some(child));
            }
            drop(tx);
            for _ in 0..batch {
                let (i, result) = rx
                    .recv_timeout(Duration::from_secs(120))
                    .context("an idle session did not come up in 120 s")?;
                let child = children
                    .get_mut(i)
                    .and_then(Option::take)
                    .context("batch index")?;
                match result {
                    Ok(stdout) => sessions.push(IdleSession {
                        child,
                        _stdout: stdout,
                    }),
                    Err(e) => {
                        let number = sessions.len();
                        bail!(
                            "idle session {number} did not come up: {e:#}\n{}\n{}",
                            std::fs::read_to_string(
                                self.work.path().join(format!("idle-{number}.stderr"))
                            )
                            .unwrap_or_default(),
                            self.logs()
                        );
                    }
                }
            }
        }
        Ok(sessions)
    }

    /// Round trips of single keystrokes to a remote `cat` on a pty in raw
    /// mode (each byte goes to `cat`, which writes it back), through every
    /// route at once: the routes take turns, keystroke by keystroke, so that
    /// whatever else the machine does falls on all of them alike.
    pub(crate) fn keystrokes(&self, n: usize) -> anyhow::Result<Vec<(Route, Latencies)>> {
        let mut sessions = Vec::new();
        for route in Route::ALL {
            let mut child = self
                .ssh(
                    route,
                    &["-tt"],
                    Some("stty raw -echo && echo READY && exec cat"),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("starting ssh")?;
            let watchdog = Watchdog::new(child.id(), Duration::from_secs(900));
            let stdin = child.stdin.take().context("piped stdin")?;
            let stdout = wait_for(child.stdout.take().context("piped stdout")?, b"READY\n")
                .with_context(|| format!("the keystroke session via {}", route.name()))?;
            sessions.push(KeySession {
                route,
                child,
                stdin,
                stdout,
                watchdog,
                samples: Vec::with_capacity(n),
            });
        }
        let mut buf = [0u8; 256];
        for i in 0..KEYS_WARMUP + n {
            let key = b'a' + u8::try_from(i % 26).unwrap_or(0);
            for s in &mut sessions {
                std::thread::sleep(KEY_GAP);
                let sent = Instant::now();
                s.stdin.write_all(&[key])?;
                s.stdin.flush()?;
                loop {
                    let got = s.stdout.read(&mut buf)?;
                    ensure!(
                        got > 0,
                        "the keystroke session via {} ended",
                        s.route.name()
                    );
                    if buf.get(..got).unwrap_or_default().contains(&key) {
                        break;
                    }
                }
                if i >= KEYS_WARMUP {
                    s.samples.push(sent.elapsed());
                }
            }
        }
        let mut out = Vec::new();
        for s in sessions {
            let KeySession {
                route,
                mut child,
                stdin,
                stdout,
                watchdog,
                samples,
            } = s;
            drop(watchdog);
            drop(stdin);
            drop(stdout);
            let _ = child.kill();
            let _ = child.wait();
            out.push((route, Latencies::new(samples)));
        }
        Ok(out)
    }
}

/// One keystroke session.
pub(crate) struct KeySession {
    route: Route,
    child: Child,
    stdin: std::process::ChildStdin,
    stdout: ChildStdout,
    watchdog: Watchdog,
    samples: Vec<Duration>,
}

/// Reads `stdout` until `marker` has been seen; hands the stream back open.
pub(crate) fn wait_for(mut stdout: ChildStdout, marker: &[u8]) -> anyhow::Result<ChildStdout> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let got = stdout.read(&mut buf)?;
        ensure!(
            got > 0,
            "ssh ended; output: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(buf.get(..got).unwrap_or_default());
        if seen.windows(marker.len()).any(|w| w == marker) {
            return Ok(stdout);
        }
    }
}

/// One open idle session: the ssh process and its (unread) output.
pub(crate) struct IdleSession {
    child: Child,
    _stdout: ChildStdout,
}
