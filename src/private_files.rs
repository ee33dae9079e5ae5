//! Files and folders private to the service user: folders 0700, files 0600 (on Unix; elsewhere the
//! platform's defaults). The data dir, the signing key and the SQLite database all go through here.

use std::path::Path;

use anyhow::Context;

/// Creates `dir` and its missing parents, mode 0700.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
    folder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Creates (or truncates) `path` with mode 0600 and writes `text`; its folder is created private too.
pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    let mut file = options()
        .truncate(true)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Creates `path` empty with mode 0600 if it does not exist (a file another library will then open).
pub fn create_file(path: &Path) -> anyhow::Result<()> {
    options()
        .truncate(false)
        .open(path)
        .map(|_| ())
        .with_context(|| format!("creating {}", path.display()))
}

/// Sets `path`'s mode (0700 for a folder, 0600 for a file); `Ok(false)` when it does not exist.
pub fn tighten(path: &Path, mode: u32) -> anyhow::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            other => other.with_context(|| format!("making {} private", path.display()))?,
        }
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(path.exists())
}

fn options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}
