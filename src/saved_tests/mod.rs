//! Saved tests (seed 004): a user's named requests, kept to run again and again. Two kinds:
//! - `mcp`: a tool call. `tool_name` names the tool, `server_id` (optional) the server it comes from (`builtin`
//!   or an upstream MCP server); the arguments are the parameters, name → value.
//! - `database`: a read-only query on one of the caller's own connection profiles; the parameters hold
//!   `connection_id` and `query`.
//!
//! Invariants:
//! - A test is owned: read, run and deleted only by the user who saved it (another user's id is "not found").
//! - A run acts as the caller, now: a tool call goes through `Catalog::call_outside_chat`, the one path of the
//!   execute route and `/mcp` (permission, policy, tool-call log), so a saved test is never a way around them.
//! - A run that happened is recorded (result, status, time, count) in one UPDATE that counts it in SQL; a refused
//!   run (the tool is not available to the caller, or needs approval) changes nothing.
//! - A database test runs through `Connections::query`, as the caller: only on the caller's own profile, read-only,
//!   under the statement timeout and row limit, and only for a caller holding `connections:use`. A query the
//!   database refuses or that times out is a failed run, recorded like a tool's error.

mod store;

use std::{collections::BTreeSet, sync::Arc};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    audit::{Audit, Event},
    clock::SharedClock,
    connections::{ConnectionError, Connections},
    ids::UserId,
    store::Db,
    tools::{BUILTIN_SERVER, Caller, Catalog, OutsideChatRefusal, catalog_name},
};

/// The longest name of a test, a tool or a server, in characters.
pub const MAX_NAME_CHARS: usize = 200;
const MAX_CATEGORY_CHARS: usize = 100;
const MAX_PATH_CHARS: usize = 2048;
const MAX_PARAMETERS: usize = 100;
/// The most tests one listing returns (the newest).
const LIST_LIMIT: i64 = 1000;
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// The `source` of a saved test's calls in the tool-call log.
const LOG_SOURCE: &str = "saved_test";

/// Why a saved-test operation did not happen. Outcomes, not statuses: `http/saved_tests.rs` maps them.
#[derive(Debug, thiserror::Error)]
pub enum SavedTestError {
    /// No such test of the caller's (another user's test looks the same).
    #[error("Saved test not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    /// No such tool, or one the caller may not call or the policy denies: the run was refused.
    #[error(
        "The tool {0} is not available to you (unknown, not permitted, or denied by the tool policy)"
    )]
    ToolUnavailable(String),
    /// The policy says `ask`, and outside a chat nobody can approve the call.
    #[error("The tool {0} needs a person's approval; run it from a chat")]
    NeedsApproval(String),
    /// The test names a connection profile that is not the caller's (or no longer exists).
    #[error("The test's connection_id names no connection profile of yours")]
    ConnectionNotFound,
    /// The caller may not use connection profiles (`connections:use`).
    #[error("Running a database test needs the connections:use permission")]
    ConnectionsNotPermitted,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What a test does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestType {
    Mcp,
    Database,
}

impl RequestType {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Mcp => "mcp",
            RequestType::Database => "database",
        }
    }

    pub fn parse(text: &str) -> Option<RequestType> {
        [RequestType::Mcp, RequestType::Database]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// One parameter of a test: a name and any JSON value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub value: Value,
}

/// A test as a client sends it (seed 004's shape), not yet validated.
#[derive(Debug, Deserialize)]
pub struct Draft {
    pub name: String,
    #[serde(default)]
    pub endpoint_path: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    pub request_type: String,
    #[serde(default)]
    pub test_category: Option<String>,
    #[serde(default)]
    pub server_id: Option<String>,
    #[serde(default)]
    pub tool_name: Option<String>,
}

