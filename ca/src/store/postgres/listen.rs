//! The audit log's tip across replicas: every append NOTIFYs
//! `shiftkey_audit` with its last sequence number (delivered at commit);
//! one connection per process LISTENs and raises the tip, which wakes the
//! event stream. After a lost connection it reconnects and reads the head,
//! so nothing committed meanwhile is missed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use super::audit::max_seq;
use super::settings::Connect;

/// The channel appends NOTIFY.
pub(super) const CHANNEL: &str = "shiftkey_audit";
/// How often the listener checks that its connection (and the store) are
/// still there, and reads the head in case a notice was lost.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Waits between reconnection attempts, doubling up to the last.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Raises the tip to `seq` (never lowers it).
pub(super) fn raise(tip: &watch::Sender<u64>, seq: u64) {
    tip.send_if_modified(|current| {
        if seq > *current {
            *current = seq;
            true
        } else {
            false
        }
    });
}

/// Follows the database until the store is dropped.
pub(super) fn start(connect: Arc<Connect>, tip: Weak<watch::Sender<u64>>) {
    tokio::spawn(async move {
        let mut wait = RETRY_FIRST;
        loop {
            match listen(&connect, &tip, &mut wait).await {
                Ended::StoreGone => return,
                Ended::Lost(e) => {
                    tracing::warn!(error = %e, database = %connect.display, "lost the audit notifications; reconnecting");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    });
}

/// Why one connection's listening ended.
enum Ended {
    StoreGone,
    Lost(String),
}

impl From<tokio_postgres::Error> for Ended {
    fn from(e: tokio_postgres::Error) -> Self {
        Ended::Lost(e.to_string())
    }
}

/// One connection's worth of listening.
async fn listen(connect: &Connect, tip: &Weak<watch::Sender<u64>>, wait: &mut Duration) -> Ended {
    let (client, mut connection) = match connect.config.connect(connect.tls.clone()).await {
        Ok(pair) => pair,
        Err(e) => return e.into(),
    };
    let (notices, mut heard) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notices.send(n.payload().parse::<u64>().ok()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "audit notification connection failed");
                    return;
                }
            }
        }
    });
    let ended = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // Whatever was committed while no one listened.
        let head = max_seq(&client).await?;
        let Some(strong) = tip.upgrade() else {
            return Ok(Ended::StoreGone);
        };
        raise(&strong, head);
        drop(strong);
        *wait = RETRY_FIRST;
        loop {
            tokio::select! {
                notice = heard.recv() => {
                    let Some(strong) = tip.upgrade() else { return Ok(Ended::StoreGone) };
                    match notice {
                        Some(Some(seq)) => raise(&strong, seq),
                        Some(None) => raise(&strong, max_seq(&client).await?),
                        None => return Ok(Ended::Lost("the server closed the connection".into())),
                    }
                }
                () = tokio::time::sleep(CHECK_EVERY) => {
                    let Some(strong) = tip.upgrade() else { return Ok(Ended::StoreGone) };
                    raise(&strong, max_seq(&client).await?);
                }
            }
        }
    }
    .await;
    drop(client);
    driver.abort();
    match ended {
        Ok(ended) => ended,
        Err::<_, tokio_postgres::Error>(e) => e.into(),
    }
}
