//! The store's migrations: sqlx's migrator with checksums and PostgreSQL's advisory lock, the adoption of
//! databases the hand-written runner migrated (`schema_migrations`), and the two schema trees kept in step.
//!
//! These tests work below the HTTP API on purpose: they make databases in states the API cannot reach (an
//! old runner's bookkeeping, an edited migration) and start the app on them.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AssertSqlSafe, Executor};
use warden::{
    app,
    clock::ManualClock,
    config::Config,
    store::{Backend, Db, migrate::migrator},
};

use crate::{
    db_tests,
    helpers::{ADMIN_PASSWORD, DbKind, drop_database_now, postgres_admin_url, postgres_available},
};

/// An empty database (a SQLite file in a temporary folder, or a PostgreSQL database dropped at the end) and
/// the settings that start the app on it.
struct Fresh {
    url: String,
    dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl Fresh {
    async fn new(kind: DbKind) -> Fresh {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_name) = match kind {
            DbKind::Sqlite => (
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("warden.db").display()
                ),
                None,
            ),
            DbKind::Postgres => {
                let name = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::AnyPool::connect(&postgres_admin_url()).await.unwrap();
                admin
                    .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .await
                    .unwrap();
                admin.close().await;
                let base = postgres_admin_url();
                let url = format!("{}/{}", &base[..base.rfind('/').unwrap()], name);
                (url, Some(name))
            }
        };
        Fresh { url, dir, pg_name }
    }

    async fn db(&self) -> Db {
        Db::connect(&self.url).await.unwrap()
    }

    /// The configuration an instance of the app on this database starts with.
    fn config(&self) -> Config {
        let settings: BTreeMap<&str, String> = [
            ("WARDEN_BIND", "127.0.0.1:0".to_string()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("PASSWORD_HASH_CONCURRENCY", "2".to_string()),
            ("WARDEN_PUBLIC_URL", "http://warden.test".to_string()),
            ("WARDEN_DATA_DIR", self.dir.path().display().to_string()),
            ("DATABASE_URL", self.url.clone()),
        ]
        .into_iter()
        .collect();
        Config::from_lookup(|k| settings.get(k).cloned()).expect("test config is valid")
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.clone() else {
            return;
        };
        drop_database_now(name);
    }
}

