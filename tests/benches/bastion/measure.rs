//! Measuring: CPU time from /proc, latencies, the machine, and a watchdog
//! for processes that hang.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// CPU model, cores, memory, kernel and OpenSSH version.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = kib_field(&meminfo, "MemTotal:").unwrap_or(0) as f64 / f64::from(1 << 20);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let ssh = Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default();
    format!(
        "machine: {cores} x {model}, {mem_gib:.0} GiB RAM, Linux {}; {ssh}",
        kernel.trim()
    )
}

/// A `KEY:   1234 kB` field of /proc/meminfo or /proc/PID/status, in KiB.
pub(crate) fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Kills a process we started if it is still running after `limit`, so a
/// stuck transfer fails the run instead of hanging it. Dropped (before the
/// child is reaped, so its pid cannot be reused) when the work is done.
pub(crate) struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub(crate) fn new(pid: u32, limit: Duration) -> Self {
        let (done, wait) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                eprintln!("process {pid} ran longer than {limit:?}; killing it");
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        Self {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU time in clock ticks: the machine's busy time and every process's,
/// by pid with its command name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cpu {
    machine_busy: u64,
    machine_total: u64,
    processes: BTreeMap<u32, (String, u64)>,
}

/// Who used the CPU during a transfer, by command name.
pub(crate) const CPU_GROUPS: [(&str, &str); 5] = [
    ("ssh", "ssh"),
    ("sshd", "sshd"),
    ("bastion", "shiftkey-bastio"),
    ("CA", "shiftkey-ca"),
    ("command", "head|cat"),
];

impl Cpu {
    pub(crate) fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = fields.iter().take(8).sum();
        // idle and iowait
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        let mut processes = BTreeMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `PID (COMM) STATE ...`: utime, stime, cutime and cstime are
            // fields 14 to 17.
            let (Some((_, after_pid)), Some((_, rest))) =
                (text.split_once('('), text.rsplit_once(')'))
            else {
                continue;
            };
            let comm = after_pid.rsplit_once(')').map_or("", |(c, _)| c).to_owned();
            // Positions matter: some fields before these are negative
            // (tpgid is -1 without a terminal), so none may be dropped.
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            // Its own time and that of the children it reaped (sshd's
            // session processes, ProxyJump's helper ssh, the remote command).
            let ticks = f.get(10..14).map_or(0, |t| t.iter().sum());
            processes.insert(pid, (comm, ticks));
        }
        Self {
            machine_busy: total - idle,
            machine_total: total,
            processes,
        }
    }

    /// The CPU used since `earlier`. A process that ended in between counts
    /// through its parent (in the parent's group); one whose parent also
    /// ended is missed, though the machine total still has it.
    pub(crate) fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            machine_busy: self.machine_busy.saturating_sub(earlier.machine_busy),
            machine_total: self.machine_total.saturating_sub(earlier.machine_total),
            processes: self
                .processes
                .iter()
                .map(|(pid, (comm, ticks))| {
                    // By pid alone: kernel workers rename themselves.
                    let before = earlier.processes.get(pid).map_or(0, |(_, t)| *t);
                    (*pid, (comm.clone(), ticks.saturating_sub(before)))
                })
                .collect(),
        }
    }

    /// Cores busy on average over the interval.
    pub(crate) fn machine_cores(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        if self.machine_total == 0 {
            0.0
        } else {
            self.machine_busy as f64 / self.machine_total as f64 * cores
        }
    }

    /// Seconds of CPU used by processes named one of `names` (`a|b`)
    /// (USER_HZ is 100 on Linux).
    pub(crate) fn seconds(&self, names: &str) -> f64 {
        let ticks: u64 = self
            .processes
            .iter()
            .filter(|(pid, (comm, _))| {
                **pid != std::process::id() && names.split('|').any(|n| n == comm)
            })
            .map(|(_, (_, t))| t)
            .sum();
        ticks as f64 / 100.0
    }

    /// Seconds of CPU the machine spent on anything but the groups and this
    /// process: the machine's busy time less theirs.
    pub(crate) fn other_seconds(&self) -> f64 {
        let ours: f64 = CPU_GROUPS
            .iter()
            .map(|(_, names)| self.seconds(names))
            .sum::<f64>()
            + self
                .processes
                .get(&std::process::id())
                .map_or(0.0, |(_, t)| *t as f64 / 100.0);
        (self.machine_busy as f64 / 100.0 - ours).max(0.0)
    }
}

/// Latencies, sorted.
pub(crate) struct Latencies(Vec<Duration>);

impl Latencies {
    pub(crate) fn new(mut v: Vec<Duration>) -> Self {
        v.sort();
        Self(v)
    }

    /// Nearest-rank quantile.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0.get(rank - 1).copied().unwrap_or_default()
    }

    pub(crate) fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:7.3} ms", d.as_secs_f64() * 1e3)
}

/// Seconds of CPU (utime + stime, USER_HZ 100) process `pid` has used so
/// far, from /proc/PID/stat; its own threads only, not reaped children.
pub(crate) fn process_cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = text.rsplit_once(')') else {
        return 0.0;
    };
    // After `(COMM)`: state is field 3, utime and stime fields 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f
        .get(11..13)
        .map_or(0, |t| t.iter().filter_map(|x| x.parse::<u64>().ok()).sum());
    ticks as f64 / 100.0
}

/// The first three figures of /proc/loadavg.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
