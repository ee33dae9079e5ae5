//! The SQL of `change_versions`: one counter per topic whose rows keep no watermark of their own (policy rules,
//! upstream servers). A change bumps it after it is stored; an instance re-reads the topic when the counter
//! differs from the value it last applied.

use crate::store::Db;

/// A topic with a version row (seeded by migration 0016).
#[derive(Clone, Copy, Debug)]
pub enum Versioned {
    Policy,
    Upstreams,
}

impl Versioned {
    fn key(self) -> &'static str {
        match self {
            Versioned::Policy => "policy",
            Versioned::Upstreams => "upstreams",
        }
    }
}

/// Counts one more change of `topic`.
pub async fn bump(db: &Db, topic: Versioned) -> sqlx::Result<()> {
    sqlx::query("UPDATE change_versions SET version = version + 1 WHERE topic = $1")
        .bind(topic.key())
        .execute(db.writer())
        .await?;
    Ok(())
}

/// The current count of `topic`'s changes.
pub async fn find(db: &Db, topic: Versioned) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT version FROM change_versions WHERE topic = $1")
        .bind(topic.key())
        .fetch_optional(&db.pool)
        .await
        .map(Option::unwrap_or_default)
}
