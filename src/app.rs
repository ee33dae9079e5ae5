//! Assembly: `build` (config in, a bound server out), the connection loop and graceful
//! shutdown. `build` binds before it returns, so tests can ask for port 0 and read the real address.
//! Everything written to the data dir is private to the service user (0700 folder, 0600 files).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use axum::{extract::ConnectInfo, http::Request};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use parking_lot::Mutex;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::{
    agent::{Agent, Limits},
    audit::Audit,
    auth::{Auth, AuthParts, Settings},
    chat::Chat,
    clock::SharedClock,
    cluster::{Bus, Change, Notice},
    config::{Config, IpNet},
    ids::ApprovalId,
    mcp::upstream::Upstreams,
    private_files,
    state::{AppState, Services},
    store::Db,
    telemetry::Metrics,
    tools::{Catalog, approval::Approvals, log::ToolLog},
};

pub struct App {
    listener: TcpListener,
    pub addr: SocketAddr,
    /// `METRICS_BIND`'s listener: `/metrics` without authentication, apart from the API.
    metrics_listener: Option<TcpListener>,
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    /// Set when the first start created the admin account with a random password.
    pub generated_admin_password: Option<String>,
    shutdown: CancellationToken,
}

/// Refuses production start-up on unsafe settings, opens and migrates the database, bootstraps the admin
/// account, and binds the listener.
pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<App> {
    if config.is_production() {
        let findings = config.findings();
        if !findings.is_empty() {
            let list: Vec<String> = findings.iter().map(|f| format!("  - {f}")).collect();
            bail!(
                "refusing to start in production (ENVIRONMENT=production):\n{}",
                list.join("\n")
            );
        }
    }
    tighten_data_dir(&config.data_dir)?;
    let db = Db::connect(&config.effective_database_url()).await?;
    db.migrate().await?;
    let seal_key = encryption_key(&config)?;
    // Before anything else reads a sealed value: a wrong key stops the start here, with nothing rewritten.
    let sealed_now = crate::mcp::sealing::check_and_seal(&db, &seal_key)
        .await
        .map_err(|e| match e {
            crate::mcp::sealing::SealingError::WrongKey { .. } => anyhow::anyhow!(
                "refusing to start: WARDEN_ENCRYPTION_KEY does not open the stored secrets ({e}); set the key \
                 they were sealed with (`warden keys rotate` changes it)"
            ),
            other => anyhow::Error::new(other).context("sealing the stored MCP server secrets"),
        })?;
    if sealed_now > 0 {
        tracing::info!(
            servers = sealed_now,
            "sealed the stored MCP server secrets kept in clear"
        );
    }
    crate::connections::check_key(&db, &seal_key).await?;
    let secret = signing_secret(&config)?;
    let mfa_keys = crate::mfa::Keys::derive(&secret);
    let sms_secret = secret.clone();
    let audit = Audit::start(db.clone(), clock.clone());
    // Limits every instance counts together (logins and page views per address), when Redis is configured.
    let shared_limits = config
        .redis_url
        .as_deref()
        .map(|url| crate::limits::SharedCounter::connect(url, &config.redis_prefix))
        .transpose()?
        .map(Arc::new);
    let bus = Bus::start(
        crate::cluster::Settings {
            redis_url: config.redis_url.clone(),
            redis_prefix: config.redis_prefix.clone(),
            database_url: config.effective_database_url(),
        },
        &db,
    )?;
    let auth = Arc::new(
        Auth::new(AuthParts {
            db: db.clone(),
            clock: clock.clone(),
            secret,
            issuer: config.public_url.clone(),
            django_secret: config
                .django_secret_key
                .as_ref()
                .map(|s| s.expose_secret().as_bytes().to_vec()),
            jwks: config.jwks_issuer.as_ref().map(|j| {
                crate::auth::jwks::JwksVerifier::new(&j.url, &j.issuer, j.audience.as_deref())
            }),
            hash_concurrency: config.password_hash_concurrency,
            ip_per_minute: config.login_ip_per_minute,
            shared_limits: shared_limits.clone(),
            settings: Settings::from_config(&config),
            audit: audit.clone(),
            bus: bus.clone(),
        })
        .await?,
    );
    let generated_admin_password = auth
        .bootstrap_admin(
            config
                .admin_password
                .as_ref()
                .map(|p| p.expose_secret().to_string()),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the admin account: {e}"))?;
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_bind {
        Some(bind) => Some(
            TcpListener::bind(bind)
                .await
                .with_context(|| format!("binding METRICS_BIND {bind}"))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let metrics = Metrics::install()?;
    let files = config
        .enable_tool_logging
        .then(|| crate::tools::log::Files {
            dir: config.log_dir.clone(),
            max_bytes: config.tool_log_max_bytes,
        });
    let tally = crate::telemetry::tally::Tally::new(clock.clone());
    let tool_log = ToolLog::start(db.clone(), files, tally.clone());
    let catalog = Arc::new(Catalog::new(
        crate::tools::policy::Policy::load(&db, bus.clone()).await?,
        crate::tools::CatalogParts {
            db: db.clone(),
            audit: audit.clone(),
            tool_log: tool_log.clone(),
            clock: clock.clone(),
        },
    ));
    for tool in crate::tools::builtin::all(clock.clone()) {
        catalog.register(tool);
    }
    let approvals = Arc::new(Approvals::new(
        db.clone(),
        audit.clone(),
        clock.clone(),
        bus.clone(),
    ));
    let sms = crate::sms::Sms::new(crate::sms::SmsParts {
        config: config.sms.clone(),
        db: db.clone(),
        clock: clock.clone(),
        signing_secret: &sms_secret,
        tally: tally.clone(),
    })?;
    // With Telesign only, so the console default keeps the catalog of a development server (and its tests) to the
    // built-in tools; the catalog offers them only to callers holding the SMS permission too.
    if config.sms.provider == crate::config::SmsProviderKind::Telesign {
        for tool in crate::sms::tools::all(sms.clone()) {
            catalog.register(tool);
        }
    }
    let connections = Arc::new(crate::connections::Connections::new(
        crate::connections::ConnectionsParts {
            db: db.clone(),
            key: seal_key.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            config: config.connections.clone(),
        },
    ));
    let saved_tests = Arc::new(crate::saved_tests::SavedTests::new(
        crate::saved_tests::SavedTestsParts {
            db: db.clone(),
            connections: connections.clone(),
            catalog: catalog.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        },
    ));
    // Offered only to callers holding `connections:use`, and they reach only the caller's own profiles.
    for tool in crate::connections::tools::all(connections.clone()) {
        catalog.register(tool);
    }
    let mfa = Arc::new(crate::mfa::Mfa::new(crate::mfa::MfaParts {
        db: db.clone(),
        clock: clock.clone(),
        audit: audit.clone(),
        auth: auth.clone(),
        sms: sms.clone(),
        keys: mfa_keys,
        approvals: approvals.clone(),
    }));
    let agent = Agent {
        provider: Arc::new(MeasuredLlm(crate::agent::llm::from_config(&config)?)),
        approvals: approvals.clone(),
        catalog: catalog.clone(),
        tool_log: tool_log.clone(),
        factors: Some(mfa.clone()),
        clock: clock.clone(),
        system_prompt: config.agent_system_prompt.clone(),
        limits: Limits {
            max_steps: config.agent_max_steps,
            deadline: config.agent_deadline,
        },
    };
    let chat_settings = crate::chat::Settings {
        history_window: config.chat_history_window,
        daily_token_quota: config.chat_daily_token_quota,
    };
    let chat = Chat::new(
        db.clone(),
        clock.clone(),
        agent,
        chat_settings,
        tally.clone(),
    );
    let servers = crate::mcp::servers::startup_servers(
        &db,
        &seal_key,
        config.mcp_servers_file.as_deref(),
        config.mcp_server_url.as_deref(),
    )
    .await?;
    let upstreams = Upstreams::start(
        servers,
        crate::mcp::upstream::UpstreamsParts {
            catalog: catalog.clone(),
            clock: clock.clone(),
            db: db.clone(),
            audit: audit.clone(),
            seal_key,
            bus: bus.clone(),
        },
    );
    let analytics = crate::analytics::Analytics::start(
        db.clone(),
        clock.clone(),
        tally,
        crate::analytics::Settings {
            enabled: config.analytics_enabled,
            queue: config.analytics_queue,
            request_log_days: config.analytics_request_log_days,
            page_view_days: config.analytics_page_view_days,
            metrics_days: config.analytics_metrics_days,
            rows_per_second: config.analytics_rows_per_second,
            page_views_per_minute: 60,
        },
    )
    .with_shared_limits(shared_limits);
    let state = AppState::new(Services {
        config,
        db,
        auth,
        audit,
        analytics,
        chat,
        catalog,
        tool_log,
        upstreams,
        approvals,
        sms,
        connections,
        mfa,
        saved_tests,
        clock,
        metrics,
        bus,
    });
    Ok(App {
        listener,
        addr,
        metrics_listener,
        metrics_addr,
        state,
        generated_admin_password,
        shutdown: CancellationToken::new(),
    })
}

impl App {
    /// A handle that stops the server (gracefully) when cancelled.
    pub fn shutdown_handle(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown handle is cancelled, then lets in-flight requests finish.
    pub async fn run(self) -> anyhow::Result<()> {
        let router = crate::http::router(self.state.clone(), crate::web::router());
        let state = self.state.clone();
        let stop = self.shutdown.clone();
        let pruner = tokio::spawn(async move {
            state.auth.warm_up().await;
            // Expired revocations are dropped hourly.
            let mut prune = tokio::time::interval(Duration::from_secs(3600));
            // Counting sessions is a query: sampled for /metrics here, never per request or per scrape.
            let mut sample = tokio::time::interval(Duration::from_secs(15));
            let mut upkeep = tokio::time::interval(Duration::from_secs(5));
            // Analytics: retention (a few small delete batches) and a sample of the process's figures every
            // minute; the counted events go to their rollups every 5 s.
            let mut purge = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = upkeep.tick() => {
                        state.metrics.upkeep();
                        if let Err(e) = state.analytics.write_rollups().await {
                            tracing::warn!(error = %e, "writing request rollups failed");
                        }
                        if let Err(e) = state.analytics.write_tally().await {
                            tracing::warn!(error = %e, "writing counted events failed");
                        }
                    }
                    _ = sample.tick() => match state.auth.count_active_sessions().await {
                        Ok(count) => crate::telemetry::set_active_sessions(count),
                        Err(e) => tracing::warn!(error = %e, "counting active sessions failed"),
                    },
                    _ = prune.tick() => state.auth.prune_revoked(),
                    _ = purge.tick() => {
                        if let Err(e) = state.analytics.purge_once(state.clock.now_ms()).await {
                            tracing::warn!(error = %e, "purging old analytics rows failed");
                        }
                        if let Err(e) = state.analytics.sample().await {
                            tracing::warn!(error = %e, "storing a system sample failed");
                        }
                    }
                    _ = stop.cancelled() => return,
                }
            }
        });
        let follower = tokio::spawn(follow_changes(self.state.clone()));
        let metrics_server = self.metrics_listener.map(|listener| {
            let state = self.state.clone();
            let stop = self.shutdown.clone();
            let router = crate::http::metrics::open_router(state.clone());
            tokio::spawn(async move { serve(listener, router, &state.config, stop).await })
        });
        serve(
            self.listener,
            router,
            &self.state.config,
            self.shutdown.clone(),
        )
        .await;
        pruner.abort();
        follower.abort();
        if let Some(server) = metrics_server {
            let _ = server.await;
        }
        self.state.upstreams.shutdown();
        self.state.audit.flush().await;
        self.state.tool_log.flush().await;
        self.state.analytics.flush().await;
        self.state.db.close().await;
        Ok(())
    }
}

/// Applies other instances' changes: at once when the bus brings word of one, and from the watermarks every
/// SYNC_INTERVAL_MS anyway (the safety net: a lost message, a bus that is down, or no bus on SQLite). One task, so
/// two syncs never run at the same time.
async fn follow_changes(state: AppState) {
    let mut notices = state.bus.subscribe();
    let mut listening = true;
    let mut poll = tokio::time::interval(state.config.sync_interval);
    let mut servers = crate::mcp::servers::StoredServers::default();
    loop {
        // `None`: everything (a poll, a resync after the bus reconnected, or messages lost to lag).
        let change = tokio::select! {
            _ = poll.tick() => None,
            notice = notices.recv(), if listening => match notice {
                Ok(Notice::Change(change)) => Some(change),
                Ok(Notice::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    listening = false;
                    continue;
                }
            },
        };
        let auth = matches!(
            change,
            None | Some(Change::Sessions | Change::Accounts | Change::Roles)
        );
        if auth && let Err(e) = state.auth.sync_changes().await {
            tracing::warn!(error = %e, "reading other instances' changes failed");
        }
        if matches!(change, None | Some(Change::Policy))
            && let Err(e) = state.catalog.sync_policy().await
        {
            tracing::warn!(error = %e, "reading other instances' tool policy failed");
        }
        if matches!(change, None | Some(Change::Upstreams))
            && let Err(e) = state.upstreams.sync_servers(&mut servers).await
        {
            tracing::warn!(error = %e, "reading other instances' MCP servers failed");
        }
        if let Some(Change::Approval(id)) = &change {
            state.approvals.wake(&ApprovalId::from(id.as_str()));
        }
    }
}

/// Accepts connections until `stop`, then lets the requests in flight finish. HTTP/1.1 with keep-alive; a client
/// gets `header_read_timeout` to send each request's headers (also the longest a kept-alive connection idles),
/// and one address holds at most `max_connections_per_ip` connections: the next ones are closed at once,
/// unanswered, which costs the server nothing (trusted proxies, which carry many clients, are exempt).
async fn serve<S>(listener: TcpListener, service: S, config: &Config, stop: CancellationToken)
where
    S: tower::Service<
            Request<axum::body::Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let counts = Arc::new(ConnectionCounts {
        max: config.max_connections_per_ip,
        exempt: config.trusted_proxies.clone(),
        open: Mutex::new(HashMap::new()),
    });
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin on the same error.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Some(slot) = counts.admit(peer.ip().to_canonical()) else {
            tracing::debug!(peer = %peer.ip(), "connection closed: too many from this address");
            continue;
        };
        // Each response and each streamed event goes out when written, as most servers do: with Nagle's algorithm
        // the kernel may hold a small write until the previous one is acknowledged. (On loopback no difference was
        // measured: 20 streamed tokens 5 ms apart arrived 5.1 ms apart either way.)
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
        let service = service.clone();
        // The ClientIp extractor reads the peer address from here, as with axum's own server.
        let per_request = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            service.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), per_request));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Open connections per client address.
