//! Seed 000's tool-call log formats, field for field: one JSON line per call for `tool_calls.json`, and the
//! human-readable lines of `tool_calls.log`, where every value is escaped so that no text a model or a tool
//! chose can start a line of its own. Pure functions of an `Entry`: nothing here writes.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::{CallStatus, Entry};

/// The seed cut results at 1000 characters in the JSON file and 200 in the text file.
const JSON_RESULT_CHARS: usize = 1000;
const TEXT_RESULT_CHARS: usize = 200;

/// Seed 000's `session_id`: 8 hex characters of the conversation id, or (for a call outside a chat) of the
/// login session id, so one session's calls can be found in the files too.
fn short_session(entry: &Entry) -> String {
    let source = entry
        .conversation_id
        .as_ref()
        .map(|c| c.to_string())
        .or_else(|| entry.session_id.as_ref().map(|s| s.to_string()))
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

/// One line of `tool_calls.json`, field for field as seed 000 wrote it, the keys in alphabetical order (as
/// they always were). Serialized straight from the entry: no JSON tree is built per call.
pub fn json_line(entry: &Entry) -> String {
    let length = entry.result.chars().count();
    let truncated = length > JSON_RESULT_CHARS;
    let line = JsonLine {
        arguments: &entry.arguments,
        duration_ms: entry.duration_ms,
        error: entry.error.as_deref(),
        metadata: Metadata {
            api: entry.api.as_deref(),
            model: entry.model.as_deref(),
            tool_call_id: entry.tool_call_id.as_deref(),
        },
        result: if truncated {
            let kept: String = entry.result.chars().take(JSON_RESULT_CHARS).collect();
            Cow::Owned(format!("{kept}... (truncated)"))
        } else {
            Cow::Borrowed(&entry.result)
        },
        result_length: truncated.then_some(length),
        session_id: short_session(entry),
        status: entry.status,
        timestamp: timestamp(entry.at_ms, "iso"),
        tool_name: &entry.tool_name,
    };
    // Only strings, numbers and a JSON value: serializing cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

#[derive(Serialize)]
struct JsonLine<'a> {
    arguments: &'a Value,
    duration_ms: f64,
    error: Option<&'a str>,
    metadata: Metadata<'a>,
    result: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_length: Option<usize>,
    session_id: String,
    status: CallStatus,
    timestamp: String,
    tool_name: &'a str,
}

#[derive(Serialize)]
struct Metadata<'a> {
    api: Option<&'a str>,
    model: Option<&'a str>,
    tool_call_id: Option<&'a str>,
}

/// The lines of `tool_calls.log`. Every value goes through [`Escaped`], so nothing a model or a tool chose can
/// start a line of its own.
pub fn text_lines(entry: &Entry) -> String {
    let (level, outcome) = if entry.status == CallStatus::Success {
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
        // Most values hold nothing to escape: one pass over the bytes finds that, and the text goes out whole.
        if !self.0.bytes().any(may_start_an_escape) {
            return f.write_str(self.0);
        }
        // Runs of plain characters are written whole; only the characters to escape are written one by one.
        let mut plain_from = 0;
        for (at, c) in self.0.char_indices() {
            let escape = match c {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => "",
                _ => continue,
            };
            f.write_str(&self.0[plain_from..at])?;
            if escape.is_empty() {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                f.write_str(escape)?;
            }
            plain_from = at + c.len_utf8();
        }
        f.write_str(&self.0[plain_from..])
    }
}

/// Whether `byte` can begin a character that [`Escaped`] escapes: a C0 control or DEL (one byte), the lead byte of
/// a C1 control (U+0080..U+009F: 0xC2 0x80..0x9F) or of U+2028 and U+2029 (0xE2 0x80 0xA8/0xA9). Text without
/// such a byte has nothing to escape.
fn may_start_an_escape(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f || byte == 0xc2 || byte == 0xe2
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tools::log::redact;

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
            status: CallStatus::Success,
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
    fn the_json_line_has_the_seed_fields_and_truncates_long_results() {
        let text = json_line(&entry("8"));
        let line: Value = serde_json::from_str(&text).unwrap();
        // The keys in the order they are written.
        let mut keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        keys.sort_by_key(|k| text.find(&format!("\"{k}\":")).unwrap());
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
        assert!(line.get("result_length").is_none());
        let long: Value = serde_json::from_str(&json_line(&entry(&"x".repeat(1500)))).unwrap();
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

    #[test]
    fn every_character_alone_is_escaped_exactly_when_it_can_break_a_line() {
        let breaks_a_line = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let written = Escaped(&text).to_string();
            assert_eq!(written != text, breaks_a_line(c), "U+{:04X}", u32::from(c));
            assert!(!written.contains(breaks_a_line), "U+{:04X}", u32::from(c));
        }
    }
}
