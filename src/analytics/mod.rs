//! Analytics (seed 004): one row per answered request (`request_logs`) and the page views browsers report
//! (`page_views`). Both go through a bounded channel to a background writer ([`BatchWriter`]): recording never
//! waits on the database, and a full channel drops the row and counts it (`/metrics`,
//! `warden_background_dropped_total{queue="request_log"}`). Old rows are purged in small batches by
//! [`Analytics::purge_once`], which the app's background loop calls.
//!
//! The dashboards never read those rows: every request is also folded in memory into minute and hour rollups
//! ([`rollup`]), which are added to the stored ones every few seconds ([`Analytics::write_rollups`]), as are the
//! events other services count in the [`Tally`]. So the rollups count every request, while raw rows are kept
//! within a budget (`rows_per_second`, `ANALYTICS_ROWS_PER_SECOND`): under a flood the writer would otherwise
//! take a core from the requests it logs. Rows over the budget are counted ([`Analytics::over_budget`]). The process samples its own figures once a minute ([`Analytics::sample`]).
//!
//! What a row never holds: a query string (it can carry tokens), a header other than a cut user agent and a
//! referer without its query, an address from a `X-Forwarded-For` the app does not trust (the caller passes the
//! address the edge computed), or internal error text (only the public error code of a 5xx).

pub mod dashboard;
pub mod rollup;
pub mod store;
mod system;

use std::{
    net::IpAddr,
    sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering},
};

use parking_lot::Mutex;

use crate::{
    clock::SharedClock,
    limits::{AddressLimit, SharedCounter},
    store::{BatchWriter, Db},
    telemetry::tally::Tally,
};

const BATCH: usize = 256;
/// A page view channel: browsers report at most one per navigation, so a smaller queue than the request log.
const PAGE_VIEW_QUEUE: usize = 1024;
/// Longest path kept, in characters; the rest is cut.
pub const MAX_PATH: usize = 512;
pub const MAX_TITLE: usize = 256;
const MAX_USER_AGENT: usize = 256;
const MAX_REFERER: usize = 512;
/// Purge statements one [`Analytics::purge_once`] runs per table at most: a tick stays short, and a backlog is
/// worked off over the following ticks.
const PURGE_BATCHES_PER_TICK: usize = 10;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// How long rollups are kept: minute buckets two weeks, hour buckets about 400 days (the longest dashboard
/// window); both far longer than the raw rows.
const MINUTE_ROLLUP_DAYS: i64 = 14;
const HOUR_ROLLUP_DAYS: i64 = 400;

/// What the analytics service is told at start-up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Off: nothing is queued or written (page views are still answered, and not stored).
    pub enabled: bool,
    pub queue: usize,
    pub request_log_days: i64,
    pub page_view_days: i64,
    pub metrics_days: i64,
    /// Raw request rows kept per second at most (the rollups count every request).
    pub rows_per_second: u32,
    /// Page views one client address may report per minute.
    pub page_views_per_minute: u32,
}

/// One answered request, as the edge saw it.
#[derive(Debug)]
pub struct RequestRow {
    pub method: &'static str,
    pub route: &'static str,
    /// The path without its query, cut to [`MAX_PATH`] characters.
    pub path: String,
    pub status: u16,
    pub response_time_ms: f64,
    pub request_size: Option<i64>,
    pub response_size: Option<i64>,
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    pub user_id: Option<String>,
    /// The public error code of a 5xx.
    pub error_message: Option<&'static str>,
    pub created_at: i64,
}

impl RequestRow {
    /// Cuts the free-text fields to their limits and drops any query or fragment from the path and referer.
    pub fn tidy(mut self) -> RequestRow {
        self.path = without_query(&self.path, MAX_PATH);
        self.user_agent = self.user_agent.map(|u| cut(&u, MAX_USER_AGENT).to_string());
        self.referer = self.referer.map(|r| without_query(&r, MAX_REFERER));
        self
    }
}

/// A page view a browser reported, validated.
#[derive(Debug)]
pub struct PageView {
    pub path: String,
    pub title: Option<String>,
    pub load_time_ms: Option<f64>,
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    pub user_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PageViewError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("Too many page views from this address")]
    TooMany { retry_after_secs: u64 },
}

/// What a report says, before validation.
pub struct PageViewReport {
    pub path: String,
    pub title: Option<String>,
    pub load_time: Option<f64>,
    pub user_agent: Option<String>,
}

/// Rows deleted by one purge step.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub request_logs: u64,
    pub page_views: u64,
    pub system_metrics: u64,
    /// Rollup rows of every kind.
    pub rollups: u64,
}

