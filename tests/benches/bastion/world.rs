//! The world the benchmark runs in: the CA, the target and jump sshd, the
//! bastion and the user's certificate; ssh through each route; bulk
//! transfers and the recordings they leave.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;
use shiftkey_tests::bastion::TestBastion;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::sshd::Sshd;
use shiftkey_tests::util::{ensure_login_user, run_ok, ssh_keygen};

use crate::measure::{Cpu, Watchdog, process_cpu_seconds};
use crate::report::{Bulk, Copy, Recorded, Transfer};
use crate::{LOGIN, PERF_VAR, POLICY, Payload, Route, SSHD_EXTRA, Sizes};

/// The CA, a target sshd (host certificate from the CA), a plain jump sshd,
/// the bastion, and a user certificate that outlasts the run.
pub(crate) struct Bench {
    ca: TestCa,
    target: Sshd,
    jump: Sshd,
    bastion: TestBastion,
    pub(crate) work: tempfile::TempDir,
    /// World-readable: the target's login user reads the payload files.
    data: tempfile::TempDir,
    config: PathBuf,
}

impl Bench {
    pub(crate) fn start() -> anyhow::Result<Self> {
        ensure_login_user(LOGIN)?;
        let ca = TestCa::init(POLICY, None)?;
        let work = tempfile::Builder::new()
            .prefix("shiftkey-bench-")
            .tempdir()?;
        let user_ca = std::fs::read_to_string(ca.data_dir().join("keys/user_ca.pub"))?;
        let host_ca = ca.data_dir().join("keys/host_ca");
        let target = Sshd::start_with_host_ca_and_extra(
            &work.path().join("target"),
            &user_ca,
            Some(&host_ca),
            SSHD_EXTRA,
        )?;
        let jump = Sshd::start_with_host_ca_and_extra(
            &work.path().join("jump"),
            &user_ca,
            Some(&host_ca),
            &format!("AllowTcpForwarding yes\n{SSHD_EXTRA}"),
        )?;
        // The bastion connects only to the role's ports: the target's.
        std::fs::write(
            ca.data_dir().join("policy.toml"),
            shiftkey_tests::util::with_ports(POLICY, "shell", &[target.port]),
        )?;
        let ca = ca.start()?;
        let bastion = TestBastion::start(&ca, None)?;
        let key = ssh_keygen(work.path(), "id_ed25519", &["-t", "ed25519"])?;
        let public = std::fs::read_to_string(key.with_extension("pub"))?;
        let (status, body) = ca.request_local(&json!({
            "public_key": public.trim(), "role": "shell", "reason": "bastion benchmark", "ttl": "3h",
        }))?;
        ensure!(status == 200, "the CA refused the certificate: {body}");
        std::fs::write(
            work.path().join("id_ed25519-cert.pub"),
            format!("{}\n", body["certificate"].as_str().unwrap_or_default()),
        )?;
        let config = bastion.ssh_config(&ca, work.path(), &key)?;
        let data = tempfile::Builder::new()
            .prefix("shiftkey-bench-data-")
            .tempdir()?;
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755))?;
        Ok(Self {
            ca,
            target,
            jump,
            bastion,
            work,
            data,
            config,
        })
    }

    /// `ssh -F CONFIG [-J HOP] OPTIONS -p PORT sktest@127.0.0.1 [COMMAND]`.
    pub(crate) fn ssh(&self, route: Route, options: &[&str], command: Option<&str>) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg(&self.config);
        match route {
            Route::Direct => {}
            Route::ProxyJump => {
                cmd.arg("-J")
                    .arg(format!("{LOGIN}@127.0.0.1:{}", self.jump.port));
            }
            Route::Bastion => {
                cmd.args(["-J", "bastion"]);
            }
        }
        cmd.args(options)
            .arg("-p")
            .arg(self.target.port.to_string())
            .arg(format!("{LOGIN}@127.0.0.1"));
        if let Some(c) = command {
            cmd.arg(c);
        }
        cmd
    }

    /// The ciphers each hop negotiated, from `ssh -v` (ProxyJump's helper
    /// ssh inherits the -v).
    pub(crate) fn ciphers(&self, route: Route) -> anyhow::Result<String> {
        let out = self
            .ssh(route, &["-v", "-o", "LogLevel=DEBUG1"], Some("true"))
            .stdin(Stdio::null())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success(),
            "ssh through {} failed: {stderr}\n{}",
            route.name(),
            self.logs()
        );
        let hops: Vec<String> = stderr
            .lines()
            .filter_map(|l| l.split_once("kex: server->client cipher: "))
            .map(|(_, rest)| rest.replace(" compression: ", ", compression "))
            .collect();
        Ok(hops.join("  |  "))
    }

    pub(crate) fn logs(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "--- bastion\n{}\n--- ca\n{}\n--- target sshd\n{}\n--- jump sshd\n{}",
            tail(self.bastion.log()),
            tail(self.ca.log()),
            tail(self.target.log()),
            tail(self.jump.log())
        )
    }

    /// Sessions the bastion has finished with: (sealed by the CA, given up
    /// on after the CA refused or failed to seal them).
    pub(crate) fn finished(&self) -> (usize, usize) {
        let log = self.bastion.log();
        (
            log.matches("recording sealed by the CA").count(),
            log.matches("the CA did not seal the recording").count(),
        )
    }

    /// Waits until the bastion has finished with `count` sessions in all
    /// (see [`finished`](Self::finished)); returns how many were not sealed.
    pub(crate) fn wait_finished(
        &self,
        before: (usize, usize),
        count: usize,
        limit: Duration,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + limit;
        loop {
            let (sealed, unsealed) = self.finished();
            let done = (sealed - before.0) + (unsealed - before.1);
            if done >= count {
                return Ok(unsealed - before.1);
            }
            ensure!(
                Instant::now() < deadline,
                "the bastion finished {done} of {count} sessions in {limit:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn session_dirs(&self) -> BTreeSet<PathBuf> {
        std::fs::read_dir(self.bastion.recordings())
            .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn recording_bytes(dirs: &BTreeSet<PathBuf>) -> u64 {
        dirs.iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten())
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    pub(crate) fn bastion_status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.bastion.pid())).unwrap_or_default()
    }

    /// Files the target's login reads: random bytes and base64 text of them.
    pub(crate) fn generate_payloads(&self, bytes: u64) -> anyhow::Result<()> {
        let random = self.data.path().join("random.bin");
        let text = self.data.path().join("random.txt");
        run_ok(Command::new("sh").arg("-c").arg(format!(
            "head -c {bytes} /dev/urandom > '{}' && base64 -w 76 < '{}' | head -c {bytes} > '{}'",
            random.display(),
            random.display(),
            text.display()
        )))?;
        for f in [&random, &text] {
            ensure!(
                std::fs::metadata(f)?.len() == bytes,
                "{} is short",
                f.display()
            );
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(())
    }

    pub(crate) fn remote_command(&self, payload: Payload, bytes: u64) -> String {
        match payload {
            Payload::Zero => format!("head -c {bytes} /dev/zero"),
            Payload::Random => format!("cat {}", self.data.path().join("random.bin").display()),
            Payload::Text => format!("cat {}", self.data.path().join("random.txt").display()),
        }
    }

    /// Every payload through every route, `rounds` times.
    pub(crate) fn bulk(&self, sizes: &Sizes) -> anyhow::Result<Bulk> {
        let mut runs = Vec::new();
        for round in 0..sizes.rounds {
            for payload in Payload::ALL {
                for route in Route::ALL {
                    eprintln!(
                        "bulk round {}: {} via {}...",
                        round + 1,
                        payload.name(),
                        route.name()
                    );
                    let profile = (round == 0 && route == Route::Bastion)
                        .then(|| Profile::start(self.bastion.pid(), payload))
                        .flatten();
                    let transfer = self.transfer(route, payload, sizes.bytes)?;
                    if let Some(profile) = profile {
                        profile.stop();
                    }
                    eprintln!("  {:.1} MB/s", transfer.rate_mb());
                    runs.push((payload, route, transfer));
                }
            }
        }
        Ok(Bulk { runs })
    }

    /// `ssh ... COMMAND` with its output read here as fast as it comes
    /// (and thrown away), timed from the first byte to the end.
    pub(crate) fn transfer(
        &self,
        route: Route,
        payload: Payload,
        bytes: u64,
    ) -> anyhow::Result<Transfer> {
        let dirs_before = self.session_dirs();
        let finished = self.finished();
        let bastion_cpu = process_cpu_seconds(self.bastion.pid());
        let ca_cpu = process_cpu_seconds(self.ca.pid());
        let stderr_path = self.work.path().join("bulk.stderr");
        let mut child = self
            .ssh(route, &[], Some(&self.remote_command(payload, bytes)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path)?)
            .spawn()
            .context("starting ssh")?;
        let mut stdout = child.stdout.take().context("piped stdout")?;
        let watchdog = Watchdog::new(child.id(), Duration::from_secs(1800));
        let mut buf = vec![0u8; 1 << 20];
        let first = stdout.read(&mut buf)? as u64;
        let started = Instant::now();
        let cpu_before = Cpu::now();
        let mut timed = 0u64;
        loop {
            let n = stdout.read(&mut buf)?;
            if n == 0 {
                break;
            }
            timed += n as u64;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = Cpu::now().since(&cpu_before);
        drop(watchdog);
        let status = child.wait()?;
        ensure!(
            status.success() && first + timed == bytes,
            "ssh via {} ended with {status} after {} of {bytes} bytes: {}\n{}",
            route.name(),
            first + timed,
            std::fs::read_to_string(&stderr_path).unwrap_or_default(),
            self.logs()
        );
        let mut recording = None;
        if route == Route::Bastion {
            let ended = Instant::now();
            // The bastion tries to seal five times over about a minute.
            let unsealed = self.wait_finished(finished, 1, Duration::from_secs(300))?;
            let seal_seconds = ended.elapsed().as_secs_f64();
            let new: BTreeSet<PathBuf> = self
                .session_dirs()
                .difference(&dirs_before)
                .cloned()
                .collect();
            recording = Some(Recorded {
                bytes: Self::recording_bytes(&new),
                seconds: seal_seconds,
                sealed: unsealed == 0,
                // From before ssh started until the CA sealed it: forwarding,
                // recording, upload, hashing and storing.
                bastion_cpu: process_cpu_seconds(self.bastion.pid()) - bastion_cpu,
                ca_cpu: process_cpu_seconds(self.ca.pid()) - ca_cpu,
            });
        }
        Ok(Transfer {
            bytes: timed,
            seconds,
            cpu,
            recording,
        })
    }
}

impl Bench {
    /// `scp` (SFTP, OpenSSH's default) of the random payload from the
    /// target to a file here, through every route, `rounds` times.
    pub(crate) fn copies(&self, sizes: &Sizes) -> anyhow::Result<Vec<(Route, Copy)>> {
        let source = self.data.path().join("random.bin");
        let dest = self.work.path().join("copied.bin");
        let mut runs = Vec::new();
        for round in 0..sizes.rounds {
            for route in Route::ALL {
                eprintln!("scp round {}: via {}...", round + 1, route.name());
                let finished = self.finished();
                let mut cmd = Command::new("scp");
                cmd.arg("-q").arg("-F").arg(&self.config);
                match route {
                    Route::Direct => {}
                    Route::ProxyJump => {
                        cmd.arg("-J")
                            .arg(format!("{LOGIN}@127.0.0.1:{}", self.jump.port));
                    }
                    Route::Bastion => {
                        cmd.args(["-J", "bastion"]);
                    }
                }
                cmd.arg("-P")
                    .arg(self.target.port.to_string())
                    .arg(format!("{LOGIN}@127.0.0.1:{}", source.display()))
                    .arg(&dest)
                    .stdin(Stdio::null());
                let started = Instant::now();
                let out = cmd.output().context("running scp")?;
                let seconds = started.elapsed().as_secs_f64();
                let got = std::fs::metadata(&dest).map_or(0, |m| m.len());
                let _ = std::fs::remove_file(&dest);
                ensure!(
                    out.status.success() && got == sizes.bytes,
                    "scp via {} ended with {} after {got} of {} bytes: {}\n{}",
                    route.name(),
                    out.status,
                    sizes.bytes,
                    String::from_utf8_lossy(&out.stderr),
                    self.logs()
                );
                if route == Route::Bastion {
                    self.wait_finished(finished, 1, Duration::from_secs(300))?;
                }
                eprintln!("  {:.1} MB/s", sizes.bytes as f64 / seconds / 1e6);
                runs.push((
                    route,
                    Copy {
                        bytes: sizes.bytes,
                        seconds,
                    },
                ));
            }
        }
        Ok(runs)
    }
}

/// `perf record -g` on the bastion during one payload, when `PERF_VAR`
/// names a directory: `DIR/PAYLOAD.perf.data`, for `perf report`.
struct Profile {
    child: std::process::Child,
}

impl Profile {
    fn start(pid: u32, payload: Payload) -> Option<Self> {
        let dir = std::env::var_os(PERF_VAR)?;
        let out = PathBuf::from(dir).join(format!("{}.perf.data", payload.short()));
        match Command::new("perf")
            .args(["record", "-g", "-q", "-p", &pid.to_string(), "-o"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => Some(Self { child }),
            Err(e) => {
                eprintln!("perf record did not start ({e}); install linux-perf");
                None
            }
        }
    }

    /// SIGINT, which makes perf write its file, then waits for it.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
