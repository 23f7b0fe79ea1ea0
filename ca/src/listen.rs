//! Bounded listeners. Every connection to the CA, on TCP/TLS and on the
//! local socket, holds a slot of its listener. A listener has at most `cap`
//! live slots, sized from the process's open-file limit so that descriptors
//! stay in reserve for the store, the audit log, recordings and outgoing
//! calls: when the slots are full, a new connection evicts the least
//! recently active connection of the peer (local user, or source address)
//! that holds the most, so a flood of idle or half-sent connections from
//! one peer closes its own connections and nobody else's. A connection
//! without any byte read or written for `IDLE_TIMEOUT` is closed (request
//! headers must also arrive within the HTTP header timeout).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use futures_util::task::AtomicWaker;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::server::UnixPeer;

/// A connection with no byte read or written for this long is closed. The
/// event stream sends a keep-alive comment every 15 s, well inside it.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Descriptors kept out of every listener's reach: the store (SQLite files
/// or a PostgreSQL pool), the audit log, recordings, the OIDC provider,
/// webhooks and notifications.
const FD_RESERVE: u64 = 256;
/// The open-file limit assumed when it cannot be read (the sandbox may
/// refuse `prlimit64`): what the kernel gives a process by default.
const ASSUMED_NOFILE: u64 = 1024;
/// A listener never gets fewer slots than this, however low the limit.
const MIN_CAP: usize = 16;
/// How often a full listener says so in the log.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How often idle connections are looked for.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// The slots each of `listeners` listeners gets: the open-file limit less
/// `FD_RESERVE`, shared out.
pub(crate) fn cap_per_listener(listeners: usize) -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(ASSUMED_NOFILE, |(soft, _)| soft);
    let usable = usize::try_from(soft.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    (usable / listeners.max(1)).max(MIN_CAP)
}

/// One listener's connections.
#[derive(Clone, Debug)]
pub(crate) struct Slots(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    listener: &'static str,
    cap: usize,
    idle: Duration,
    started: Instant,
    table: Mutex<Table>,
    /// When `warn_full` last logged (ms since `started`), and the
    /// evictions since.
    warned: AtomicU64,
    evicted: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Arc<Conn>>,
}

struct Conn {
    peer: String,
    /// Drops the connection's stream: its descriptor is closed at once,
    /// whatever its task is doing.
    close: Box<dyn Fn() + Send + Sync>,
    /// Milliseconds since `Shared::started` of the last byte either way.
    last: AtomicU64,
    evicted: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .field("evicted", &self.evicted())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Closes the connection now; its task sees an error on its next read
    /// or write and ends.
    fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        (self.close)();
        self.reader.wake();
        self.writer.wake();
    }
    fn evicted(&self) -> bool {
        self.evicted.load(Ordering::SeqCst)
    }
}

impl Slots {
    pub(crate) fn new(listener: &'static str, cap: usize, idle: Duration) -> Self {
        Self(Arc::new(Shared {
            listener,
            cap: cap.max(1),
            idle,
            started: Instant::now(),
            table: Mutex::new(Table::default()),
            warned: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }))
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.0.table)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Connections open.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.table().open.len()
    }

    /// Gives `stream` a slot; when the slots are full, another connection
    /// is closed first (see `victim`), so that the open connections never
    /// exceed the cap.
    pub(crate) fn admit<S: Send + 'static>(&self, stream: S, peer: String) -> Bounded<S> {
        let mut table = self.table();
        if table.open.len() >= self.0.cap
            && let Some((id, victim)) = victim(&table)
        {
            self.warn_full(&victim.peer);
            victim.evict();
            table.open.remove(&id);
        }
        let id = table.next;
        table.next += 1;
        let inner = Arc::new(Mutex::new(Some(stream)));
        let held = Arc::clone(&inner);
        let conn = Arc::new(Conn {
            peer,
            close: Box::new(move || {
                drop(lock(&held).take());
            }),
            last: AtomicU64::new(self.now()),
            evicted: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
        });
        table.open.insert(id, Arc::clone(&conn));
        Bounded {
            inner,
            conn,
            id,
            slots: self.clone(),
        }
    }

    /// Logs that the listener is full, at most once per `WARN_EVERY` (a
    /// flood must not flood the log too), with the evictions since.
    fn warn_full(&self, peer: &str) {
        let evicted = self.0.evicted.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.now();
        let last = self.0.warned.load(Ordering::Relaxed);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= every)
            && self
                .0
                .warned
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.0.evicted.store(0, Ordering::Relaxed);
            tracing::warn!(
                listener = self.0.listener,
                peer,
                evicted,
                cap = self.0.cap,
                "connection slots full: closing the least recently active connections of the peer holding the most"
            );
        }
    }

    /// Closes the connections idle for longer than the idle timeout.
    pub(crate) fn reap(&self) {
        let now = self.now();
        let idle = u64::try_from(self.0.idle.as_millis()).unwrap_or(u64::MAX);
        self.table().open.retain(|_, conn| {
            let stale = now.saturating_sub(conn.last.load(Ordering::Relaxed)) > idle;
            if stale {
                conn.evict();
            }
            !stale
        });
    }

    /// Reaps idle connections until the task is aborted.
    pub(crate) async fn reap_forever(self) {
        let mut tick = tokio::time::interval(REAP_EVERY);
        loop {
            tick.tick().await;
            self.reap();
        }
    }
}

