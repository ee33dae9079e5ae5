//! A PostgreSQL server that is there but refuses work: connections terminated under load, a database that
//! does not accept connections or has been renamed away. Every such answer is a 503 with `Retry-After` (never a
//! 500), idempotent reads are retried once, and the app recovers without a restart.

use std::time::Duration;

use reqwest::Response;
use sqlx::{AnyPool, Connection, Executor};

use crate::helpers::{block_on_own_thread, postgres_available, prelude::*};

/// A PostgreSQL app with one conversation: the app, its database name, the admin's token and an admin pool.
async fn app_with_a_conversation() -> (TestApp, String, String, AnyPool) {
    let app = spawn_app(DbKind::Postgres).await;
    let db = app
        .pg_database_name()
        .expect("a PostgreSQL app")
        .to_string();
    let token = app.admin().await.access;
    new_session(&app, &token).await;
    let admin = admin_pool(&app).await;
    (app, db, token, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_every_database_connection_under_load_never_answers_500() {
    if !postgres_available().await {
        return;
    }
    // Arrange
    let (app, db, token, admin) = app_with_a_conversation().await;

    // Act 1: requests wait on a lock, so they are surely in flight when their connections are terminated.
    let mut locker = sqlx::AnyConnection::connect(&database_url(&app))
        .await
        .unwrap();
    locker.execute("BEGIN").await.unwrap();
    locker
        .execute("LOCK TABLE chat_sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (locker_pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&mut locker)
        .await
        .unwrap();
    let in_flight: Vec<_> = (0..6)
        .map(|i| {
            let (client, base, token) = (app.client.clone(), app.base.clone(), token.clone());
            tokio::spawn(async move {
                let r = if i % 2 == 0 {
                    client.get(format!("{base}/chat/sessions"))
                } else {
                    client
                        .post(format!("{base}/chat/session/new"))
                        .json(&json!({ "title": "in flight" }))
                };
                (i % 2 == 0, r.bearer_auth(token).send().await.unwrap())
            })
        })
        .collect();
    assert!(
        TestApp::eventually(|| async {
            let (waiting,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            )
            .bind(&db)
            .fetch_one(&admin)
            .await
            .unwrap();
            // The three reads each on a pool connection; the three writes queue behind one: the group-commit
            // writer's, which runs them in one transaction.
            waiting == 4
        })
        .await,
        "the requests never reached the lock"
    );
    // The timeout makes each call wait until the backend is gone, before the lock is released. The other
    // backends (idle pool connections, the background writers') go first: a retry that picked one of them up
    // before its turn would lose its connection too, a second failure this act does not mean to cause.
    sqlx::query(
        "SELECT pg_terminate_backend(pid, 5000) FROM (SELECT pid FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> $2 ORDER BY wait_event_type IS NOT DISTINCT FROM 'Lock') AS doomed",
    )
    .bind(&db)
    .bind(locker_pid)
    .execute(&admin)
    .await
    .unwrap();
    locker.execute("ROLLBACK").await.unwrap();
    let mut failed_writes = 0;
    for task in in_flight {
        let (is_read, r) = task.await.unwrap();
        if is_read {
            // The first attempt lost its connection; the one retry on a fresh connection answered.
            assert_eq!(r.status(), StatusCode::OK, "a read was not retried");
        } else if r.status() != StatusCode::OK {
            // The write running on the group writer's terminated connection fails; the ones still queued
            // behind it may run on a fresh connection once the lock is gone.
            assert_unavailable(r).await;
            failed_writes += 1;
        }
    }
    assert!(
        failed_writes >= 1,
        "no write was running when its connection was terminated"
    );

    // Act 2: a bounded loop of reads and writes while every connection is terminated five times.
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (client, base, token) = (app.client.clone(), app.base.clone(), token.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..50 {
                    let r = match (w + i) % 4 {
                        0 => client.get(format!("{base}/chat/sessions")),
                        1 => client.get(format!("{base}/api/users")),
                        2 => client.get(format!("{base}/api/tool-calls")),
                        _ => client
                            .post(format!("{base}/chat/session/new"))
                            .json(&json!({ "title": "under load" })),
                    };
                    answers.push(r.bearer_auth(&token).send().await.unwrap());
                }
                answers
            })
        })
        .collect();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        terminate_connections(&admin, &db).await;
    }
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.unwrap());
    }

    // Assert
    assert_eq!(answers.len(), 300);
    for r in answers {
        if r.status() != StatusCode::OK {
            assert_unavailable(r).await;
        }
    }
    // Recovered without a restart.
    assert_eq!(
        app.get_bearer("/chat/sessions", &token).await.status(),
        StatusCode::OK
    );
    new_session(&app, &token).await;
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusing_connections_answers_503_and_recovers_without_a_restart() {
    if !postgres_available().await {
        return;
    }
    // Arrange
    let (app, db, token, admin) = app_with_a_conversation().await;
    let guard = RestoreDatabase {
        admin_url: admin_url(&app),
        name: db.clone(),
        moved: format!("{db}_moved"),
    };

    // Act 1: the database does not accept connections (SQLSTATE 55000, FATAL at connect).
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false"
        )))
        .await
        .unwrap();
    terminate_connections(&admin, &db).await;

    // Assert 1
    assert_database_routes_unavailable(&app, &token).await;

    // Act 2: the database is renamed away (SQLSTATE 3D000).
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{db}\" RENAME TO \"{}\"",
            guard.moved
        )))
        .await
        .unwrap();

    // Assert 2
    assert_database_routes_unavailable(&app, &token).await;

    // Act 3: back under its name and accepting connections.
    restore_database(&admin, &guard.name, &guard.moved)
        .await
        .unwrap();

    // Assert 3: the same app answers again.
    assert_eq!(
        app.client
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/chat/sessions", &token).await.status(),
        StatusCode::OK
    );
    new_session(&app, &token).await;
    admin.close().await;
}

