//! A minimal HTTP/1.1 client for the CA's local Unix socket, used by
//! `quickstart` (and by tests) to talk to a running CA as `local:USER`.
//! reqwest cannot dial Unix sockets, hence these few lines on hyper.

use std::path::Path;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(
        "cannot connect to {path}: {source}\nhint: is shiftkey-ca running with this data directory?"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("HTTP over the local socket failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
}

/// Sends one request and returns the status and body.
pub(crate) async fn send(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(StatusCode, Bytes), Error> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| Error::Connect {
            path: socket.display().to_string(),
            source,
        })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok((status, bytes))
}
