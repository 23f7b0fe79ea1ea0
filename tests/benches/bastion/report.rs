//! What the run found, and printing it.

use crate::measure::{CPU_GROUPS, Cpu, Latencies, kib_field, ms};
use crate::{
    IDLE_BATCH, IDLE_CYCLES, IDLE_RETURN, IDLE_SETTLE, KEY_GAP, KEYS_WARMUP, Payload, Route,
};

pub(crate) fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

#[derive(Debug)]
pub(crate) struct Transfer {
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) cpu: Cpu,
    /// The session's recording (bastion route only).
    pub(crate) recording: Option<Recorded>,
}

#[derive(Debug)]
pub(crate) struct Recorded {
    /// Bytes of its files on the bastion.
    pub(crate) bytes: u64,
    /// From the end of the output until the bastion was done with it.
    pub(crate) seconds: f64,
    /// False when the bastion gave up asking the CA to seal it.
    pub(crate) sealed: bool,
    /// CPU seconds of the bastion and of the CA process from before ssh
    /// started until the recording was sealed.
    pub(crate) bastion_cpu: f64,
    pub(crate) ca_cpu: f64,
}

/// One `scp` of the random payload.
#[derive(Debug)]
pub(crate) struct Copy {
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
}

impl Copy {
    pub(crate) fn rate_mb(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
}

/// The fastest `scp` via `route`.
pub(crate) fn best_copy(copies: &[(Route, Copy)], route: Route) -> f64 {
    copies
        .iter()
        .filter(|(r, _)| *r == route)
        .map(|(_, c)| c.rate_mb())
        .fold(0.0, f64::max)
}

pub(crate) fn print_copies(copies: &[(Route, Copy)], bytes: u64) {
    println!(
        "scp (SFTP) of {bytes} random bytes from the target to a local file, timed over the whole \
         command (connection set-up included), best of the rounds:"
    );
    for route in Route::ALL {
        let rounds: Vec<String> = copies
            .iter()
            .filter(|(r, _)| *r == route)
            .map(|(_, c)| format!("{:.1}", c.rate_mb()))
            .collect();
        println!(
            "  {:<10} {:>8.1} MB/s  rounds {}",
            route.name(),
            best_copy(copies, route),
            rounds.join(" ")
        );
    }
    let jump = best_copy(copies, Route::ProxyJump);
    println!(
        "  bastion/ProxyJump {:.2}, ProxyJump/direct {:.2}\n",
        best_copy(copies, Route::Bastion) / jump.max(f64::MIN_POSITIVE),
        jump / best_copy(copies, Route::Direct).max(f64::MIN_POSITIVE)
    );
}

impl Transfer {
    pub(crate) fn rate_mb(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
}

pub(crate) struct Bulk {
    pub(crate) runs: Vec<(Payload, Route, Transfer)>,
}

impl Bulk {
    /// The fastest round of `payload` via `route`.
    pub(crate) fn best(&self, payload: Payload, route: Route) -> Option<&Transfer> {
        self.runs
            .iter()
            .filter(|(p, r, _)| p.name() == payload.name() && *r == route)
            .map(|(_, _, t)| t)
            .max_by(|a, b| a.rate_mb().total_cmp(&b.rate_mb()))
    }

    pub(crate) fn ratio(&self, payload: Payload, a: Route, b: Route) -> f64 {
        match (self.best(payload, a), self.best(payload, b)) {
            (Some(a), Some(b)) => a.rate_mb() / b.rate_mb(),
            _ => 0.0,
        }
    }

