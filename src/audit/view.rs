//! Reading the trail (`audit:read`): filters, keyset paging newest first, and a paged export for JSON Lines.
//! Read only: there is no function here, or anywhere, that changes or deletes an event.
//!
//! Paging is by the cursor `(at, id)` of the last event on a page, so a page never repeats or skips an event
//! when new ones are written meanwhile (they are newer than every cursor); `id` breaks ties within one
//! millisecond.

use futures::{Stream, stream};
use serde::Serialize;

use super::Audit;
use crate::{clock::Millis, store::Db};

/// The largest page; the export reads in pages of this size too.
pub const MAX_LIMIT: i64 = 500;
const DEFAULT_LIMIT: i64 = 100;

/// Which event names match: one name, or every name that starts with a prefix (`login.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Exact(String),
    Prefix(String),
}

impl Action {
    /// `login.success` is exact; `login.*` (or `login*`) is the prefix `login.`.
    pub fn parse(text: &str) -> Action {
        match text.strip_suffix('*') {
            Some(prefix) => Action::Prefix(prefix.to_string()),
            None => Action::Exact(text.to_string()),
        }
    }
}

/// Where a page ends: the last event's time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    at: i64,
    id: String,
}

impl Cursor {
    /// The text form `<at>_<id>` handed to clients; `None` if `text` is not one.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (at, id) = text.split_once('_')?;
        Some(Cursor {
            at: at.parse().ok()?,
            id: id.to_string(),
        })
    }

    pub fn text(&self) -> String {
        format!("{}_{}", self.at, self.id)
    }
}

/// An instant given as epoch milliseconds or RFC 3339 text.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// What a reader asks for; unset fields match everything. `from` is inclusive, `to` exclusive.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<Action>,
    pub subject: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Clamped to 1..=[`MAX_LIMIT`]; 100 when unset.
    pub limit: Option<i64>,
    pub cursor: Option<Cursor>,
}

/// One event as readers see it.
#[derive(Debug, Serialize)]
pub struct EventView {
    pub id: String,
    /// Epoch milliseconds.
    pub at: i64,
    /// The same instant in RFC 3339.
    pub time: Millis,
    pub event: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub subject: Option<String>,
    pub client_ip: Option<String>,
    pub detail: serde_json::Value,
}

/// A page of events, newest first, and the cursor of the next page when there may be one.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<EventView>,
    pub limit: i64,
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    at: i64,
    event: String,
    outcome: String,
    actor_id: Option<String>,
    subject: Option<String>,
    client_ip: Option<String>,
    detail: String,
}

impl From<Row> for EventView {
    fn from(r: Row) -> Self {
        EventView {
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::String(r.detail)),
            id: r.id,
            at: r.at,
            time: Millis(r.at),
            event: r.event,
            outcome: r.outcome,
            actor_id: r.actor_id,
            subject: r.subject,
            client_ip: r.client_ip,
        }
    }
}

impl Audit {
    /// One page of the events matching `filter`, newest first.
    pub async fn find(&self, filter: &Filter) -> sqlx::Result<Page> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let events = find(&self.db, filter, limit).await?;
        let next_cursor = (events.len() as i64 == limit)
            .then(|| events.last())
            .flatten()
            .map(|e| {
                Cursor {
                    at: e.at,
                    id: e.id.clone(),
                }
                .text()
            });
        Ok(Page {
            events,
            limit,
            next_cursor,
        })
    }

    /// Every event matching `filter` (its limit aside), newest first, read a page at a time so no query or
    /// connection is held while the caller writes a page out.
    pub fn export(
        &self,
        filter: Filter,
    ) -> impl Stream<Item = sqlx::Result<Vec<EventView>>> + use<> {
        let db = self.db.clone();
        stream::try_unfold(Some(filter), move |state| {
            let db = db.clone();
            async move {
                let Some(mut filter) = state else {
                    return Ok(None);
                };
                let events = find(&db, &filter, MAX_LIMIT).await?;
                if events.is_empty() {
                    return Ok(None);
                }
                let more = events.len() as i64 == MAX_LIMIT;
                filter.cursor = events.last().map(|e| Cursor {
                    at: e.at,
                    id: e.id.clone(),
                });
                Ok(Some((events, more.then_some(filter))))
            }
        })
    }
}

async fn find(db: &Db, f: &Filter, limit: i64) -> sqlx::Result<Vec<EventView>> {
    let (exact, prefix) = match &f.action {
        Some(Action::Exact(name)) => (Some(name.as_str()), None),
        Some(Action::Prefix(p)) => (None, Some(p.as_str())),
        None => (None, None),
    };
    let prefix_len = prefix.map(|p| p.chars().count() as i64).unwrap_or(0);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, at, event, outcome, actor_id, subject, client_ip, detail FROM audit_events \
         WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR event = $2) \
         AND ($3 IS NULL OR substr(event, 1, CAST($4 AS INTEGER)) = $3) AND ($5 IS NULL OR subject = $5) \
         AND ($6 IS NULL OR outcome = $6) AND ($7 IS NULL OR at >= $7) AND ($8 IS NULL OR at < $8) \
         AND ($9 IS NULL OR at < $9 OR (at = $9 AND id < $10)) \
         ORDER BY at DESC, id DESC LIMIT $11",
    )
    .bind(f.actor.as_deref())
    .bind(exact)
    .bind(prefix)
    .bind(prefix_len)
    .bind(f.subject.as_deref())
    .bind(f.outcome.as_deref())
    .bind(f.from)
    .bind(f.to)
    .bind(f.cursor.as_ref().map(|c| c.at))
    .bind(f.cursor.as_ref().map(|c| c.id.as_str()).unwrap_or(""))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(EventView::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_with_a_star_are_prefixes() {
        assert_eq!(Action::parse("login.*"), Action::Prefix("login.".into()));
        assert_eq!(
            Action::parse("login.failure"),
            Action::Exact("login.failure".into())
        );
    }

    #[test]
    fn times_are_milliseconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500)
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor::parse("17_0190-ab").unwrap();
        assert_eq!(Cursor::parse(&c.text()), Some(c));
        assert_eq!(Cursor::parse("x_y"), None);
    }
}
