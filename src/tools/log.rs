//! The tool-call log. Every call goes to the `tool_calls` table (who, with which login session, which
//! conversation, which server, the approval) and, unless ENABLE_TOOL_LOGGING=false, to seed 000's files in WARDEN_LOG_DIR:
//! `tool_calls.json` (JSON Lines) and `tool_calls.log` (human-readable), each rotated by size.
//!
//! Arguments are redacted by key name before they are written anywhere. Writing happens on a background task
//! fed by a bounded channel: recording never waits, and a full channel drops and counts.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

pub use super::store::{Filter, Row, find};
use crate::store::{BatchWriter, Db};

const CHANNEL_CAPACITY: usize = 8192;
const BATCH: usize = 256;
/// The seed cut results at 1000 characters in the JSON file and 200 in the text file.
pub(super) const JSON_RESULT_CHARS: usize = 1000;
const TEXT_RESULT_CHARS: usize = 200;
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
];

#[derive(Clone, Debug)]
pub struct Entry {
    pub at_ms: i64,
    pub user_id: Option<String>,
    /// The login session whose credential made the call.
    pub session_id: Option<String>,
    pub conversation_id: Option<String>,
    pub server: String,
    pub tool_name: String,
    pub tool_call_id: Option<String>,
    /// The arguments as the model sent them (redacted when recorded).
    pub arguments: Value,
    /// `success` or `error`.
    pub status: String,
    pub duration_ms: f64,
    pub result: String,
    pub error: Option<String>,
    /// `agent`, `mcp` or `rest`.
    pub source: &'static str,
    pub approval: Option<String>,
    pub approver_id: Option<String>,
    pub model: Option<String>,
    pub api: Option<String>,
}

impl Entry {
    /// An entry for one finished call made in `ctx` (user, login session, conversation); the server is read
    /// from the tool's name (`<server>__<tool>`, else `builtin`). Call id, approval and model are for the
    /// caller to add.
    pub fn new(
        at_ms: i64,
        ctx: &super::ToolContext,
        tool_name: &str,
        arguments: Value,
        outcome: &Result<Value, String>,
        duration_ms: f64,
        source: &'static str,
    ) -> Entry {
        Entry {
            at_ms,
            user_id: Some(ctx.user_id.clone()),
            session_id: Some(ctx.session_id.clone()),
            conversation_id: ctx.conversation_id.clone(),
            server: super::server_of(tool_name).to_string(),
            tool_name: tool_name.to_string(),
            tool_call_id: None,
            arguments,
            status: if outcome.is_ok() {
                "success".into()
            } else {
                "error".into()
            },
            duration_ms,
            result: outcome.as_ref().map(super::result_text).unwrap_or_default(),
            error: outcome.as_ref().err().cloned(),
            source,
            approval: None,
            approver_id: None,
            model: None,
            api: Some(source.to_string()),
        }
    }
}

/// The handle callers record calls through; clones share one writer task.
#[derive(Clone)]
pub struct ToolLog {
    writer: BatchWriter<Entry>,
}

/// Where the files go and when they rotate; `None` turns the files off (the table is always written).
#[derive(Clone)]
pub struct Files {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

impl ToolLog {
    /// Starts the writer task: each batch goes to the table, then (when `files` is set) to the files.
    pub fn start(db: Db, files: Option<Files>) -> ToolLog {
        let writer = BatchWriter::start("tool-call log", CHANNEL_CAPACITY, BATCH, move |entries| {
            write_batch(db.clone(), files.clone(), entries)
        });
        ToolLog { writer }
    }

