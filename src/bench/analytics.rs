//! `warden bench-analytics`: fills a database with generated request rows (through the same writer path as the
//! server: raw rows and their rollups) and times each dashboard over windows from an hour to a month. Used by
//! `bench/analytics.sh`; never by the server or CI.

use std::{sync::Arc, time::Instant};

use crate::{
    analytics::{Analytics, RequestRow, Settings, store},
    clock::{Clock, SystemClock},
    store::Db,
    telemetry::tally::Tally,
};

const ROUTES: [&str; 24] = [
    "/api/status",
    "/api/me",
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
    "/chat/message",
    "/chat/sessions",
    "/chat/session/new",
    "/chat/session/{id}",
    "/chat/session/{id}/history",
    "/api/servers",
    "/api/servers/{id}/tools",
    "/api/servers/{id}/tools/{tool}/execute",
    "/tools",
    "/api/tool-calls",
    "/api/users",
    "/api/users/{id}",
    "/api/audit",
    "/api/sms/send-sms",
    "/api/analytics/log-page-view",
    "/api/analytics/key-metrics",
    "/mcp",
    "/health",
    "unmatched",
];
const USERS: u64 = 200;
/// Rows generated per writer batch (one transaction, as the server writes them).
const BATCH: usize = 5_000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// A small deterministic generator (xorshift64*), so every run makes the same rows.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub async fn run(database_url: &str, rows: u64, days: i64) -> anyhow::Result<()> {
    let db = Db::connect(database_url).await?;
    db.migrate().await?;
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_logs")
        .fetch_one(&db.pool)
        .await?;
    let now = SystemClock.now_ms();
    if existing >= rows as i64 {
        println!("{existing} request rows already there; not generating");
    } else {
        generate(&db, rows - existing as u64, days, now).await?;
        // What autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) would do for a server in use.
        sqlx::query("ANALYZE").execute(db.writer()).await?;
    }
    let clock = Arc::new(SystemClock);
    let analytics = Analytics::start(
        db.clone(),
        clock.clone(),
        Tally::new(clock),
        Settings {
            enabled: false,
            queue: 1,
            request_log_days: 3650,
            page_view_days: 3650,
            metrics_days: 3650,
            rows_per_second: 1,
            page_views_per_minute: 1,
        },
    );
    println!("| dashboard | window | median ms | max ms |");
    println!("|---|---|---|---|");
    for hours in [1, 6, 24, 24 * 7, 24 * days] {
        time("key-metrics", hours, || async {
            analytics.key_metrics(hours).await.map(|_| ())
        })
        .await?;
        time("routes", hours, || async {
            analytics.routes(hours).await.map(|_| ())
        })
        .await?;
        time("timeseries", hours, || async {
            analytics.series(hours).await.map(|_| ())
        })
        .await?;
        time("error-analysis", hours, || async {
            analytics.error_analysis(hours).await.map(|_| ())
        })
        .await?;
        time("events", hours, || async {
            analytics.events(hours).await.map(|_| ())
        })
        .await?;
    }
    db.close().await;
    Ok(())
}

/// Runs `query` 7 times and prints the median and the slowest.
async fn time<F, Fut>(name: &str, hours: i64, query: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<()>>,
{
    let mut ms = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        query().await?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "| {name} | {hours} h | {:.1} | {:.1} |",
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
    Ok(())
}

/// `count` rows spread evenly over the `days` before `now`, oldest first, written batch by batch.
async fn generate(db: &Db, count: u64, days: i64, now: i64) -> anyhow::Result<()> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = now - days * DAY_MS;
    let step = (days * DAY_MS) as f64 / count as f64;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..count {
        let status = match rng.below(100) {
            0..90 => 200,
            90..96 => 404,
            96..98 => 401,
            _ => 500,
        };
        // Mostly fast, with a long tail.
        let ms = match rng.below(100) {
            0..80 => rng.below(5_000) as f64 / 1000.0,
            80..98 => rng.below(200_000) as f64 / 1000.0,
            _ => rng.below(5_000_000) as f64 / 1000.0,
        };
        let route = ROUTES[rng.below(ROUTES.len() as u64) as usize];
        batch.push(RequestRow {
            method: if route.starts_with("/api/status") {
                "GET"
            } else {
                "POST"
            },
            route,
            path: route.to_string(),
            status,
            response_time_ms: ms,
            request_size: Some(120),
            response_size: Some(800),
            ip: std::net::IpAddr::from([192, 0, 2, (i % 250) as u8]),
            user_agent: Some("bench".into()),
            referer: None,
            user_id: (rng.below(10) < 7).then(|| format!("user-{}", rng.below(USERS))),
            error_message: (status >= 500).then_some("internal"),
            created_at: start + (i as f64 * step) as i64,
        });
        if batch.len() == BATCH || i + 1 == count {
            store::insert_request_logs(db, &batch).await?;
            store::write_request_rollups(db, &crate::analytics::rollup::RequestFold::of(&batch))
                .await?;
            batch.clear();
            if (i + 1) % 1_000_000 < BATCH as u64 {
                println!(
                    "generated {} rows in {:.0} s",
                    i + 1,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(())
}