/// The least recently active connection of the peer with the most.
fn victim(table: &Table) -> Option<(u64, Arc<Conn>)> {
    let mut per_peer: HashMap<&str, usize> = HashMap::new();
    for conn in table.open.values() {
        *per_peer.entry(conn.peer.as_str()).or_default() += 1;
    }
    let (peer, _) = per_peer.into_iter().max_by_key(|(_, n)| *n)?;
    table
        .open
        .iter()
        .filter(|(_, c)| c.peer == peer)
        .min_by_key(|(_, c)| c.last.load(Ordering::Relaxed))
        .map(|(id, c)| (*id, Arc::clone(c)))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stream holding a slot: closed and failing once evicted, its slot
/// freed when dropped.
#[derive(Debug)]
pub(crate) struct Bounded<S> {
    inner: Arc<Mutex<Option<S>>>,
    conn: Arc<Conn>,
    id: u64,
    slots: Slots,
}

impl<S> Bounded<S> {
    fn touch(&self) {
        self.conn.last.store(self.slots.now(), Ordering::Relaxed);
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "connection closed: idle, or evicted to make room",
    )
}

impl<S> Drop for Bounded<S> {
    fn drop(&mut self) {
        self.slots.table().open.remove(&self.id);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.reader.register(cx.waker());
        let mut inner = lock(&this.inner);
        let Some(stream) = inner.as_mut() else {
            return Poll::Ready(Err(closed()));
        };
        let before = buf.filled().len();
        let polled = Pin::new(stream).poll_read(cx, buf);
        drop(inner);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.conn.writer.register(cx.waker());
        let mut inner = lock(&this.inner);
        let Some(stream) = inner.as_mut() else {
            return Poll::Ready(Err(closed()));
        };
        let polled = Pin::new(stream).poll_write(cx, data);
        drop(inner);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match lock(&self.inner).as_mut() {
            Some(stream) => Pin::new(stream).poll_flush(cx),
            None => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match lock(&self.inner).as_mut() {
            Some(stream) => Pin::new(stream).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// How long a TLS client has to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on TCP (under TLS when `tls` is set) until `stop` turns
/// true: each connection takes its slot on the accept loop itself, before
/// any task is spawned for it, so a flood cannot hold more descriptors than
/// the slots (a server that admits inside a spawned task holds every
/// connection accepted while its tasks wait to run, and ran the CA out of
/// descriptors under load). The peer's address is a
/// `ConnectInfo<SocketAddr>` extension.
pub(crate) async fn serve_tcp(
    listener: TcpListener,
    slots: Slots,
    builder: Builder<TokioExecutor>,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let (closing, _) = watch::channel(false);
    while let Some((stream, peer)) = next(|| listener.accept(), &mut stop, "tcp").await {
        let _ = stream.set_nodelay(true);
        let io = slots.admit(stream, peer.ip().to_string());
        let info = ConnectInfo(peer);
        match &tls {
            Some(acceptor) => {
                let handshake = acceptor.accept(io);
                let io = async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(tls)) => Some(tls),
                        _ => None,
                    }
                };
                spawn_connection(io, &app, info, &builder, &closing, grace);
            }
            None => spawn_connection(
                std::future::ready(Some(io)),
                &app,
                info,
                &builder,
                &closing,
                grace,
            ),
        }
    }
    drop(listener);
    drain(&closing, grace).await;
}

/// Serves `app` on the local socket until `stop` turns true: HTTP/1.1 with
/// `builder`'s header timeout, each connection in a slot (peers are local
/// users), the caller's uid in a `ConnectInfo<UnixPeer>` extension.
pub(crate) async fn serve_unix(
    listener: UnixListener,
    slots: Slots,
    builder: Builder<TokioExecutor>,
    app: Router,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let (closing, _) = watch::channel(false);
    while let Some((stream, _)) = next(|| listener.accept(), &mut stop, "unix").await {
        let peer = UnixPeer {
            uid: stream.peer_cred().ok().map(|c| c.uid()),
        };
        let key = peer
            .uid
            .map_or_else(|| "uid:unknown".to_owned(), |uid| format!("uid:{uid}"));
        let io = slots.admit(stream, key);
        spawn_connection(
            std::future::ready(Some(io)),
            &app,
            ConnectInfo(peer),
            &builder,
            &closing,
            grace,
        );
    }
    drop(listener);
    drain(&closing, grace).await;
}

/// The next connection `accept` gives, or none once `stop` turns true. A
/// failed accept (out of descriptors or memory) is logged and retried after
/// a pause instead of spinning.
async fn next<T, F, A>(mut accept: F, stop: &mut watch::Receiver<bool>, listener: &str) -> Option<T>
where
    F: FnMut() -> A,
    A: std::future::Future<Output = io::Result<T>>,
{
    loop {
        let accepted = tokio::select! {
            stopping = stop.wait_for(|stop| *stop) => {
                let _ = stopping.is_ok();
                return None;
            }
            accepted = accept() => accepted,
        };
        match accepted {
            Ok(accepted) => return Some(accepted),
            Err(e) => {
                tracing::warn!(listener, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one admitted connection (once `io` is ready: a TLS handshake,
/// say) with `info` in every request's extensions, until it ends or
/// `closing` asks it to finish its requests within `grace`.
fn spawn_connection<F, I, T>(
    io: F,
    app: &Router,
    info: T,
    builder: &Builder<TokioExecutor>,
    closing: &watch::Sender<bool>,
    grace: Duration,
) where
    F: std::future::Future<Output = Option<I>> + Send + 'static,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    let service = tower::ServiceExt::map_request(
        app.clone(),
        move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(info.clone());
            request
        },
    );
    let builder = builder.clone();
    let mut closing = closing.subscribe();
    tokio::spawn(async move {
        let Some(io) = io.await else {
            return;
        };
        let service = TowerToHyperService::new(service);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let asked = tokio::select! {
            closed = closing.wait_for(|c| *c) => closed.is_ok(),
            _ = &mut connection => false,
        };
        if asked {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(grace, connection).await;
        }
    });
}

/// Asks every connection to finish, and waits for their in-flight requests
/// (at most `grace`).
async fn drain(closing: &watch::Sender<bool>, grace: Duration) {
    let _ = closing.send(true);
    let deadline = Instant::now() + grace;
    while closing.receiver_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Slots, cap_per_listener};

    #[test]
    fn a_full_listener_closes_a_connection_of_the_peer_holding_the_most() {
        let slots = Slots::new("test", 4, Duration::from_secs(30));
        let mallory: Vec<_> = (0..3)
            .map(|n| slots.admit(n, "uid:666".to_owned()))
            .collect();
        let alice = slots.admit(10, "uid:1000".to_owned());
        // Full: the next one closes one of mallory's, not alice's.
        let _bob = slots.admit(20, "uid:1001".to_owned());
        let closed: Vec<_> = mallory
            .iter()
            .filter(|m| super::lock(&m.inner).is_none())
            .collect();
        assert_eq!(closed.len(), 1);
        assert!(closed.iter().all(|m| m.conn.evicted()));
        assert!(super::lock(&alice.inner).is_some());
        assert_eq!(slots.open(), 4);
        drop(mallory);
        assert_eq!(slots.open(), 2);
    }

    #[test]
    fn idle_connections_are_closed() {
        let slots = Slots::new("test", 8, Duration::ZERO);
        let idle = slots.admit(1, "uid:666".to_owned());
        std::thread::sleep(Duration::from_millis(5));
        slots.reap();
        assert!(idle.conn.evicted());
        assert!(super::lock(&idle.inner).is_none());
        assert_eq!(slots.open(), 0);
    }

    #[test]
    fn the_cap_keeps_descriptors_in_reserve() {
        let cap = cap_per_listener(2);
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        let used = u64::try_from(2 * cap).unwrap_or(u64::MAX);
        assert!(
            cap == 16 || used + 256 <= soft,
            "cap {cap} under limit {soft}"
        );
    }
}
