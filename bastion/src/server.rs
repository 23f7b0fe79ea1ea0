//! Connections: the listener admits each one against the per-address limit
//! on unauthenticated connections, and every SSH connection (outer, or an
//! inner hop inside a `-J` channel) runs here to its end — dropped if it has
//! not authenticated within `login_grace_time`, its session ended after.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use russh::server;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bastion::Bastion;
use crate::handler::{Conn, SessionSlot};

/// Accepts connections forever.
pub(crate) async fn listen(bastion: Arc<Bastion>, listener: TcpListener) -> std::io::Result<()> {
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
        let bastion = Arc::clone(&bastion);
        tokio::spawn(async move {
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
    let connection = async move {
        match server::run_stream(config, stream, conn).await {
            Ok(running) => {
                let _ = running.await;
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
        live.end("client closed");
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
