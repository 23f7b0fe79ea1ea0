use std::sync::Arc;

use tokio::sync::Notify;
use tokio::sync::mpsc::error::{SendError, TrySendError};

use super::WindowSizeRef;
use super::flow::{Backlog, Flow, FlowSender};
use crate::ChannelMsg;

/// A handle to the [`super::Channel`]'s to be able to transmit messages
/// to it and update it's `window_size`.
///
/// Shiftkey: sending never waits for the channel's reader (see
/// `channels/flow.rs`); what its queue cannot take waits in a backlog.
#[derive(Debug)]
pub struct ChannelRef {
    pub(super) sender: FlowSender,
    pub(super) window_size: WindowSizeRef,
    backlog: Backlog,
}

impl ChannelRef {
    pub(crate) fn new(sender: FlowSender) -> Self {
        Self {
            sender,
            window_size: WindowSizeRef::new(0),
            backlog: Backlog::default(),
        }
    }

    pub(super) fn with_window(sender: FlowSender, window_size: WindowSizeRef) -> Self {
        Self {
            sender,
            window_size,
            backlog: Backlog::default(),
        }
    }

    pub(crate) fn window_size(&self) -> &WindowSizeRef {
        &self.window_size
    }

    /// Delivers `msg` after whatever waits before it; does not wait for the
    /// reader (unless a peer piles up requests it does not take).
    pub(crate) async fn send(&self, msg: ChannelMsg) -> Result<(), SendError<ChannelMsg>> {
        self.sender.send(&self.backlog, msg).await
    }

    /// For informational messages that may be dropped when the queue is full.
    pub(crate) fn try_send(&self, msg: ChannelMsg) -> Result<(), TrySendError<ChannelMsg>> {
        if !self.backlog.is_empty() {
            return Err(TrySendError::Full(msg));
        }
        self.sender.sender.try_send(msg)
    }

    /// See [`FlowSender::tend`].
    pub(crate) fn tend<E>(
        &self,
        kick: &Arc<Notify>,
        give_back: impl FnMut(&Flow) -> Result<bool, E>,
    ) -> Result<(), E> {
        self.sender.tend(&self.backlog, kick, give_back)
    }
}

impl Drop for ChannelRef {
    fn drop(&mut self) {
        self.sender.hand_off(&self.backlog);
    }
}
