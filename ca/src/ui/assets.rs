//! The UI's own stylesheet and script (compiled in) and the
//! asciinema-player bundle, read from `[ui] assets_dir`. Only these four
//! names are served; nothing comes from anywhere but the CA.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use axum::extract::State;

use super::{SignIn, UiError};

const UI_CSS: &str = include_str!("static/ui.css");
const UI_JS: &str = include_str!("static/ui.js");
/// The player's files in `assets_dir`, as the npm package's
/// `dist/bundle/` names them.
const PLAYER_JS: &str = "asciinema-player.min.js";
const PLAYER_CSS: &str = "asciinema-player.css";

/// `GET /ui/assets/{name}`.
pub(super) async fn serve(
    State(signin): State<Option<Arc<SignIn>>>,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    let signin = signin.ok_or(UiError::NotConfigured)?;
    let settings = signin.settings();
    let (content_type, bytes): (&str, Vec<u8>) = match name.as_str() {
        "ui.css" => ("text/css; charset=utf-8", UI_CSS.as_bytes().to_vec()),
        "ui.js" => ("text/javascript; charset=utf-8", UI_JS.as_bytes().to_vec()),
        "player.js" | "player.css" => {
            let file = if name == "player.js" {
                PLAYER_JS
            } else {
                PLAYER_CSS
            };
            let dir = settings.assets_dir.as_ref().ok_or(UiError::NotFound)?;
            let bytes = tokio::fs::read(dir.join(file)).await.map_err(|e| {
                tracing::warn!(path = %dir.join(file).display(), error = %e, "review UI: player asset missing; see [ui] assets_dir in docs/ui.md");
                UiError::NotFound
            })?;
            let kind = if name == "player.js" {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            (kind, bytes)
        }
        _ => return Err(UiError::NotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        bytes,
    )
        .into_response())
}
