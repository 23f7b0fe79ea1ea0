//! Connections: the listener admits each one against the per-address limit
//! on unauthenticated connections, and every SSH connection (outer, or an
//! inner hop inside a `-J` channel) runs here to its end — dropped if it has
//! not authenticated within `login_grace_time`, its session ended after.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use russh::server;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bastion::Bastion;
use crate::handler::{Conn, SessionSlot};

/// How long the channels of a client that has gone have to forward what it
/// sent before its session ends.
const CLIENT_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Single-threaded runtimes, one per core, that connections are spread
/// over (each new one to the worker with the fewest). Everything one
/// connection does (its russh sessions, the inner hop of `ssh -J`, the
/// upstream connection, pumps and their recording writers) runs on one
/// thread: a chunk crosses four tasks each way, and on one thread each
/// hand-off is a queue push instead of waking another thread. Measured in
/// docs/benchmarks.md: less CPU per GiB for zeros and random output.
pub(crate) struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    runtime: tokio::runtime::Handle,
    /// Connections running on it now.
    connections: Arc<AtomicUsize>,
}

/// A connection's place on a worker, given back when it ends.
struct Placed(Arc<AtomicUsize>);

impl Drop for Placed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Workers {
    /// Starts `count` threads (at least one), each running a current-thread
    /// runtime for as long as the process lives.
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let mut workers = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            workers.push(Worker {
                runtime: runtime.handle().clone(),
                connections: Arc::default(),
            });
            std::thread::Builder::new()
                .name(format!("connections-{i}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        }
        Ok(Self { workers })
    }

    /// The worker with the fewest connections, and the new one's place on it.
    fn place(&self) -> Option<(&tokio::runtime::Handle, Placed)> {
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.connections.load(Ordering::Acquire))?;
        worker.connections.fetch_add(1, Ordering::AcqRel);
        Some((&worker.runtime, Placed(Arc::clone(&worker.connections))))
    }
}

/// Accepts connections forever.
pub(crate) async fn listen(
    bastion: Arc<Bastion>,
    listener: TcpListener,
    workers: Workers,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let startup = match bastion.sources.startup(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                bastion.metrics.connection_refused(refused.code());
                tracing::debug!(%peer, %refused, "connection dropped");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Moved to the worker's own reactor, so its readiness wakes that
        // thread and no other.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand the connection over");
                continue;
            }
        };
        let Some((runtime, placed)) = workers.place() else {
            return Err(std::io::Error::other("no connection threads"));
        };
        let bastion = Arc::clone(&bastion);
        runtime.spawn(async move {
            let _placed = placed;
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot take the connection over");
                    return;
                }
            };
            let config = bastion.server_config(bastion.ca.certificate());
            let (authenticated, watched) = watch::channel(false);
            let slot = SessionSlot::default();
            let conn = Conn::outer(
                Arc::clone(&bastion),
                peer,
                Some(startup),
                authenticated,
                Arc::clone(&slot),
            );
            serve(bastion, config, stream, conn, watched, slot).await;
        });
    }
}

/// Runs one SSH connection to its end.
pub(crate) async fn serve<S>(
    bastion: Arc<Bastion>,
    config: Arc<server::Config>,
    stream: S,
    conn: Conn,
    mut authenticated: watch::Receiver<bool>,
    slot: SessionSlot,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let grace = bastion.sources.limits().login_grace_time;
    let (stream, kill) = Killable::new(stream);
    // russh runs the connection in a task of its own; the switch on its
    // stream is how a connection that never authenticates is ended.
    let metrics = Arc::clone(&bastion.metrics);
    let connection = async move {
        match server::run_stream(config, stream, conn).await {
            Ok(running) => {
                if let Err(e) = running.await {
                    ended_with(&metrics, &e);
                }
            }
            Err(e) => tracing::debug!(error = %e, "connection ended during setup"),
        }
    };
    tokio::pin!(connection);
    tokio::select! {
        () = &mut connection => {}
        () = tokio::time::sleep(grace) => {
            if !*authenticated.borrow_and_update() {
                bastion.metrics.connection_refused("login-grace-time");
                tracing::debug!("connection dropped: not authenticated within login_grace_time");
                kill.kill();
            }
            connection.await;
        }
    }
    let live = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(live) = live {
        live.client_gone(CLIENT_DRAIN).await;
    }
}

