//! The SQL of the analytics tables: the writers' batch inserts (rows and the rollups they add to, in one
//! transaction), the dashboards' reads over rollups, and the retention purge.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, AssertSqlSafe, Row, any::AnyArguments, query::Query};

use super::{
    PageView, RequestRow,
    rollup::{
        HOUR_MS, LATENCY_BUCKETS, PageKey, PageTotals, RESOLUTIONS, RequestFold, RequestKey,
        RequestTotals, bucket_start,
    },
};
use crate::{
    store::{
        Backend, Db,
        multi_row::{bound_bytes, multi_row_insert, statements},
    },
    telemetry::tally::{Counted, EventKey},
};

/// Rows one purge statement deletes at most, so a purge never holds the writer for long.
pub const PURGE_BATCH: i64 = 1000;
const REQUEST_COLUMNS: &str = "id, method, route, path, status_code, response_time_ms, request_size, \
     response_size, ip, user_agent, referer, user_id, error_message, created_at";
const PAGE_VIEW_COLUMNS: &str =
    "id, path, title, load_time_ms, ip, user_agent, user_id, created_at";

/// Writes a batch of request rows, in one transaction.
pub async fn insert_request_logs(db: &Db, rows: &[RequestRow]) -> sqlx::Result<()> {
    let mut tx = db.writer().begin().await?;
    let size = |r: &RequestRow| {
        bound_bytes(
            7,
            &[
                Some(r.route),
                Some(&r.path),
                r.user_agent.as_deref(),
                r.referer.as_deref(),
                r.user_id.as_deref(),
                r.error_message,
            ],
        ) + 80
    };
    for chunk in statements(rows, size) {
        let sql = multi_row_insert(
            db.backend,
            "request_logs",
            REQUEST_COLUMNS,
            14,
            chunk.len(),
            "",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(r.method)
                .bind(r.route)
                .bind(r.path.as_str())
                .bind(i32::from(r.status))
                .bind(r.response_time_ms)
                .bind(r.request_size)
                .bind(r.response_size)
                .bind(r.ip.to_string())
                .bind(r.user_agent.as_deref())
                .bind(r.referer.as_deref())
                .bind(r.user_id.as_deref())
                .bind(r.error_message)
                .bind(r.created_at);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Adds folded request totals to the stored request and active-user rollups, in one transaction.
pub async fn write_request_rollups(db: &Db, fold: &RequestFold) -> sqlx::Result<()> {
    let mut tx = db.writer().begin().await?;
    add_request_rollups(&mut tx, db.backend, fold).await?;
    tx.commit().await
}

/// The table of `base` rollups at `resolution` (`request_rollups_minute`, `..._hour`).
fn rollup_table(base: &str, resolution: i64) -> String {
    let suffix = if resolution == HOUR_MS {
        "hour"
    } else {
        "minute"
    };
    format!("{base}_{suffix}")
}

/// ` ON CONFLICT (keys) DO UPDATE SET` adding each of `sums` to the stored value and keeping the larger of each
/// of `maxes`: rollups only ever grow, whichever instance or batch writes first.
fn add_on_conflict(table: &str, keys: &str, sums: &[&str], maxes: &[&str]) -> String {
    let sets: Vec<String> = sums
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .chain(maxes.iter().map(|c| {
            format!(
                "{c} = CASE WHEN excluded.{c} > {table}.{c} THEN excluded.{c} ELSE {table}.{c} END"
            )
        }))
        .collect();
    format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", sets.join(", "))
}

/// Adds folded request totals to the stored rollups.
async fn add_request_rollups(
    tx: &mut AnyConnection,
    backend: Backend,
    fold: &RequestFold,
) -> sqlx::Result<()> {
    let latency: Vec<String> = (0..LATENCY_BUCKETS)
        .map(|i| format!("lat_{i:02}"))
        .collect();
    let mut sums = vec!["requests", "total_ms", "request_bytes", "response_bytes"];
    sums.extend(latency.iter().map(String::as_str));
    let columns = format!(
        "bucket_start, method, route, status_code, requests, total_ms, max_ms, request_bytes, response_bytes, {}",
        latency.join(", ")
    );
    for resolution in RESOLUTIONS {
        let table = rollup_table("request_rollups", resolution);
        let upsert = add_on_conflict(
            &table,
            "bucket_start, method, route, status_code",
            &sums,
            &["max_ms"],
        );
        let requests: Vec<(&RequestKey, &RequestTotals)> = fold
            .requests
            .iter()
            .filter(|(k, _)| k.resolution == resolution)
            .collect();
        for chunk in statements(&requests, |(k, _)| bound_bytes(23, &[Some(k.route)])) {
            let sql = multi_row_insert(
                backend,
                &table,
                &columns,
                9 + LATENCY_BUCKETS,
                chunk.len(),
                &upsert,
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (k, t) in chunk {
                q = q
                    .bind(k.bucket_start)
                    .bind(k.method)
                    .bind(k.route)
                    .bind(i32::from(k.status))
                    .bind(t.requests)
                    .bind(t.total_ms)
                    .bind(t.max_ms)
                    .bind(t.request_bytes)
                    .bind(t.response_bytes);
                for count in t.latency {
                    q = q.bind(count);
                }
            }
            q.execute(&mut *tx).await?;
        }
        let table = rollup_table("active_user_rollups", resolution);
        let upsert = add_on_conflict(&table, "bucket_start, user_id", &["requests"], &[]);
        let users: Vec<_> = fold
            .users
            .iter()
            .filter(|(k, _)| k.resolution == resolution)
            .collect();
        for chunk in statements(&users, |(k, _)| bound_bytes(2, &[Some(&k.user_id)])) {
            let sql = multi_row_insert(
                backend,
                &table,
                "bucket_start, user_id, requests",
                3,
                chunk.len(),
                &upsert,
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (k, n) in chunk {
                q = q.bind(k.bucket_start).bind(k.user_id.as_str()).bind(**n);
            }
            q.execute(&mut *tx).await?;
        }
    }
    Ok(())
}

/// Writes a batch of page views and adds them to their rollups, in one transaction.
pub async fn insert_page_views(
    db: &Db,
    rows: &[PageView],
    fold: &HashMap<PageKey, PageTotals>,
) -> sqlx::Result<()> {
    let mut tx = db.writer().begin().await?;
    let size = |v: &PageView| {
        bound_bytes(
            2,
            &[
                Some(&v.path),
                v.title.as_deref(),
                v.user_agent.as_deref(),
                v.user_id.as_deref(),
            ],
        ) + 80
    };
    for chunk in statements(rows, size) {
        let sql = multi_row_insert(
            db.backend,
            "page_views",
            PAGE_VIEW_COLUMNS,
            8,
            chunk.len(),
            "",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for v in chunk {
            q = q
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(v.path.as_str())
                .bind(v.title.as_deref())
                .bind(v.load_time_ms)
                .bind(v.ip.to_string())
                .bind(v.user_agent.as_deref())
                .bind(v.user_id.as_deref())
                .bind(v.created_at);
        }
        q.execute(&mut *tx).await?;
    }
    for resolution in RESOLUTIONS {
        let table = rollup_table("page_view_rollups", resolution);
        let upsert = add_on_conflict(
            &table,
            "bucket_start, path",
            &["views", "load_samples", "total_load_ms"],
            &[],
        );
        let pages: Vec<_> = fold
            .iter()
            .filter(|(k, _)| k.resolution == resolution)
            .collect();
        for chunk in statements(&pages, |(k, _)| bound_bytes(4, &[Some(&k.path)])) {
            let sql = multi_row_insert(
                db.backend,
                &table,
                "bucket_start, path, views, load_samples, total_load_ms",
                5,
                chunk.len(),
                &upsert,
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (k, t) in chunk {
                q = q
                    .bind(k.bucket_start)
                    .bind(k.path.as_str())
                    .bind(t.views)
                    .bind(t.load_samples)
                    .bind(t.total_load_ms);
            }
            q.execute(&mut *tx).await?;
        }
    }
    tx.commit().await
}

/// Adds drained tally counts to the event rollups (each at minute and hour resolution), in one transaction.
pub async fn add_event_rollups(db: &Db, counts: &[(EventKey, Counted)]) -> sqlx::Result<()> {
    let mut tx = db.writer().begin().await?;
    for resolution in RESOLUTIONS {
        let mut folded: HashMap<(i64, &'static str, &str, &str), Counted> = HashMap::new();
        for (key, c) in counts {
            let e = folded
                .entry((
                    bucket_start(key.minute_start, resolution),
                    key.kind.as_str(),
                    key.subject.as_str(),
                    key.detail.as_str(),
                ))
                .or_default();
            e.events += c.events;
            e.amount += c.amount;
        }
        let rows: Vec<_> = folded.into_iter().collect();
        let table = rollup_table("event_rollups", resolution);
        let upsert = add_on_conflict(
            &table,
            "bucket_start, kind, subject, detail",
            &["events", "amount"],
            &[],
        );
        for chunk in statements(&rows, |((_, _, subject, detail), _)| {
            bound_bytes(3, &[Some(subject), Some(detail)]) + 20
        }) {
            let sql = multi_row_insert(
                db.backend,
                &table,
                "bucket_start, kind, subject, detail, events, amount",
                6,
                chunk.len(),
                &upsert,
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((start, kind, subject, detail), c) in chunk {
                q = q
                    .bind(*start)
                    .bind(*kind)
                    .bind(*subject)
                    .bind(*detail)
                    .bind(c.events)
                    .bind(c.amount);
            }
            q.execute(&mut *tx).await?;
        }
    }
    tx.commit().await
}

/// One sample of the process's own figures.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct SystemSample {
    pub instance: String,
    pub cpu_percent: f64,
    pub memory_bytes: i64,
    pub open_files: i64,
    pub db_pool_size: i64,
    pub db_pool_idle: i64,
    pub request_log_queue: i64,
    pub created_at: i64,
}

pub async fn insert_system_sample(db: &Db, s: &SystemSample) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO system_metrics (id, instance, cpu_percent, memory_bytes, open_files, db_pool_size, \
         db_pool_idle, request_log_queue, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(s.instance.as_str())
    .bind(s.cpu_percent)
    .bind(s.memory_bytes)
    .bind(s.open_files)
    .bind(s.db_pool_size)
    .bind(s.db_pool_idle)
    .bind(s.request_log_queue)
    .bind(s.created_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The latest samples since `from_ms`, newest first.
pub async fn system_samples(db: &Db, from_ms: i64, limit: i64) -> sqlx::Result<Vec<SystemSample>> {
    sqlx::query_as(
        "SELECT instance, cpu_percent, memory_bytes, open_files, db_pool_size, db_pool_idle, request_log_queue, \
         created_at FROM system_metrics WHERE created_at >= $1 ORDER BY created_at DESC LIMIT $2",
    )
    .bind(from_ms)
    .bind(limit)
    .fetch_all(&db.pool)
    .await
}

/// A window of rollup buckets: `resolution` wide, starting in `[from, to)`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub resolution: i64,
    pub from: i64,
    pub to: i64,
}

/// `sql` (made of constants and table names only) with the window's two parameters bound.
fn windowed(sql: String, w: Window) -> Query<'static, Any, AnyArguments> {
    sqlx::query(AssertSqlSafe(sql)).bind(w.from).bind(w.to)
}

const IN_WINDOW: &str = "bucket_start >= $1 AND bucket_start < $2";

impl Window {
    /// The window's table of `base` rollups.
    fn table(self, base: &str) -> String {
        rollup_table(base, self.resolution)
    }
}

/// Request totals per (method, route, status) over the window.
pub async fn request_totals(
    db: &Db,
    w: Window,
) -> sqlx::Result<Vec<((String, String, u16), RequestTotals)>> {
    let sums = (0..LATENCY_BUCKETS)
        .map(|i| format!(", CAST(SUM(lat_{i:02}) AS BIGINT)"))
        .collect::<String>();
    let t = w.table("request_rollups");
    let sql = format!(
        "SELECT method, route, status_code, CAST(SUM(requests) AS BIGINT), SUM(total_ms), MAX(max_ms), \
         CAST(SUM(request_bytes) AS BIGINT), CAST(SUM(response_bytes) AS BIGINT){sums} \
         FROM {t} WHERE {IN_WINDOW} GROUP BY method, route, status_code"
    );
    let rows = windowed(sql, w).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            let status: i32 = r.try_get(2)?;
            let mut t = RequestTotals {
                requests: r.try_get(3)?,
                total_ms: r.try_get(4)?,
                max_ms: r.try_get(5)?,
                request_bytes: r.try_get(6)?,
                response_bytes: r.try_get(7)?,
                latency: [0; LATENCY_BUCKETS],
            };
            for (i, count) in t.latency.iter_mut().enumerate() {
                *count = r.try_get(8 + i)?;
            }
            Ok((
                (
                    r.try_get(0)?,
                    r.try_get(1)?,
                    u16::try_from(status).unwrap_or(0),
                ),
                t,
            ))
        })
        .collect()
}

/// Requests and server errors per bucket over the window, oldest first.
pub async fn request_series(db: &Db, w: Window) -> sqlx::Result<Vec<(i64, i64, i64)>> {
    let t = w.table("request_rollups");
    let sql = format!(
        "SELECT bucket_start, CAST(SUM(requests) AS BIGINT), \
         CAST(SUM(CASE WHEN status_code >= 500 THEN requests ELSE 0 END) AS BIGINT) \
         FROM {t} WHERE {IN_WINDOW} GROUP BY bucket_start ORDER BY bucket_start"
    );
    let rows = windowed(sql, w).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Distinct signed-in users seen in the window.
pub async fn active_users(db: &Db, w: Window) -> sqlx::Result<i64> {
    let t = w.table("active_user_rollups");
    let sql = format!("SELECT COUNT(DISTINCT user_id) FROM {t} WHERE {IN_WINDOW}");
    windowed(sql, w).fetch_one(&db.pool).await?.try_get(0)
}

/// The most viewed paths in the window: (path, views, load samples, summed load time).
pub async fn top_pages(
    db: &Db,
    w: Window,
    limit: i64,
) -> sqlx::Result<Vec<(String, i64, i64, f64)>> {
    let t = w.table("page_view_rollups");
    let sql = format!(
        "SELECT path, CAST(SUM(views) AS BIGINT) AS v, CAST(SUM(load_samples) AS BIGINT), SUM(total_load_ms) \
         FROM {t} WHERE {IN_WINDOW} GROUP BY path ORDER BY v DESC, path LIMIT $3"
    );
    let rows = windowed(sql, w).bind(limit).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect()
}

/// Page views in the window.
pub async fn page_view_count(db: &Db, w: Window) -> sqlx::Result<i64> {
    let t = w.table("page_view_rollups");
    let sql = format!("SELECT CAST(COALESCE(SUM(views), 0) AS BIGINT) FROM {t} WHERE {IN_WINDOW}");
    windowed(sql, w).fetch_one(&db.pool).await?.try_get(0)
}

/// Counted events in the window: (kind, subject, detail, events, amount).
pub async fn event_totals(
    db: &Db,
    w: Window,
) -> sqlx::Result<Vec<(String, String, String, i64, i64)>> {
    let t = w.table("event_rollups");
    let sql = format!(
        "SELECT kind, subject, detail, CAST(SUM(events) AS BIGINT), CAST(SUM(amount) AS BIGINT) \
         FROM {t} WHERE {IN_WINDOW} GROUP BY kind, subject, detail ORDER BY kind, subject, detail"
    );
    let rows = windowed(sql, w).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}

/// One logged server error.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct ServerError {
    pub method: String,
    pub route: String,
    pub path: String,
    pub status_code: i32,
    pub error_message: Option<String>,
    pub created_at: i64,
}

/// The latest server errors (5xx) since `from_ms`, newest first (read through the partial index on errors).
pub async fn recent_server_errors(
    db: &Db,
    from_ms: i64,
    limit: i64,
) -> sqlx::Result<Vec<ServerError>> {
    sqlx::query_as(
        "SELECT method, route, path, status_code, error_message, created_at FROM request_logs \
         WHERE status_code >= 500 AND created_at >= $1 ORDER BY created_at DESC LIMIT $2",
    )
    .bind(from_ms)
    .bind(limit)
    .fetch_all(&db.pool)
    .await
}

/// Deletes up to [`PURGE_BATCH`] rows of `table` older than `before_ms`; returns how many went.
pub async fn delete_older_than(db: &Db, table: Table, before_ms: i64) -> sqlx::Result<u64> {
    let done = match table.rollup_resolution() {
        None => {
            let (name, key) = table.name_and_key();
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {name} WHERE {key} IN (SELECT {key} FROM {name} WHERE created_at < $1 LIMIT $2)"
            )))
            .bind(before_ms)
            .bind(PURGE_BATCH)
            .execute(db.writer())
            .await?
        }
        // Rollups have composite keys: whole buckets go, the oldest first, a few at a time.
        Some(resolution) => {
            let (name, _) = table.name_and_key();
            let name = rollup_table(name, resolution);
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {name} WHERE bucket_start IN (SELECT DISTINCT bucket_start \
                 FROM {name} WHERE bucket_start < $1 ORDER BY bucket_start LIMIT 10)"
            )))
            .bind(before_ms)
            .execute(db.writer())
            .await?
        }
    };
    Ok(done.rows_affected())
}

#[derive(Clone, Copy, Debug)]
pub enum Table {
    RequestLogs,
    PageViews,
    SystemMetrics,
    /// One rollup table at one resolution.
    Rollup(RollupTable, i64),
}

#[derive(Clone, Copy, Debug)]
pub enum RollupTable {
    Requests,
    ActiveUsers,
    PageViews,
    Events,
}

impl Table {
    fn name_and_key(self) -> (&'static str, &'static str) {
        match self {
            Table::RequestLogs => ("request_logs", "id"),
            Table::PageViews => ("page_views", "id"),
            Table::SystemMetrics => ("system_metrics", "id"),
            Table::Rollup(RollupTable::Requests, _) => ("request_rollups", ""),
            Table::Rollup(RollupTable::ActiveUsers, _) => ("active_user_rollups", ""),
            Table::Rollup(RollupTable::PageViews, _) => ("page_view_rollups", ""),
            Table::Rollup(RollupTable::Events, _) => ("event_rollups", ""),
        }
    }

    fn rollup_resolution(self) -> Option<i64> {
        match self {
            Table::Rollup(_, resolution) => Some(resolution),
            _ => None,
        }
    }
}
