//! Certificates per second from a CA key on a PKCS#11 token (SoftHSM2,
//! Ed25519 and P-256) against a key file, in one run, through the async path
//! the CA's handlers use (`CaSigner::certify`: token calls on tokio's
//! blocking pool, key files inline).
//!
//! Run with `cargo bench -p shiftkey-ca --bench signer` (needs `softhsm2`
//! and `softhsm2-util`). It prints figures; it never fails on speed. The
//! figures from a run are in `docs/benchmarks.md`.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialised, so the
//! bench makes a throwaway token, then runs itself again as a child with
//! the variable set (the workspace forbids the `unsafe` `set_var`).

use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shiftkey_ca::signer_harness::Harness;
use shiftkey_tests::softhsm::{CHILD_VAR, CONF_VAR, SoftHsm};
use ssh_key::getrandom::SysRng;
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Algorithm, PrivateKey};

const TOKEN: &str = "bench";
const PIN: &str = "11223344";
/// The child's marker value (the bench is not a libtest binary).
const CHILD: &str = "signer-bench";
const WARMUP: Duration = Duration::from_millis(500);
const STEP: Duration = Duration::from_secs(4);
/// Sessions in the pool unless a row says otherwise (the signer's default).
const POOL: usize = 4;

fn main() -> ExitCode {
    let result = if std::env::var(CHILD_VAR).as_deref() == Ok(CHILD) {
        bench()
    } else {
        parent()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signer bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Makes the token and PIN file, then runs the bench in a child that sees them.
fn parent() -> anyhow::Result<()> {
    let hsm = SoftHsm::new()?;
    hsm.init_token(TOKEN, PIN)?;
    hsm.pin_file("pin", PIN)?;
    let status = Command::new(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(CONF_VAR, hsm.conf())
        .env(CHILD_VAR, CHILD)
        .status()
        .context("running the bench child")?;
    if !status.success() {
        bail!("the bench child failed: {status}");
    }
    Ok(())
}

fn bench() -> anyhow::Result<()> {
    let hsm = SoftHsm::in_child(CHILD).context("no SoftHSM configuration in the child")?;
    let data = tempfile::tempdir()?;
    let subject = PrivateKey::random(&mut UnwrapErr(SysRng), Algorithm::Ed25519)?
        .public_key()
        .to_openssh()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "signer bench: user certificates signed per second, {}s per row after {}ms warm-up, {cores} cores (load average {}), tokio multi-thread runtime",
        STEP.as_secs(),
        WARMUP.as_millis(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:<34} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "key", "pool", "tasks", "certs/s", "p50", "p99"
    );
    let key_file = Harness::key_file(data.path())?;
    let uri = |object: &str| hsm.uri(TOKEN, object, &hsm.root().join("pin"));
    let (ed25519, _) = Harness::pkcs11(&data.path().join("none"), &uri("ed"), "ed25519", POOL)?;
    let (p256, _) = Harness::pkcs11(&data.path().join("none"), &uri("p256"), "ecdsa-p256", POOL)?;
    let ed25519_single = Harness::open_pkcs11(Path::new("/nonexistent"), &uri("ed"), 1)?;
    let rows: [(&str, &Harness, usize, usize); 9] = [
        ("key file (ed25519)", &key_file, 0, 1),
        ("key file (ed25519)", &key_file, 0, 4),
        ("SoftHSM2 ed25519", &ed25519, POOL, 1),
        ("SoftHSM2 ed25519", &ed25519, POOL, 4),
        ("SoftHSM2 ed25519", &ed25519_single, 1, 4),
        ("SoftHSM2 ed25519", &ed25519, POOL, 16),
        ("SoftHSM2 ecdsa-p256", &p256, POOL, 1),
        ("SoftHSM2 ecdsa-p256", &p256, POOL, 4),
        ("SoftHSM2 ecdsa-p256", &p256, POOL, 16),
    ];
    for (label, harness, pool, tasks) in rows {
        let (rate, p50, p99) = runtime.block_on(measure(harness.clone(), &subject, tasks))?;
        let pool = if pool == 0 {
            "-".to_owned()
        } else {
            pool.to_string()
        };
        println!(
            "{label:<34} {pool:>8} {tasks:>8} {rate:>10.0} {:>10} {:>10}",
            micros(p50),
            micros(p99)
        );
    }
    Ok(())
}

/// `tasks` concurrent loops signing one certificate after another: an
/// untimed warm-up, then `STEP`. Returns certificates per second and the
/// median and 99th percentile latency.
async fn measure(
    harness: Harness,
    subject: &str,
    tasks: usize,
) -> anyhow::Result<(f64, Duration, Duration)> {
    let harness = Arc::new(harness);
    let subject: Arc<str> = Arc::from(subject);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let (harness, subject) = (harness.clone(), subject.clone());
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut serial = (task as u64) << 32;
            loop {
                let began = Instant::now();
                if began.duration_since(start) >= WARMUP + STEP {
                    break;
                }
                serial += 1;
                let cert = harness
                    .user_certificate_async(&subject, &["bench"], serial, 5)
                    .await?;
                std::hint::black_box(cert);
                // A key file signs inline without awaiting anything; let the
                // other tasks in, as a request handler's I/O would.
                tokio::task::yield_now().await;
                if began.duration_since(start) >= WARMUP {
                    latencies.push(began.elapsed());
                }
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = set.join_next().await {
        all.extend(done??);
    }
    if all.is_empty() {
        bail!("no certificate was signed in the timed part");
    }
    all.sort_unstable();
    let rate = all.len() as f64 / STEP.as_secs_f64();
    let p50 = all[all.len() / 2];
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    Ok((rate, p50, p99))
}

fn micros(d: Duration) -> String {
    format!("{}µs", d.as_micros())
}
