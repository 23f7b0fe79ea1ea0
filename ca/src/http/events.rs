//! `GET /v1/events`: the event stream as Server-Sent Events (see
//! `crate::events`). Each SSE message has `id:` = the audit sequence number,
//! `event:` = the kind, and the row's detail as JSON `data:`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::hosts::Subscriber;
use super::state::AppState;
use crate::events::{CaEvent, EventFeed, MAX_BACKLOG, read_since};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/events", get(subscribe))
}

#[derive(Debug, serde::Deserialize)]
struct Since {
    since: Option<u64>,
}

fn to_sse(event: &CaEvent) -> Result<Event, Infallible> {
    let data = serde_json::json!({ "seq": event.seq, "kind": event.kind, "ts": event.ts, "detail": event.detail });
    Ok(Event::default()
        .id(event.seq.to_string())
        .event(event.kind.clone())
        .data(data.to_string()))
}

async fn subscribe(
    State(feed): State<Arc<EventFeed>>,
    subscriber: Subscriber,
    headers: HeaderMap,
    Query(query): Query<Since>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    tracing::debug!(subscriber = %subscriber.identity(), "event stream opened");
    // Subscribe before reading the backlog, so nothing falls between them.
    let receiver = feed.subscribe();
    let since = query.since.or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    });
    let backlog = match since {
        Some(since) => read_since(feed.store(), since).await?,
        None => Vec::new(),
    };
    let last = backlog.last().map(|e| e.seq).or(since).unwrap_or(0);
    // A backlog cut at MAX_BACKLOG is sent, then the stream ends with a
    // `more` event: the subscriber reconnects with Last-Event-ID and gets
    // the next page. Live events are only attached to a complete backlog, so
    // nothing falls into a gap.
    let truncated = backlog.len() >= MAX_BACKLOG;
    let mut replay: Vec<Result<Event, Infallible>> = backlog.iter().map(to_sse).collect();
    if truncated {
        replay.push(Ok(Event::default()
            .event("more")
            .data("reconnect with Last-Event-ID for the rest")));
    }
    let replay = stream::iter(replay);
    let receiver = if truncated { None } else { Some(receiver) };
    let live = stream::unfold((receiver, last), |(receiver, last)| async move {
        let mut receiver = receiver?;
        loop {
            match receiver.recv().await {
                Ok(event) if event.seq > last => {
                    let seq = event.seq;
                    return Some((to_sse(&event), (Some(receiver), seq)));
                }
                Ok(_) => {}
                // Too slow to keep up: say so and end; the subscriber
                // reconnects with Last-Event-ID (the last event it did get)
                // and reads what it missed from the log.
                Err(RecvError::Lagged(_)) => {
                    return Some((
                        Ok(Event::default()
                            .event("lagged")
                            .data("reconnect with Last-Event-ID")),
                        (None, last),
                    ));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(replay.chain(live)).keep_alive(KeepAlive::default()))
}