/// (version, checksum) of every successful migration in `_sqlx_migrations` (`Any` cannot read SQLite's
/// booleans, so success is a filter, not a column).
async fn recorded(db: &Db) -> Vec<(i64, Vec<u8>)> {
    sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

fn shipped(backend: Backend) -> Vec<(i64, Vec<u8>)> {
    migrator(backend)
        .iter()
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_on_a_fresh_postgres_database_all_start() {
    if !postgres_available().await {
        return;
    }
    let fresh = Fresh::new(DbKind::Postgres).await;
    let mut dbs = Vec::new();
    for _ in 0..4 {
        dbs.push(fresh.db().await);
    }

    let results = futures::future::join_all(dbs.iter().map(|db| db.migrate())).await;

    let mut applied: Vec<i64> = Vec::new();
    for r in results {
        applied.extend(r.expect("every instance migrates"));
    }
    applied.sort_unstable();
    let all: Vec<i64> = migrator(Backend::Postgres)
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(
        applied, all,
        "each migration applied exactly once, by one instance"
    );
    assert_eq!(recorded(&dbs[0]).await, shipped(Backend::Postgres));

    // Whole instances too: both start on the database the other is migrating.
    let again = Fresh::new(DbKind::Postgres).await;
    let clock = ManualClock::new();
    let (a, b) = tokio::join!(
        app::build(again.config(), clock.clone()),
        app::build(again.config(), clock.clone())
    );
    a.expect("the first instance starts");
    b.expect("the second instance starts");
}

async fn an_edited_migration_is_refused_at_start(kind: DbKind) {
    let fresh = Fresh::new(kind).await;
    let db = fresh.db().await;
    assert_eq!(
        db.migrate().await.unwrap().len(),
        migrator(db.backend).iter().count()
    );
    // Editing a shipped file changes its checksum; so does changing the recorded one, which a test can do.
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 3")
        .bind(vec![0u8; 48])
        .execute(db.writer())
        .await
        .unwrap();

    let err = db.migrate().await.unwrap_err().to_string();
    assert!(
        err.contains("migration 3 was edited after it was applied"),
        "{err}"
    );

    let start = app::build(fresh.config(), ManualClock::new()).await;
    let err = format!("{:#}", start.err().expect("the app refuses to start"));
    assert!(err.contains("migration 3 was edited"), "{err}");
}

/// Migrates `db` as the hand-written runner did: each migration's SQL, then a row in `schema_migrations`.
async fn migrate_like_the_old_runner(db: &Db, up_to: i64) {
    let create = match db.backend {
        Backend::Sqlite => {
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        }
        Backend::Postgres => {
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        }
    };
    db.writer().execute(create).await.unwrap();
    for m in migrator(db.backend).iter().filter(|m| m.version <= up_to) {
        let mut tx = db.writer().begin().await.unwrap();
        tx.execute(sqlx::raw_sql(AssertSqlSafe(m.sql.as_str().to_string())))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.description.to_string())
        .bind(1_700_000_000_000_i64)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn a_database_the_old_runner_migrated_is_adopted(kind: DbKind) {
    let fresh = Fresh::new(kind).await;
    let db = fresh.db().await;
    migrate_like_the_old_runner(&db, 5).await;

    // 1..=5 are adopted with today's checksums, not run again (they would fail: the tables exist).
    // Every later migration runs (computed, so adding one does not edit this test).
    let later: Vec<i64> = shipped(db.backend)
        .into_iter()
        .map(|(v, _)| v)
        .filter(|v| *v > 5)
        .collect();
    assert!(later.starts_with(&[6, 7, 8, 9, 10, 11, 12]), "{later:?}");
    assert_eq!(db.migrate().await.unwrap(), later);
    assert_eq!(recorded(&db).await, shipped(db.backend));
    assert_eq!(db.migrate().await.unwrap(), Vec::<i64>::new());
    let (old_rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(old_rows, 5, "schema_migrations is left as it was");

    // A database the old runner brought fully up to date starts the app as it is.
    let complete = Fresh::new(kind).await;
    migrate_like_the_old_runner(&complete.db().await, 8).await;
    app::build(complete.config(), ManualClock::new())
        .await
        .expect("the app starts on an adopted database");
    assert_eq!(recorded(&complete.db().await).await, shipped(db.backend));
}

db_tests!(
    an_edited_migration_is_refused_at_start,
    a_database_the_old_runner_migrated_is_adopted,
);

/// Every table's columns with the family of their type (backends spell the same type differently).
type Schema = BTreeMap<String, BTreeSet<(String, &'static str)>>;

fn type_family(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "smallint" => "integer",
        "real" | "double precision" => "float",
        "text" | "character varying" => "text",
        "blob" | "bytea" => "bytes",
        "boolean" => "boolean",
        _ => "other",
    }
}

async fn sqlite_schema(db: &Db) -> Schema {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    collect(rows)
}

async fn postgres_schema(db: &Db) -> Schema {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema()",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    collect(rows)
}

fn collect(rows: Vec<(String, String, String)>) -> Schema {
    let mut schema = Schema::new();
    for (table, column, declared) in rows {
        // The migrator's own table records times and flags in each backend's native types.
        if table == "_sqlx_migrations" {
            continue;
        }
        schema
            .entry(table)
            .or_default()
            .insert((column, type_family(&declared)));
    }
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_schemas_have_the_same_tables_and_columns() {
    if !postgres_available().await {
        return;
    }
    let (sqlite, postgres) = (
        Fresh::new(DbKind::Sqlite).await,
        Fresh::new(DbKind::Postgres).await,
    );
    let (sqlite, postgres) = (sqlite.db().await, postgres.db().await);
    sqlite.migrate().await.unwrap();
    postgres.migrate().await.unwrap();

    let (lite, pg) = (
        sqlite_schema(&sqlite).await,
        postgres_schema(&postgres).await,
    );
    assert!(
        lite.contains_key("tool_calls") && lite.contains_key("users"),
        "{lite:?}"
    );
    assert_eq!(
        lite.keys().collect::<Vec<_>>(),
        pg.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    for (table, columns) in &lite {
        assert_eq!(Some(columns), pg.get(table), "the columns of {table}");
    }
    let untyped: Vec<_> = lite
        .iter()
        .flat_map(|(t, cols)| cols.iter().filter(|c| c.1 == "other").map(move |c| (t, c)))
        .collect();
    assert!(
        untyped.is_empty(),
        "columns of no known type family: {untyped:?}"
    );
}
