//! The quickstart's calls to its own CA: real HTTP over the local socket, as
//! the invoking user (`local:USER`, from the socket's peer credentials), so
//! every answer went through the same policy, audit and routes as any
//! client's.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shiftkey_wire::ErrorResponse;

/// Largest answer read from the CA (a certificate or a KRL is a few KiB, a
/// recordings list a few hundred).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The CA's local socket.
#[derive(Debug, Clone, Copy)]
pub(super) struct Local<'a> {
    pub(super) socket: &'a Path,
}

impl Local<'_> {
    /// `method path` with `body`; the raw answer on 2xx, the CA's error
    /// (with its hint) otherwise.
    pub(super) async fn bytes(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<bytes::Bytes> {
        let answer = shiftkey_unix_http::send(
            self.socket,
            shiftkey_unix_http::Request {
                method,
                path,
                authorization: None,
                body,
            },
            MAX_ANSWER,
        )
        .await
        .with_context(|| format!("{method} {path} on {}", self.socket.display()))?;
        if !(200..300).contains(&answer.status) {
            let err: ErrorResponse = serde_json::from_slice(&answer.body)
                .with_context(|| format!("{method} {path}: the CA answered {}", answer.status))?;
            bail!(
                "{method} {path}: the CA refused: {} ({})\nhint: {}",
                err.message,
                err.error,
                err.hint.unwrap_or_default()
            );
        }
        Ok(answer.body)
    }

    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let body = self.bytes("GET", path, None).await?;
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: reading the answer"))
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        request: &impl Serialize,
    ) -> anyhow::Result<T> {
        let body = serde_json::to_vec(request)?;
        let answer = self.bytes("POST", path, Some(&body)).await?;
        serde_json::from_slice(&answer).with_context(|| format!("POST {path}: reading the answer"))
    }
}
