//! The MCP servers admins manage at run time, as a service: add (validate, store, start, audit), remove, list
//! with health, and the start-up list (the settings' servers, then the stored ones). A stored row exists only for
//! a server that started: if its supervisor cannot be added, the row is removed again. Env and header values are
//! never shown back, and are stored sealed (`sealing.rs`).
//!
//! Instances sharing the database follow each other: an add or remove bumps the `upstreams` version and is
//! published on the bus; the others (told, or on their next poll) compare the stored list with what they run
//! (`sync_servers`) and start or stop the difference.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{
    config::{ServerConfig, Transport, load, validate_name},
    sealing, store,
    upstream::Upstreams,
};
use crate::{
    audit::Event,
    cluster::{
        Change,
        versions::{self, Versioned},
    },
    ids::UserId,
    seal::SealKey,
    store::Db,
    tools::{BUILTIN_SERVER, Caller, SERVER_SEPARATOR, ToolSpec},
};

/// An upstream server to add: stdio `command`/`args`/`env`, or `url`/`headers`.
#[derive(Clone, Debug, Deserialize)]
pub struct NewServer {
    pub name: String,
    #[serde(flatten)]
    pub transport: Transport,
}

/// A stored server as admins see it, with its health when it runs.
#[derive(Debug, Serialize)]
pub struct ServerView {
    pub name: String,
    pub config: RedactedTransport,
    pub status: Option<&'static str>,
}

/// A transport with its env and header values replaced by `[REDACTED]`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RedactedTransport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, &'static str>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, &'static str>,
    },
}

impl From<&Transport> for RedactedTransport {
    fn from(t: &Transport) -> Self {
        let hide = |m: &std::collections::HashMap<String, String>| {
            m.keys().map(|k| (k.clone(), "[REDACTED]")).collect()
        };
        match t {
            Transport::Stdio { command, args, env } => RedactedTransport::Stdio {
                command: command.clone(),
                args: args.clone(),
                env: hide(env),
            },
            Transport::Http { url, headers } => RedactedTransport::Http {
                url: url.clone(),
                headers: hide(headers),
            },
        }
    }
}

/// Why a server could not be added, removed or listed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Invalid(String),
    /// The name is taken (stored, or configured in the settings).
    #[error("{0}")]
    Duplicate(String),
    /// No stored server of that name (servers of the settings cannot be removed here).
    #[error("MCP server not found")]
    NotFound,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ServerError {
    fn from(e: sqlx::Error) -> Self {
        ServerError::Internal(e.into())
    }
}

/// The servers to start with: those of MCP_SERVERS_FILE and MCP_SERVER_URL, then those admins added (oldest
/// first), their secrets opened with `key`. An unreadable stored config is logged and skipped, never a reason
/// not to start (a wrong key was refused before, by `sealing::check_and_seal`).
pub async fn startup_servers(
    db: &Db,
    key: &SealKey,
    file: Option<&std::path::Path>,
    url: Option<&str>,
) -> anyhow::Result<Vec<ServerConfig>> {
    let mut servers = load(file, url)?;
    let stored = store::find_servers(db)
        .await
        .context("reading the stored MCP servers")?;
    for (name, text) in stored {
        match sealing::open_transport(key, &name, &text) {
            Ok(transport) => servers.push(ServerConfig { name, transport }),
            Err(e) => {
                tracing::warn!(server = %name, error = %e, "stored MCP server config unreadable; skipped")
            }
        }
    }
    Ok(servers)
}

/// What `sync_servers` last applied: the `upstreams` version and the stored names at that version. Servers of the
/// settings are never in it, so a sync never stops them.
#[derive(Default)]
pub struct StoredServers {
    version: Option<i64>,
    applied: HashSet<String>,
}

/// A name in `Upstreams::adding` for as long as this lives.
struct Adding<'a> {
    names: &'a parking_lot::Mutex<HashSet<String>>,
    name: String,
}

impl<'a> Adding<'a> {
    fn new(names: &'a parking_lot::Mutex<HashSet<String>>, name: &str) -> Adding<'a> {
        names.lock().insert(name.to_string());
        Adding {
            names,
            name: name.to_string(),
        }
    }
}

impl Drop for Adding<'_> {
    fn drop(&mut self) {
        self.names.lock().remove(&self.name);
    }
}

