//! Analytics over HTTP. `POST /api/analytics/log-page-view` (seed 004): a page view a browser reports, signed
//! in or not, rate-limited per client address; a cookie-authenticated report carries CSRF like any other POST.
//! The dashboards (`analytics:read`): seed 004's `system-overview`, `db-status`, `key-metrics`, `top-pages`
//! and `error-analysis`, plus `routes` (latency percentiles and errors per route), `timeseries` (requests per
//! minute or hour) and `events` (tool calls, LLM tokens, SMS). Each takes `hours` (default 24).

use std::collections::BTreeMap;

use axum::{extract::State, http::header};
use serde::{Deserialize, Serialize};

use super::{
    error::{AppError, AppResult},
    extract::{AnalyticsRead, ClientIp, Json, MaybePrincipal, Query, Require},
    routes::Routes,
};
use crate::{
    analytics::{
        PageViewError, PageViewReport,
        dashboard::{Live, ServerStatus, WindowView},
    },
    state::AppState,
};

pub fn router() -> Routes {
    Routes::new()
        .post("/api/analytics/log-page-view", log_page_view)
        .get("/api/analytics/system-overview", system_overview)
        .get("/api/analytics/db-status", db_status)
        .get("/api/analytics/key-metrics", key_metrics)
        .get("/api/analytics/top-pages", top_pages)
        .get("/api/analytics/error-analysis", error_analysis)
        .get("/api/analytics/routes", routes)
        .get("/api/analytics/timeseries", timeseries)
        .get("/api/analytics/events", events)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageViewBody {
    path: String,
    title: Option<String>,
    #[serde(rename = "loadTime")]
    load_time: Option<f64>,
}

#[derive(Serialize)]
struct Done {
    success: bool,
}

async fn log_page_view(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MaybePrincipal(caller): MaybePrincipal,
    headers: axum::http::HeaderMap,
    Json(body): Json<PageViewBody>,
) -> AppResult<axum::Json<Done>> {
    let report = PageViewReport {
        path: body.path,
        title: body.title,
        load_time: body.load_time,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let user_id = caller.map(|p| p.account.id.to_string());
    state
        .analytics
        .record_page_view(ip, user_id, report)
        .await
        .map_err(|e| match e {
            PageViewError::Invalid(m) => AppError::Unprocessable(m.into()),
            PageViewError::TooMany { retry_after_secs } => {
                AppError::TooManyRequests { retry_after_secs }
            }
        })?;
    Ok(axum::Json(Done { success: true }))
}

/// Every dashboard answers `{success: true, data}`, as seed 004's did.
#[derive(Serialize)]
struct Dashboard<T> {
    success: bool,
    data: T,
}

type DashboardReply<T> = AppResult<axum::Json<Dashboard<T>>>;

fn reply<T>(data: T) -> DashboardReply<T> {
    Ok(axum::Json(Dashboard {
        success: true,
        data,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    hours: Option<i64>,
    limit: Option<i64>,
}

impl WindowQuery {
    fn hours(&self) -> AppResult<i64> {
        match self.hours {
            None => Ok(24),
            Some(h) if (1..=crate::analytics::dashboard::MAX_HOURS).contains(&h) => Ok(h),
            Some(_) => Err(AppError::BadRequest(format!(
                "hours must be 1 to {}",
                crate::analytics::dashboard::MAX_HOURS
            ))),
        }
    }
}

/// A list with the window it covers.
#[derive(Serialize)]
struct Windowed<T> {
    window: WindowView,
    #[serde(flatten)]
    items: T,
}

async fn system_overview(
    State(state): State<AppState>,
    _reader: Require<AnalyticsRead>,
) -> DashboardReply<crate::analytics::dashboard::SystemOverview> {
    let live = Live {
        version: env!("CARGO_PKG_VERSION"),
        mcp_servers: state
            .upstreams
            .health()
            .into_iter()
            .map(|h| ServerStatus {
                name: h.server_name,
                status: h.status,
            })
            .collect(),
        queue_drops: BTreeMap::from([
            ("audit", state.audit.dropped()),
            ("tool_log", state.tool_log.dropped()),
            ("request_log", state.analytics.dropped()),
            ("page_view", state.analytics.page_views_dropped()),
        ]),
    };
    reply(state.analytics.system_overview(live).await?)
}

async fn db_status(
    State(state): State<AppState>,
    _reader: Require<AnalyticsRead>,
) -> DashboardReply<crate::analytics::dashboard::DbStatus> {
    reply(state.analytics.db_status().await)
}

async fn key_metrics(
    State(state): State<AppState>,
    _reader: Require<AnalyticsRead>,
    Query(q): Query<WindowQuery>,
) -> DashboardReply<crate::analytics::dashboard::KeyMetrics> {
    reply(state.analytics.key_metrics(q.hours()?).await?)
}

#[derive(Serialize)]
struct Pages {
    pages: Vec<crate::analytics::dashboard::TopPage>,
}

async fn top_pages(
    State(state): State<AppState>,
    _reader: Require<AnalyticsRead>,
    Query(q): Query<WindowQuery>,
) -> DashboardReply<Windowed<Pages>> {
    let (window, pages) = state
        .analytics
        .top_pages(q.hours()?, q.limit.unwrap_or(10))
        .await?;
    reply(Windowed {
        window,
        items: Pages { pages },
    })
}

async fn error_analysis(
    State(state): State<AppState>,
    _reader: Require<AnalyticsRead>,
    Query(q): Query<WindowQuery>,
) -> DashboardReply<crate::analytics::dashboard::ErrorAnalysis> {
    reply(state.analytics.error_analysis(q.hours()?).await?)
}

#[derive(Serialize)]
struct RouteList {
    routes: Vec<crate::analytics::dashboard::RouteStats>,
}

async fn routes(
    State(state): State<AppState>,
    _reader: Require<AnalyticsRead>,
    Query(q): Query<WindowQuery>,
) -> DashboardReply<Windowed<RouteList>> {
    let (window, routes) = state.analytics.routes(q.hours()?).await?;
    reply(Windowed {
        window,
        items: RouteList { routes },
    })
}

#[derive(Serialize)]
struct Series {
    points: Vec<crate::analytics::dashboard::SeriesPoint>,
}

async fn timeseries(
    State(state): State<AppState>,
    _reader: Require<AnalyticsRead>,
    Query(q): Query<WindowQuery>,
) -> DashboardReply<Windowed<Series>> {
    let (window, points) = state.analytics.series(q.hours()?).await?;
    reply(Windowed {
        window,
        items: Series { points },
    })
}

async fn events(
    State(state): State<AppState>,
    _reader: Require<AnalyticsRead>,
    Query(q): Query<WindowQuery>,
) -> DashboardReply<crate::analytics::dashboard::Events> {
    reply(state.analytics.events(q.hours()?).await?)
}
