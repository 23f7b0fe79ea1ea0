//! One HTTP/1.1 exchange over a Unix socket: how the `shiftkey` client
//! (`unix:PATH` endpoints) and `shiftkey-ca quickstart` talk to the CA's
//! local socket, where the kernel tells the CA who is asking. reqwest
//! cannot dial Unix sockets, hence these few lines on hyper, in one place.
//!
//! Owns nothing but the exchange: no JSON, no Shiftkey types (those are
//! `shiftkey-wire`'s), no retries. Never: read an answer past the caller's
//! limit.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// One request. A body is sent as `application/json`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path with its query, e.g. `/v1/certificates`.
    pub path: &'a str,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<&'a str>,
    pub body: Option<&'a [u8]>,
}

/// The answer: status and body, whatever the status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("HTTP over {path} failed: {message}")]
    Exchange { path: String, message: String },
}

/// Sends `request` over the socket at `socket` and reads the whole answer,
/// at most `max_answer` bytes of body.
pub async fn send(
    socket: &Path,
    request: Request<'_>,
    max_answer: usize,
) -> Result<Response, Error> {
    let path = socket.display().to_string();
    let failed = |message: String| Error::Exchange {
        path: path.clone(),
        message,
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| Error::Connect {
            path: path.clone(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(request.method)
        .uri(request.path)
        .header("host", "localhost");
    if request.body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    if let Some(value) = request.authorization {
        builder = builder.header("authorization", value);
    }
    let body = Full::new(Bytes::copy_from_slice(request.body.unwrap_or_default()));
    let sent = builder.body(body).map_err(|e| failed(e.to_string()))?;
    let answer = sender
        .send_request(sent)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = answer.status().as_u16();
    let body = Limited::new(answer.into_body(), max_answer)
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    driver.abort();
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A one-shot server on a real socket: reads one request, answers
    /// `answer`, hands back what it read.
    async fn serve_once(socket: &Path, answer: &'static [u8]) -> tokio::task::JoinHandle<Vec<u8>> {
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Until the end of headers plus the declared body.
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            stream.write_all(answer).await.unwrap();
            got
        })
    }

    #[tokio::test]
    async fn one_exchange_with_body_and_authorization() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ca.sock");
        let server = serve_once(
            &socket,
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 14\r\n\r\n{\"error\":\"no\"}",
        )
        .await;
        let answer = send(
            &socket,
            Request {
                method: "POST",
                path: "/v1/certificates?x=1",
                authorization: Some("Shiftkey-Host abc"),
                body: Some(b"{\"role\":\"r\"}"),
            },
            1024,
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 403, "any status is an answer");
        assert_eq!(&answer.body[..], b"{\"error\":\"no\"}");
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(
            request.starts_with("POST /v1/certificates?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/json"),
            "{request}"
        );
        assert!(
            request.contains("authorization: Shiftkey-Host abc"),
            "{request}"
        );
        assert!(request.ends_with("{\"role\":\"r\"}"), "{request}");
    }

    #[tokio::test]
    async fn an_answer_past_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ca.sock");
        let _server = serve_once(
            &socket,
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789",
        )
        .await;
        let request = Request {
            method: "GET",
            path: "/v1/krl",
            authorization: None,
            body: None,
        };
        let refused = tokio::time::timeout(Duration::from_secs(10), send(&socket, request, 5))
            .await
            .unwrap();
        assert!(
            matches!(refused, Err(Error::Exchange { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn no_socket_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let request = Request {
            method: "GET",
            path: "/healthz",
            authorization: None,
            body: None,
        };
        let refused = send(&dir.path().join("absent.sock"), request, 5).await;
        assert!(matches!(refused, Err(Error::Connect { .. })), "{refused:?}");
    }
}