/// A validated test, ready to store.
#[derive(Debug, PartialEq)]
pub struct NewTest {
    name: String,
    endpoint_path: String,
    method: String,
    parameters: Vec<Parameter>,
    request_type: RequestType,
    test_category: String,
    server_id: Option<String>,
    tool_name: Option<String>,
}

fn invalid(message: impl Into<String>) -> SavedTestError {
    SavedTestError::Invalid(message.into())
}

/// `text` when it has 1 to `max` characters, no control characters, and is not only blanks.
fn bounded(field: &str, text: &str, max: usize) -> Result<(), SavedTestError> {
    let chars = text.chars().count();
    if text.trim().is_empty() || chars > max || text.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must be 1 to {max} characters, without control characters"
        )));
    }
    Ok(())
}

/// An optional name: absent, null and "" all mean none (seed clients send "" for an unset field).
fn optional(field: &str, text: Option<String>) -> Result<Option<String>, SavedTestError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => bounded(field, &t, MAX_NAME_CHARS).map(|()| Some(t)),
    }
}

/// The string value of parameter `name`, which a database test must hold.
fn required_text<'a>(parameters: &'a [Parameter], name: &str) -> Result<&'a str, SavedTestError> {
    parameters
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.value.as_str())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "a database test needs a parameter {name} with a non-empty text value"
            ))
        })
}

impl NewTest {
    /// Checks every field; the error says which one is wrong and what it must be.
    pub fn parse(draft: Draft) -> Result<NewTest, SavedTestError> {
        bounded("name", &draft.name, MAX_NAME_CHARS)?;
        let request_type = RequestType::parse(&draft.request_type).ok_or_else(|| {
            invalid(
                "request_type must be mcp (a tool call) or database (a query on one of your connection profiles)",
            )
        })?;
        if draft.endpoint_path.chars().count() > MAX_PATH_CHARS
            || draft.endpoint_path.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "endpoint_path must be at most {MAX_PATH_CHARS} characters, without control characters"
            )));
        }
        let method = draft
            .method
            .filter(|m| !m.is_empty())
            .map_or_else(|| "POST".to_string(), |m| m.to_ascii_uppercase());
        if !METHODS.contains(&method.as_str()) {
            return Err(invalid(format!(
                "method must be one of {}",
                METHODS.join(", ")
            )));
        }
        let test_category = draft
            .test_category
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "general".to_string());
        bounded("test_category", &test_category, MAX_CATEGORY_CHARS)?;
        if draft.parameters.len() > MAX_PARAMETERS {
            return Err(invalid(format!("at most {MAX_PARAMETERS} parameters")));
        }
        let mut names = BTreeSet::new();
        for p in &draft.parameters {
            bounded("a parameter's name", &p.name, MAX_NAME_CHARS)?;
            if !names.insert(p.name.as_str()) {
                return Err(invalid(format!("parameter {} is given twice", p.name)));
            }
        }
        let server_id = optional("server_id", draft.server_id)?;
        let tool_name = optional("tool_name", draft.tool_name)?;
        match request_type {
            RequestType::Mcp if tool_name.is_none() => {
                return Err(invalid("an mcp test needs a tool_name"));
            }
            RequestType::Mcp => {}
            RequestType::Database => {
                if tool_name.is_some() || server_id.is_some() {
                    return Err(invalid(
                        "tool_name and server_id belong to mcp tests; a database test names its connection_id in parameters",
                    ));
                }
                required_text(&draft.parameters, "connection_id")?;
                required_text(&draft.parameters, "query")?;
            }
        }
        Ok(NewTest {
            name: draft.name,
            endpoint_path: draft.endpoint_path,
            method,
            parameters: draft.parameters,
            request_type,
            test_category,
            server_id,
            tool_name,
        })
    }
}