impl Upstreams {
    /// Adds a server for good: validates it, stores it (a taken name is `Duplicate`), starts its supervisor
    /// (removing the row again if that fails) and records `mcp.server.add` for `actor`.
    pub async fn add_server(
        &self,
        actor: &UserId,
        new: NewServer,
    ) -> Result<ServerView, ServerError> {
        validate_name(&new.name).map_err(ServerError::Invalid)?;
        if let Transport::Http { url, .. } = &new.transport
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ServerError::Invalid(
                "url must start with http:// or https://".into(),
            ));
        }
        // From the insert until the supervisor runs, this instance's own sync (woken by a push or its poll) could
        // read the new row and start it first, and the start below would then find the name taken.
        let _adding = Adding::new(&self.adding, &new.name);
        let text = sealing::seal_transport(&self.seal_key, &new.name, &new.transport);
        match store::insert_server(
            &self.db,
            &new.name,
            &text,
            actor.as_str(),
            self.clock.now_ms(),
        )
        .await
        {
            Err(e) if Db::is_unique_violation(&e) => {
                return Err(ServerError::Duplicate(format!(
                    "an MCP server named {:?} already exists",
                    new.name
                )));
            }
            other => other?,
        }
        if let Err(e) = self.add(ServerConfig {
            name: new.name.clone(),
            transport: new.transport.clone(),
        }) {
            store::delete_server(&self.db, &new.name).await?;
            return Err(ServerError::Duplicate(e));
        }
        self.changed_servers().await?;
        self.audit.record(
            Event::new("mcp.server.add", "ok")
                .actor(actor)
                .subject(&new.name),
        );
        Ok(ServerView {
            config: RedactedTransport::from(&new.transport),
            name: new.name,
            status: None,
        })
    }

    /// Stops and forgets a server added at run time, and records `mcp.server.remove` for `actor`.
    pub async fn remove_server(&self, actor: &UserId, name: &str) -> Result<(), ServerError> {
        // Only servers added here can be removed here; those of the settings belong to the settings.
        if name.len() > 64 || !store::delete_server(&self.db, name).await? {
            return Err(ServerError::NotFound);
        }
        self.remove(name);
        self.changed_servers().await?;
        self.audit.record(
            Event::new("mcp.server.remove", "ok")
                .actor(actor)
                .subject(name),
        );
        Ok(())
    }

    /// Counts a change of the stored list and tells the other instances (after it is stored).
    async fn changed_servers(&self) -> Result<(), ServerError> {
        versions::bump(&self.db, Versioned::Upstreams).await?;
        self.bus.publish(Change::Upstreams);
        Ok(())
    }

    /// Starts the stored servers this instance does not run and stops those removed from the store since
    /// `seen` was last brought up to date; does nothing while the `upstreams` version is unchanged. True when
    /// it read the list.
    pub async fn sync_servers(&self, seen: &mut StoredServers) -> Result<bool, ServerError> {
        let version = versions::find(&self.db, Versioned::Upstreams).await?;
        if seen.version == Some(version) {
            return Ok(false);
        }
        let running: HashSet<String> = self.health().into_iter().map(|h| h.server_name).collect();
        let mut stored = HashSet::new();
        for (name, text) in store::find_servers(&self.db).await? {
            stored.insert(name.clone());
            if running.contains(&name) || self.adding.lock().contains(&name) {
                continue;
            }
            match sealing::open_transport(&self.seal_key, &name, &text) {
                Ok(transport) => match self.add(ServerConfig { name, transport }) {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "stored MCP server not started"),
                },
                Err(e) => {
                    tracing::warn!(server = %name, error = %e, "stored MCP server config unreadable; skipped")
                }
            }
        }
        for gone in seen.applied.difference(&stored) {
            self.remove(gone);
        }
        seen.applied = stored;
        seen.version = Some(version);
        Ok(true)
    }

    /// The stored servers with their current status (none while not running).
    pub async fn list_servers(&self) -> Result<Vec<ServerView>, ServerError> {
        let health = self.health();
        Ok(store::find_servers(&self.db)
            .await?
            .into_iter()
            .filter_map(|(name, text)| {
                let transport = sealing::open_transport(&self.seal_key, &name, &text).ok()?;
                let status = health
                    .iter()
                    .find(|h| h.server_name == name)
                    .map(|h| h.status);
                Some(ServerView {
                    config: RedactedTransport::from(&transport),
                    name,
                    status,
                })
            })
            .collect())
    }

    /// The tools of one server (`builtin` for the built-ins) that `caller` may call; `None` when there is no
    /// such server. A known server whose tools the caller may not use gives an empty list.
    pub fn server_tools(&self, caller: &Caller, server: &str) -> Option<Vec<Arc<ToolSpec>>> {
        let prefix = format!("{server}{SERVER_SEPARATOR}");
        let tools: Vec<Arc<ToolSpec>> = self
            .catalog
            .specs_for(caller)
            .into_iter()
            .filter(|t| {
                if server == BUILTIN_SERVER {
                    !t.name.contains(SERVER_SEPARATOR)
                } else {
                    t.name.starts_with(&prefix)
                }
            })
            .collect();
        let known = server == BUILTIN_SERVER
            || !tools.is_empty()
            || self.health().iter().any(|h| h.server_name == server);
        known.then_some(tools)
    }
}