async fn assert_database_routes_unavailable(app: &TestApp, token: &str) {
    assert_eq!(
        app.client
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    for path in ["/chat/sessions", "/api/users", "/api/tool-calls"] {
        assert_unavailable(app.get_bearer(path, token).await).await;
    }
    let r = app
        .post_as("/chat/session/new", &token, json!({ "title": "refused" }))
        .await;
    assert_unavailable(r).await;
}

/// A 503 in the common error shape that tells the client when to come back.
pub(crate) async fn assert_unavailable(r: Response) {
    let (status, url) = (r.status(), r.url().clone());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "for {url}");
    assert!(r.headers().contains_key("retry-after"), "for {url}");
    let body: Value = expect_error(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["code"], json!("unavailable"), "for {url}");
}

async fn terminate_connections(admin: &AnyPool, db: &str) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .execute(admin)
    .await
    .unwrap();
}

fn database_url(app: &TestApp) -> String {
    app.state
        .config
        .database_url
        .clone()
        .expect("a PostgreSQL app has a DATABASE_URL")
}

/// The same server's `postgres` database, from which a test database can be changed.
fn admin_url(app: &TestApp) -> String {
    let url = database_url(app);
    format!("{}/postgres", &url[..url.rfind('/').unwrap()])
}

async fn admin_pool(app: &TestApp) -> AnyPool {
    AnyPool::connect(&admin_url(app)).await.unwrap()
}

/// Puts the test database back under its name and accepting connections, also when the test fails: otherwise
/// it could not be dropped.
struct RestoreDatabase {
    admin_url: String,
    name: String,
    moved: String,
}

impl Drop for RestoreDatabase {
    fn drop(&mut self) {
        let (url, name, moved) = (
            self.admin_url.clone(),
            self.name.clone(),
            self.moved.clone(),
        );
        // Drop runs outside async; a short-lived thread with its own runtime does the work.
        block_on_own_thread(async move {
            if let Ok(admin) = AnyPool::connect(&url).await {
                let _ = restore_database(&admin, &name, &moved).await;
                admin.close().await;
            }
        });
    }
}

/// Renames `moved` back to `name` (when it was renamed) and lets `name` accept connections again.
async fn restore_database(admin: &AnyPool, name: &str, moved: &str) -> sqlx::Result<()> {
    // The rename fails when the database was not renamed away; that is fine.
    let _ = admin
        .execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{moved}\" RENAME TO \"{name}\""
        )))
        .await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"
        )))
        .await?;
    Ok(())
}