/// A saved test as its owner sees it.
#[derive(Clone, Debug, Serialize)]
pub struct SavedTest {
    pub id: String,
    pub name: String,
    pub endpoint_path: String,
    pub method: String,
    pub parameters: Vec<Parameter>,
    pub request_type: RequestType,
    pub test_category: String,
    pub server_id: Option<String>,
    pub tool_name: Option<String>,
    /// The last run's outcome: `{success, result | error, duration_ms}`.
    pub last_result: Option<Value>,
    /// `ok` or `error`.
    pub last_status: Option<String>,
    /// When the last run started (epoch milliseconds).
    pub last_execution: Option<i64>,
    pub execution_count: i64,
    pub created_at: i64,
}

impl TryFrom<store::TestRow> for SavedTest {
    type Error = anyhow::Error;

    fn try_from(row: store::TestRow) -> anyhow::Result<SavedTest> {
        Ok(SavedTest {
            parameters: serde_json::from_str(&row.parameters)
                .with_context(|| format!("saved test {}: parameters", row.id))?,
            request_type: RequestType::parse(&row.request_type)
                .with_context(|| format!("saved test {}: request_type", row.id))?,
            last_result: row
                .last_result
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .with_context(|| format!("saved test {}: last_result", row.id))?,
            id: row.id,
            name: row.name,
            endpoint_path: row.endpoint_path,
            method: row.method,
            test_category: row.test_category,
            server_id: row.server_id,
            tool_name: row.tool_name,
            last_status: row.last_status,
            last_execution: row.last_execution,
            execution_count: row.execution_count,
            created_at: row.created_at,
        })
    }
}

/// What a run calls.
#[derive(Debug, PartialEq)]
pub enum Target {
    /// A catalog tool (its catalog name) with these arguments.
    Tool { name: String, arguments: Value },
    /// A read-only query on the owner's connection profile.
    Database {
        connection_id: String,
        query: String,
    },
}

impl SavedTest {
    /// What running this test calls, from its stored fields (validated when it was saved).
    pub fn target(&self) -> Result<Target, SavedTestError> {
        let text = |name: &str| {
            self.parameters
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.value.as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("saved test {}: no {name}", self.id))
        };
        Ok(match self.request_type {
            RequestType::Mcp => {
                let tool = self
                    .tool_name
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("saved test {}: no tool_name", self.id))?;
                let server = self.server_id.as_deref().unwrap_or(BUILTIN_SERVER);
                let arguments: Map<String, Value> = self
                    .parameters
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect();
                Target::Tool {
                    name: catalog_name(server, tool),
                    arguments: Value::Object(arguments),
                }
            }
            RequestType::Database => Target::Database {
                connection_id: text("connection_id")?,
                query: text("query")?,
            },
        })
    }
}

/// What [`SavedTests::new`] needs.
pub struct SavedTestsParts {
    pub db: Db,
    pub connections: Arc<Connections>,
    pub catalog: Arc<Catalog>,
    pub audit: Audit,
    pub clock: SharedClock,
}

/// The saved-tests service.
pub struct SavedTests {
    db: Db,
    connections: Arc<Connections>,
    catalog: Arc<Catalog>,
    audit: Audit,
    clock: SharedClock,
}

impl SavedTests {
    pub fn new(parts: SavedTestsParts) -> SavedTests {
        SavedTests {
            db: parts.db,
            connections: parts.connections,
            catalog: parts.catalog,
            audit: parts.audit,
            clock: parts.clock,
        }
    }

    /// Saves `test` for `owner`.
    pub async fn create(&self, owner: &UserId, test: NewTest) -> Result<SavedTest, SavedTestError> {
        let id = uuid::Uuid::now_v7().to_string();
        let parameters =
            serde_json::to_string(&test.parameters).context("encoding a test's parameters")?;
        store::insert_test(
            self.db.writer(),
            &store::NewRow {
                id: &id,
                user_id: owner.as_str(),
                name: &test.name,
                endpoint_path: &test.endpoint_path,
                method: &test.method,
                parameters: &parameters,
                request_type: test.request_type.as_str(),
                test_category: &test.test_category,
                server_id: test.server_id.as_deref(),
                tool_name: test.tool_name.as_deref(),
                created_at: self.clock.now_ms(),
            },
        )
        .await
        .context("saved tests store: insert_test")?;
        self.audit.record(
            Event::new("saved_test.create", "ok")
                .actor(owner)
                .subject(&id)
                .detail(json!({
                    "name": test.name,
                    "request_type": test.request_type.as_str(),
                    "tool_name": test.tool_name,
                })),
        );
        self.find(owner, &id).await
    }

