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

use std::convert::Infallible;

use axum::{
    extract::{DefaultBodyLimit, Request},
    http::StatusCode,
    response::Response,
};
use tower::ServiceBuilder;
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
/// behind the edge middleware, (when configured) CORS, the timeout, one retry of reads the database could not
/// serve, and the body limit.
///
/// These layers wrap the router as a whole, not each route: `Router::layer` wraps every route on its own, and
/// then a request clones its route's chain of boxed layers again at each layer it passes (49 boxed clones for a
/// `/mcp` call, 5% of its instructions). So the edge, outside the routing, finds the route template itself.
pub fn router(
    state: AppState,
    pages: routes::Routes,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let cors = (!state.config.cors_origins.is_empty()).then(|| {
        let origins = state
            .config
            .cors_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect::<Vec<_>>();
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
            ])
    });
    let routes = routes(&state)
        .merge(pages)
        .into_router()
        .fallback(|| async { error::AppError::NotFound("Not found".into()) })
        .with_state(state.clone());
    ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::edge,
        ))
        .option_layer(cors)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        // Inside the timeout, so a read and its one retry share the request's time budget.
        .layer(axum::middleware::from_fn(retry::retry_reads_once))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .service(routes)
}
