//! The load generator both benchmarks use: closed loops at fixed
//! concurrency, an open loop on a fixed schedule (no coordinated omission),
//! CPU shares from `/proc`, percentiles.

// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::header::CONTENT_TYPE;
use tokio::task::JoinSet;

/// What every load request sends.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) body: String,
}

impl Target {
    /// One `POST /v1/certificates`; anything but a 200 is an error.
    pub(crate) async fn send(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let response = client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "application/json")
            .body(self.body.clone())
            .send()
            .await?;
        let status = response.status();
        // Read the whole body so the connection goes back to the pool.
        let body = response.bytes().await?;
        if status != reqwest::StatusCode::OK {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// Result of one closed-loop level.
#[derive(Debug, Default)]
pub(crate) struct Step {
    pub(crate) ok: Vec<Duration>,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
}

impl Step {
    pub(crate) fn rate(&self) -> f64 {
        self.ok.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// `concurrency` workers, each sending its next request as soon as the last
/// one is answered, until `run_for` has passed.
pub(crate) async fn closed_loop(
    client: &reqwest::Client,
    target: &Target,
    concurrency: usize,
    run_for: Duration,
) -> Step {
    let started = Instant::now();
    let deadline = started + run_for;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let target = target.clone();
        workers.spawn(async move {
            let mut step = Step::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                match target.send(&client).await {
                    Ok(()) => step.ok.push(sent.elapsed()),
                    Err(err) => {
                        step.errors += 1;
                        step.first_error.get_or_insert_with(|| format!("{err:#}"));
                    }
                }
            }
            step
        });
    }
    let mut total = Step::default();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(step) => {
                total.ok.extend(step.ok);
                total.errors += step.errors;
                if total.first_error.is_none() {
                    total.first_error = step.first_error;
                }
            }
            Err(err) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Result of the open-loop run: each answered request's latency from its
/// scheduled send time.
#[derive(Debug, Default)]
pub(crate) struct Open {
    pub(crate) ok: Vec<Duration>,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
}

impl Open {
    pub(crate) fn rate(&self) -> f64 {
        self.ok.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Requests on a fixed schedule, `rate` per second for `run_for`, whatever
/// the answers do; each latency runs from the scheduled send time, so a CA
/// that falls behind shows up in the figures instead of hiding them (no
/// coordinated omission). As in wrk2, the schedule is spread over a fixed set
/// of `connections` keep-alive connections: request `i` goes out on
/// connection `i % N` at its time, or as soon as that connection is free if
/// it is late. (One task per request would open a new TLS connection for
/// every overlap and measure handshakes instead of issuance.)
pub(crate) async fn open_loop(
    client: &reqwest::Client,
    target: &Target,
    rate: f64,
    run_for: Duration,
    connections: usize,
) -> Open {
    let count = (rate * run_for.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut workers = JoinSet::new();
    for worker in 0..connections {
        let client = client.clone();
        let target = target.clone();
        workers.spawn(async move {
            let mut results = Vec::new();
            for i in (worker..count).step_by(connections) {
                let at = start + interval.mul_f64(i as f64);
                tokio::time::sleep_until(at).await;
                let result = target.send(&client).await;
                results.push((at.elapsed(), result));
            }
            results
        });
    }
    let mut open = Open::default();
    while let Some(joined) = workers.join_next().await {
        let results = match joined {
            Ok(results) => results,
            Err(err) => {
                open.errors += 1;
                open.first_error.get_or_insert_with(|| err.to_string());
                continue;
            }
        };
        for (latency, result) in results {
            match result {
                Ok(()) => open.ok.push(latency),
                Err(err) => {
                    open.errors += 1;
                    open.first_error.get_or_insert_with(|| format!("{err:#}"));
                }
            }
        }
    }
    open.elapsed = start.elapsed();
    open
}

/// Mean time the CA spent in its issue handler over the whole run, from its
/// own `/metrics` histogram: the server's share of the latency.
pub(crate) async fn ca_side_mean(client: &reqwest::Client, url: &str) -> Option<Duration> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
    };
    let sum = value("shiftkey_ca_issue_latency_seconds_sum")?;
    let count = value("shiftkey_ca_issue_latency_seconds_count")?;
    (count > 0.0).then(|| Duration::from_secs_f64(sum / count))
}

/// CPU time of the CA's processes (replicas, HAProxy, the database's)
/// and of this one (the load generator) over a stretch of wall time, from
/// `/proc/PID/stat`.
#[derive(Debug)]
pub(crate) struct Cpu {
    ca_pids: Vec<u32>,
    wall: Instant,
    ca: f64,
    client: f64,
}

/// Cores each side kept busy, on average.
#[derive(Debug)]
pub(crate) struct CpuShare {
    pub(crate) ca: f64,
    pub(crate) client: f64,
}

fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_seconds(&p.to_string())).sum()
}

impl Cpu {
    pub(crate) fn start(ca_pids: &[u32]) -> Self {
        Self {
            ca_pids: ca_pids.to_vec(),
            wall: Instant::now(),
            ca: cpu_of(ca_pids),
            client: cpu_seconds("self"),
        }
    }

    pub(crate) fn stop(self) -> CpuShare {
        let wall = self.wall.elapsed().as_secs_f64().max(f64::EPSILON);
        CpuShare {
            ca: (cpu_of(&self.ca_pids) - self.ca) / wall,
            client: (cpu_seconds("self") - self.client) / wall,
        }
    }
}

impl std::fmt::Display for CpuShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>4.2}    {:>4.2}", self.ca, self.client)
    }
}

/// User plus system CPU seconds of a process (`self` or a pid), 0 when
/// unreadable. `/proc` counts in USER_HZ, which Linux fixes at 100.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) is in parentheses and may hold spaces;
    // utime and stime are fields 14 and 15, the 12th and 13th after it.
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// Sorted latencies.
#[derive(Debug)]
pub(crate) struct Latencies(Vec<Duration>);

impl Latencies {
    pub(crate) fn new(mut all: Vec<Duration>) -> Self {
        all.sort_unstable();
        Self(all)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile; zero when there are no samples.
    pub(crate) fn pct(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub(crate) fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }
}

/// `1.234 ms`, right-aligned.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:>7.3} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
