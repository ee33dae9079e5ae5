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
    /// Appends each (JSON line, text lines) pair to the two files, rotating either first when it is full.
    pub(super) fn append(&self, lines: &[(String, String)]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let json_path = self.dir.join("tool_calls.json");
        let text_path = self.dir.join("tool_calls.log");
        rotate(&json_path, self.max_bytes)?;
        rotate(&text_path, self.max_bytes)?;
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
