//! The database: one sqlx `Any` pool over SQLite (default, a file under the data dir) or PostgreSQL (by URL),
//! and the migrations of both, kept in step (same numbers, same meaning).
//!
//! Only bool, integers, floats, text and bytes cross the `Any` driver: times are epoch milliseconds (BIGINT),
//! ids and JSON are TEXT, flags are 0/1 integers. Ids and times are made in Rust, never by the database.

use std::time::Duration;

use anyhow::Context;
use sqlx::{AnyPool, Executor, any::AnyPoolOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The shared pools and which database they talk to. SQLite allows one writer at a time, and a writer that
/// finds the file locked sleeps and polls; so writes go through a one-connection pool, where they queue in
/// order instead, and reads use the others (WAL lets them run beside the writer). On PostgreSQL both are one pool.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    writer: AnyPool,
    pub backend: Backend,
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration, in order. Never edit one that has shipped: add the next number.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sqlite: include_str!("../../migrations/sqlite/0001_core.sql"),
        postgres: include_str!("../../migrations/postgres/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "chat",
        sqlite: include_str!("../../migrations/sqlite/0002_chat.sql"),
        postgres: include_str!("../../migrations/postgres/0002_chat.sql"),
    },
    Migration {
        version: 3,
        name: "tool_calls",
        sqlite: include_str!("../../migrations/sqlite/0003_tool_calls.sql"),
        postgres: include_str!("../../migrations/postgres/0003_tool_calls.sql"),
    },
    Migration {
        version: 4,
        name: "tool_policy",
        sqlite: include_str!("../../migrations/sqlite/0004_tool_policy.sql"),
        postgres: include_str!("../../migrations/postgres/0004_tool_policy.sql"),
    },
    Migration {
        version: 5,
        name: "mcp_servers",
        sqlite: include_str!("../../migrations/sqlite/0005_mcp_servers.sql"),
        postgres: include_str!("../../migrations/postgres/0005_mcp_servers.sql"),
    },
    Migration {
        version: 6,
        name: "username_skeleton",
        sqlite: include_str!("../../migrations/sqlite/0006_username_skeleton.sql"),
        postgres: include_str!("../../migrations/postgres/0006_username_skeleton.sql"),
    },
];

impl Db {
    /// Connects (creating the SQLite file and its folder if needed). Does not migrate.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:");
        };
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
            && let Some(parent) = std::path::Path::new(&path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let pool = options(backend, if backend == Backend::Sqlite { 8 } else { 16 })
            .connect(url)
            .await
            .with_context(|| format!("connecting to {}", crate::config::redact_url(url)))?;
        let writer = match backend {
            Backend::Sqlite => options(backend, 1).connect(url).await?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Db {
            pool,
            writer,
            backend,
        })
    }

    /// The pool for statements that write (and for transactions that read what they then write).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Closes every connection (tests use this to take the database away).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Applies the migrations not yet applied, each in its own transaction.
    pub async fn migrate(&self) -> anyhow::Result<Vec<i64>> {
        let create = match self.backend {
            Backend::Sqlite => {
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            }
            Backend::Postgres => {
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            }
        };
        self.writer
            .execute(sqlx::raw_sql(create))
            .await
            .context("creating schema_migrations")?;
        let mut applied = Vec::new();
        for m in MIGRATIONS {
            let mut tx = self.writer.begin().await?;
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            tx.execute(sqlx::raw_sql(sql))
                .await
                .with_context(|| format!("migration {} {}", m.version, m.name))?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(crate::clock::Clock::now_ms(&crate::clock::SystemClock))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            applied.push(m.version);
        }
        Ok(applied)
    }

    /// True when the database answers a trivial query.
    pub async fn is_ready(&self) -> bool {
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// True when an insert or update failed on a uniqueness constraint.
    pub fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
    }
}

/// Errors that mean "the database is not reachable now" (answered 503), as opposed to a bug (500).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    )
}

fn options(backend: Backend, max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; busy_timeout covers other processes (the CLI).
                    conn.execute(sqlx::raw_sql(
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
                    ))
                    .await?;
                }
                Ok(())
            })
        })
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}