    pub(crate) fn print(&self, bytes: u64) {
        println!(
            "bulk output, {bytes} bytes per transfer read from ssh's stdout, timed from the first byte \
             (MB/s = 10^6 bytes/s; best of the rounds, every round listed):"
        );
        println!(
            "  CPU: seconds per GiB moved, by process name (other: the machine's busy time \
             less these and this reader, e.g. builds), and cores busy on the whole machine"
        );
        let mut head = format!(
            "  {:<22} {:<10} {:>8}  {:<16}",
            "payload", "route", "MB/s", "rounds"
        );
        for (label, _) in CPU_GROUPS {
            head.push_str(&format!(" {label:>7}"));
        }
        head.push_str(&format!(" {:>7} {:>6}", "other", "cores"));
        println!("{head}");
        for payload in Payload::ALL {
            for route in Route::ALL {
                let Some(best) = self.best(payload, route) else {
                    continue;
                };
                let rounds: Vec<String> = self
                    .runs
                    .iter()
                    .filter(|(p, r, _)| p.name() == payload.name() && *r == route)
                    .map(|(_, _, t)| format!("{:.1}", t.rate_mb()))
                    .collect();
                let gib = best.bytes as f64 / f64::from(1 << 30);
                let mut line = format!(
                    "  {:<22} {:<10} {:>8.1}  {:<16}",
                    payload.name(),
                    route.name(),
                    best.rate_mb(),
                    rounds.join(" "),
                );
                for (_, names) in CPU_GROUPS {
                    line.push_str(&format!(" {:>7.2}", best.cpu.seconds(names) / gib));
                }
                line.push_str(&format!(
                    " {:>7.2} {:>6.2}",
                    best.cpu.other_seconds() / gib,
                    best.cpu.machine_cores()
                ));
                println!("{line}");
            }
            println!(
                "  {:<22} bastion/ProxyJump {:.2}, bastion/direct {:.2}, ProxyJump/direct {:.2}",
                "",
                self.ratio(payload, Route::Bastion, Route::ProxyJump),
                self.ratio(payload, Route::Bastion, Route::Direct),
                self.ratio(payload, Route::ProxyJump, Route::Direct),
            );
        }
        println!(
            "\nrecording bytes per byte of session output (bastion's .cast.gz files / bytes output), \
             and CPU seconds per GiB of output from /proc/PID/stat (utime+stime) of the bastion and of \
             the CA, from before ssh started until the CA sealed the recording (the first round):"
        );
        for payload in Payload::ALL {
            let recorded = self
                .runs
                .iter()
                .find(|(p, r, t)| {
                    p.name() == payload.name() && *r == Route::Bastion && t.recording.is_some()
                })
                .map(|(_, _, t)| t);
            if let Some(t) = recorded
                && let Some(r) = &t.recording
            {
                let outcome = if r.sealed {
                    format!("sealed by the CA {:.1} s after the output ended", r.seconds)
                } else {
                    format!(
                        "NOT sealed: the bastion gave up on the CA {:.1} s after the output ended",
                        r.seconds
                    )
                };
                let gib = bytes as f64 / f64::from(1 << 30);
                println!(
                    "  {:<22} {:>8.4} x raw  bastion {:>6.2} CPU-s/GiB  CA {:>6.2} CPU-s/GiB  ({} bytes on disk; {outcome})",
                    payload.name(),
                    r.bytes as f64 / bytes as f64,
                    r.bastion_cpu / gib,
                    r.ca_cpu / gib,
                    r.bytes
                );
            }
        }
        println!();
    }
}

pub(crate) struct Memory {
    pub(crate) n: usize,
    pub(crate) before: String,
    pub(crate) cycles: Vec<IdleCycle>,
}

/// One round of opening, idling and closing the sessions.
pub(crate) struct IdleCycle {
    pub(crate) recorded_sessions: usize,
    pub(crate) open_seconds: f64,
    /// /proc/PID/status with the sessions open, and `IDLE_RETURN` after
    /// the last of them was sealed.
    pub(crate) with: String,
    pub(crate) after: String,
    /// Bytes the idle sessions' recordings grew by in `IDLE_SETTLE`.
    pub(crate) idle_growth: u64,
    /// CPU during `IDLE_SETTLE`.
    pub(crate) idle_cpu: Cpu,
    /// Sessions the bastion gave up sealing.
    pub(crate) unsealed: usize,
}

impl Memory {
    pub(crate) fn rss(status: &str) -> u64 {
        kib_field(status, "VmRSS:").unwrap_or(0)
    }

    /// From the first cycle: (RSS with the sessions - RSS before) / n.
    pub(crate) fn kib_per_session(&self) -> f64 {
        let with = self.cycles.first().map_or(0, |c| Self::rss(&c.with));
        with.saturating_sub(Self::rss(&self.before)) as f64 / self.n.max(1) as f64
    }

    /// The most any cycle left above the figure before, in KiB.
    pub(crate) fn kib_kept(&self) -> u64 {
        let before = Self::rss(&self.before);
        self.cycles
            .iter()
            .map(|c| Self::rss(&c.after).saturating_sub(before))
            .max()
            .unwrap_or(0)
    }