    /// The owner's test `id`.
    pub async fn find(&self, owner: &UserId, id: &str) -> Result<SavedTest, SavedTestError> {
        let row = store::find_test(&self.db.pool, id, owner.as_str())
            .await
            .context("saved tests store: find_test")?
            .ok_or(SavedTestError::NotFound)?;
        Ok(SavedTest::try_from(row)?)
    }

    /// The owner's tests, newest first (the newest 1000), of one category when given.
    pub async fn find_all(
        &self,
        owner: &UserId,
        category: Option<&str>,
    ) -> Result<Vec<SavedTest>, SavedTestError> {
        let rows = store::find_tests(&self.db.pool, owner.as_str(), category, LIST_LIMIT)
            .await
            .context("saved tests store: find_tests")?;
        Ok(rows
            .into_iter()
            .map(SavedTest::try_from)
            .collect::<anyhow::Result<_>>()?)
    }

    /// Deletes the owner's test `id`.
    pub async fn delete(&self, owner: &UserId, id: &str) -> Result<(), SavedTestError> {
        let deleted = store::delete_test(self.db.writer(), id, owner.as_str())
            .await
            .context("saved tests store: delete_test")?;
        if !deleted {
            return Err(SavedTestError::NotFound);
        }
        self.audit.record(
            Event::new("saved_test.delete", "ok")
                .actor(owner)
                .subject(id),
        );
        Ok(())
    }

