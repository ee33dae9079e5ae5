//! Migrations: sqlx's migrator over `migrations/sqlite` and `migrations/postgres`, embedded at build time.
//!
//! - Checksums: `_sqlx_migrations` records each applied file's SHA-384; a file edited after it was applied
//!   is refused at start (STYLE: never edit a shipped migration, add the next number).
//! - Lock: on PostgreSQL the migrator holds an advisory lock on the database while it works, so instances
//!   starting together apply each migration once and the others wait, then find nothing left to do. SQLite
//!   needs none: one file, one writer at a time.
//! - Adoption: databases migrated before this by the hand-written runner recorded their versions in
//!   `schema_migrations`, without checksums. The first start with this code copies those versions into the
//!   empty `_sqlx_migrations`, with the checksums of the files shipped now, under the same lock. That trusts
//!   that the applied files were never edited, which STYLE already required. `schema_migrations` is left as
//!   it was and never read again once `_sqlx_migrations` has rows.
//!
//! Everything runs on one connection taken out of the pool and closed afterwards: if a step fails while the
//! session holds PostgreSQL's advisory lock, the lock ends with the session instead of going back to the pool.

use std::collections::HashSet;

use anyhow::{Context, anyhow};
use sqlx::{
    AnyConnection, Connection,
    migrate::{Migrate, MigrateError, Migrator},
};

use super::{Backend, Db};

// `sqlx::migrate!` is this proc macro behind sqlx's `macros` feature, which would also build the offline query
// machinery this crate does not use; `derive` + `migrate` already provide the macro itself.
static SQLITE: Migrator = sqlx::sqlx_macros::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::sqlx_macros::migrate!("migrations/postgres");

/// The table the hand-written runner kept (version, name, applied_at), read only to adopt it.
const LEGACY_TABLE: &str = "schema_migrations";

/// The embedded migrations for `backend`.
pub fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

/// Adopts a legacy `schema_migrations`, then applies what is not yet applied; returns the versions applied now.
pub(super) async fn run(db: &Db) -> anyhow::Result<Vec<i64>> {
    let mut conn = db
        .writer()
        .acquire()
        .await
        .context("connecting to migrate")?
        .detach();
    let result = run_on(&mut conn, db.backend).await;
    let _ = conn.close().await;
    result
}

async fn run_on(conn: &mut AnyConnection, backend: Backend) -> anyhow::Result<Vec<i64>> {
    let migrator = migrator(backend);
    let table = migrator.table_name.as_ref();
    conn.lock().await.context("taking the migration lock")?;
    conn.ensure_migrations_table(table)
        .await
        .context("creating _sqlx_migrations")?;
    adopt_legacy(conn, migrator, backend).await?;
    let before: HashSet<i64> = conn
        .list_applied_migrations(table)
        .await
        .context("reading _sqlx_migrations")?
        .into_iter()
        .map(|m| m.version)
        .collect();
    // `run` takes the lock again; PostgreSQL's advisory locks nest, so ours is still held after it unlocks.
    migrator.run(&mut *conn).await.map_err(explain)?;
    conn.unlock()
        .await
        .context("releasing the migration lock")?;
    Ok(migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !before.contains(v))
        .collect())
}

/// Copies the hand-written runner's versions into an empty `_sqlx_migrations` (see the module docs).
async fn adopt_legacy(
    conn: &mut AnyConnection,
    migrator: &Migrator,
    backend: Backend,
) -> anyhow::Result<()> {
    let exists = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let (legacy,): (i64,) = sqlx::query_as(exists)
        .bind(LEGACY_TABLE)
        .fetch_one(&mut *conn)
        .await
        .context("looking for schema_migrations")?;
    if legacy == 0 {
        return Ok(());
    }
    let (recorded,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await
        .context("reading _sqlx_migrations")?;
    if recorded > 0 {
        return Ok(());
    }
    let versions: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .context("reading schema_migrations")?;
    let mut tx = conn.begin().await?;
    for (version,) in &versions {
        let m = migrator
            .iter()
            .find(|m| m.version == *version && !m.migration_type.is_down_migration())
            .ok_or_else(|| {
                anyhow!(
                    "schema_migrations records migration {version}, which this build does not have: is the database newer than the program?"
                )
            })?;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(m.version)
        .bind(m.description.to_string())
        .bind(true)
        .bind(m.checksum.to_vec())
        .execute(&mut *tx)
        .await
        .with_context(|| format!("adopting migration {version}"))?;
    }
    tx.commit().await?;
    tracing::info!(
        count = versions.len(),
        "adopted the migrations recorded in schema_migrations"
    );
    Ok(())
}

/// Turns the migrator's errors into messages that say what to do.
fn explain(err: MigrateError) -> anyhow::Error {
    match err {
        MigrateError::VersionMismatch(v) => anyhow!(
            "migration {v} was edited after it was applied to this database (its checksum differs from the one \
             in _sqlx_migrations); applied migrations are never edited: restore the file and add the next number"
        ),
        MigrateError::VersionMissing(v) => anyhow!(
            "the database has migration {v} applied, which this build does not have: is the database newer than the program?"
        ),
        other => anyhow::Error::from(other).context("migrating the database"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_trees_have_the_same_migrations_in_order() {
        let names = |backend| -> Vec<(i64, String)> {
            migrator(backend)
                .iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect()
        };
        let sqlite = names(Backend::Sqlite);
        assert_eq!(sqlite, names(Backend::Postgres));
        let versions: Vec<i64> = sqlite.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, expected, "numbered 1, 2, 3… without gaps");
    }
}
