//! The tool-call log. Every call goes to the `tool_calls` table (who, with which login session, which
//! conversation, which server, the approval) and, unless ENABLE_TOOL_LOGGING=false, to seed 000's files in WARDEN_LOG_DIR:
//! `tool_calls.json` (JSON Lines) and `tool_calls.log` (human-readable), each rotated by size.
//!
//! The record of a call is `tools::call::Entry`; the files' formats are in `format`, their writing and rotation
//! in `files`, the SQL in `tools::store`.
//!
//! Arguments are redacted by key name before they are written anywhere. Writing happens on a background task
//! fed by a bounded channel: recording never waits, and a full channel drops and counts.

mod files;
mod format;

use serde_json::{Value, json};

pub use self::{
    files::Files,
    format::{json_line, text_lines},
};
pub use super::call::{CallStatus, Entry};
pub use super::store::{Filter, Row, find};
use crate::{
    store::{BatchWriter, Db},
    telemetry::tally::{EventKind, Tally},
};

const CHANNEL_CAPACITY: usize = 8192;
const BATCH: usize = 256;
/// Argument keys whose values are never logged (matched case-insensitively, anywhere in the key).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "credential",
    "private_key",
    "cookie",
    "access_key",
    // A phone number is personal data (the SMS tools take one): the SMS transaction log keeps it masked.
    "phone",
];

/// The handle callers record calls through; clones share one writer task.
#[derive(Clone)]
pub struct ToolLog {
    writer: BatchWriter<Entry>,
    tally: Tally,
}

impl ToolLog {
    /// Starts the writer task: each batch goes to the table, then (when `files` is set) to the files.
    pub fn start(db: Db, files: Option<Files>, tally: Tally) -> ToolLog {
        let writer = BatchWriter::start("tool-call log", CHANNEL_CAPACITY, BATCH, move |entries| {
            write_batch(db.clone(), files.clone(), entries)
        });
        ToolLog { writer, tally }
    }

    /// Queues a call (its arguments redacted first); never waits.
    pub fn record(&self, mut entry: Entry) {
        crate::telemetry::record_tool_call(&entry.tool_name, entry.status.as_str());
        self.tally.add(
            EventKind::ToolCall,
            &entry.tool_name,
            entry.status.as_str(),
            0,
        );
        entry.arguments = redact(entry.arguments);
        self.writer.push(entry);
    }

    /// Waits until everything recorded before this call is written.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// How many calls were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.writer.dropped()
    }
}

/// Replaces the values of secret-looking keys, at any depth.
pub fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                        (k, json!("[REDACTED]"))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

async fn write_batch(db: Db, files: Option<Files>, entries: Vec<Entry>) {
    if let Err(e) = super::store::insert(&db, &entries).await {
        tracing::error!(error = %e, count = entries.len(), "writing tool calls to the database failed");
    }
    if let Some(files) = files {
        let lines: Vec<(String, String)> = entries
            .iter()
            .map(|e| (json_line(e), text_lines(e)))
            .collect();
        let written = tokio::task::spawn_blocking(move || files.append(&lines)).await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            tracing::error!(error = %e, "writing the tool-call log files failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        // The same arguments the format tests' entry carries.
        let arguments = redact(
            json!({ "a": 5, "password": "hunter2", "nested": { "api_key": "k", "x": [{ "Token": "t" }] } }),
        );
        assert_eq!(
            arguments,
            json!({ "a": 5, "password": "[REDACTED]", "nested": { "api_key": "[REDACTED]", "x": [{ "Token": "[REDACTED]" }] } })
        );
    }

    #[test]
    fn a_call_status_is_stored_and_sent_as_its_old_text() {
        assert_eq!(CallStatus::of(&Ok::<(), ()>(())), CallStatus::Success);
        assert_eq!(CallStatus::of(&Err::<(), ()>(())), CallStatus::Error);
        for (status, text) in [
            (CallStatus::Success, "success"),
            (CallStatus::Error, "error"),
        ] {
            assert_eq!(status.as_str(), text);
            assert_eq!(serde_json::to_value(status).unwrap(), json!(text));
            assert_eq!(
                serde_json::from_value::<CallStatus>(json!(text)).unwrap(),
                status
            );
        }
    }
}