    /// Runs the caller's test `id` as the caller and records the outcome. A tool's error is a failed run
    /// (`last_status` `error`), not an error of this call; a refused call records nothing.
    pub async fn run(&self, caller: &Caller, id: &str) -> Result<SavedTest, SavedTestError> {
        let test = self.find(&caller.user_id, id).await?;
        let started_at = self.clock.now_ms();
        let (result, status) = match test.target()? {
            Target::Tool { name, arguments } => {
                let called = self
                    .catalog
                    .call_outside_chat(caller, &name, arguments, LOG_SOURCE)
                    .await
                    .map_err(|refusal| match refusal {
                        OutsideChatRefusal::Unavailable => SavedTestError::ToolUnavailable(name),
                        OutsideChatRefusal::NeedsApproval => SavedTestError::NeedsApproval(name),
                    })?;
                match called.outcome {
                    Ok(value) => (
                        json!({ "success": true, "result": value, "duration_ms": called.duration_ms }),
                        "ok",
                    ),
                    Err(error) => (
                        json!({ "success": false, "error": error, "duration_ms": called.duration_ms }),
                        "error",
                    ),
                }
            }
            Target::Database {
                connection_id,
                query,
            } => {
                if !caller.has_permission(crate::auth::permissions::CONNECTIONS_USE) {
                    return Err(SavedTestError::ConnectionsNotPermitted);
                }
                let started = std::time::Instant::now();
                let ran = self
                    .connections
                    .query(&caller.user_id, &connection_id, &query)
                    .await;
                let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                match ran {
                    Ok(result) => (
                        json!({ "success": true, "result": result, "duration_ms": duration_ms }),
                        "ok",
                    ),
                    Err(ConnectionError::NotFound) => {
                        return Err(SavedTestError::ConnectionNotFound);
                    }
                    Err(ConnectionError::Internal(e)) => return Err(SavedTestError::Internal(e)),
                    Err(refused_or_failed) => (
                        json!({ "success": false, "error": refused_or_failed.to_string(), "duration_ms": duration_ms }),
                        "error",
                    ),
                }
            }
        };
        let row = store::update_run(
            self.db.writer(),
            &store::RunRow {
                id,
                user_id: caller.user_id.as_str(),
                last_result: &result.to_string(),
                last_status: status,
                last_execution: started_at,
            },
        )
        .await
        .context("saved tests store: update_run")?
        // Deleted while it ran.
        .ok_or(SavedTestError::NotFound)?;
        Ok(SavedTest::try_from(row)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(body: Value) -> Draft {
        serde_json::from_value(body).unwrap()
    }

    fn error_of(body: Value) -> String {
        NewTest::parse(draft(body)).unwrap_err().to_string()
    }

    #[test]
    fn an_mcp_test_takes_defaults_and_becomes_a_tool_call_with_its_parameters_as_arguments() {
        let test = NewTest::parse(draft(json!({
            "name": "adds", "request_type": "mcp", "tool_name": "add", "server_id": "",
            "parameters": [{ "name": "a", "value": 2 }, { "name": "b", "value": 3 }],
        })))
        .unwrap();
        assert_eq!(test.method, "POST");
        assert_eq!(test.test_category, "general");
        assert_eq!(test.server_id, None);
        let saved = SavedTest {
            id: "t".into(),
            name: test.name,
            endpoint_path: test.endpoint_path,
            method: test.method,
            parameters: test.parameters,
            request_type: test.request_type,
            test_category: test.test_category,
            server_id: Some("up".into()),
            tool_name: test.tool_name,
            last_result: None,
            last_status: None,
            last_execution: None,
            execution_count: 0,
            created_at: 0,
        };
        assert_eq!(
            saved.target().unwrap(),
            Target::Tool {
                name: "up__add".into(),
                arguments: json!({ "a": 2, "b": 3 }),
            }
        );
    }

    #[test]
    fn bad_drafts_are_refused_with_the_field_named() {
        let cases = [
            (
                json!({ "name": "", "request_type": "mcp", "tool_name": "add" }),
                "name",
            ),
            (
                json!({ "name": "x".repeat(201), "request_type": "mcp", "tool_name": "add" }),
                "name",
            ),
            (
                json!({ "name": "n", "request_type": "http" }),
                "request_type",
            ),
            (json!({ "name": "n", "request_type": "mcp" }), "tool_name"),
            (
                json!({ "name": "n", "request_type": "mcp", "tool_name": "add", "method": "TRACE" }),
                "method",
            ),
            (
                json!({ "name": "n", "request_type": "mcp", "tool_name": "add",
                        "parameters": [{ "name": "a", "value": 1 }, { "name": "a", "value": 2 }] }),
                "twice",
            ),
            (
                json!({ "name": "n", "request_type": "database" }),
                "connection_id",
            ),
            (
                json!({ "name": "n", "request_type": "database",
                        "parameters": [{ "name": "connection_id", "value": "c" }] }),
                "query",
            ),
            (
                json!({ "name": "n", "request_type": "database", "tool_name": "add",
                        "parameters": [{ "name": "connection_id", "value": "c" }, { "name": "query", "value": "SELECT 1" }] }),
                "mcp tests",
            ),
        ];
        for (body, needle) in cases {
            let message = error_of(body.clone());
            assert!(message.contains(needle), "{body}: {message}");
        }
    }

    #[test]
    fn a_database_test_is_accepted_with_a_connection_and_a_query() {
        let test = NewTest::parse(draft(json!({
            "name": "rows", "request_type": "database", "test_category": "db",
            "parameters": [{ "name": "connection_id", "value": "c1" }, { "name": "query", "value": "SELECT 1" }],
        })))
        .unwrap();
        assert_eq!(test.request_type, RequestType::Database);
        assert_eq!(test.test_category, "db");
    }
}
