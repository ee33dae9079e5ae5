//! `GET /metrics`: the Prometheus text exposition. On the API's listener it needs `metrics:read`; with
//! `METRICS_BIND` set it is served on that address alone, without authentication (a scrape network), and the
//! API's router has no `/metrics`.

use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use super::{
    extract::{MetricsRead, Require},
    routes::Routes,
};
use crate::{state::AppState, telemetry::Snapshot};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The API's `/metrics`, unless `METRICS_BIND` moves it to its own listener.
pub fn router(state: &AppState) -> Routes {
    if state.config.metrics_bind.is_some() {
        return Routes::new();
    }
    Routes::new().get("/metrics", read_metrics)
}

/// The router of `METRICS_BIND`'s listener: `/metrics` only, open.
pub fn open_router(state: AppState) -> Router {
    Routes::new()
        .get("/metrics", read_metrics_open)
        .into_router()
        .with_state(state)
}

async fn read_metrics(state: State<AppState>, _reader: Require<MetricsRead>) -> Response {
    read_metrics_open(state).await
}

async fn read_metrics_open(State(state): State<AppState>) -> Response {
    let upstreams: Vec<(String, bool)> = state
        .upstreams
        .health()
        .into_iter()
        .map(|h| (h.server_name, h.status == "up"))
        .collect();
    let text = state.metrics.render(&Snapshot {
        audit_dropped: state.audit.dropped(),
        tool_log_dropped: state.tool_log.dropped(),
        request_log_dropped: state.analytics.dropped(),
        upstreams: &upstreams,
    });
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
