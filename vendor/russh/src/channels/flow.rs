//! Shiftkey's change to russh 0.65.1: per-channel flow control.
//!
//! Upstream russh hands each CHANNEL_DATA to the channel's bounded queue
//! with `send().await` and returns the window to the peer as soon as the
//! data arrives. So the only brake on a peer is the session task blocking
//! on a full queue, and while it blocks it reads nothing on the connection:
//! no WINDOW_ADJUST, no data for other channels. A relay that waits on one
//! connection's window while the other connection waits on it deadlocks
//! full-duplex traffic.
//!
//! Here, as in OpenSSH, the window is returned as the channel's reader
//! takes data from its queue: a peer that outruns the reader runs out of
//! window and stops, and the session task never waits on a reader. Data the
//! queue cannot take yet waits in the channel's backlog, which the window
//! bounds (a peer that sends beyond its window is disconnected); the reader
//! wakes the session task through [`Flow`] when it has taken something the
//! session task is waiting for.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio::sync::mpsc::{self, Receiver, Sender};

use super::ChannelMsg;

/// Messages of a backlog past which the session task waits for the reader
/// again, as upstream russh always did: only a peer that piles up requests
/// (not data, which the window bounds) on a reader that takes nothing.
const MAX_BACKLOG: usize = 1024;
/// Consecutive data messages in a backlog are merged up to this size, so
/// that many tiny packets cost one message, not one each.
const MERGE_MAX: usize = 64 * 1024;

/// What a channel's reader and the session task share.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    /// Bytes of data the reader took and the peer has not been given back.
    consumed: AtomicU32,
    /// The session task waits for the reader (window owed, or a backlog).
    waiting: AtomicBool,
    /// Wakes the session task; set by the session when it first needs it.
    kick: OnceLock<Arc<Notify>>,
}

impl Flow {
    /// The reader took a message carrying `bytes` of data.
    fn took(&self, bytes: usize) {
        if bytes > 0 {
            let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
            let _ = self
                .consumed
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                    Some(c.saturating_add(bytes))
                });
        }
        if self.waiting.load(Ordering::Acquire) && self.waiting.swap(false, Ordering::AcqRel) {
            if let Some(kick) = self.kick.get() {
                kick.notify_one();
            }
        }
    }

    /// Bytes the reader took since the last call.
    pub(crate) fn take_consumed(&self) -> u32 {
        self.consumed.swap(0, Ordering::AcqRel)
    }

    fn has_consumed(&self) -> bool {
        self.consumed.load(Ordering::Acquire) > 0
    }

    /// The session task's waker, for [`Self::want_kick`].
    pub(crate) fn attach(&self, kick: &Arc<Notify>) {
        let _ = self.kick.get_or_init(|| Arc::clone(kick));
    }

    fn arm(&self) {
        self.waiting.store(true, Ordering::Release);
    }

    fn disarm(&self) {
        self.waiting.store(false, Ordering::Release);
    }
}

/// The session task's end of a channel's queue.
#[derive(Debug)]
pub struct FlowSender {
    pub(crate) sender: Sender<ChannelMsg>,
    pub(crate) flow: Arc<Flow>,
}

/// The reader's end of a channel's queue: counts the data it takes.
#[derive(Debug)]
pub(crate) struct FlowReceiver {
    receiver: Receiver<ChannelMsg>,
    flow: Arc<Flow>,
}

/// A channel's queue, `buffer` messages deep.
pub(crate) fn channel(buffer: usize) -> (FlowSender, FlowReceiver) {
    let (sender, receiver) = mpsc::channel(buffer);
    let flow = Arc::new(Flow::default());
    (
        FlowSender {
            sender,
            flow: Arc::clone(&flow),
        },
        FlowReceiver { receiver, flow },
    )
}

fn data_len(msg: &ChannelMsg) -> usize {
    match msg {
        ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => data.len(),
        _ => 0,
    }
}

impl FlowReceiver {
    /// Cancel-safe, like [`Receiver::recv`]: the count is taken in the same
    /// poll that takes the message.
    pub(crate) async fn recv(&mut self) -> Option<ChannelMsg> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ChannelMsg>> {
        let polled = self.receiver.poll_recv(cx);
        if let Poll::Ready(Some(msg)) = &polled {
            self.flow.took(data_len(msg));
        }
        polled
    }

    pub(crate) fn close(&mut self) {
        self.receiver.close();
    }
}

/// Messages the channel's queue could not take yet, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Backlog(Mutex<VecDeque<ChannelMsg>>);

