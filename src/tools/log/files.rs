//! The tool-call log's files in WARDEN_LOG_DIR: `tool_calls.json` and `tool_calls.log`, appended to by the
//! writer task (on a blocking thread) and each rotated by size to `NAME.1`, which keeps one older file.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// Where the files go and when they rotate; `None` turns the files off (the table is always written).
#[derive(Clone)]
pub struct Files {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

impl Files {
    /// Appends each (JSON line, text lines) pair to the two files, rotating either first when it is full. Each
    /// file gets the whole batch in one write.
    pub(super) fn append(&self, lines: &[(String, String)]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut json = String::with_capacity(lines.iter().map(|(j, _)| j.len() + 1).sum());
        let mut text = String::with_capacity(lines.iter().map(|(_, t)| t.len()).sum());
        for (j, t) in lines {
            json.push_str(j);
            json.push('\n');
            text.push_str(t);
        }
        append_to(&self.dir.join("tool_calls.json"), &json, self.max_bytes)?;
        append_to(&self.dir.join("tool_calls.log"), &text, self.max_bytes)
    }
}

/// Appends `data` to the file at `path`, rotating it first when it is full.
fn append_to(path: &Path, data: &str, max_bytes: u64) -> std::io::Result<()> {
    rotate(path, max_bytes)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(data.as_bytes())
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
