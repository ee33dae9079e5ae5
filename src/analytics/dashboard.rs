//! The dashboards (`analytics:read`): every figure over a window is read from the rollups (minute buckets up
//! to six hours, hour buckets beyond), so a dashboard costs the same over a day of data or a year of it. The
//! window is rounded out to whole buckets. Percentiles are the upper bound of the latency bucket they fall in.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    Analytics,
    rollup::{HOUR_MS, RequestTotals, bucket_start, resolution_for},
    store::{self, ServerError, SystemSample, Window},
};
use crate::telemetry::tally::EventKind;

/// The longest window a dashboard reads: about 400 days, as long as hour rollups are kept.
pub const MAX_HOURS: i64 = 400 * 24;
/// Recent server errors listed by the error analysis.
const RECENT_ERRORS: i64 = 20;

#[derive(Debug, Serialize)]
pub struct WindowView {
    pub hours: i64,
    pub from: i64,
    pub to: i64,
    /// `minute` or `hour`: the buckets the figures were summed from.
    pub resolution: &'static str,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Latency {
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    fn of(t: &RequestTotals) -> Latency {
        let any = t.requests > 0;
        Latency {
            avg_ms: any.then(|| t.total_ms / t.requests as f64),
            p50_ms: t.quantile_ms(0.50),
            p95_ms: t.quantile_ms(0.95),
            p99_ms: t.quantile_ms(0.99),
            max_ms: any.then_some(t.max_ms),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KeyMetrics {
    pub window: WindowView,
    pub total_requests: i64,
    /// Answers with status 500 and above.
    pub server_errors: i64,
    /// Answers with status 400 to 499.
    pub client_errors: i64,
    /// Server errors per request (0 with no requests).
    pub error_rate: f64,
    pub requests_per_minute: f64,
    pub latency: Latency,
    pub active_users: i64,
    pub page_views: i64,
    pub tool_calls: i64,
    pub llm_tokens: i64,
    pub sms: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
}

#[derive(Debug, Serialize)]
pub struct RouteStats {
    pub method: String,
    pub route: String,
    pub requests: i64,
    pub server_errors: i64,
    pub client_errors: i64,
    pub error_rate: f64,
    pub latency: Latency,
}

#[derive(Debug, Serialize)]
pub struct SeriesPoint {
    pub bucket_start: i64,
    pub requests: i64,
    pub server_errors: i64,
}

#[derive(Debug, Serialize)]
pub struct TopPage {
    pub path: String,
    pub views: i64,
    pub avg_load_time_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct StatusCount {
    pub status_code: u16,
    pub count: i64,
}

#[derive(Debug, Serialize)]
pub struct RouteError {
    pub method: String,
    pub route: String,
    pub status_code: u16,
    pub count: i64,
}

#[derive(Debug, Serialize)]
pub struct ErrorAnalysis {
    pub window: WindowView,
    pub total_requests: i64,
    pub server_errors: i64,
    pub client_errors: i64,
    pub error_rate: f64,
    /// Every status of 400 and above, most frequent first.
    pub by_status: Vec<StatusCount>,
    pub by_route: Vec<RouteError>,
    /// The latest server errors with their public error code.
    pub recent: Vec<ServerError>,
}

#[derive(Debug, Serialize)]
pub struct ToolCallCount {
    pub tool: String,
    pub status: String,
    pub calls: i64,
}

#[derive(Debug, Serialize)]
pub struct TokenUse {
    pub user_id: String,
    pub model: String,
    pub requests: i64,
    pub tokens: i64,
}

#[derive(Debug, Serialize)]
pub struct SmsCount {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Serialize)]
pub struct Events {
    pub window: WindowView,
    pub tool_calls: Vec<ToolCallCount>,
    pub llm_tokens: Vec<TokenUse>,
    pub sms: Vec<SmsCount>,
}

/// What the caller knows live of the process, beside what analytics stores.
#[derive(Debug, Serialize)]
pub struct Live {
    pub version: &'static str,
    pub mcp_servers: Vec<ServerStatus>,
    pub queue_drops: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct SystemOverview {
    pub uptime_seconds: u64,
    #[serde(flatten)]
    pub live: Live,
    pub database: &'static str,
    pub system: SystemSample,
    /// The last hour's figures.
    pub last_hour: KeyMetrics,
    /// Samples of the last hour, newest first, from every instance.
    pub history: Vec<SystemSample>,
}

#[derive(Debug, Serialize)]
pub struct DbStatus {
    pub database: &'static str,
    pub reachable: bool,
    pub latency_ms: f64,
    pub pool_size: u32,
    pub pool_idle: usize,
    pub request_log_queue: usize,
    pub request_log_dropped: u64,
    /// Raw rows not written because they were over ANALYTICS_ROWS_PER_SECOND (still counted in the rollups).
    pub request_log_over_budget: u64,
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Analytics {
    /// The window of the last `hours` hours, at the resolution it is read at.
    pub fn window(&self, hours: i64) -> (Window, WindowView) {
        let hours = hours.clamp(1, MAX_HOURS);
        let to = self.clock.now_ms();
        let from = to - hours * HOUR_MS;
        let resolution = resolution_for(hours * HOUR_MS);
        (
            Window {
                resolution,
                from: bucket_start(from, resolution),
                to: to + 1,
            },
            WindowView {
                hours,
                from,
                to,
                resolution: if resolution == HOUR_MS {
                    "hour"
                } else {
                    "minute"
                },
            },
        )
    }

    pub async fn key_metrics(&self, hours: i64) -> sqlx::Result<KeyMetrics> {
        let (w, view) = self.window(hours);
        let rows = store::request_totals(&self.db, w).await?;
        let mut all = RequestTotals::default();
        let (mut server_errors, mut client_errors) = (0, 0);
        for ((_, _, status), t) in &rows {
            all.add(t);
            match status {
                500.. => server_errors += t.requests,
                400..500 => client_errors += t.requests,
                _ => {}
            }
        }
        let events = store::event_totals(&self.db, w).await?;
        let sum = |kind: EventKind, amount: bool| {
            events
                .iter()
                .filter(|e| e.0 == kind.as_str())
                .map(|e| if amount { e.4 } else { e.3 })
                .sum()
        };
        Ok(KeyMetrics {
            total_requests: all.requests,
            server_errors,
            client_errors,
            error_rate: rate(server_errors, all.requests),
            requests_per_minute: all.requests as f64 / (view.hours * 60) as f64,
            latency: Latency::of(&all),
            active_users: store::active_users(&self.db, w).await?,
            page_views: store::page_view_count(&self.db, w).await?,
            tool_calls: sum(EventKind::ToolCall, false),
            llm_tokens: sum(EventKind::Llm, true),
            sms: sum(EventKind::Sms, false),
            request_bytes: all.request_bytes,
            response_bytes: all.response_bytes,
            window: view,
        })
    }

    /// Per route: requests, errors and latency percentiles, busiest first.
    pub async fn routes(&self, hours: i64) -> sqlx::Result<(WindowView, Vec<RouteStats>)> {
        let (w, view) = self.window(hours);
        let mut by_route: BTreeMap<(String, String), (RequestTotals, i64, i64)> = BTreeMap::new();
        for ((method, route, status), t) in store::request_totals(&self.db, w).await? {
            let entry = by_route.entry((method, route)).or_default();
            entry.0.add(&t);
            match status {
                500.. => entry.1 += t.requests,
                400..500 => entry.2 += t.requests,
                _ => {}
            }
        }
        let mut routes: Vec<RouteStats> = by_route
            .into_iter()
            .map(|((method, route), (t, server, client))| RouteStats {
                method,
                route,
                requests: t.requests,
                server_errors: server,
                client_errors: client,
                error_rate: rate(server, t.requests),
                latency: Latency::of(&t),
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.requests));
        Ok((view, routes))
    }

    /// Requests and server errors per bucket (per minute up to six hours, per hour beyond).
    pub async fn series(&self, hours: i64) -> sqlx::Result<(WindowView, Vec<SeriesPoint>)> {
        let (w, view) = self.window(hours);
        let points = store::request_series(&self.db, w)
            .await?
            .into_iter()
            .map(|(bucket_start, requests, server_errors)| SeriesPoint {
                bucket_start,
                requests,
                server_errors,
            })
            .collect();
        Ok((view, points))
    }

    pub async fn top_pages(
        &self,
        hours: i64,
        limit: i64,
    ) -> sqlx::Result<(WindowView, Vec<TopPage>)> {
        let (w, view) = self.window(hours);
        let pages = store::top_pages(&self.db, w, limit.clamp(1, 100))
            .await?
            .into_iter()
            .map(|(path, views, samples, total)| TopPage {
                path,
                views,
                avg_load_time_ms: (samples > 0).then(|| total / samples as f64),
            })
            .collect();
        Ok((view, pages))
    }

    pub async fn error_analysis(&self, hours: i64) -> sqlx::Result<ErrorAnalysis> {
        let (w, view) = self.window(hours);
        let rows = store::request_totals(&self.db, w).await?;
        let total: i64 = rows.iter().map(|(_, t)| t.requests).sum();
        let mut by_status: BTreeMap<u16, i64> = BTreeMap::new();
        let mut by_route = Vec::new();
        for ((method, route, status), t) in rows {
            if status >= 400 {
                *by_status.entry(status).or_default() += t.requests;
                by_route.push(RouteError {
                    method,
                    route,
                    status_code: status,
                    count: t.requests,
                });
            }
        }
        by_route.sort_by(|a, b| b.count.cmp(&a.count).then(a.route.cmp(&b.route)));
        let mut by_status: Vec<StatusCount> = by_status
            .into_iter()
            .map(|(status_code, count)| StatusCount { status_code, count })
            .collect();
        by_status.sort_by_key(|s| std::cmp::Reverse(s.count));
        let server_errors = by_status
            .iter()
            .filter(|s| s.status_code >= 500)
            .map(|s| s.count)
            .sum();
        let client_errors = by_status
            .iter()
            .filter(|s| s.status_code < 500)
            .map(|s| s.count)
            .sum();
        Ok(ErrorAnalysis {
            total_requests: total,
            server_errors,
            client_errors,
            error_rate: rate(server_errors, total),
            by_status,
            by_route,
            recent: store::recent_server_errors(&self.db, view.from, RECENT_ERRORS).await?,
            window: view,
        })
    }

    /// Tool calls per tool and status, LLM tokens per user and model, SMS per type and outcome.
    pub async fn events(&self, hours: i64) -> sqlx::Result<Events> {
        let (w, view) = self.window(hours);
        let mut events = Events {
            window: view,
            tool_calls: Vec::new(),
            llm_tokens: Vec::new(),
            sms: Vec::new(),
        };
        for (kind, subject, detail, count, amount) in store::event_totals(&self.db, w).await? {
            match kind.as_str() {
                "tool_call" => events.tool_calls.push(ToolCallCount {
                    tool: subject,
                    status: detail,
                    calls: count,
                }),
                "llm" => events.llm_tokens.push(TokenUse {
                    user_id: subject,
                    model: detail,
                    requests: count,
                    tokens: amount,
                }),
                "sms" => events.sms.push(SmsCount {
                    kind: subject,
                    status: detail,
                    count,
                }),
                _ => {}
            }
        }
        Ok(events)
    }

    pub async fn system_overview(&self, live: Live) -> sqlx::Result<SystemOverview> {
        let now = self.clock.now_ms();
        Ok(SystemOverview {
            uptime_seconds: self.started.elapsed().as_secs(),
            live,
            database: self.backend_name(),
            system: self.sample_system(),
            last_hour: self.key_metrics(1).await?,
            history: store::system_samples(&self.db, now - HOUR_MS, 120).await?,
        })
    }

    pub async fn db_status(&self) -> DbStatus {
        let started = std::time::Instant::now();
        let reachable = self.db.is_ready().await;
        DbStatus {
            database: self.backend_name(),
            reachable,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            pool_size: self.db.pool.size(),
            pool_idle: self.db.pool.num_idle(),
            request_log_queue: self.requests.as_ref().map_or(0, |w| w.queued()),
            request_log_dropped: self.dropped(),
            request_log_over_budget: self.over_budget(),
        }
    }

    fn backend_name(&self) -> &'static str {
        match self.db.backend {
            crate::store::Backend::Sqlite => "sqlite",
            crate::store::Backend::Postgres => "postgresql",
        }
    }
}
