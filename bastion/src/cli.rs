//! `shiftkey-bastion`: command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::bastion::Bastion;
use crate::ca::CaClient;
use crate::config::Config;
use crate::env_vars::{NO_COLOR, RUST_LOG};
use crate::metrics::Metrics;
use crate::verify::Trust;

/// The Shiftkey bastion: the recorded SSH way into production hosts.
#[derive(Debug, Parser)]
#[command(name = "shiftkey-bastion", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bastion: accept `ssh -J` and `login%host@bastion` connections, record every session.
    Serve {
        /// The bastion's configuration file.
        #[arg(long, short, default_value = "/etc/shiftkey/bastion.toml")]
        config: PathBuf,
    },
}

/// Runs the command line.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { config } => runtime.block_on(serve(config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// ANSI colour in the logs: only on a terminal, and never with `NO_COLOR`.
fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none()
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .json()
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os(NO_COLOR),
        ))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(RUST_LOG)
                .unwrap_or_else(|_| "info,russh=warn".into()),
        )
        .with_writer(std::io::stderr)
        // In-process (`shiftkey-ca quickstart` runs the bastion as a
        // library) the host program has installed its subscriber already;
        // the bastion's events then go to that one.
        .try_init();
    let config = Config::load(&path)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("{}: cannot create data_dir", config.data_dir.display()))?;
    let key = Arc::new(crate::keys::load_or_create(
        &config.data_dir.join("host_key"),
    )?);
    let ca = Arc::new(CaClient::start(&config, Arc::clone(&key)).await?);
    let trust = Arc::new(Trust::default());
    trust.set_user_ca_keys(ca.user_ca_keys().await?);
    let host_ca_keys = ca.host_ca_keys().await?;
    let metrics = Arc::new(Metrics::new());
    std::fs::create_dir_all(&config.recordings_dir).with_context(|| {
        format!(
            "{}: cannot create the recordings directory",
            config.recordings_dir.display()
        )
    })?;
    let bastion = Arc::new(Bastion::new(
        key,
        Arc::clone(&ca),
        trust,
        host_ca_keys,
        Arc::clone(&metrics),
        &config,
    ));
    tokio::spawn(crate::events::follow(Arc::clone(&bastion)));
    tokio::spawn(crate::heartbeat::run(
        Arc::clone(&bastion),
        config.heartbeat_interval,
    ));
    tokio::spawn(refresh(Arc::clone(&bastion)));
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on metrics_listen {addr}"))?;
        let local = listener.local_addr()?;
        tracing::info!(address = %local, "metrics listening");
        let metrics = Arc::clone(&metrics);
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let m = Arc::clone(&metrics);
                    async move { m.render() }
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let workers =
        crate::server::Workers::start(cores).context("starting the connection threads")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, ca = %ca.base(), "bastion listening");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    crate::server::listen(bastion, listener, workers)
        .await
        .context("accepting connections")
}

/// Keeps the bastion's certificate and the CA keys current.
async fn refresh(bastion: Arc<Bastion>) {
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        if let Err(e) = bastion.ca.renew_if_due().await {
            tracing::warn!(error = %e, "renewing the bastion's certificate failed; will retry");
        }
        match bastion.ca.user_ca_keys().await {
            Ok(keys) if !keys.is_empty() => bastion.trust.set_user_ca_keys(keys),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot refresh the user CA keys"),
        }
        if let Ok(keys) = bastion.ca.host_ca_keys().await
            && !keys.is_empty()
        {
            *bastion
                .host_ca_keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(!colour(false, None));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(true, Some("".into())));
    }
}
