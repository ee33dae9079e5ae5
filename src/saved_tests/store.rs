//! The SQL of `saved_tests`. Every statement names the owner: a test is read, run and deleted only by the user
//! who saved it. A run's outcome is written in one UPDATE that also counts it (`execution_count + 1` in SQL), so
//! concurrent runs are all counted.

use sqlx::{AnyPool, FromRow};

/// The columns every read returns, in [`TestRow`]'s order.
const COLUMNS: &str = "id, user_id, name, endpoint_path, method, parameters, request_type, test_category, \
                       server_id, tool_name, last_result, last_status, last_execution, execution_count, created_at";

/// One row of `saved_tests`, as stored (parameters and last_result are JSON text).
#[derive(Debug, FromRow)]
pub struct TestRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub endpoint_path: String,
    pub method: String,
    pub parameters: String,
    pub request_type: String,
    pub test_category: String,
    pub server_id: Option<String>,
    pub tool_name: Option<String>,
    pub last_result: Option<String>,
    pub last_status: Option<String>,
    pub last_execution: Option<i64>,
    pub execution_count: i64,
    pub created_at: i64,
}

/// A test to insert, never run yet.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub endpoint_path: &'a str,
    pub method: &'a str,
    pub parameters: &'a str,
    pub request_type: &'a str,
    pub test_category: &'a str,
    pub server_id: Option<&'a str>,
    pub tool_name: Option<&'a str>,
    pub created_at: i64,
}

pub async fn insert_test(pool: &AnyPool, t: &NewRow<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO saved_tests (id, user_id, name, endpoint_path, method, parameters, request_type, \
         test_category, server_id, tool_name, execution_count, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11)",
    )
    .bind(t.id)
    .bind(t.user_id)
    .bind(t.name)
    .bind(t.endpoint_path)
    .bind(t.method)
    .bind(t.parameters)
    .bind(t.request_type)
    .bind(t.test_category)
    .bind(t.server_id)
    .bind(t.tool_name)
    .bind(t.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The owner's test `id`, if there is one.
pub async fn find_test(pool: &AnyPool, id: &str, user_id: &str) -> sqlx::Result<Option<TestRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM saved_tests WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// The owner's tests, newest first, at most `limit`; only those of `category` when one is given.
pub async fn find_tests(
    pool: &AnyPool,
    user_id: &str,
    category: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<TestRow>> {
    // `$2 IS NULL` keeps one statement for both cases; the cast lets PostgreSQL type the parameter.
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM saved_tests WHERE user_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR test_category = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    )))
    .bind(user_id)
    .bind(category)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Deletes the owner's test `id`; false when the owner has no such test.
pub async fn delete_test(pool: &AnyPool, id: &str, user_id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM saved_tests WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// What one finished run records.
pub struct RunRow<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub last_result: &'a str,
    pub last_status: &'a str,
    pub last_execution: i64,
}

/// Records a run and counts it in the same statement; the updated row, or `None` if the test is gone.
pub async fn update_run(pool: &AnyPool, run: &RunRow<'_>) -> sqlx::Result<Option<TestRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE saved_tests SET last_result = $1, last_status = $2, last_execution = $3, \
         execution_count = execution_count + 1 WHERE id = $4 AND user_id = $5 RETURNING {COLUMNS}"
    )))
    .bind(run.last_result)
    .bind(run.last_status)
    .bind(run.last_execution)
    .bind(run.id)
    .bind(run.user_id)
    .fetch_optional(pool)
    .await
}
