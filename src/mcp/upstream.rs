//! Upstream MCP servers feeding the tool catalog: stdio children (each in its own process group, killed with
//! it) and Streamable HTTP servers, configured in `config.rs`; their tools are `tool.rs`'s. A supervisor per server connects, registers its tools as `<server>__<tool>`, lists them again when
//! the server sends `notifications/tools/list_changed` (same connection), watches the connection, and on loss reports the server down, removes its tools and reconnects with backoff. A server
//! that is down at start never stops Warden from starting.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context;
use parking_lot::Mutex;
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    service::NotificationContext,
    transport::{
        StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use super::connection::Health;
use super::{
    config::{ServerConfig, Transport},
    connection::{Live, Upstream},
    http_call::{HttpCall, SessionNoting},
    tool::UpstreamTool,
};
use crate::{
    audit::Audit,
    clock::SharedClock,
    seal::SealKey,
    store::Db,
    tools::{Catalog, SERVER_SEPARATOR as SEPARATOR, ToolSpec},
};

/// The running upstream servers, and (in `servers`) the service that adds and removes them at run time.
pub struct Upstreams {
    servers: parking_lot::RwLock<Vec<(Arc<Upstream>, CancellationToken)>>,
    pub(super) catalog: Arc<Catalog>,
    pub(super) clock: SharedClock,
    pub(super) db: Db,
    pub(super) audit: Audit,
    /// Seals the env and header values of servers added at run time.
    pub(super) seal_key: SealKey,
    /// Tells the other instances when a stored server is added or removed here (`servers.rs`).
    pub(super) bus: crate::cluster::Bus,
    /// Names `add_server` has stored and not yet started: `sync_servers` leaves those rows to it.
    pub(super) adding: parking_lot::Mutex<std::collections::HashSet<String>>,
    stop: CancellationToken,
}

/// What `Upstreams::start` needs besides the servers.
pub struct UpstreamsParts {
    pub catalog: Arc<Catalog>,
    pub clock: SharedClock,
    pub db: Db,
    pub audit: Audit,
    pub seal_key: SealKey,
    pub bus: crate::cluster::Bus,
}

impl Upstreams {
    /// Starts a supervisor per server; returns at once.
    pub fn start(configs: Vec<ServerConfig>, parts: UpstreamsParts) -> Upstreams {
        let upstreams = Upstreams {
            servers: Default::default(),
            catalog: parts.catalog,
            clock: parts.clock,
            db: parts.db,
            audit: parts.audit,
            seal_key: parts.seal_key,
            bus: parts.bus,
            adding: Default::default(),
            stop: CancellationToken::new(),
        };
        for config in configs {
            // Names are unique across sources: the first one wins, a duplicate is reported and skipped.
            if let Err(e) = upstreams.add(config) {
                tracing::warn!(error = %e, "MCP server skipped");
            }
        }
        upstreams
    }

    /// Adds a server and starts its supervisor. Fails if the name is taken.
    pub fn add(&self, config: ServerConfig) -> Result<(), String> {
        let mut servers = self.servers.write();
        if servers.iter().any(|(s, _)| s.config.name == config.name) {
            return Err(format!(
                "an MCP server named {:?} already exists",
                config.name
            ));
        }
        let (transport, url) = match &config.transport {
            Transport::Stdio { .. } => ("stdio", None),
            Transport::Http { url, .. } => ("http", Some(url.clone())),
        };
        let up = Arc::new(Upstream {
            health: Mutex::new(Health {
                server_name: config.name.clone(),
                transport,
                url,
                status: "starting",
                response_time_ms: None,
                last_check: None,
                last_successful_check: None,
                error_count: 0,
                error_message: None,
                total_requests: 0,
                successful_requests: 0,
                tools: Vec::new(),
                restarts: 0,
            }),
            config,
            live: Mutex::new(None),
            clock: self.clock.clone(),
        });
        let stop = self.stop.child_token();
        tokio::spawn(supervise(up.clone(), self.catalog.clone(), stop.clone()));
        servers.push((up, stop));
        Ok(())
    }

    /// Stops a server (killing a stdio child) and removes its tools. False if there is no such server.
    pub fn remove(&self, name: &str) -> bool {
        let mut servers = self.servers.write();
        let Some(i) = servers.iter().position(|(s, _)| s.config.name == name) else {
            return false;
        };
        let (up, stop) = servers.remove(i);
        stop.cancel();
        let prefix = format!("{}{SEPARATOR}", up.config.name);
        self.catalog.remove_where(|tool| tool.starts_with(&prefix));
        true
    }

    pub fn health(&self) -> Vec<Health> {
        self.servers
            .read()
            .iter()
            .map(|(s, _)| s.health.lock().clone())
            .collect()
    }

    /// Stops every supervisor; stdio children are killed with their process group.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

/// The wait between reconnection attempts: 250 ms, doubling to at most 30 s, and back to 250 ms once a
/// connection succeeds, so a flapping server is retried fast and a dead one costs little.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The wait before the next attempt; each call doubles the one after it.
    fn wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

/// The client side of one upstream connection: a `notifications/tools/list_changed` wakes the supervisor, which
/// lists the server's tools again on the same connection.
#[derive(Clone, Default)]
struct ListChanged(Arc<Notify>);

impl ClientHandler for ListChanged {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.0.notify_one();
    }
}

/// Registers the server's tools as `<server>__<tool>` and drops those of `previous` it no longer has (new ones
/// first, so a tool that stays never disappears for a moment); returns the catalog names.
fn register_tools(
    up: &Arc<Upstream>,
    catalog: &Catalog,
    tools: Vec<rmcp::model::Tool>,
    previous: &[String],
) -> Vec<String> {
    let names: Vec<String> = tools
        .iter()
        .map(|t| format!("{}{SEPARATOR}{}", up.config.name, t.name))
        .collect();
    for t in tools {
        catalog.register(Arc::new(UpstreamTool {
            up: up.clone(),
            remote_name: t.name.to_string(),
            spec: ToolSpec {
                name: format!("{}{SEPARATOR}{}", up.config.name, t.name),
                description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                parameters: Value::Object((*t.input_schema).clone()).into(),
            },
        }));
    }
    catalog.remove_where(|name| {
        previous.iter().any(|p| p == name) && !names.iter().any(|n| n == name)
    });
    names
}

async fn supervise(up: Arc<Upstream>, catalog: Arc<Catalog>, stop: CancellationToken) {
    let mut backoff = Backoff::new();
    loop {
        let started = std::time::Instant::now();
        let changed = ListChanged::default();
        let connected = tokio::select! {
            r = connect(&up.config, changed.clone()) => r,
            _ = stop.cancelled() => return,
        };
        match connected {
            Ok((client, http)) => {
                backoff.reset();
                let peer = client.peer().clone();
                let tools = match peer.list_all_tools().await {
                    Ok(t) => t,
                    Err(e) => {
                        up.mark_down(&format!("listing tools failed: {e}"));
                        let _ = client.cancel().await;
                        continue;
                    }
                };
                let mut names = register_tools(&up, &catalog, tools, &[]);
                let lost = CancellationToken::new();
                *up.live.lock() = Some(Live {
                    peer: peer.clone(),
                    http,
                    lost: lost.clone(),
                });
                // Removed while connecting: take back what was just registered.
                if stop.is_cancelled() {
                    catalog.remove_where(|name| names.iter().any(|n| n == name));
                    return;
                }
                up.mark_up(started.elapsed().as_secs_f64() * 1000.0, names.clone());
                tracing::info!(server = %up.config.name, tools = names.len(), "MCP server connected");
                let token = client.cancellation_token();
                let closed = client.waiting();
                tokio::pin!(closed);
                let why = loop {
                    tokio::select! {
                        _ = &mut closed => break "the connection closed",
                        _ = lost.cancelled() => {
                            token.cancel();
                            break "a call lost the connection";
                        }
                        _ = stop.cancelled() => {
                            token.cancel();
                            *up.live.lock() = None;
                            return;
                        }
                        _ = changed.0.notified() => {
                            // A failed listing keeps the tools known so far; a lost connection ends `closed`.
                            match peer.list_all_tools().await {
                                Ok(tools) => {
                                    names = register_tools(&up, &catalog, tools, &names);
                                    up.health.lock().tools = names.clone();
                                    tracing::info!(server = %up.config.name, tools = names.len(), "MCP server's tools changed");
                                }
                                Err(e) => tracing::warn!(server = %up.config.name, error = %e, "listing changed tools failed"),
                            }
                        }
                    }
                };
                *up.live.lock() = None;
                catalog.remove_where(|name| names.iter().any(|n| n == name));
                up.mark_down(why);
                up.health.lock().restarts += 1;
                tracing::warn!(server = %up.config.name, "MCP server went away; reconnecting");
            }
            Err(e) => {
                up.mark_down(&format!("{e:#}"));
                tracing::warn!(server = %up.config.name, error = %format!("{e:#}"), "MCP server unreachable; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.wait()) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// An open connection, and for an HTTP server the direct caller of its tools.
type Connected = (
    rmcp::service::RunningService<RoleClient, ListChanged>,
    Option<Arc<HttpCall>>,
);

async fn connect(config: &ServerConfig, handler: ListChanged) -> anyhow::Result<Connected> {
    match &config.transport {
        Transport::Stdio { command, args, env } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env).stderr(std::process::Stdio::null());
            let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
            // Its own process group, so whatever it starts dies with it.
            wrapped
                .wrap(process_wrap::tokio::ProcessGroup::leader())
                .wrap(process_wrap::tokio::KillOnDrop);
            let transport =
                TokioChildProcess::new(wrapped).with_context(|| format!("starting {command}"))?;
            let client = tokio::time::timeout(Duration::from_secs(20), handler.serve(transport))
                .await
                .context("no answer within 20 s")??;
            Ok((client, None))
        }
        Transport::Http { url, headers } => {
            let mut custom = HashMap::new();
            for (k, v) in headers {
                custom.insert(
                    k.parse::<reqwest::header::HeaderName>()?,
                    v.parse::<reqwest::header::HeaderValue>()?,
                );
            }
            let noting = SessionNoting::new(reqwest::Client::new());
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(custom.clone());
            let transport = StreamableHttpClientTransport::with_client(noting.clone(), config);
            let client = tokio::time::timeout(Duration::from_secs(20), handler.serve(transport))
                .await
                .context("no answer within 20 s")??;
            let version = client
                .peer()
                .peer_info()
                .map(|info| info.protocol_version.to_string())
                .context("the server's initialize answer is missing")?;
            let http = HttpCall::new(&noting, url, &custom, &version)?;
            Ok((client, Some(Arc::new(http))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_waits_double_from_250_ms_to_30_s_and_reset_after_a_connection() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..10).map(|_| backoff.wait().as_millis() as u64).collect();
        assert_eq!(
            waits,
            [
                250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
        );
        backoff.reset();
        assert_eq!(backoff.wait(), Duration::from_millis(250));
    }
}
