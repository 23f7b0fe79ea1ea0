//! A small blocking pool: up to `size` items (PKCS#11 sessions) opened on
//! demand, each used by one thread at a time, so a slow token call holds one
//! session and not the whole CA.
//!
//! A session (cryptoki's `Session`) is `Send` but not `Sync`: one thread uses
//! it at a time, and this pool is what hands it from thread to thread.

use std::ops::Deref;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub(super) struct Pool<T> {
    state: Mutex<State<T>>,
    freed: Condvar,
    size: usize,
    timeout: Duration,
}

struct State<T> {
    idle: Vec<T>,
    // INVARIANT: open == idle.len() + leases alive + openings in progress,
    // and open <= size.
    open: usize,
}

/// Why no item could be had.
#[derive(Debug)]
pub(super) enum Checkout<E> {
    /// Every item stayed in use for the whole timeout.
    Busy { waited: Duration },
    /// Opening a new item failed.
    Open(E),
}

impl<T> Pool<T> {
    /// A pool of at most `size` items (at least one), starting with `first`.
    pub(super) fn new(size: usize, timeout: Duration, first: T) -> Self {
        Self {
            state: Mutex::new(State {
                idle: vec![first],
                open: 1,
            }),
            freed: Condvar::new(),
            size: size.max(1),
            timeout,
        }
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    // INVARIANT: no code panics while holding the lock, so a poisoned lock
    // still guards a consistent state.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle item; else a new one from `open` while fewer than `size`
    /// exist; else waits up to the timeout for one to come back.
    pub(super) fn checkout<E>(
        &self,
        open: impl FnOnce() -> Result<T, E>,
    ) -> Result<Lease<'_, T>, Checkout<E>> {
        let started = Instant::now();
        let mut state = self.lock();
        loop {
            if let Some(item) = state.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    item: Some(item),
                    fresh: false,
                });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match open() {
                    Ok(item) => Ok(Lease {
                        pool: self,
                        item: Some(item),
                        fresh: true,
                    }),
                    Err(e) => {
                        self.forget();
                        Err(Checkout::Open(e))
                    }
                };
            }
            let waited = started.elapsed();
            let Some(left) = self.timeout.checked_sub(waited).filter(|d| !d.is_zero()) else {
                return Err(Checkout::Busy { waited });
            };
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// One item fewer exists (closed or never opened): a waiter may open one.
    fn forget(&self) {
        let mut state = self.lock();
        state.open = state.open.saturating_sub(1);
        drop(state);
        self.freed.notify_one();
    }

    fn give_back(&self, item: T) {
        self.lock().idle.push(item);
        self.freed.notify_one();
    }
}

/// An item on loan; it goes back to the pool when dropped, unless
/// [`discard`](Lease::discard)ed.
pub(super) struct Lease<'a, T> {
    pool: &'a Pool<T>,
    // INVARIANT: Some until drop or discard.
    item: Option<T>,
    fresh: bool,
}

impl<T> Lease<'_, T> {
    /// Whether the item was opened for this checkout (not reused).
    pub(super) fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Drops the item instead of returning it (a session the token closed),
    /// freeing its place for a new one.
    pub(super) fn discard(mut self) {
        drop(self.item.take());
        self.pool.forget();
    }
}

impl<T> Deref for Lease<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.item {
            Some(item) => item,
            // INVARIANT: `item` is only taken by `discard` (which consumes
            // the lease) and `drop`.
            None => unreachable!("lease used after its item was taken"),
        }
    }
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.give_back(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn opens_on_demand_up_to_size_and_reuses() {
        let pool = Pool::new(3, Duration::from_secs(5), 0usize);
        let opened = AtomicUsize::new(1);
        let open = || -> Result<usize, ()> { Ok(opened.fetch_add(1, Ordering::SeqCst)) };
        let a = pool.checkout(open).unwrap();
        let b = pool.checkout(open).unwrap();
        let c = pool.checkout(open).unwrap();
        let mut got = vec![*a, *b, *c];
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
        drop(b);
        // The one returned is reused: no fourth open.
        let d = pool.checkout(open).unwrap();
        assert!(!a.is_fresh() && c.is_fresh() && !d.is_fresh());
        assert_eq!(opened.load(Ordering::SeqCst), 3);
        drop((a, c, d));
    }

    #[test]
    fn a_full_pool_times_out_busy() {
        let pool = Pool::new(1, Duration::from_millis(50), ());
        let held = pool.checkout(|| -> Result<(), ()> { Ok(()) }).unwrap();
        let e = pool.checkout(|| -> Result<(), ()> { Ok(()) });
        assert!(matches!(e, Err(Checkout::Busy { waited }) if waited >= Duration::from_millis(50)));
        drop(held);
        assert!(pool.checkout(|| -> Result<(), ()> { Ok(()) }).is_ok());
    }

    #[test]
    fn a_failed_open_or_a_discard_frees_the_place() {
        let pool = Pool::new(2, Duration::from_millis(20), 0u8);
        let first = pool.checkout(|| -> Result<u8, &str> { Ok(9) }).unwrap();
        assert!(matches!(
            pool.checkout(|| -> Result<u8, &str> { Err("token gone") }),
            Err(Checkout::Open("token gone"))
        ));
        let second = pool.checkout(|| -> Result<u8, &str> { Ok(1) }).unwrap();
        assert_eq!(*second, 1);
        second.discard();
        let third = pool.checkout(|| -> Result<u8, &str> { Ok(2) }).unwrap();
        assert_eq!(*third, 2);
        drop((first, third));
    }

    /// Many threads, few items: never more than `size` in use at once, and
    /// every thread gets its turn.
    #[test]
    fn never_more_than_size_in_use() {
        let pool = Arc::new(Pool::new(4, Duration::from_secs(10), ()));
        let in_use = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (pool, in_use, most) = (pool.clone(), in_use.clone(), most.clone());
                thread::spawn(move || {
                    for _ in 0..20 {
                        let lease = pool.checkout(|| -> Result<(), ()> { Ok(()) }).unwrap();
                        let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(Duration::from_micros(200));
                        in_use.fetch_sub(1, Ordering::SeqCst);
                        drop(lease);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 4);
        assert!(
            most.load(Ordering::SeqCst) >= 2,
            "the pool serialised everything"
        );
    }
}
