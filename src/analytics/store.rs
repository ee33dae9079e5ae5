//! The SQL of the analytics tables: batch inserts for the writers and the retention purge.

use crate::store::Db;

use super::{PageView, RequestRow};

/// Rows one purge statement deletes at most, so a purge never holds the writer for long.
pub const PURGE_BATCH: i64 = 1000;

pub async fn insert_request_logs(db: &Db, rows: &[RequestRow]) -> sqlx::Result<()> {
    let mut tx = db.writer().begin().await?;
    for r in rows {
        sqlx::query(
            "INSERT INTO request_logs (id, method, route, path, status_code, response_time_ms, request_size, \
             response_size, ip, user_agent, referer, user_id, error_message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(r.method)
        .bind(r.route)
        .bind(&r.path)
        .bind(i32::from(r.status))
        .bind(r.response_time_ms)
        .bind(r.request_size)
        .bind(r.response_size)
        .bind(r.ip.to_string())
        .bind(r.user_agent.as_deref())
        .bind(r.referer.as_deref())
        .bind(r.user_id.as_deref())
        .bind(r.error_message)
        .bind(r.created_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

pub async fn insert_page_views(db: &Db, rows: &[PageView]) -> sqlx::Result<()> {
    let mut tx = db.writer().begin().await?;
    for v in rows {
        sqlx::query(
            "INSERT INTO page_views (id, path, title, load_time_ms, ip, user_agent, user_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&v.path)
        .bind(v.title.as_deref())
        .bind(v.load_time_ms)
        .bind(v.ip.to_string())
        .bind(v.user_agent.as_deref())
        .bind(v.user_id.as_deref())
        .bind(v.created_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Deletes up to [`PURGE_BATCH`] rows of `table` created before `before_ms`; returns how many went.
pub async fn delete_older_than(db: &Db, table: Table, before_ms: i64) -> sqlx::Result<u64> {
    let sql = match table {
        Table::RequestLogs => {
            "DELETE FROM request_logs WHERE id IN (SELECT id FROM request_logs WHERE created_at < $1 LIMIT $2)"
        }
        Table::PageViews => {
            "DELETE FROM page_views WHERE id IN (SELECT id FROM page_views WHERE created_at < $1 LIMIT $2)"
        }
    };
    let done = sqlx::query(sql)
        .bind(before_ms)
        .bind(PURGE_BATCH)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected())
}

#[derive(Clone, Copy, Debug)]
pub enum Table {
    RequestLogs,
    PageViews,
}
