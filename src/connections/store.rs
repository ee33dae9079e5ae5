//! The SQL of the `connections` table. Every read and delete names the owner in its WHERE clause, so another
//! user's profile is never found (the same "not found" as a missing one).

use sqlx::{AnyPool, FromRow};

#[derive(Clone, Debug, FromRow)]
pub struct ConnectionRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub database_type: String,
    pub host: String,
    pub port: i64,
    pub username: String,
    pub password_sealed: Option<String>,
    pub database_name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, user_id, name, database_type, host, port, username, password_sealed, \
                       database_name, created_at, updated_at";

/// Inserts a profile; `false` when the user has one of that name already.
pub async fn insert_connection(pool: &AnyPool, row: &ConnectionRow) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO connections (id, user_id, name, database_type, host, port, username, password_sealed, \
         database_name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (user_id, name) DO NOTHING",
    )
    .bind(&row.id)
    .bind(&row.user_id)
    .bind(&row.name)
    .bind(&row.database_type)
    .bind(&row.host)
    .bind(row.port)
    .bind(&row.username)
    .bind(row.password_sealed.as_deref())
    .bind(&row.database_name)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn find_connection(
    pool: &AnyPool,
    user_id: &str,
    id: &str,
) -> sqlx::Result<Option<ConnectionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM connections WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

pub async fn find_connections(pool: &AnyPool, user_id: &str) -> sqlx::Result<Vec<ConnectionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM connections WHERE user_id = $1 ORDER BY created_at, id"
    )))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// Deletes a profile of the user; `false` when there is none of that id.
pub async fn delete_connection(pool: &AnyPool, user_id: &str, id: &str) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM connections WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Every sealed password (id and sealed text), for `warden keys rotate`.
pub async fn find_sealed_in(tx: &mut sqlx::AnyConnection) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT id, password_sealed FROM connections WHERE password_sealed IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await
}

/// Replaces one sealed password if it is still `old`.
pub async fn update_sealed_in(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    old: &str,
    new: &str,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE connections SET password_sealed = $3 WHERE id = $1 AND password_sealed = $2",
    )
    .bind(id)
    .bind(old)
    .bind(new)
    .execute(&mut *tx)
    .await?;
    Ok(result.rows_affected() == 1)
}
