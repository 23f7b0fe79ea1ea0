//! Routes for session recordings: the bastion's uploads and seal (signed
//! with its host key), and the reviewers' list, search, metadata and file
//! reads (`reviewers` in the policy, or `local:root` on the socket).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use shiftkey_wire::{
    RecordingChunkAck, RecordingDetail, RecordingInfo, RecordingMatch, SealRequest,
};

use super::error::ApiError;
use super::hosts::{Enrolled, EnrolledBytes};
use super::state::AppState;
use crate::identity::Caller;
use crate::recordings::{
    self, MAX_CHUNK, MAX_LIST, MAX_READ, MAX_SEAL_BODY, Purpose, Recordings, SessionFilter,
};

/// Header on file reads: the file's whole length at the CA right now.
const FILE_LENGTH_HEADER: &str = "x-shiftkey-file-length";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/recordings", get(list))
        .route("/v1/recordings/search", get(search))
        .route("/v1/recordings/{session}", get(detail))
        .route(
            "/v1/recordings/{session}/files/{name}",
            get(read_file)
                .post(upload)
                .layer(DefaultBodyLimit::max(MAX_CHUNK)),
        )
        .route(
            "/v1/recordings/{session}/seal",
            post(seal).layer(DefaultBodyLimit::max(MAX_SEAL_BODY)),
        )
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|r| ApiError::InvalidBody(r.body_text()))
}

#[derive(Debug, Deserialize)]
struct OffsetQuery {
    offset: Option<u64>,
    purpose: Option<String>,
}

async fn upload(
    State(recordings): State<Arc<Recordings>>,
    Path((session, name)): Path<(String, String)>,
    params: Result<Query<OffsetQuery>, QueryRejection>,
    EnrolledBytes(host, chunk): EnrolledBytes,
) -> Result<Json<RecordingChunkAck>, ApiError> {
    let offset = query(params)?.offset;
    Ok(Json(
        recordings
            .upload_chunk(&host, &session, &name, offset, chunk.to_vec())
            .await?,
    ))
}

async fn seal(
    State(recordings): State<Arc<Recordings>>,
    Path(session): Path<String>,
    Enrolled(host, request): Enrolled<SealRequest>,
) -> Result<Json<RecordingDetail>, ApiError> {
    Ok(Json(recordings.seal(&host, &session, request).await?))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// `user:EMAIL`, `local:USER`, or a bare email.
    user: Option<String>,
    host: Option<String>,
    incident: Option<String>,
    role: Option<String>,
    /// Unix seconds.
    since: Option<i64>,
    status: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(recordings): State<Arc<Recordings>>,
    caller: Caller,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<RecordingInfo>>, ApiError> {
    let reviewer = recordings.reviewer(&caller, "/v1/recordings").await?;
    let params = query(params)?;
    let status = match &params.status {
        None => None,
        Some(text) => Some(recordings::parse_status(text).ok_or_else(|| {
            ApiError::InvalidBody(
                "status is one of live, ended, sealed, verification-failed".into(),
            )
        })?),
    };
    let filter = SessionFilter {
        identity: params.user.map(|u| {
            if u.contains(':') {
                u
            } else {
                format!("user:{u}")
            }
        }),
        host: params.host,
        incident: params.incident,
        role: params.role,
        since: params.since,
        status,
        limit: params.limit.unwrap_or(100).clamp(1, MAX_LIST),
    };
    Ok(Json(recordings.list(&reviewer, filter).await?))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<u32>,
}

async fn search(
    State(recordings): State<Arc<Recordings>>,
    caller: Caller,
    params: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Vec<RecordingMatch>>, ApiError> {
    let reviewer = recordings
        .reviewer(&caller, "/v1/recordings/search")
        .await?;
    let params = query(params)?;
    let text = params.q.unwrap_or_default();
    let limit = params.limit.unwrap_or(100).clamp(1, MAX_LIST);
    Ok(Json(recordings.search(&reviewer, &text, limit).await?))
}

#[derive(Debug, Deserialize)]
struct PurposeQuery {
    purpose: Option<String>,
}

async fn detail(
    State(recordings): State<Arc<Recordings>>,
    caller: Caller,
    Path(session): Path<String>,
    params: Result<Query<PurposeQuery>, QueryRejection>,
) -> Result<Json<RecordingDetail>, ApiError> {
    let reviewer = recordings
        .reviewer(&caller, "/v1/recordings/{session}")
        .await?;
    let purpose = Purpose::parse(query(params)?.purpose.as_deref())?;
    Ok(Json(
        recordings.recording(&reviewer, &session, purpose).await?,
    ))
}

/// Up to `MAX_READ` bytes from `?offset=`, streamed, with the file's whole
/// length at the CA right now in a header.
async fn read_file(
    State(recordings): State<Arc<Recordings>>,
    caller: Caller,
    Path((session, name)): Path<(String, String)>,
    params: Result<Query<OffsetQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let reviewer = recordings
        .reviewer(&caller, "/v1/recordings/{session}/files/{name}")
        .await?;
    let params = query(params)?;
    let purpose = Purpose::parse(params.purpose.as_deref())?;
    let opened = recordings
        .read_file(
            &reviewer,
            &session,
            &name,
            params.offset.unwrap_or(0),
            Some(MAX_READ),
            purpose,
        )
        .await?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(opened.reader));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_LENGTH, opened.bytes.to_string()),
            (
                header::HeaderName::from_static(FILE_LENGTH_HEADER),
                opened.length.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}