/// The handle the edge and the page-view route record through; clones share the writers.
#[derive(Clone)]
pub struct Analytics {
    requests: Option<BatchWriter<RequestRow>>,
    page_views: Option<BatchWriter<PageView>>,
    db: Db,
    clock: SharedClock,
    settings: Settings,
    /// Page views per client address and minute.
    limiter: std::sync::Arc<AddressLimit>,
    tally: Tally,
    instance: std::sync::Arc<str>,
    cpu: std::sync::Arc<Mutex<system::CpuReading>>,
    started: std::time::Instant,
    live: std::sync::Arc<Mutex<rollup::RequestFold>>,
    budget: std::sync::Arc<RowBudget>,
    /// Held while the fold or the counted events are written: a `flush` waits for a write the upkeep task has
    /// begun (which took what was folded) and then finds those rows stored.
    writing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Raw rows admitted in the current second; lock-free (a race at a second's turn admits a row or two more).
#[derive(Default)]
struct RowBudget {
    second: AtomicI64,
    admitted: AtomicU32,
    over: AtomicU64,
}

impl RowBudget {
    fn admit(&self, now_ms: i64, per_second: u32) -> bool {
        let second = now_ms.div_euclid(1000);
        if self.second.load(Ordering::Relaxed) != second {
            self.second.store(second, Ordering::Relaxed);
            self.admitted.store(0, Ordering::Relaxed);
        }
        if self.admitted.fetch_add(1, Ordering::Relaxed) < per_second {
            true
        } else {
            self.over.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

impl Analytics {
    /// Starts the writer tasks (none when disabled).
    pub fn start(db: Db, clock: SharedClock, tally: Tally, settings: Settings) -> Analytics {
        let requests = settings.enabled.then(|| {
            let db = db.clone();
            BatchWriter::start("request_log", settings.queue, BATCH, move |rows| {
                let db = db.clone();
                async move {
                    if let Err(e) = store::insert_request_logs(&db, &rows).await {
                        tracing::error!(error = %e, count = rows.len(), "writing request logs failed");
                    }
                }
            })
        });
        let per_minute = settings.page_views_per_minute;
        let page_views = settings.enabled.then(|| {
            let db = db.clone();
            BatchWriter::start("page_view", PAGE_VIEW_QUEUE, BATCH, move |rows| {
                let db = db.clone();
                async move {
                    let fold = rollup::fold_page_views(&rows);
                    if let Err(e) = store::insert_page_views(&db, &rows, &fold).await {
                        tracing::error!(error = %e, count = rows.len(), "writing page views failed");
                    }
                }
            })
        });
        Analytics {
            requests,
            page_views,
            db,
            clock,
            settings,
            limiter: std::sync::Arc::new(AddressLimit::new("page_view", per_minute, 60_000, None)),
            tally,
            instance: system::instance_name().into(),
            cpu: std::sync::Arc::new(Mutex::new(system::CpuReading::now())),
            started: std::time::Instant::now(),
            live: Default::default(),
            writing: Default::default(),
            budget: Default::default(),
        }
    }

    /// Adds the events counted in the tally since the last call to the event rollups. When the write fails
    /// the counts go back into the tally for the next call.
    pub async fn write_tally(&self) -> sqlx::Result<()> {
        let _writing = self.writing.lock().await;
        let counts = self.tally.drain();
        if counts.is_empty() {
            return Ok(());
        }
        let written = store::add_event_rollups(&self.db, &counts).await;
        if written.is_err() {
            self.tally.restore(counts);
        }
        written
    }

    /// The process's figures now (CPU use since the previous reading).
    pub fn sample_system(&self) -> store::SystemSample {
        let cpu_percent = {
            let mut last = self.cpu.lock();
            let (percent, next) = last.percent_since();
            *last = next;
            percent
        };
        store::SystemSample {
            instance: self.instance.to_string(),
            cpu_percent,
            memory_bytes: system::resident_bytes(),
            open_files: system::open_files(),
            db_pool_size: i64::from(self.db.pool.size()),
            db_pool_idle: self.db.pool.num_idle() as i64,
            request_log_queue: self.requests.as_ref().map_or(0, |w| w.queued() as i64),
            created_at: self.clock.now_ms(),
        }
    }

    /// Stores one sample of the process's figures (the background loop calls this once a minute).
    pub async fn sample(&self) -> sqlx::Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        store::insert_system_sample(&self.db, &self.sample_system()).await
    }

    /// Whether requests are logged: the edge skips building rows when not.
    pub fn is_enabled(&self) -> bool {
        self.requests.is_some()
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Whether the next request's raw row is kept (within the row budget). The edge asks before it copies the
    /// row's text fields, and passes the answer to [`Analytics::record_request`].
    pub fn admit_row(&self) -> bool {
        self.is_enabled()
            && self
                .budget
                .admit(self.clock.now_ms(), self.settings.rows_per_second)
    }

    /// Folds one answered request into the rollups and, when `keep_row`, queues its raw row; never waits.
    pub fn record_request(&self, row: RequestRow, keep_row: bool) {
        let Some(w) = &self.requests else { return };
        self.live.lock().add(&row);
        if keep_row {
            w.push(row.tidy());
        }
    }

    /// Raw rows not kept because they were over the row budget.
    pub fn over_budget(&self) -> u64 {
        self.budget.over.load(Ordering::Relaxed)
    }

    /// Adds the requests folded since the last call to the stored rollups. When the write fails the fold goes
    /// back for the next call.
    pub async fn write_rollups(&self) -> sqlx::Result<()> {
        let _writing = self.writing.lock().await;
        let fold = std::mem::take(&mut *self.live.lock());
        if fold.is_empty() {
            return Ok(());
        }
        let written = store::write_request_rollups(&self.db, &fold).await;
        if written.is_err() {
            self.live.lock().merge(fold);
        }
        written
    }

    /// Counts page views per address in `shared` (across instances) while it answers.
    pub fn with_shared_limits(
        mut self,
        shared: Option<std::sync::Arc<SharedCounter>>,
    ) -> Analytics {
        self.limiter = std::sync::Arc::new(AddressLimit::new(
            "page_view",
            self.settings.page_views_per_minute,
            60_000,
            shared,
        ));
        self
    }

    /// Validates and queues one page view, within the per-address rate.
    pub async fn record_page_view(
        &self,
        ip: IpAddr,
        user_id: Option<String>,
        report: PageViewReport,
    ) -> Result<(), PageViewError> {
        if report.path.is_empty() || report.path.chars().count() > MAX_PATH {
            return Err(PageViewError::Invalid("path must be 1 to 512 characters"));
        }
        if report
            .title
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_TITLE)
        {
            return Err(PageViewError::Invalid(
                "title must be at most 256 characters",
            ));
        }
        if report.load_time.is_some_and(|t| !t.is_finite() || t < 0.0) {
            return Err(PageViewError::Invalid(
                "loadTime must be a non-negative number",
            ));
        }
        let now = self.clock.now_ms();
        self.limiter
            .check(ip, now)
            .await
            .map_err(|retry_after_secs| PageViewError::TooMany { retry_after_secs })?;
        if let Some(w) = &self.page_views {
            w.push(PageView {
                path: report.path,
                title: report.title,
                load_time_ms: report.load_time,
                ip,
                user_agent: report
                    .user_agent
                    .map(|u| cut(&u, MAX_USER_AGENT).to_string()),
                user_id,
                created_at: now,
            });
        }
        Ok(())
    }

    /// Waits until every row queued before this call is written.
    pub async fn flush(&self) {
        if let Some(w) = &self.requests {
            w.flush().await;
        }
        if let Some(w) = &self.page_views {
            w.flush().await;
        }
        if let Err(e) = self.write_rollups().await {
            tracing::warn!(error = %e, "writing request rollups failed");
        }
        if let Err(e) = self.write_tally().await {
            tracing::warn!(error = %e, "writing counted events failed");
        }
    }

    /// Request rows dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.requests.as_ref().map_or(0, BatchWriter::dropped)
    }

    /// Page views dropped because their queue was full.
    pub fn page_views_dropped(&self) -> u64 {
        self.page_views.as_ref().map_or(0, BatchWriter::dropped)
    }

    /// One retention step at `now_ms`: deletes rows past their window, at most a few batches per table.
    pub async fn purge_once(&self, now_ms: i64) -> sqlx::Result<Purged> {
        use store::{RollupTable, Table};
        let days_ago = |days: i64| now_ms - days * DAY_MS;
        let mut rollups = 0;
        for table in [
            RollupTable::Requests,
            RollupTable::ActiveUsers,
            RollupTable::PageViews,
            RollupTable::Events,
        ] {
            rollups += self
                .purge_table(
                    Table::Rollup(table, rollup::MINUTE_MS),
                    days_ago(MINUTE_ROLLUP_DAYS),
                )
                .await?;
            rollups += self
                .purge_table(
                    Table::Rollup(table, rollup::HOUR_MS),
                    days_ago(HOUR_ROLLUP_DAYS),
                )
                .await?;
        }
        Ok(Purged {
            request_logs: self
                .purge_table(Table::RequestLogs, days_ago(self.settings.request_log_days))
                .await?,
            page_views: self
                .purge_table(Table::PageViews, days_ago(self.settings.page_view_days))
                .await?,
            system_metrics: self
                .purge_table(Table::SystemMetrics, days_ago(self.settings.metrics_days))
                .await?,
            rollups,
        })
    }

    async fn purge_table(&self, table: store::Table, before_ms: i64) -> sqlx::Result<u64> {
        let mut total = 0;
        for _ in 0..PURGE_BATCHES_PER_TICK {
            let n = store::delete_older_than(&self.db, table, before_ms).await?;
            total += n;
            if n == 0
                || (n < store::PURGE_BATCH as u64 && !matches!(table, store::Table::Rollup(..)))
            {
                break;
            }
        }
        Ok(total)
    }
}

/// `text` cut to at most `max` characters, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// `url` without its query and fragment, cut to `max` characters.
fn without_query(url: &str, max: usize) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    cut(&url[..end], max).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_fragments_are_dropped_and_text_is_cut_on_a_character_boundary() {
        assert_eq!(without_query("/a/b?token=secret#x", 512), "/a/b");
        assert_eq!(without_query("https://h/p#frag", 512), "https://h/p");
        assert_eq!(cut("ééé", 2), "éé");
        assert_eq!(cut("ab", 5), "ab");
    }
}
