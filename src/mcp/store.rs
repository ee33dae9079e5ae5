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

/// (name, config JSON) of every stored server, read inside `conn`'s transaction.
pub async fn find_servers_in(
    conn: &mut sqlx::AnyConnection,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT name, config FROM mcp_servers ORDER BY name")
        .fetch_all(conn)
        .await
}

/// Replaces a server's config if it still is `old` (so two instances sealing at once write it once).
pub async fn update_config(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    old: &str,
    new: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE mcp_servers SET config = $1 WHERE name = $2 AND config = $3")
        .bind(new)
        .bind(name)
        .bind(old)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}
