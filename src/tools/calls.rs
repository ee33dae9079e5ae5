//! Reading the tool-call log: everyone reads their own calls; a holder of `tool-calls:read-all` reads (and may
//! filter by) anyone's. Arguments and results of another user's call are shown only to holders of
//! `tool-calls:read-bodies` (an auditor's permission; admins hold `*`); others see them as `null`. The SQL is the log's own (`log::find`); this file is the read side's rule and shape.

use super::{Caller, Catalog, log};

/// Lets a caller read every user's tool calls, not only their own.
pub const READ_ALL_TOOL_CALLS: &str = "tool-calls:read-all";
/// Lets a caller see the arguments and results of other users' calls (`auth::permissions` names it too).
pub const READ_TOOL_CALL_BODIES: &str = "tool-calls:read-bodies";

/// What a reader may ask for; `user_id` counts only for readers of all.
#[derive(Debug, Default)]
pub struct CallsQuery {
    pub user_id: Option<String>,
    pub tool_name: Option<String>,
    pub status: Option<String>,
    pub conversation_id: Option<String>,
    pub session_id: Option<String>,
    /// Clamped to 1..=200; 50 when unset.
    pub limit: Option<i64>,
    /// At least 0.
    pub offset: Option<i64>,
}

/// One logged call as readers see it: the stored row, which serialises in the wire shape.
pub type ToolCallView = log::Row;

/// A page of calls, newest first, with the limit and offset that applied.
#[derive(Debug)]
pub struct CallsPage {
    pub calls: Vec<ToolCallView>,
    pub limit: i64,
    pub offset: i64,
}

impl Catalog {
    /// The calls `caller` may read that match `query`, newest first.
    pub async fn find_calls(&self, caller: &Caller, query: CallsQuery) -> sqlx::Result<CallsPage> {
        // Everyone sees their own calls; only a reader of all may look at (or filter by) another user.
        let user_id = if caller.has_permission(READ_ALL_TOOL_CALLS) {
            query.user_id
        } else {
            Some(caller.user_id.to_string())
        };
        let filter = log::Filter {
            user_id,
            tool_name: query.tool_name,
            status: query.status,
            conversation_id: query.conversation_id,
            session_id: query.session_id,
            limit: query.limit.unwrap_or(50).clamp(1, 200),
            offset: query.offset.unwrap_or(0).max(0),
        };
        let mut rows = log::find(&self.db, &filter).await?;
        if !caller.has_permission(READ_TOOL_CALL_BODIES) {
            let own = caller.user_id.to_string();
            for row in rows.iter_mut().filter(|r| r.user_id.as_ref() != Some(&own)) {
                row.arguments = "null".into();
                row.result = None;
            }
        }
        Ok(CallsPage {
            calls: rows,
            limit: filter.limit,
            offset: filter.offset,
        })
    }
}
