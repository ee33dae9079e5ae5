//! Prometheus metrics (`GET /metrics`): the recorder behind the `metrics` macros, the series names, and the scrape.
//!
//! Services count with the `metrics` crate's macros (`counter!`, `histogram!`), which cost an atomic add once
//! the series exists; nothing here touches the database or takes a lock across an await. Values that are state
//! rather than events (queue drops, upstream health) are read at scrape time from the services that own them;
//! the active-session gauge is sampled in the background (`app`), because counting sessions is a query.
//!
//! The recorder is process-wide (the `metrics` crate has one global recorder): the first [`Metrics::install`]
//! installs it and later ones (a second app in one process, as in tests) share it.
//!
//! Labels are bounded: a route is its template (`/api/users/{id}`), never the raw path; a tool is a catalog
//! name; a server is a configured upstream.

use std::{cell::RefCell, collections::HashMap, sync::OnceLock};

use metrics::{Counter, Histogram};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// `warden_http_requests_total{method, route, status, class}`.
pub const HTTP_REQUESTS: &str = "warden_http_requests_total";
/// `warden_http_request_duration_seconds{method, route}` (histogram).
pub const HTTP_DURATION: &str = "warden_http_request_duration_seconds";
/// Successful logins (password accepted and, where due, the second factor).
pub const LOGINS: &str = "warden_logins_total";
/// Refused logins by `reason`: `failure`, `locked`, `rate_limited`.
pub const LOGIN_FAILURES: &str = "warden_login_failures_total";
/// Login sessions neither revoked nor expired, sampled periodically.
pub const SESSIONS_ACTIVE: &str = "warden_sessions_active";
/// Tool calls by `tool` and `status`.
pub const TOOL_CALLS: &str = "warden_tool_calls_total";
/// LLM request latency by `provider`, `model` and `outcome` (`ok`, `error`) (histogram).
pub const LLM_DURATION: &str = "warden_llm_request_duration_seconds";
/// LLM tokens by `provider`, `model` and `kind` (`prompt`, `completion`).
pub const LLM_TOKENS: &str = "warden_llm_tokens_total";
/// 1 when an upstream MCP server is up, else 0, by `server`.
pub const UPSTREAM_UP: &str = "warden_mcp_upstream_up";
/// `tools/call` requests that `/mcp` answered on its direct path (the rest go through rmcp's service).
pub const MCP_DIRECT_CALLS: &str = "warden_mcp_direct_calls_total";
/// Items a background writer dropped because its queue was full, by `queue` (`audit`, `tool_log`, `request_log`).
pub const QUEUE_DROPPED: &str = "warden_background_dropped_total";
/// Provider calls of the SMS service by kind (sms, message, phone_id, risk, ...) and outcome (ok, failed, refused).
pub const SMS_CALLS: &str = "warden_sms_calls_total";

pub mod tally;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const LLM_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// The process's recorder; see the module docs for why it is shared.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The scrape side of the recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

/// State read at scrape time from the services that own it.
pub struct Snapshot<'a> {
    pub audit_dropped: u64,
    pub tool_log_dropped: u64,
    pub request_log_dropped: u64,
    /// (server name, up).
    pub upstreams: &'a [(String, bool)],
}

impl Metrics {
    /// Installs the process-wide recorder, or returns the one installed already.
    pub fn install() -> anyhow::Result<Metrics> {
        if let Some(handle) = HANDLE.get() {
            return Ok(Metrics {
                handle: handle.clone(),
            });
        }
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(LLM_DURATION.into()), LLM_BUCKETS)?
            .build_recorder();
        let handle = recorder.handle();
        // Two apps starting at once in one process: the loser keeps the winner's recorder.
        if HANDLE.set(handle.clone()).is_ok() {
            metrics::set_global_recorder(recorder)
                .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
            describe();
        }
        Ok(Metrics {
            handle: HANDLE.get().cloned().unwrap_or(handle),
        })
    }

    /// Folds the histogram samples recorded since the last call into their buckets. The recorder keeps raw
    /// samples until then, so this must run periodically (`app` does, every 5 s) even when nobody scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of every series, with `snapshot`'s state written in first.
    pub fn render(&self, snapshot: &Snapshot<'_>) -> String {
        metrics::counter!(QUEUE_DROPPED, "queue" => "audit").absolute(snapshot.audit_dropped);
        metrics::counter!(QUEUE_DROPPED, "queue" => "tool_log").absolute(snapshot.tool_log_dropped);
        metrics::counter!(QUEUE_DROPPED, "queue" => "request_log")
            .absolute(snapshot.request_log_dropped);
        for (server, up) in snapshot.upstreams {
            metrics::gauge!(UPSTREAM_UP, "server" => server.clone()).set(if *up {
                1.0
            } else {
                0.0
            });
        }
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Records one answered HTTP request. `route` is the matched template (or `unmatched`).
pub fn record_request(method: &'static str, route: &'static str, status: u16, seconds: f64) {
    let series = || {
        let requests = metrics::counter!(
            HTTP_REQUESTS,
            "method" => method,
            "route" => route,
            "status" => status_label(status),
            "class" => class_label(status),
        );
        let duration = metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route);
        (requests, duration)
    };
    // Before the recorder is installed a handle counts nowhere, so none is kept.
    if HANDLE.get().is_none() {
        let (requests, duration) = series();
        requests.increment(1);
        duration.record(seconds);
        return;
    }
    REQUEST_SERIES.with_borrow_mut(|known| {
        let (requests, duration) = known.entry((method, route, status)).or_insert_with(series);
        requests.increment(1);
        duration.record(seconds);
    });
}

