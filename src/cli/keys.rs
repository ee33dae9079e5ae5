//! `warden keys rotate`: re-seals every sealed value under a new encryption key in one transaction, and says
//! what WARDEN_ENCRYPTION_KEY must be from then on. Run it with the server stopped: a running server keeps
//! the old key in memory and would seal new values under it.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Subcommand;
use secrecy::ExposeSecret;

use crate::{app, config::Config, private_files, seal::SealKey, store::Db};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Re-seal every stored secret under a new key (given, or generated and written 0600 to the data dir).
    Rotate {
        /// A file holding the new key (32 bytes in base64, as `openssl rand -base64 32` prints).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

/// A table of sealed values: re-seals its values from the old key to the new inside the transaction, returning
/// how many it re-sealed.
type Reseal = for<'a> fn(
    &'a mut sqlx::AnyConnection,
    &'a SealKey,
    &'a SealKey,
) -> futures::future::BoxFuture<'a, anyhow::Result<usize>>;

/// Every kind of sealed value. A feature that seals something adds itself here.
const SEALED: &[(&str, Reseal)] = &[
    ("MCP server env and header values", |tx, old, new| {
        Box::pin(async move {
            crate::mcp::sealing::reseal(tx, old, new)
                .await
                .map_err(anyhow::Error::new)
        })
    }),
    ("database connection passwords", |tx, old, new| {
        Box::pin(crate::connections::reseal(tx, old, new))
    }),
];

/// The file a generated new key is written to, in the data dir, before the transaction commits.
const NEW_KEY_FILE: &str = "encryption_key.new";

pub async fn run(cmd: KeysCommand, config: Config) -> anyhow::Result<ExitCode> {
    let KeysCommand::Rotate { new_key_file } = cmd;
    let old = app::encryption_key(&config)?;
    let (new, new_path) = match &new_key_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let key = SealKey::parse(&text)
                .map_err(|e| anyhow::anyhow!("the key in {} {e}", path.display()))?;
            (key, path.clone())
        }
        None => {
            let key = SealKey::generate();
            let path = config.data_dir.join(NEW_KEY_FILE);
            // Kept before the commit: once the values are re-sealed, losing this key would lose them.
            private_files::write(&path, key.encoded().expose_secret())?;
            (key, path)
        }
    };
    if new.id() == old.id() {
        anyhow::bail!("the new key is the key in use; give another one");
    }
    let db = Db::connect(&config.effective_database_url()).await?;
    db.migrate().await?;
    let mut tx = db.writer().begin().await?;
    let mut total = 0;
    for (what, reseal) in SEALED {
        let count = reseal(&mut tx, &old, &new)
            .await
            .with_context(|| format!("re-sealing {what} (nothing was changed)"))?;
        println!("re-sealed {count} {what}");
        total += count;
    }
    tx.commit()
        .await
        .context("committing the re-sealed values")?;
    db.close().await;
    println!(
        "re-sealed {total} values from key {} to key {}",
        old.id(),
        new.id()
    );
    if config.encryption_key.is_none() {
        // Development: the data dir's key is the one in use; the new one takes its place.
        let dev = config.data_dir.join(app::ENCRYPTION_KEY_FILE);
        private_files::write(&dev, new.encoded().expose_secret())?;
        if new_key_file.is_none() {
            let _ = std::fs::remove_file(&new_path);
        }
        println!(
            "the data dir's {} now holds the new key; if you set WARDEN_ENCRYPTION_KEY, set it to that key",
            app::ENCRYPTION_KEY_FILE
        );
    } else {
        println!(
            "set WARDEN_ENCRYPTION_KEY to the key in {} before the next start",
            new_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
