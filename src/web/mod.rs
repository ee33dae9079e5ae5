//! The browser pages: the sign-in page, the chat page, the settings page, the admin page and their CSS and
//! JavaScript, compiled into the binary (nothing is read from disk at run time, nothing is fetched from another
//! host). Server-side this module only
//! serves files; the pages reach every service through the JSON/SSE API from the browser, as any client does.
//!
//! The pages obey the strict CSP the edge sets (`default-src 'self'`): no inline script or style, no event
//! handler attributes, and the scripts build the DOM with `textContent` only (tests/api/web.rs checks all of it).

use axum::{
    extract::Path,
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Redirect, Response},
};

use crate::http::{error::AppError, routes::Routes};

/// The sign-in page (password, then a second factor when one is due).
pub const LOGIN_PAGE: &str = include_str!("assets/login.html");
/// The chat page (conversations, streamed answers, tool calls).
pub const CHAT_PAGE: &str = include_str!("assets/chat.html");
/// The admin page (users, MCP servers, analytics, logs); only admins see more than "not allowed".
pub const ADMIN_PAGE: &str = include_str!("assets/admin.html");
/// The settings page (second factors, password, the caller's sessions).
pub const SETTINGS_PAGE: &str = include_str!("assets/settings.html");

/// (file name under `/static/`, Content-Type, body) of every asset the pages load.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/common.js"),
    ),
    (
        "markdown.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/markdown.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/login.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/chat.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/admin.js"),
    ),
    (
        "admin_access.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/admin_access.js"),
    ),
    (
        "admin_ops.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/admin_ops.js"),
    ),
    // Vendored uPlot 1.6.31 (MIT, assets/vendor/uPlot.LICENSE), byte for byte as npm ships it: the admin
    // page's charts. Only /admin loads it.
    (
        "uplot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uplot.min.css",
        "text/css; charset=utf-8",
        include_str!("assets/vendor/uPlot.min.css"),
    ),
    (
        "settings.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/settings.js"),
    ),
    // Every page links it, so the browser's icon request never fails.
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("assets/favicon.svg"),
    ),
];

/// The assets only the admin page loads (the chat page's transfer budget leaves them out).
pub const ADMIN_ONLY_ASSETS: &[&str] = &[
    "admin.js",
    "admin_access.js",
    "admin_ops.js",
    "uplot.iife.min.js",
    "uplot.min.css",
];

/// The vendored files (copied from their releases, not written here).
pub const VENDORED_ASSETS: &[&str] = &["uplot.iife.min.js", "uplot.min.css"];

/// Assets carry no content hash in their names (ES module imports would have to be rewritten), so browsers
/// keep them only briefly: an upgraded server is seen within five minutes.
const ASSET_CACHE: &str = "public, max-age=300";

pub fn router() -> Routes {
    Routes::new()
        .get("/", home)
        .get("/login", login_page)
        .get("/chat", chat_page)
        .get("/admin", admin_page)
        .get("/settings", settings_page)
        .get("/static/{file}", asset)
}

async fn home() -> Redirect {
    Redirect::to("/chat")
}

/// Pages keep the edge's `Cache-Control: no-store`: they are small and always match the assets served.
async fn login_page() -> Html<&'static str> {
    Html(LOGIN_PAGE)
}

async fn chat_page() -> Html<&'static str> {
    Html(CHAT_PAGE)
}

async fn admin_page() -> Html<&'static str> {
    Html(ADMIN_PAGE)
}

async fn settings_page() -> Html<&'static str> {
    Html(SETTINGS_PAGE)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(ASSET_CACHE)),
            ],
            *body,
        )
            .into_response(),
        None => AppError::NotFound("Not found".into()).into_response(),
    }
}