struct ConnectionCounts {
    max: usize,
    exempt: Vec<IpNet>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionCounts {
    /// A place for one more connection from `ip`, or `None` when it holds its share already.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let exempt = self.exempt.iter().any(|net| net.contains(ip));
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max && !exempt {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One admitted connection; gives its place back when the connection ends.
struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Whether a user holds a permission now, for the SMS tools (sms does not import auth): an inactive or
/// unknown account holds none.
/// JWT_SECRET_KEY, or in development a random key kept in the data dir (mode 0600) so restarts keep sessions.
fn signing_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = &config.jwt_secret {
        return Ok(s.expose_secret().as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt_secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        private_files::tighten(&path, 0o600)?;
        let key = B64
            .decode(text.trim())
            .context("data dir jwt_secret is not base64")?;
        if key.len() >= 32 {
            return Ok(key);
        }
    }
    let key: [u8; 48] = rand::random();
    private_files::write(&path, &B64.encode(key))?;
    Ok(key.to_vec())
}

/// The file of the development encryption key, in the data dir.
pub const ENCRYPTION_KEY_FILE: &str = "encryption_key";

/// WARDEN_ENCRYPTION_KEY, or in development a random key kept in the data dir (mode 0600) so restarts open
/// what was sealed. (Production refuses to start without the setting: see `Config::findings`.)
pub fn encryption_key(config: &Config) -> anyhow::Result<crate::seal::SealKey> {
    if let Some(key) = &config.encryption_key {
        return Ok(key.clone());
    }
    let path = config.data_dir.join(ENCRYPTION_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        private_files::tighten(&path, 0o600)?;
        // A damaged file is an error, not a reason to make a new key: the values sealed under it would be lost.
        return crate::seal::SealKey::parse(&text)
            .map_err(|e| anyhow::anyhow!("the data dir's {ENCRYPTION_KEY_FILE} {e}"));
    }
    let key = crate::seal::SealKey::generate();
    private_files::write(&path, key.encoded().expose_secret())?;
    Ok(key)
}

/// The data dir holds the signing key and the SQLite database: one that exists (made by an earlier version, or
/// by hand) becomes private to the service user. A missing one is made private by whoever creates it.
fn tighten_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        private_files::tighten(dir, 0o700)?;
    }
    Ok(())
}

/// The configured language model, with each request's latency and tokens recorded for `/metrics`. Wrapped
/// here, where the parts are assembled, so the agent and its providers stay unaware of metrics.
struct MeasuredLlm(Arc<dyn crate::agent::llm::LlmProvider>);

impl crate::agent::llm::LlmProvider for MeasuredLlm {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn model(&self) -> &str {
        self.0.model()
    }

    fn complete<'a>(
        &'a self,
        request: &'a crate::agent::llm::LlmRequest,
        deltas: Option<&'a crate::agent::llm::DeltaSender>,
    ) -> futures::future::BoxFuture<
        'a,
        Result<crate::agent::llm::LlmResponse, crate::agent::llm::LlmError>,
    > {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = self.0.complete(request, deltas).await;
            let (prompt, completion) = match &result {
                Ok(r) => (r.usage.input_tokens, r.usage.output_tokens),
                Err(_) => (0, 0),
            };
            crate::telemetry::record_llm_request(
                self.0.name(),
                self.0.model(),
                result.is_ok(),
                started.elapsed().as_secs_f64(),
                u64::try_from(prompt).unwrap_or(0),
                u64::try_from(completion).unwrap_or(0),
            );
            result
        })
    }
}