    /// Queues a call (its arguments redacted first); never waits.
    pub fn record(&self, mut entry: Entry) {
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

/// Seed 000's `session_id`: 8 hex characters of the conversation id, or (for a call outside a chat) of the
/// login session id, so one session's calls can be found in the files too.
fn short_session(entry: &Entry) -> String {
    let source = entry
        .conversation_id
        .clone()
        .or_else(|| entry.session_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    source
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect()
}

fn timestamp(ms: i64, format: &str) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    match format {
        "iso" => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        _ => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
    }
}

/// One line of `tool_calls.json`, field for field as seed 000 wrote it.
pub fn json_line(entry: &Entry) -> Value {
    let length = entry.result.chars().count();
    let mut line = json!({
        "timestamp": timestamp(entry.at_ms, "iso"),
        "session_id": short_session(entry),
        "tool_name": entry.tool_name,
        "arguments": entry.arguments,
        "status": entry.status,
        "duration_ms": entry.duration_ms,
        "result": if length > JSON_RESULT_CHARS {
            format!("{}... (truncated)", entry.result.chars().take(JSON_RESULT_CHARS).collect::<String>())
        } else {
            entry.result.clone()
        },
        "error": entry.error,
        "metadata": { "model": entry.model, "api": entry.api, "tool_call_id": entry.tool_call_id },
    });
    if length > JSON_RESULT_CHARS {
        line["result_length"] = json!(length);
    }
    line
}

/// The lines of `tool_calls.log`. Every value goes through [`Escaped`], so nothing a model or a tool chose can
/// start a line of its own.
pub fn text_lines(entry: &Entry) -> String {
    let (level, outcome) = if entry.status == "success" {
        ("INFO", "SUCCESS")
    } else {
        ("ERROR", "ERROR")
    };
    let (label, detail) = match &entry.error {
        Some(e) => ("Error", e.clone()),
        None => (
            "Result",
            entry.result.chars().take(TEXT_RESULT_CHARS).collect(),
        ),
    };
    format!(
        "{} - {level} - Tool '{}' {outcome} | Session: {} | Duration: {:.2}ms\n    Arguments: {}\n    {label}: {}\n",
        timestamp(entry.at_ms, "text"),
        Escaped(&entry.tool_name),
        Escaped(&short_session(entry)),
        entry.duration_ms,
        Escaped(&entry.arguments.to_string()),
        Escaped(&detail),
    )
}

/// A value in a text-log line with its control characters (C0, DEL, C1) and the Unicode line and paragraph
/// separators written as escapes (`\n`, `\r`, `\t`, else `\u{85}`): a reader splitting on any of them sees
/// one line per entry.
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for c in self.0.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                    write!(f, "\\u{{{:x}}}", u32::from(c))?;
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

async fn write_batch(db: Db, files: Option<Files>, entries: Vec<Entry>) {
    if let Err(e) = super::store::insert(&db, &entries).await {
        tracing::error!(error = %e, count = entries.len(), "writing tool calls to the database failed");
    }
    if let Some(files) = files {
        let lines: Vec<(String, String)> = entries
            .iter()
            .map(|e| (json_line(e).to_string(), text_lines(e)))
            .collect();
        let written = tokio::task::spawn_blocking(move || append_files(&files, &lines)).await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            tracing::error!(error = %e, "writing the tool-call log files failed");
        }
    }
}

fn append_files(files: &Files, lines: &[(String, String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(&files.dir)?;
    let json_path = files.dir.join("tool_calls.json");
    let text_path = files.dir.join("tool_calls.log");
    rotate(&json_path, files.max_bytes)?;
    rotate(&text_path, files.max_bytes)?;
    let mut json = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&json_path)?;
    let mut text = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&text_path)?;
    for (j, t) in lines {
        writeln!(json, "{j}")?;
        text.write_all(t.as_bytes())?;
    }
    Ok(())
}

/// Past `max_bytes`, the file moves to `NAME.1` (replacing an older one) and a new file starts.
fn rotate(path: &Path, max_bytes: u64) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= max_bytes) {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        std::fs::rename(path, rotated)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(result: &str) -> Entry {
        Entry {
            at_ms: 1_800_000_000_000,
            user_id: Some("u".into()),
            session_id: Some("s".into()),
            conversation_id: Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789".into()),
            server: "builtin".into(),
            tool_name: "add".into(),
            tool_call_id: Some("call_1".into()),
            arguments: redact(
                json!({ "a": 5, "password": "hunter2", "nested": { "api_key": "k", "x": [{ "Token": "t" }] } }),
            ),
            status: "success".into(),
            duration_ms: 1.234,
            result: result.into(),
            error: None,
            source: "agent",
            approval: None,
            approver_id: None,
            model: Some("m".into()),
            api: Some("openai".into()),
        }
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let e = entry("8");
        assert_eq!(
            e.arguments,
            json!({ "a": 5, "password": "[REDACTED]", "nested": { "api_key": "[REDACTED]", "x": [{ "Token": "[REDACTED]" }] } })
        );
    }

    #[test]
    fn the_json_line_has_the_seed_fields_and_truncates_long_results() {
        let line = json_line(&entry("8"));
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "arguments",
                "duration_ms",
                "error",
                "metadata",
                "result",
                "session_id",
                "status",
                "timestamp",
                "tool_name"
            ]
        );
        assert_eq!(line["session_id"], json!("0a1b2c3d"));
        assert_eq!(
            line["metadata"],
            json!({ "model": "m", "api": "openai", "tool_call_id": "call_1" })
        );
        let long = json_line(&entry(&"x".repeat(1500)));
        assert_eq!(long["result_length"], json!(1500));
        assert!(
            long["result"]
                .as_str()
                .unwrap()
                .ends_with("... (truncated)")
        );
        assert_eq!(
            long["result"].as_str().unwrap().len(),
            1000 + "... (truncated)".len()
        );
    }

    #[test]
    fn the_text_lines_follow_the_seed_format() {
        let text = text_lines(&entry(&"y".repeat(300)));
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "2027-01-15 08:00:00 - INFO - Tool 'add' SUCCESS | Session: 0a1b2c3d | Duration: 1.23ms"
        );
        assert!(text.contains("Arguments: {"));
        assert!(text.contains(&format!("Result: {}\n", "y".repeat(200))));
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn every_value_in_the_text_lines_has_its_control_characters_escaped() {
        let forged = "\n2027-01-15 08:00:00 - INFO - Tool 'x' SUCCESS";
        let mut e = entry(&format!("ok{forged}\u{85}\u{2029}"));
        e.tool_name = format!("add{forged}\r\t\u{1b}[2J\u{7f}");
        e.arguments = json!({ "note": format!("a{forged}\u{9b}b") });
        let success = text_lines(&e);
        e.error = Some(format!("failed{forged}\u{2028}"));
        let error = text_lines(&e);

        for text in [&success, &error] {
            let lines: Vec<&str> = text.split_terminator('\n').collect();
            assert_eq!(lines.len(), 3, "{text}");
            assert!(lines[1..].iter().all(|l| l.starts_with("    ")), "{text}");
            let unsafe_char = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
            assert!(lines.iter().all(|l| !l.contains(unsafe_char)), "{text:?}");
        }
        let name =
            r"Tool 'add\n2027-01-15 08:00:00 - INFO - Tool 'x' SUCCESS\r\t\u{1b}[2J\u{7f}' SUCCESS";
        assert!(success.contains(name), "{success}");
        assert!(
            success.contains(r#"Arguments: {"note":"a\n2027"#) && success.contains("\\u{9b}b"),
            "{success}"
        );
        assert!(
            success.contains("Result: ok\\n2027") && success.contains("\\u{85}\\u{2029}\n"),
            "{success}"
        );
        assert!(
            error.contains("Error: failed\\n2027") && error.ends_with("\\u{2028}\n"),
            "{error}"
        );
    }
}