thread_local! {
    /// The request series' handles by (method, route, status), kept per thread: building a series' key (its label
    /// list) and finding it in the recorder's registry cost more than the count itself. Routes are templates and
    /// statuses few, so the map stays small.
    static REQUEST_SERIES: RefCell<HashMap<RequestSeries, (Counter, Histogram)>> =
        RefCell::new(HashMap::new());
}

/// A request series: method, route template, status.
type RequestSeries = (&'static str, &'static str, u16);

/// Records one login outcome, from its audit event name.
pub fn record_login(event: &str) {
    match event {
        "login.success" => metrics::counter!(LOGINS).increment(1),
        "login.failure" => metrics::counter!(LOGIN_FAILURES, "reason" => "failure").increment(1),
        "login.locked" => metrics::counter!(LOGIN_FAILURES, "reason" => "locked").increment(1),
        "login.rate_limited" => {
            metrics::counter!(LOGIN_FAILURES, "reason" => "rate_limited").increment(1)
        }
        _ => {}
    }
}

/// Sets the active-session gauge.
pub fn set_active_sessions(count: i64) {
    metrics::gauge!(SESSIONS_ACTIVE).set(count as f64);
}

/// Records one tool call.
pub fn record_tool_call(tool: &str, status: &'static str) {
    metrics::counter!(TOOL_CALLS, "tool" => tool.to_string(), "status" => status).increment(1);
}

/// Records one `tools/call` answered on `/mcp`'s direct path.
pub fn record_mcp_direct_call() {
    metrics::counter!(MCP_DIRECT_CALLS).increment(1);
}

/// Records one SMS-service call's outcome (`refused`: over a limit, before any provider call).
pub fn record_sms(kind: &'static str, outcome: &'static str) {
    metrics::counter!(SMS_CALLS, "kind" => kind, "outcome" => outcome).increment(1);
}

/// Records one LLM request: its outcome, latency and the tokens it used.
pub fn record_llm_request(
    provider: &str,
    model: &str,
    ok: bool,
    seconds: f64,
    prompt: u64,
    completion: u64,
) {
    let (provider, model) = (provider.to_string(), model.to_string());
    let outcome = if ok { "ok" } else { "error" };
    metrics::histogram!(LLM_DURATION, "provider" => provider.clone(), "model" => model.clone(), "outcome" => outcome)
        .record(seconds);
    metrics::counter!(LLM_TOKENS, "provider" => provider.clone(), "model" => model.clone(), "kind" => "prompt")
        .increment(prompt);
    metrics::counter!(LLM_TOKENS, "provider" => provider, "model" => model, "kind" => "completion")
        .increment(completion);
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by route template"
    );
    describe_counter!(LOGINS, "Successful logins");
    describe_counter!(LOGIN_FAILURES, "Refused logins by reason");
    describe_gauge!(
        SESSIONS_ACTIVE,
        "Login sessions neither revoked nor expired (sampled)"
    );
    describe_counter!(TOOL_CALLS, "Tool calls by tool and status");
    describe_counter!(SMS_CALLS, "SMS-service calls by kind and outcome");
    describe_histogram!(
        LLM_DURATION,
        Unit::Seconds,
        "LLM request latency by provider and model"
    );
    describe_counter!(LLM_TOKENS, "LLM tokens by provider, model and kind");
    describe_gauge!(UPSTREAM_UP, "1 when an upstream MCP server is up, else 0");
    describe_counter!(
        MCP_DIRECT_CALLS,
        "tools/call requests /mcp answered on its direct path, not through the MCP SDK's service"
    );
    describe_counter!(
        QUEUE_DROPPED,
        "Items background writers dropped because their queue was full"
    );
}

/// The status code as a label without formatting it per request: one string per code, made once.
fn status_label(status: u16) -> &'static str {
    static CODES: OnceLock<Vec<String>> = OnceLock::new();
    let codes = CODES.get_or_init(|| (100..600).map(|c| c.to_string()).collect());
    match status {
        100..600 => &codes[usize::from(status - 100)],
        _ => "other",
    }
}

fn class_label(status: u16) -> &'static str {
    match status {
        100..200 => "1xx",
        200..300 => "2xx",
        300..400 => "3xx",
        400..500 => "4xx",
        500..600 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_the_code_and_its_class() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(599), "599");
        assert_eq!(status_label(42), "other");
        assert_eq!(class_label(404), "4xx");
    }
}