/// A connection russh ended with an error: a client that broke the
/// protocol (sent past its channel window, which the bastion gives back
/// only as it forwards) is counted and logged; the rest (a reset, a peer
/// gone) only at debug.
fn ended_with(metrics: &crate::metrics::Metrics, error: &anyhow::Error) {
    if matches!(
        error.downcast_ref::<russh::Error>(),
        Some(russh::Error::WindowExceeded)
    ) {
        metrics.connection_refused("window-exceeded");
        tracing::warn!(%error, "connection cut: the client sent more than its channel window allows");
    } else {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// A stream that can be cut from outside: once killed, reads and writes
/// fail, so whatever task owns it stops.
struct Killable<S> {
    inner: S,
    switch: Arc<Switch>,
}

#[derive(Default)]
struct Switch {
    killed: AtomicBool,
    /// The reader waiting on the peer, to wake when killed.
    waker: Mutex<Option<Waker>>,
}

/// The outside end of a [`Killable`].
pub(crate) struct KillSwitch(Arc<Switch>);

impl KillSwitch {
    fn kill(&self) {
        self.0.killed.store(true, Ordering::Release);
        let waker = self
            .0
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<S> Killable<S> {
    fn new(inner: S) -> (Self, KillSwitch) {
        let switch = Arc::new(Switch::default());
        (
            Self {
                inner,
                switch: Arc::clone(&switch),
            },
            KillSwitch(switch),
        )
    }

    fn killed(&self) -> bool {
        self.switch.killed.load(Ordering::Acquire)
    }
}

fn cut() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "connection cut by the bastion",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Killable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(cut()));
        }
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_pending() {
            // Only a waiting reader needs waking; then look again, in case
            // the switch was thrown in between.
            *self
                .switch
                .waker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cx.waker().clone());
            if self.killed() {
                return Poll::Ready(Err(cut()));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Killable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn connections_go_to_the_least_busy_worker_and_run_on_its_thread() {
        let workers = Workers::start(2).unwrap();
        let counts = |w: &Workers| -> Vec<usize> {
            w.workers
                .iter()
                .map(|w| w.connections.load(Ordering::Acquire))
                .collect()
        };
        let (_, a) = workers.place().unwrap();
        let (_, b) = workers.place().unwrap();
        let (_, c) = workers.place().unwrap();
        assert_eq!(counts(&workers), [2, 1]);
        drop(a);
        drop(c);
        assert_eq!(counts(&workers), [0, 1]);
        let (runtime, d) = workers.place().unwrap();
        assert_eq!(counts(&workers), [1, 1]);
        // What the connection spawns stays on the worker's thread.
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let outer = std::thread::current().name().map(str::to_owned);
            let inner = tokio::spawn(async { std::thread::current().name().map(str::to_owned) })
                .await
                .ok()
                .flatten();
            let _ = tx.send((outer, inner));
        });
        let (outer, inner) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(outer.as_deref(), Some("connections-0"));
        assert_eq!(inner, outer);
        drop((b, d));
        assert_eq!(counts(&workers), [0, 0]);
    }

    #[tokio::test]
    async fn a_killed_stream_wakes_its_reader_and_fails() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (mut stream, kill) = Killable::new(ours);
        theirs.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut more = [0u8; 1];
            stream.read(&mut more).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        kill.kill();
        let read = tokio::time::timeout(std::time::Duration::from_secs(2), reader)
            .await
            .expect("the reader was woken")
            .unwrap();
        assert_eq!(
            read.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionAborted
        );
    }
}
