//! The SQL of upstream MCP servers added at run time.

use crate::store::Db;

pub async fn insert_server(
    db: &Db,
    name: &str,
    config: &str,
    created_by: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mcp_servers (name, config, created_by, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(name)
    .bind(config)
    .bind(created_by)
    .bind(now)
    .execute(db.writer())
    .await
    .map(|_| ())
}

pub async fn delete_server(db: &Db, name: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM mcp_servers WHERE name = $1")
        .bind(name)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// (name, config JSON), oldest first.
pub async fn find_servers(db: &Db) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT name, config FROM mcp_servers ORDER BY created_at, name")
        .fetch_all(&db.pool)
        .await
}