    /// After the last cycle less after the first, in KiB (negative: less).
    pub(crate) fn kib_drift(&self) -> i64 {
        let first = self.cycles.first().map_or(0, |c| Self::rss(&c.after));
        let last = self.cycles.last().map_or(0, |c| Self::rss(&c.after));
        i64::try_from(last).unwrap_or(0) - i64::try_from(first).unwrap_or(0)
    }

    pub(crate) fn print(&self) {
        println!(
            "bastion resident memory (/proc/PID/status), {} idle interactive sessions through the bastion \
             (each a shell at its prompt, recorded), opened {IDLE_BATCH} at a time, measured after {} s idle \
             and {} s after the last was closed and sealed, {IDLE_CYCLES} cycles:",
            self.n,
            IDLE_SETTLE.as_secs(),
            IDLE_RETURN.as_secs()
        );
        let line = |label: String, status: &str| {
            println!(
                "  {label:<40} VmRSS {:>8} KiB  RssAnon {:>8} KiB  threads {}",
                Self::rss(status),
                kib_field(status, "RssAnon:").unwrap_or(0),
                kib_field(status, "Threads:").unwrap_or(0)
            );
        };
        line("before (after one warm-up session)".into(), &self.before);
        for (i, c) in self.cycles.iter().enumerate() {
            line(
                format!("cycle {}: {} sessions open", i + 1, self.n),
                &c.with,
            );
            line(
                format!(
                    "cycle {}: closed, sealed, +{} s",
                    i + 1,
                    IDLE_RETURN.as_secs()
                ),
                &c.after,
            );
        }
        println!(
            "  per idle session (cycle 1, open - before) / {}: {:.0} KiB",
            self.n,
            self.kib_per_session()
        );
        println!(
            "  kept after close (worst cycle, after - before): {} KiB; last cycle - first cycle: {:+} KiB",
            self.kib_kept(),
            self.kib_drift()
        );
        for (i, c) in self.cycles.iter().enumerate() {
            let secs = IDLE_SETTLE.as_secs_f64();
            println!(
                "  cycle {}: opened in {:.1} s; {} recordings, {} not sealed; while idle the recordings grew \
                 {} bytes ({:.1} B per session per s), CPU: bastion {:.3} cores, CA {:.3} cores",
                i + 1,
                c.open_seconds,
                c.recorded_sessions,
                c.unsealed,
                c.idle_growth,
                c.idle_growth as f64 / self.n.max(1) as f64 / secs,
                c.idle_cpu.seconds("shiftkey-bastio") / secs,
                c.idle_cpu.seconds("shiftkey-ca") / secs,
            );
        }
        println!();
    }
}

pub(crate) fn print_keystrokes(keys: &[(Route, Latencies)], n: usize) {
    println!(
        "keystroke round trip: `ssh -tt` to `stty raw -echo; cat`, one byte written, timed until it \
         is read back; {n} samples per route after {KEYS_WARMUP} untimed, the routes in turn, {} ms apart:",
        KEY_GAP.as_millis()
    );
    for (route, l) in keys {
        println!(
            "  {:<10} p50 {}   p99 {}   max {}",
            route.name(),
            ms(l.quantile(0.5)),
            ms(l.quantile(0.99)),
            ms(l.max())
        );
    }
    let find = |route: Route| keys.iter().find(|(r, _)| *r == route).map(|k| &k.1);
    if let (Some(direct), Some(through)) = (find(Route::Direct), find(Route::Bastion)) {
        let diff = |q: f64| through.quantile(q).as_secs_f64() - direct.quantile(q).as_secs_f64();
        println!(
            "  added by the bastion (bastion - direct): p50 {:+.3} ms   p99 {:+.3} ms",
            diff(0.5) * 1e3,
            diff(0.99) * 1e3
        );
    }
    if let (Some(jump), Some(through)) = (find(Route::ProxyJump), find(Route::Bastion)) {
        let diff = |q: f64| through.quantile(q).as_secs_f64() - jump.quantile(q).as_secs_f64();
        println!(
            "  bastion - ProxyJump:                     p50 {:+.3} ms   p99 {:+.3} ms",
            diff(0.5) * 1e3,
            diff(0.99) * 1e3
        );
    }
}
