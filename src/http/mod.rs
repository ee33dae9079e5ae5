//! The web face: the router, the edge middleware, extractors, the error type, and one file per resource.
//! Handlers are thin: extract, authorise, validate, call a service, map to the response.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod connections;
pub mod error;
pub mod extract;
pub mod mcp;
mod mcp_direct;
pub mod me;
pub mod metrics;
pub mod mfa;
pub mod middleware;
pub mod retry;
pub mod routes;
pub mod saved_tests;
pub mod sms;
pub mod system;
pub mod tools;
pub mod users;

use axum::{Router, extract::DefaultBodyLimit, http::StatusCode};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    timeout::TimeoutLayer,
};

use crate::state::AppState;

/// Every resource's routes, recorded as they are registered (see [`routes`]).
pub fn routes(state: &AppState) -> routes::Routes {
    routes::Routes::new()
        .merge(auth::router())
        .merge(chat::router())
        .merge(users::router())
        .merge(system::router())
        .merge(tools::router())
        .merge(mfa::router())
        .merge(me::router())
        .merge(sms::router())
        .merge(mcp::router(state))
        .merge(metrics::router(state))
        .merge(audit::router())
        .merge(analytics::router())
        .merge(saved_tests::router())
        .merge(connections::router())
}

/// Every route, with `pages` (the browser pages, which sit beside the API and are handed in by the assembly),
/// behind the edge middleware, body limit, one retry of reads the database could not serve, timeout and (when
/// configured) CORS.
pub fn router(state: AppState, pages: routes::Routes) -> Router {
    let mut router = routes(&state)
        .merge(pages)
        .into_router()
        .fallback(|| async { error::AppError::NotFound("Not found".into()) })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // Inside the timeout, so a read and its one retry share the request's time budget.
        .layer(axum::middleware::from_fn(retry::retry_reads_once))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ));
    if !state.config.cors_origins.is_empty() {
        let origins = state
            .config
            .cors_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect::<Vec<_>>();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_credentials(true)
                .allow_methods([
                    axum::http::Method::GET,
                    axum::http::Method::POST,
                    axum::http::Method::PUT,
                    axum::http::Method::DELETE,
                ])
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderName::from_static(extract::CSRF_HEADER),
                ]),
        );
    }
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::edge,
        ))
        .with_state(state)
}