impl Backlog {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ChannelMsg>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

fn merge(first: &Bytes, second: &Bytes) -> Bytes {
    let mut both = BytesMut::with_capacity(first.len() + second.len());
    both.extend_from_slice(first);
    both.extend_from_slice(second);
    both.freeze()
}

/// Appends `msg`, merged into the last message when both are data of the
/// same stream and small enough together.
fn push_merged(backlog: &mut VecDeque<ChannelMsg>, msg: ChannelMsg) {
    match (backlog.back_mut(), msg) {
        (Some(ChannelMsg::Data { data: last }), ChannelMsg::Data { data })
            if last.len() + data.len() <= MERGE_MAX =>
        {
            *last = merge(last, &data);
        }
        (
            Some(ChannelMsg::ExtendedData {
                data: last,
                ext: last_ext,
            }),
            ChannelMsg::ExtendedData { data, ext },
        ) if *last_ext == ext && last.len() + data.len() <= MERGE_MAX => {
            *last = merge(last, &data);
        }
        (_, msg) => backlog.push_back(msg),
    }
}

impl FlowSender {
    /// A message whose reader is gone: its data counts as taken, so the
    /// peer's window does not shrink for a channel nobody reads.
    fn dropped(&self, msg: &ChannelMsg) {
        self.flow.took(data_len(msg));
    }

    /// Delivers `msg` in order after the backlog; waits only when the
    /// backlog is over [`MAX_BACKLOG`] messages.
    pub(crate) async fn send(
        &self,
        backlog: &Backlog,
        msg: ChannelMsg,
    ) -> Result<(), SendError<ChannelMsg>> {
        {
            let mut queued = backlog.lock();
            if queued.is_empty() {
                match self.sender.try_send(msg) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Closed(msg)) => {
                        self.dropped(&msg);
                        return Err(SendError(msg));
                    }
                    Err(TrySendError::Full(msg)) => push_merged(&mut queued, msg),
                }
            } else {
                push_merged(&mut queued, msg);
            }
            if queued.len() <= MAX_BACKLOG {
                return Ok(());
            }
        }
        loop {
            let Some(front) = backlog.lock().pop_front() else {
                return Ok(());
            };
            if let Err(SendError(msg)) = self.sender.send(front).await {
                self.dropped(&msg);
                for msg in backlog.lock().drain(..) {
                    self.dropped(&msg);
                }
                return Ok(());
            }
            if backlog.lock().len() <= MAX_BACKLOG / 2 {
                return Ok(());
            }
        }
    }

    /// Moves what the queue has room for out of the backlog; true when the
    /// backlog is empty.
    pub(crate) fn flush(&self, backlog: &Backlog) -> bool {
        let mut queued = backlog.lock();
        while let Some(msg) = queued.pop_front() {
            match self.sender.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(msg)) => {
                    queued.push_front(msg);
                    return false;
                }
                Err(TrySendError::Closed(msg)) => {
                    self.dropped(&msg);
                    for msg in queued.drain(..) {
                        self.dropped(&msg);
                    }
                    return true;
                }
            }
        }
        true
    }

    /// After a receipt or a kick: the backlog moved on as far as it can and
    /// `give_back` handed the peer the window the reader freed (it returns
    /// whether the peer is still owed more). Arms the reader's kick while
    /// the session task waits on it, without losing a take that raced the
    /// arming.
    pub(crate) fn tend<E>(
        &self,
        backlog: &Backlog,
        kick: &Arc<Notify>,
        mut give_back: impl FnMut(&Flow) -> Result<bool, E>,
    ) -> Result<(), E> {
        self.flow.attach(kick);
        loop {
            let empty = self.flush(backlog);
            let owed = give_back(&self.flow)?;
            if empty && !owed {
                self.flow.disarm();
                return Ok(());
            }
            self.flow.arm();
            // Another round only for what changed since: room in the queue
            // for the backlog, or a take that can be given back now.
            let room = !empty && self.sender.capacity() > 0;
            let given = owed && self.flow.has_consumed();
            if !room && !given {
                return Ok(());
            }
            self.flow.disarm();
        }
    }

    /// Hands what is still in the backlog to a task that delivers it, for
    /// a channel the session lets go of (closed, or the session ended):
    /// the reader still gets every byte and the close after them.
    pub(crate) fn hand_off(&self, backlog: &Backlog) {
        let rest: Vec<ChannelMsg> = backlog.lock().drain(..).collect();
        if rest.is_empty() {
            return;
        }
        // Outside a runtime (a session dropped after its runtime) nobody
        // can read them either.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let sender = self.sender.clone();
        drop(runtime.spawn(async move {
            for msg in rest {
                if sender.send(msg).await.is_err() {
                    break;
                }
            }
        }));
    }

}
